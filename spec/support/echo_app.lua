--- spec/support/echo_app.lua: the test app transport specs talk to.
-- Start it with require("spec.support.server").start("spec.support.echo_app").
-- It runs in the child (Lua 5.4); the helpers at the bottom (M.pattern,
-- M.adler32) are Lua 5.1-compatible so a spec can compute expected values.
--
-- Routes (any method; JSON answers have Content-Type application/json):
--   /echo            {method, target, path, query, params, headers, version,
--                     body_length, body (only when body_length <= 65536)}
--   /headers         the request headers (lower-case names) as a JSON object
--   /status/N        status N (200..599), JSON {"status": N}; no body for 204/304
--   /slow?ms=N       waits N ms with Server.sleep (other requests go on meanwhile),
--                    then JSON {"ms": N, "start": t0, "end": t1}: t0/t1 are the
--                    server's core.monotonic() (CLOCK_MONOTONIC, comparable across
--                    processes on one machine)
--   /bytes?n=N       N bytes of M.pattern(N) (byte i, from 0, is i % 256),
--                    application/octet-stream
--   /multipart       JSON list, one entry per part: {name, filename, content_type,
--                    size, adler32 (M.adler32 of the data), data (only when
--                    size <= 1024)}; a body that does not parse gives 400 with
--                    JSON {"error": reason}
--   /multipart/file  the raw bytes of the part named "file" (its content type
--                    echoed), 400 JSON {"error": ...} when absent or unparsable
--   /drop            closes the connection without answering (Server.DROP)
--   /discard         the body's length as text/plain decimal (for benchmarks)
--   anything else    404 JSON {"error": "no route"}
local M = {}

local SMALL_BODY = 65536
local SMALL_PART = 1024

--- pattern(n): the bytes /bytes?n=N sends.
function M.pattern(n)
    local block = {}
    for i = 0, 255 do block[#block + 1] = string.char(i) end
    block = table.concat(block)
    return string.rep(block, math.floor(n / 256)) .. block:sub(1, n % 256)
end

--- adler32(s): zlib's Adler-32 of s as a number (no bit operations needed).
function M.adler32(s)
    local a, b = 1, 0
    local byte = string.byte
    local i, n = 1, #s
    while i <= n do
        local j = math.min(i + 3799, n) -- 3800 steps keep b exact before the modulo
        for k = i, j do
            a = a + byte(s, k)
            b = b + a
        end
        a, b = a % 65521, b % 65521
        i = j + 1
    end
    return b * 65536 + a
end

local function handlers()
    local cjson = require("cjson")
    local core = require("marketo.core")
    local Server = require("marketo.sandbox.http")
    local multipart = require("marketo.sandbox.multipart")

    local function json(status, value)
        return status, { ["Content-Type"] = "application/json" }, cjson.encode(value)
    end

    local routes = {}

    function routes.echo(req)
        return json(200, {
            method = req.method, target = req.target, path = req.path, query = req.query,
            params = req.params, headers = req.headers, version = req.version,
            body_length = #req.body, body = #req.body <= SMALL_BODY and req.body or nil,
        })
    end

    function routes.headers(req) return json(200, req.headers) end

    function routes.slow(req)
        local ms = tonumber(req.params.ms) or 0
        local t0 = core.monotonic()
        Server.sleep(ms / 1000)
        return json(200, { ms = ms, start = t0, ["end"] = core.monotonic() })
    end

    function routes.bytes(req)
        local n = math.floor(tonumber(req.params.n) or 0)
        return 200, { ["Content-Type"] = "application/octet-stream" }, M.pattern(n)
    end

    function routes.multipart(req)
        local parts, why = multipart.parse(req.body, req.headers["content-type"])
        if not parts then return json(400, { error = why }) end
        local list = {}
        for i, p in ipairs(parts) do
            list[i] = { name = p.name, filename = p.filename, content_type = p.content_type,
                        size = #p.data, adler32 = M.adler32(p.data),
                        data = #p.data <= SMALL_PART and p.data or nil }
        end
        return json(200, list)
    end

    routes["multipart/file"] = function(req)
        local parts, why = multipart.parse(req.body, req.headers["content-type"])
        local file = parts and multipart.find(parts, "file")
        if not file then return json(400, { error = why or "no part named file" }) end
        return 200, { ["Content-Type"] = file.content_type or "application/octet-stream" },
            file.data
    end

    function routes.drop() return Server.DROP end

    function routes.discard(req)
        return 200, { ["Content-Type"] = "text/plain" }, tostring(#req.body)
    end

    return function(req)
        local status = req.path:match("^/status/(%d+)$")
        if status then
            status = tonumber(status)
            if status < 200 or status > 599 then return json(400, { error = "bad status" }) end
            if status == 204 or status == 304 then return status, {}, "" end
            return json(status, { status = status })
        end
        local route = routes[req.path:sub(2)]
        if route then return route(req) end
        return json(404, { error = "no route" })
    end
end

-- Loaded by serve.lua (as a module), or by a spec for the helpers only: the
-- handler is built on first use so specs under LuaJIT need no lua-socket.
return setmetatable(M, { __index = function(t, k)
    if k ~= "handler" then return nil end
    local h = handlers()
    rawset(t, "handler", h)
    return h
end })
