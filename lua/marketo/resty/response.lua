--- marketo.resty.response: reads one HTTP/1.x response from a cosocket.
--
--   local res, msg, code = response.read(conn, { method = "GET", output = path })
--   res = { status, headers (lower-case names), body (nil with output),
--           downloaded, keepalive }
--
-- conn = { sock, deadline } (deadline in ngx.now() seconds: every receive gets
-- only the time that is left of the whole request). Bodies by Content-Length,
-- chunked, or up to the close. GOT_NOTHING means the server closed without
-- sending a byte: on a reused keep-alive connection, that it had closed it
-- while it sat in the pool, so the request may go again on a fresh one.
local M = {}

--- Bytes per receive of a body.
M.CHUNK = 65536
--- Most header lines accepted (a bound on a runaway server).
M.MAX_HEADERS = 200

local function fail(code, msg)
    return nil, code .. ": " .. msg, code
end

-- The cosocket error of a receive, in curl's code names.
local function recv_fail(err, what)
    if err == "timeout" then return fail("OPERATION_TIMEDOUT", what .. ": timed out") end
    if err == "closed" then return fail("PARTIAL_FILE", what .. ": connection closed early") end
    return fail("RECV_ERROR", what .. ": " .. tostring(err))
end

--- time_left(conn) -> conn's socket with the time left of its request as its
-- timeout (every receive here, every send in marketo.resty.transport), or
-- nil, "timeout" when none is left.
function M.time_left(conn)
    local left = conn.deadline - ngx.now()
    if left <= 0 then return nil, "timeout" end
    conn.sock:settimeout(math.max(1, math.floor(left * 1000)))
    return conn.sock
end

local function recv(conn, pattern)
    local sock, err = M.time_left(conn)
    if not sock then return nil, err end
    return sock:receive(pattern)
end

-- Where the body goes: a list of strings, or a file.
local function new_sink(output)
    if not output then
        local parts = {}
        return { write = function(s) parts[#parts + 1] = s; return true end,
                 finish = function() return table.concat(parts) end }
    end
    local f, msg = io.open(output, "wb")
    if not f then return nil, msg end
    return { write = function(s) return f:write(s) end,
             finish = function() f:close() end, file = f }
end

local function read_length(conn, sink, length)
    local left = length
    while left > 0 do
        local data, err = recv(conn, math.min(M.CHUNK, left))
        if not data then return recv_fail(err, "body") end
        if not sink.write(data) then return fail("WRITE_ERROR", "cannot write the body") end
        left = left - #data
    end
    return length
end

-- Chunked transfer coding (RFC 9112 §7.1); trailers are read and dropped.
local function read_chunked(conn, sink)
    local total = 0
    while true do
        local line, err = recv(conn, "*l")
        if not line then return recv_fail(err, "chunk size") end
        local size = tonumber(line:match("^%s*(%x+)"), 16)
        if not size then return fail("WEIRD_SERVER_REPLY", "bad chunk size line") end
        if size == 0 then break end
        local n, msg, code = read_length(conn, sink, size)
        if not n then return nil, msg, code end
        total = total + n
        local crlf
        crlf, err = recv(conn, 2)
        if not crlf then return recv_fail(err, "chunk end") end
        if crlf ~= "\r\n" then return fail("WEIRD_SERVER_REPLY", "bad chunk end") end
    end
    repeat
        local line, err = recv(conn, "*l")
        if not line then return recv_fail(err, "trailer") end
    until line == ""
    return total
end

local function read_to_close(conn, sink)
    local total = 0
    while true do
        local data, err, partial = recv(conn, M.CHUNK)
        data = data or partial
        if data and #data > 0 then
            if not sink.write(data) then return fail("WRITE_ERROR", "cannot write the body") end
            total = total + #data
        end
        if err == "closed" then return total end
        if err then return recv_fail(err, "body") end
    end
end

local function read_headers(conn)
    local headers = {}
    for _ = 1, M.MAX_HEADERS do
        local line, err = recv(conn, "*l")
        if not line then return recv_fail(err, "headers") end
        if line == "" then return headers end
        local name, value = line:match("^([^:%s]+)%s*:%s*(.-)%s*$")
        if not name then return fail("WEIRD_SERVER_REPLY", "bad header line") end
        name = name:lower()
        headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
    return fail("WEIRD_SERVER_REPLY", "more than " .. M.MAX_HEADERS .. " header lines")
end

-- Status line and headers, skipping interim 1xx answers.
local function read_head(conn)
    local first = true
    while true do
        local line, err = recv(conn, "*l")
        if not line then
            if first and err == "closed" then
                return fail("GOT_NOTHING", "empty reply from server")
            end
            return recv_fail(err, "status line")
        end
        first = false
        local version, status = line:match("^HTTP/(%d%.%d) (%d%d%d)")
        if not version then return fail("WEIRD_SERVER_REPLY", "bad status line") end
        local headers, msg, code = read_headers(conn)
        if not headers then return nil, msg, code end
        status = tonumber(status)
        if status >= 200 or status == 101 then return version, status, headers end
    end
end

local function wants_keepalive(version, headers)
    local c = (headers.connection or ""):lower()
    if version == "1.0" then return c:find("keep-alive", 1, true) ~= nil end
    return c:find("close", 1, true) == nil
end

local function read_body(conn, method, status, headers, sink)
    if method == "HEAD" or status == 204 or status == 304 or status < 200 then return 0 end
    local te = headers["transfer-encoding"]
    if te and te:lower():find("chunked", 1, true) then return read_chunked(conn, sink) end
    local length = headers["content-length"]
    if length then
        length = tonumber(length:match("^%d+$"))
        if not length then return fail("WEIRD_SERVER_REPLY", "bad Content-Length") end
        return read_length(conn, sink, length)
    end
    local n, msg, code = read_to_close(conn, sink)
    return n, msg, code, false
end

--- read(conn, opts) -> res | nil, msg, code. opts: method, output.
function M.read(conn, opts)
    local version, status, headers = read_head(conn)
    if not version then return nil, status, headers end
    local sink, serr = new_sink(opts.output)
    if not sink then return fail("WRITE_ERROR", tostring(serr)) end
    local n, msg, code, reusable = read_body(conn, opts.method, status, headers, sink)
    local body = sink.finish()
    if not n then return nil, msg, code end
    return { status = status, headers = headers, body = (not opts.output) and body or nil,
             downloaded = n, keepalive = reusable ~= false and wants_keepalive(version, headers) }
end

return M
