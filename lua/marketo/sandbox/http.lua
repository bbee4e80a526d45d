--- marketo.sandbox.http: a small HTTP/1.1 server on lua-socket, for the sandbox
-- and for every transport test. One process, one thread: non-blocking sockets,
-- socket.select, and one coroutine per connection, so a slow answer
-- (Server.sleep) never holds up the others.
--
--   local Server = require("marketo.sandbox.http")
--   local server = Server.new{ host = "127.0.0.1", port = 0, handler = fn,
--                              max_body = 64 * 2^20, timeout = 30,
--                              max_header = 65536, max_connections = 512,
--                              log = function(msg) io.stderr:write(msg, "\n") end }
--   server:port()        -- the port actually bound (port = 0 picks a free one)
--   server:run()         -- until server:stop() or core.stop_requested(); then closes
--   server:step(timeout) -- one round of waiting (at most `timeout` s) and work
--   server:close()       -- closes the listener and every connection
--
-- handler(req) gets { method, target, path, query, params, headers, body,
-- remote, version }: path and query are the raw (undecoded) parts of the
-- target, query is "" when there is none, params is the decoded query (first
-- value wins for a repeated name), headers have lower-case names (repeats
-- joined with ", "), version is "1.0" or "1.1". It returns status, headers
-- (name -> string, or a list of strings), body (string or nil; or a function
-- giving the next piece of it each call and nil at the end, sent chunked), or
-- Server.DROP to close the connection without answering. An error in the
-- handler becomes a 500 and is passed to `log`. Server.sleep(s) in a handler
-- delays only that answer.
--
-- Every answer carries Date, Server and Content-Length (none on 1xx and 204,
-- which must not have one; chunked for a body in pieces, or to HTTP/1.0 the
-- connection's end); the server decides Connection. HTTP/1.1 requests
-- need a Host header (RFC 9112 §3.2). Bodies come by Content-Length or chunked
-- (both at once is refused: request smuggling); `Expect: 100-continue` gets
-- 100, or a final 413 when the declared length exceeds max_body.
local socket = require("socket")
local core = require("marketo.core")
local decode_query = require("marketo.sandbox.params").decode

local clock = core.monotonic
local find, sub, concat = string.find, string.sub, table.concat

local Server = {}
Server.__index = Server

--- Returned by a handler: close the connection without any answer.
Server.DROP = setmetatable({}, { __tostring = function() return "marketo.sandbox.http.DROP" end })

local BLOCK = 256 * 1024   -- bytes asked of the socket per receive
local SMALL_BODY = 65536   -- answers up to this size go out in one send with the head
local ACCEPT_BURST = 64    -- connections accepted per step, so work keeps flowing

local REASONS = {
    [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
    [204] = "No Content", [206] = "Partial Content", [301] = "Moved Permanently",
    [302] = "Found", [303] = "See Other", [304] = "Not Modified",
    [307] = "Temporary Redirect", [400] = "Bad Request", [401] = "Unauthorized",
    [402] = "Payment Required", [403] = "Forbidden", [404] = "Not Found",
    [405] = "Method Not Allowed", [406] = "Not Acceptable", [410] = "Gone",
    [412] = "Precondition Failed", [418] = "I'm a teapot", [422] = "Unprocessable Content",
    [408] = "Request Timeout", [409] = "Conflict", [411] = "Length Required",
    [413] = "Content Too Large", [414] = "URI Too Long", [415] = "Unsupported Media Type",
    [417] = "Expectation Failed", [429] = "Too Many Requests",
    [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
    [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
    [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}

-- Raised inside a connection coroutine; serve_connection catches them.
local CLOSED = setmetatable({}, { __tostring = function() return "connection closed" end })
local function refuse(status, why) error({ status = status, why = why }, 0) end

-- Coroutines this module runs, so Server.sleep knows when it may yield.
local ours = setmetatable({}, { __mode = "k" })

--- Server.sleep(s): inside a handler, delays that answer only; elsewhere blocks.
function Server.sleep(s)
    if ours[coroutine.running()] then
        coroutine.yield("sleep", s)
    else
        socket.sleep(s)
    end
end

---------------------------------------------------------------------------
-- Connection I/O: a read buffer with a cursor, so consuming a line never
-- copies what follows it; body bytes go to a table and are joined once.

local Conn = {}
Conn.__index = Conn

-- Yields to the scheduler until the socket is ready; a false resume value
-- means the wait timed out.
local function wait_for(what, timeout)
    if not coroutine.yield(what, timeout) then error(CLOSED, 0) end
end

-- Up to n bytes from the socket, at least one: waits while it has none.
function Conn:receive(n)
    while true do
        local data, err, partial = self.sock:receive(n)
        data = data or partial
        if data and #data > 0 then return data end
        if err ~= "timeout" then error(CLOSED, 0) end
        wait_for("read")
    end
end

function Conn:fill()
    local data = self:receive(BLOCK)
    if self.pos > #self.buf then self.buf = data
    else self.buf = sub(self.buf, self.pos) .. data end
    self.pos = 1
end

-- A line without its CRLF (a bare LF is accepted too); a longer one is refused
-- with `status` (431 for head lines).
function Conn:line(limit, status)
    while true do
        local i = find(self.buf, "\n", self.pos, true)
        if i then
            local line = sub(self.buf, self.pos, i - 1)
            self.pos = i + 1
            if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
            return line
        end
        if #self.buf - self.pos + 1 > limit then refuse(status or 431, "line too long") end
        self:fill()
    end
end

-- Appends exactly n bytes to parts: first the buffer, then straight from
-- the socket, so a big body is never copied through self.buf.
function Conn:read_into(parts, n)
    local have = #self.buf - self.pos + 1
    if have >= n then
        parts[#parts + 1] = sub(self.buf, self.pos, self.pos + n - 1)
        self.pos = self.pos + n
        return
    end
    if have > 0 then parts[#parts + 1] = sub(self.buf, self.pos) end
    self.buf, self.pos = "", 1
    local need = n - have
    while need > 0 do
        local data = self:receive(need)
        parts[#parts + 1] = data
        need = need - #data
    end
end

function Conn:send(data)
    local i = 1
    while i <= #data do
        local last, err, partial = self.sock:send(data, i)
        if last then return end
        if err ~= "timeout" then error(CLOSED, 0) end
        i = partial + 1
        wait_for("write")
    end
end

-- After an error answer the client may still be sending: read and drop
-- for a moment so closing does not reset the connection under the answer.
function Conn:linger()
    self.sock:shutdown("send")
    local deadline = clock() + 1
    while clock() < deadline do
        local data, err = self.sock:receive(BLOCK)
        if not data and err ~= "timeout" then return end
        if not data then wait_for("read", deadline - clock()) end
    end
end

---------------------------------------------------------------------------
-- Requests

local function split_target(method, target)
    local rest = target
    if not find(target, "^/") then
        if method == "OPTIONS" and target == "*" then return "*", "" end
        rest = target:match("^[hH][tT][tT][pP][sS]?://[^/?#]+(.*)$")
        if not rest then refuse(400, "bad request target") end
        if rest == "" or find(rest, "^%?") then rest = "/" .. rest end
    end
    local path, query = rest:match("^([^?#]*)%??([^#]*)")
    return path, query
end

local function read_head(server, conn)
    local line = conn:line(server.max_header)
    while line == "" do line = conn:line(server.max_header) end -- RFC 9112 §2.2
    local method, target, major, minor =
        line:match("^([%w!#$%%&'*+.^_`|~-]+) (%S+) HTTP/(%d)%.(%d)$")
    if not method then refuse(400, "bad request line") end
    if major ~= "1" then refuse(505, "HTTP/" .. major .. "." .. minor) end
    local headers, size = {}, #line
    while true do
        line = conn:line(server.max_header)
        if line == "" then break end
        size = size + #line
        if size > server.max_header then refuse(431, "header too large") end
        local name, value = line:match("^([%w!#$%%&'*+.^_`|~-]+):[ \t]*(.-)[ \t]*$")
        if not name then refuse(400, "bad header line") end
        name = name:lower()
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
    return method, target, minor == "0" and "1.0" or "1.1", headers
end

-- Decides the framing before any byte of the body is read, so a refusal
-- (413, 417, 501) can be sent without reading it.
local function body_length(server, headers)
    local te, cl = headers["transfer-encoding"], headers["content-length"]
    if te then
        if cl then refuse(400, "both Content-Length and Transfer-Encoding") end
        if te:lower() ~= "chunked" then refuse(501, "transfer coding " .. te) end
        return "chunked"
    end
    if not cl then return 0 end
    if not cl:match("^%d+$") or #cl > 15 then refuse(400, "bad Content-Length") end
    local n = tonumber(cl)
    if n > server.max_body then refuse(413, "body of " .. n .. " bytes") end
    return n
end

local function read_chunked(server, conn, parts)
    local total = 0
    while true do
        local size = conn:line(1024, 400):match("^(%x+)[ \t]*;?.*$")
        if not size or #size > 12 then refuse(400, "bad chunk size") end
        size = tonumber(size, 16)
        if size == 0 then break end
        total = total + size
        if total > server.max_body then refuse(413, "chunked body too large") end
        conn:read_into(parts, size)
        if conn:line(2, 400) ~= "" then refuse(400, "chunk not followed by CRLF") end
    end
    repeat until conn:line(server.max_header) == "" -- trailers are dropped
end

local function wants_keepalive(version, headers)
    local c = (headers.connection or ""):lower()
    if version == "1.0" then return find(c, "keep-alive", 1, true) ~= nil end
    return not find(c, "close", 1, true)
end

local function read_request(server, conn)
    local method, target, version, headers = read_head(server, conn)
    if version == "1.1" and not headers.host then refuse(400, "no Host header") end
    local path, query = split_target(method, target)
    local length = body_length(server, headers)
    local expect = headers.expect
    if expect then
        if expect:lower() ~= "100-continue" then refuse(417, "Expect: " .. expect) end
        if version == "1.1" and length ~= 0 then conn:send("HTTP/1.1 100 Continue\r\n\r\n") end
    end
    local parts = {}
    if length == "chunked" then read_chunked(server, conn, parts)
    elseif length > 0 then conn:read_into(parts, length) end
    return {
        method = method, target = target, path = path, query = query,
        params = decode_query(query), headers = headers, body = concat(parts),
        remote = conn.remote, version = version,
    }
end

---------------------------------------------------------------------------
-- Answers

local function header_lines(out, headers)
    local seen, close = {}, false
    for name, value in pairs(headers or {}) do
        local lname = tostring(name):lower()
        local values = type(value) == "table" and value or { value }
        if lname == "connection" then
            close = find(tostring(value):lower(), "close", 1, true) ~= nil
        elseif lname ~= "content-length" and lname ~= "transfer-encoding" then
            seen[lname] = true
            for _, v in ipairs(values) do
                v = tostring(v)
                if find(v, "[\r\n]") or find(tostring(name), "[%s:]") then
                    error(("bad header %q: %q"):format(tostring(name), v), 0)
                end
                out[#out + 1] = name .. ": " .. v .. "\r\n"
            end
        end
    end
    return seen, close
end

-- The head and body of an answer, and whether the server must close after it.
local function render(status, headers, body, req, keep)
    local out = { ("HTTP/1.1 %d %s\r\n"):format(status, REASONS[status] or "Unknown") }
    local seen, close = header_lines(out, headers)
    if not seen.date then out[#out + 1] = os.date("!Date: %a, %d %b %Y %H:%M:%S GMT\r\n") end
    if not seen.server then out[#out + 1] = "Server: marketo-bulk-sandbox\r\n" end
    local pieces = type(body) == "function"
    if pieces and req and req.version == "1.1" then
        out[#out + 1] = "Transfer-Encoding: chunked\r\n"
    elseif pieces then
        close = true -- HTTP/1.0: the end of the body is the end of the connection
    elseif status >= 200 and status ~= 204 then
        out[#out + 1] = "Content-Length: " .. #body .. "\r\n"
    end
    if status < 200 or status == 204 or status == 304 or (req and req.method == "HEAD") then
        body = ""
    end
    keep = keep and not close
    if not keep then out[#out + 1] = "Connection: close\r\n"
    elseif req and req.version == "1.0" then out[#out + 1] = "Connection: keep-alive\r\n" end
    out[#out + 1] = "\r\n"
    return concat(out), body, keep
end

-- Sends a body given as pieces; a piece that fails ends the connection
-- mid-answer, so the client sees a cut answer, never a whole-looking one.
local function send_pieces(conn, next_piece, chunked, log)
    while true do
        local ok, piece = pcall(next_piece)
        if not ok then
            log("streamed answer: " .. tostring(piece))
            error(CLOSED, 0)
        end
        if piece == nil then break end
        if #piece > 0 then
            conn:send(chunked and ("%x\r\n%s\r\n"):format(#piece, piece) or piece)
        end
    end
    if chunked then conn:send("0\r\n\r\n") end
end

local function respond(conn, status, headers, body, req, keep, log)
    local head
    head, body, keep = render(status, headers, body, req, keep)
    if type(body) == "function" then
        conn:send(head)
        send_pieces(conn, body, req.version == "1.1", log)
    elseif #body <= SMALL_BODY then
        conn:send(head .. body)
    else
        conn:send(head)
        conn:send(body)
    end
    return keep
end

local function valid_answer(status, headers, body)
    return math.type(status) == "integer" and status >= 200 and status <= 599
        and (headers == nil or type(headers) == "table")
        and (body == nil or type(body) == "string" or type(body) == "function")
end

-- One request: returns whether the connection stays open.
local function answer(server, conn, req)
    local ok, status, headers, body = xpcall(server.handler, debug.traceback, req)
    if ok and status == Server.DROP then return false end
    if ok and not valid_answer(status, headers, body) then
        ok, status = false, ("handler for %s %s returned %s, %s, %s"):format(
            req.method, req.target, tostring(status), type(headers), type(body))
    end
    if not ok then
        server.log(("%s %s: %s"):format(req.method, req.target, tostring(status)))
        status, headers, body = 500, { ["Content-Type"] = "text/plain" }, "internal error\n"
    end
    local sent, keep = pcall(respond, conn, status, headers, body or "", req,
        wants_keepalive(req.version, req.headers), server.log)
    if sent then return keep end
    if keep ~= CLOSED then -- a bad header from the handler: still answer
        server.log(("%s %s: %s"):format(req.method, req.target, tostring(keep)))
        return respond(conn, 500, { ["Content-Type"] = "text/plain" }, "internal error\n", req,
            false)
    end
    error(CLOSED, 0)
end

local function serve_connection(server, conn)
    local ok, err = pcall(function()
        repeat
            local req = read_request(server, conn)
        until not answer(server, conn, req)
    end)
    if not ok and type(err) == "table" and err.status then
        pcall(function()
            respond(conn, err.status, { ["Content-Type"] = "text/plain" }, err.why .. "\n",
                nil, false)
            conn:linger()
        end)
    elseif not ok and err ~= CLOSED then
        server.log("connection " .. conn.remote .. ": " .. tostring(err))
    end
    conn.sock:close()
end

---------------------------------------------------------------------------
-- The server: accept, select, resume.

local function default_log(msg) io.stderr:write("marketo.sandbox.http: ", msg, "\n") end

local function check_opts(opts)
    if type(opts) ~= "table" then
        error("bad argument #1 to 'Server.new' (table expected, got " .. type(opts) .. ")", 3)
    end
    if type(opts.handler) ~= "function" then
        error("bad argument #1 to 'Server.new' (handler must be a function)", 3)
    end
end

function Server.new(opts)
    check_opts(opts)
    local sock = assert(socket.tcp())
    sock:setoption("reuseaddr", true)
    local ok, err = sock:bind(opts.host or "127.0.0.1", opts.port or 0)
    if ok then ok, err = sock:listen(opts.backlog or 128) end
    if not ok then
        sock:close()
        return nil, "BIND: " .. tostring(err), "BIND"
    end
    sock:settimeout(0)
    return setmetatable({
        sock = sock, handler = opts.handler, log = opts.log or default_log,
        max_body = opts.max_body or 64 * 1024 * 1024, max_header = opts.max_header or 65536,
        timeout = opts.timeout or 30, max_connections = opts.max_connections or 512,
        conns = {}, by_sock = {}, count = 0, stopped = false,
    }, Server)
end

function Server:port()
    local _, port = self.sock:getsockname()
    return tonumber(port)
end

function Server:stop() self.stopped = true end

-- Resumes a connection's coroutine and records what it now waits for.
function Server:resume(conn, value)
    local ok, what, arg = coroutine.resume(conn.co, value)
    if not ok then self.log("connection coroutine: " .. tostring(what)) end
    if coroutine.status(conn.co) == "dead" then
        if not ok then conn.sock:close() end
        self.conns[conn], self.by_sock[conn.sock] = nil, nil
        self.count = self.count - 1
        return
    end
    local wait = (what == "sleep" and arg) or (what == "read" or what == "write") and
        (arg or self.timeout) or 0
    conn.waiting, conn.deadline = what, clock() + wait
end

function Server:accept()
    for _ = 1, ACCEPT_BURST do
        if self.count >= self.max_connections then return end
        local sock = self.sock:accept()
        if not sock then return end
        sock:settimeout(0)
        sock:setoption("tcp-nodelay", true) -- the head and a big body go in two sends
        local ip, port = sock:getpeername()
        local conn = setmetatable({ sock = sock, buf = "", pos = 1,
            remote = tostring(ip) .. ":" .. tostring(port) }, Conn)
        conn.co = coroutine.create(function() serve_connection(self, conn) end)
        ours[conn.co] = true
        self.conns[conn], self.by_sock[sock] = true, conn
        self.count = self.count + 1
        self:resume(conn)
    end
end

function Server:step(timeout)
    local now = clock()
    local wait = timeout or 1
    local recvt, sendt = {}, {}
    if self.count < self.max_connections then recvt[1] = self.sock end
    for conn in pairs(self.conns) do
        if conn.waiting == "read" then recvt[#recvt + 1] = conn.sock
        elseif conn.waiting == "write" then sendt[#sendt + 1] = conn.sock end
        wait = math.min(wait, math.max(0, conn.deadline - now))
    end
    local readable, writable = socket.select(recvt, sendt, wait)
    for list, what in pairs({ [readable] = "read", [writable] = "write" }) do
        for _, sock in ipairs(list) do
            local conn = self.by_sock[sock]
            if conn and conn.waiting == what then self:resume(conn, true) end
        end
    end
    if readable[self.sock] then self:accept() end
    now = clock()
    local due = {}
    for conn in pairs(self.conns) do
        if conn.deadline <= now then due[#due + 1] = conn end
    end
    for _, conn in ipairs(due) do
        -- a sleep ends normally; a socket wait that ran out is a timeout
        if self.conns[conn] then
            self:resume(conn, conn.waiting ~= "read" and conn.waiting ~= "write")
        end
    end
end

function Server:run()
    while not self.stopped and not core.stop_requested() do self:step(0.2) end
    -- let answers already being written finish before closing
    local deadline = clock() + 2
    while next(self.conns) and clock() < deadline do
        local writing = false
        for conn in pairs(self.conns) do writing = writing or conn.waiting == "write" end
        if not writing then break end
        self:step(0.05)
    end
    self:close()
end

function Server:close()
    for conn in pairs(self.conns) do
        conn.sock:close()
        coroutine.close(conn.co)
    end
    self.conns, self.by_sock, self.count = {}, {}, 0
    self.sock:close()
end

return Server
