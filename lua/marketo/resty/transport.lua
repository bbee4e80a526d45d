--- marketo.resty.transport: the transport interface (doc/internals.md) on
-- nginx cosockets, for OpenResty / ngx_lua. Every network wait yields to
-- nginx, so the worker keeps serving its other requests during an upload.
--
--   local t = require("marketo.resty.transport").new{ timeout = 300 }
--   local res, msg, code = t:request{ method = "POST", url = ..., multipart = {...} }
--   -- res = { status, headers (lower-case names), body (nil with output),
--   --         time, uploaded, downloaded, connects }
--
-- HTTP/1.1 with keep-alive (connections go back to the worker's pool with
-- setkeepalive); response bodies by Content-Length, chunked or up to the close;
-- the multipart file part is streamed from disk (marketo.resty.multipart).
-- `timeout` bounds the whole request, as libcurl's does. Failures use curl's
-- code names: nil, "COULDNT_CONNECT: ...", "COULDNT_CONNECT". Host names need
-- nginx's `resolver` directive; https needs `lua_ssl_trusted_certificate`.
local check = require("marketo.resty.check")
local multipart = require("marketo.resty.multipart")
local response = require("marketo.resty.response")

local M = { _VERSION = "0.1.0" }

local Transport = {}
Transport.__index = Transport

--- Defaults of new(); every one can be overridden there.
M.DEFAULTS = {
    connect_timeout = 10,     -- seconds to establish a connection
    timeout = 300,            -- seconds for a whole request (request{timeout} overrides)
    keepalive_timeout = 60,   -- seconds an idle connection stays in the pool
    pool_size = 8,            -- idle connections kept per host and port
    user_agent = "marketo-bulk/" .. M._VERSION,
}

local NEW_TYPES = {
    connect_timeout = "number", timeout = "number",
    keepalive_timeout = "number", pool_size = "number", user_agent = "string",
}

--- new(opts) -> transport; opts as in M.DEFAULTS (unknown keys raise).
function M.new(opts)
    if type(opts) == "table" and opts.verify ~= nil then
        -- No off switch, as in marketo.http: a test CA is trusted, not ignored.
        error("bad argument #1 to 'new' (verify: TLS verification is always on; to trust a "
            .. "private or test CA, name it in nginx's lua_ssl_trusted_certificate)", 2)
    end
    check.table(opts or {}, NEW_TYPES, "new", nil, 2)
    local self = setmetatable({}, Transport)
    for k, v in pairs(M.DEFAULTS) do self[k] = v end
    for k, v in pairs(opts or {}) do self[k] = v end
    return self
end

local function fail(code, msg)
    return nil, code .. ": " .. msg, code
end

-- { scheme, host, port, target, authority } or nil, msg, code.
local function parse_url(url)
    local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
    if not scheme then return fail("URL_MALFORMAT", "not an absolute URL: " .. url) end
    scheme = scheme:lower()
    if scheme ~= "http" and scheme ~= "https" then
        return fail("UNSUPPORTED_PROTOCOL", "only http and https: " .. url)
    end
    local authority, target = rest:match("^([^/?#]*)(.*)$")
    target = target:gsub("#.*$", "")
    if target == "" then target = "/" elseif target:sub(1, 1) == "?" then target = "/" .. target end
    local host, port = authority:match("^%[([^%]]+)%]:?(%d*)$")
    if not host then host, port = authority:match("^([^:]+):?(%d*)$") end
    if not host or host == "" then return fail("URL_MALFORMAT", "no host in " .. url) end
    local default = scheme == "https" and 443 or 80
    return { scheme = scheme, host = host, port = tonumber(port) or default,
             target = target, authority = authority }
end

-- A connection: the socket and the deadline of the whole request; send()
-- gives each write only the time that is left (response.time_left, which
-- every receive goes through too).
local Conn = {}
Conn.__index = Conn

function Conn:send(data)
    local sock, err = response.time_left(self)
    if not sock then return nil, err end
    return sock:send(data)
end

local function send_fail(err)
    if err == "timeout" then return fail("OPERATION_TIMEDOUT", "send: timed out") end
    return fail("SEND_ERROR", "send: " .. tostring(err))
end

local function connect(self, u, deadline)
    local sock = ngx.socket.tcp()
    local left = math.min(self.connect_timeout, deadline - ngx.now())
    sock:settimeout(math.max(1, math.floor(left * 1000)))
    local pool = ("%s:%d:%s"):format(u.host, u.port, u.scheme)
    local ok, err = sock:connect(u.host, u.port, { pool = pool })
    if not ok then
        if err == "timeout" then return fail("OPERATION_TIMEDOUT", "connect: timed out") end
        local code = tostring(err):find("resol") and "COULDNT_RESOLVE_HOST" or "COULDNT_CONNECT"
        return fail(code, ("%s:%d: %s"):format(u.host, u.port, tostring(err)))
    end
    local reused = (sock:getreusedtimes() or 0) > 0
    if u.scheme == "https" and not reused then
        local session, serr = sock:sslhandshake(nil, u.host, true)
        if not session then
            sock:close()
            -- ngx_lua reports a failed verification as "<X509 error number>: <text>"
            -- and a wrong name as "certificate host mismatch".
            serr = tostring(serr)
            local code = (serr:find("^%d+: ") or serr:find("mismatch", 1, true))
                and "PEER_FAILED_VERIFICATION" or "SSL_CONNECT_ERROR"
            return fail(code, "TLS: " .. tostring(serr))
        end
    end
    return setmetatable({ sock = sock, deadline = deadline, reused = reused }, Conn)
end

-- The request line and headers; the caller's headers win over ours, except
-- Content-Length, which only the body knows.
local function head(self, opts, u, ctype, length)
    local mine = { host = { "Host", u.authority },
                   ["user-agent"] = { "User-Agent", self.user_agent } }
    if ctype then mine["content-type"] = { "Content-Type", ctype } end
    local lines = {}
    for name, value in pairs(opts.headers or {}) do
        local lname = name:lower()
        if lname ~= "content-length" then
            mine[lname] = nil
            lines[#lines + 1] = name .. ": " .. value
        end
    end
    for _, h in pairs(mine) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
    if length then lines[#lines + 1] = "Content-Length: " .. ("%d"):format(length) end
    table.sort(lines)
    local method = opts.method or ((opts.body or opts.multipart) and "POST" or "GET")
    return ("%s %s HTTP/1.1\r\n%s\r\n\r\n"):format(method, u.target, table.concat(lines, "\r\n")),
        method
end

local function send_body(conn, opts, body, length)
    local sent, progress = 0, opts.on_progress
    local function on_chunk(n)
        sent = sent + n
        if progress then progress(sent, length) end
    end
    if body then
        local ok, msg, code = body:send(conn, on_chunk)
        if not ok then
            if code == "send" then return send_fail(msg) end
            return nil, msg, code
        end
    elseif opts.body and #opts.body > 0 then
        local ok, err = conn:send(opts.body)
        if not ok then return send_fail(err) end
        on_chunk(#opts.body)
    end
    return sent
end

-- A reused connection the server had closed while it sat in the pool shows
-- as a failed send or an empty reply: the request never reached the server,
-- and goes out again on a fresh connection.
local STALE = { SEND_ERROR = true, GOT_NOTHING = true }

local function content_length(opts, body)
    if body then return body.length end
    if opts.body then return #opts.body end
    local method = (opts.method or "GET"):upper()
    if method ~= "GET" and method ~= "HEAD" then return 0 end
end

-- One try on one connection: res | nil, msg, code, stale.
local function exchange(self, u, opts, body, deadline)
    local conn, msg, code = connect(self, u, deadline)
    if not conn then return nil, msg, code end
    local length = content_length(opts, body)
    local text, method = head(self, opts, u, body and body.content_type, length)
    local ok, err = conn:send(text)
    local uploaded, res
    if ok then
        uploaded, msg, code = send_body(conn, opts, body, length)
    else
        msg, code = select(2, send_fail(err))
    end
    if uploaded then
        res, msg, code = response.read(conn, { method = method, output = opts.output })
    end
    if not res then
        conn.sock:close()
        return nil, msg, code, conn.reused and STALE[code]
    end
    if res.keepalive then
        conn.sock:setkeepalive(self.keepalive_timeout * 1000, self.pool_size)
    else
        conn.sock:close()
    end
    res.uploaded, res.connects, res.keepalive = uploaded, conn.reused and 0 or 1, nil
    return res
end

--- request(opts) -> response | nil, "NAME: message", "NAME". opts: method,
-- url, headers (name -> value), body or multipart { fields = { {name, value},
-- ... }, file = { name, filename, content_type, path, offset, length, prefix } },
-- output (a path the body is written to), timeout (seconds), on_progress(sent, total).
function Transport:request(opts)
    check.request(opts, 2)
    local u, umsg, ucode = parse_url(opts.url)
    if not u then return nil, umsg, ucode end
    local body
    if opts.multipart then
        local bmsg, bcode
        body, bmsg, bcode = multipart.open(opts.multipart)
        if not body then return nil, bmsg, bcode end
    end
    ngx.update_time()
    local started = ngx.now()
    local deadline = started + (opts.timeout or self.timeout)
    local res, msg, code, again = exchange(self, u, opts, body, deadline)
    if again then res, msg, code = exchange(self, u, opts, body, deadline) end
    if body then body:close() end
    if not res then return nil, msg, code end
    ngx.update_time()
    res.time = ngx.now() - started
    return res
end

M.parse_url = parse_url
return M
