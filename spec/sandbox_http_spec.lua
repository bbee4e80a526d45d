-- marketo.sandbox.http over real loopback sockets: in-process with a raw
-- LuaSocket client (so a spec can send exactly the bytes it means, and drive
-- server:step itself), and in a child process with curl for big bodies,
-- 100-continue as curl does it, and many parallel connections.
local socket = require("socket")
local Server = require("marketo.sandbox.http")
local echo_app = require("spec.support.echo_app")
local test_server = require("spec.support.server")
local fails = require("spec.support.fails")

local MB = 1024 * 1024

-- A raw client whose reads never block, so one thread can also run the server.
local Client = {}
Client.__index = Client

local function connect(server)
    local sock = assert(socket.connect("127.0.0.1", server:port()))
    sock:settimeout(0)
    return setmetatable({ sock = sock, buf = "", closed = false }, Client)
end

function Client:send(data) assert(self.sock:send(data)) return self end

function Client:poll()
    local data, err, partial = self.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then self.buf = self.buf .. data end
    if err == "closed" then self.closed = true end
end

-- Runs the server until cond() is true (or fails after `limit` seconds).
local function pump(server, cond, limit)
    local deadline = socket.gettime() + (limit or 5)
    while socket.gettime() < deadline do
        server:step(0.005)
        local v = cond()
        if v then return v end
    end
    error("condition not met in time", 2)
end

local function parse_head(head)
    local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d) "))
    local headers = {}
    for name, value in head:gmatch("\r\n([^:]+): ([^\r]*)") do headers[name:lower()] = value end
    return status, headers
end

-- The next answer on the connection, or nil when it closed without one.
-- A 100 Continue counts as an answer. no_body: a HEAD request's answer.
function Client:response(server, no_body)
    local res
    pump(server, function()
        self:poll()
        local e = self.buf:find("\r\n\r\n", 1, true)
        if e then
            local status, headers = parse_head(self.buf:sub(1, e - 1))
            local len = (status >= 200 and not no_body) and tonumber(headers["content-length"]) or 0
            if #self.buf >= e + 3 + len then
                res = { status = status, headers = headers, body = self.buf:sub(e + 4, e + 3 + len),
                        head = self.buf:sub(1, e - 1) }
                self.buf = self.buf:sub(e + 4 + len)
                return true
            end
        end
        return self.closed
    end)
    return res
end

-- True once the server has closed the connection (after any answer bytes).
function Client:wait_closed(server)
    return pump(server, function() self:poll() return self.closed end)
end

local function get(path, extra)
    return "GET " .. path .. " HTTP/1.1\r\nHost: t\r\n" .. (extra or "") .. "\r\n"
end

describe("marketo.sandbox.http", function()
    local server, seen, logged

    local function start(opts)
        seen, logged = {}, {}
        opts = opts or {}
        opts.log = function(msg) logged[#logged + 1] = msg end
        opts.handler = opts.handler or function(req)
            seen[#seen + 1] = req
            if req.path == "/drop" then return Server.DROP end
            if req.path == "/boom" then error("boom") end
            if req.path == "/nothing" then return 204, {}, "" end
            if req.path == "/stop" then server:stop() end
            return 200, { ["Content-Type"] = "text/plain", ["X-Two"] = { "a", "b" } },
                req.method .. " " .. #req.body
        end
        server = assert(Server.new(opts))
    end

    after_each(function() if server then server:close() end server = nil end)

    describe("Server.new", function()
        it("binds a free loopback port", function()
            start()
            assert.is_true(server:port() > 0)
            assert.equal("127.0.0.1", (server.sock:getsockname()))
        end)

        it("raises without a handler", function()
            assert.has_error(function() Server.new{} end,
                "bad argument #1 to 'Server.new' (handler must be a function)")
        end)

        it("fails with BIND on a port already taken", function()
            start()
            local msg = fails("BIND", Server.new{ port = server:port(), handler = print })
            assert.matches("^BIND: ", msg)
        end)
    end)

    describe("requests", function()
        before_each(function() start() end)

        it("gives the handler the decoded request", function()
            local c = connect(server)
            c:send("POST /a/b%20c?x=1&y=a+b%21&x=2&flag HTTP/1.1\r\nHost: t\r\n"
                .. "X-Mixed-Case: v1\r\nX-Mixed-Case: v2\r\nContent-Length: 3\r\n\r\nabc")
            local res = c:response(server)
            assert.equal(200, res.status)
            local req = seen[1]
            assert.equal("POST", req.method)
            assert.equal("/a/b%20c?x=1&y=a+b%21&x=2&flag", req.target)
            assert.equal("/a/b%20c", req.path)
            assert.equal("x=1&y=a+b%21&x=2&flag", req.query)
            assert.same({ x = "1", y = "a b!", flag = "" }, req.params)
            assert.equal("v1, v2", req.headers["x-mixed-case"])
            assert.equal("abc", req.body)
            assert.equal("1.1", req.version)
            assert.matches("^127%.0%.0%.1:%d+$", req.remote)
        end)

        it("answers with Date, Server and Content-Length", function()
            local c = connect(server)
            local res = c:send(get("/x")):response(server)
            assert.equal("GET 0", res.body)
            assert.equal("5", res.headers["content-length"])
            assert.equal("marketo-bulk-sandbox", res.headers.server)
            assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", res.headers.date)
            assert.matches("\r\nX%-Two: a\r\nX%-Two: b", res.head)
        end)

        it("keeps the connection for a second request", function()
            local c = connect(server)
            assert.equal(200, c:send(get("/1")):response(server).status)
            assert.equal(200, c:send(get("/2")):response(server).status)
            assert.equal(seen[1].remote, seen[2].remote)
            assert.is_false(c.closed)
        end)

        it("answers pipelined requests in order", function()
            local c = connect(server)
            c:send(get("/1") .. "POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
            assert.equal("GET 0", c:response(server).body)
            assert.equal("POST 2", c:response(server).body)
        end)

        it("closes after an answer when asked to", function()
            local c = connect(server)
            local res = c:send(get("/x", "Connection: close\r\n")):response(server)
            assert.equal("close", res.headers.connection)
            assert.is_true(c:wait_closed(server))
        end)

        it("reads a chunked body, with extensions and trailers", function()
            local c = connect(server)
            c:send("PUT /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                .. "5;ext=1\r\nhello\r\n1A\r\n" .. ("z"):rep(26) .. "\r\n0\r\nX-Trailer: 1\r\n\r\n")
            assert.equal("PUT 31", c:response(server).body)
            assert.equal("hello" .. ("z"):rep(26), seen[1].body)
            assert.equal(200, c:send(get("/after")):response(server).status)
        end)

        it("answers Expect: 100-continue with 100, then the final answer", function()
            local c = connect(server)
            c:send("POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                .. "Expect: 100-continue\r\n\r\n")
            local interim = c:response(server)
            assert.equal(100, interim.status)
            assert.equal(0, #seen)
            assert.equal("POST 4", c:send("body"):response(server).body)
        end)

        it("speaks HTTP/1.0: closes unless keep-alive was asked", function()
            local c = connect(server)
            local res = c:send("GET /old HTTP/1.0\r\n\r\n"):response(server)
            assert.equal(200, res.status)
            assert.equal("5", res.headers["content-length"])
            assert.equal("1.0", seen[1].version)
            assert.is_true(c:wait_closed(server))
            c = connect(server)
            res = c:send("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"):response(server)
            assert.equal("keep-alive", res.headers.connection)
            assert.equal(200, c:send("GET /again HTTP/1.0\r\n\r\n"):response(server).status)
        end)

        it("sends no body for HEAD and neither body nor length for 204", function()
            local c = connect(server)
            local res = c:send("HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n"):response(server, true)
            assert.equal("6", res.headers["content-length"]) -- of "HEAD 0", never sent
            res = c:send(get("/nothing")):response(server)
            assert.equal(204, res.status)
            assert.is_nil(res.headers["content-length"])
            assert.equal(200, c:send(get("/still-in-step")):response(server).status)
        end)

        it("closes without answering when the handler returns DROP", function()
            local c = connect(server)
            assert.is_nil(c:send(get("/drop")):response(server))
            assert.equal("", c.buf)
        end)

        it("turns a handler error into a 500 and logs it", function()
            local c = connect(server)
            assert.equal(500, c:send(get("/boom")):response(server).status)
            assert.matches("GET /boom: .*boom", logged[1])
            assert.equal(200, c:send(get("/fine")):response(server).status)
        end)

        it("logs and answers 500 for a handler that returns nonsense", function()
            server.handler = function() return "200" end
            local c = connect(server)
            assert.equal(500, c:send(get("/x")):response(server).status)
            assert.matches("returned 200, nil, nil", logged[1])
        end)
    end)

    describe("refusals", function()
        before_each(function() start{ max_body = 100 } end)

        local function refused(request)
            local c = connect(server)
            local res = c:send(request):response(server)
            assert.equal("close", res.headers.connection)
            assert.is_true(c:wait_closed(server))
            assert.equal(0, #seen)
            return res.status
        end

        it("answers a malformed request with 400 and closes", function()
            assert.equal(400, refused("GET /x HTTP/1.1 extra\r\n\r\n"))
            assert.equal(400, refused("GET /x HTTP/1.1\r\nHost: t\r\nBad Header: 1\r\n\r\n"))
            assert.equal(400, refused("GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"))
            assert.equal(400, refused("GET x HTTP/1.1\r\nHost: t\r\n\r\n"))
            assert.equal(400, refused("GET /x HTTP/1.1\r\n\r\n")) -- no Host
        end)

        it("refuses Content-Length together with chunked", function()
            assert.equal(400, refused("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
                .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
        end)

        it("refuses a broken chunk", function()
            assert.equal(400, refused("POST /x HTTP/1.1\r\nHost: t\r\n"
                .. "Transfer-Encoding: chunked\r\n\r\nzz\r\n"))
        end)

        it("answers 413 over max_body without asking for the body", function()
            assert.equal(413, refused("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n"
                .. "Expect: 100-continue\r\n\r\n"))
            assert.equal(413, refused("POST /x HTTP/1.1\r\nHost: t\r\n"
                .. "Transfer-Encoding: chunked\r\n\r\n65\r\n" .. ("x"):rep(101) .. "\r\n0\r\n\r\n"))
        end)

        it("accepts a body of exactly max_body", function()
            local c = connect(server)
            c:send("POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" .. ("x"):rep(100))
            assert.equal("POST 100", c:response(server).body)
        end)

        it("answers 505 to another HTTP version and 417 to another expectation", function()
            assert.equal(505, refused("GET /x HTTP/2.0\r\nHost: t\r\n\r\n"))
            assert.equal(417, refused("GET /x HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n"))
        end)
    end)

    -- Real time: these are about sleeping handlers not blocking each other, so
    -- they sleep (0.3 s, all at once) and time what the others saw meanwhile.
    describe("scheduling", function()
        it("delays only the answer that sleeps", function()
            start{ handler = function(req)
                if req.path == "/slow" then Server.sleep(0.3) end
                return 200, {}, req.path
            end }
            local slow, fast = connect(server), connect(server)
            slow:send(get("/slow"))
            local t0 = socket.gettime()
            server:step(0.01) -- the slow handler starts (and must not block here)
            assert.equal("/fast", fast:send(get("/fast")):response(server).body)
            assert.is_true(socket.gettime() - t0 < 0.2)
            assert.equal("/slow", slow:response(server).body)
        end)

        it("runs 50 sleeping answers at once", function()
            start{ handler = function() Server.sleep(0.3) return 200, {}, "ok" end }
            local clients = {}
            for i = 1, 50 do clients[i] = connect(server):send(get("/" .. i)) end
            local t0 = socket.gettime()
            for i = 1, 50 do assert.equal("ok", clients[i]:response(server).body) end
            assert.is_true(socket.gettime() - t0 < 1.0)
        end)

        it("step returns after its timeout when nothing happens", function()
            start()
            local t0 = socket.gettime()
            server:step(0.1)
            local took = socket.gettime() - t0
            assert.is_true(took >= 0.09 and took < 0.5)
        end)

        it("run returns on stop() from a handler and releases the port", function()
            start()
            local c = connect(server)
            c:send(get("/stop"))
            local port = server:port()
            server:run()
            server = nil
            assert.matches("^HTTP/1%.1 200", (c.sock:receive("*l")))
            assert.is_nil(socket.connect("127.0.0.1", port))
        end)

        it("forgets connections the client closed, even mid-answer", function()
            start{ handler = function(req)
                return 200, {}, req.path == "/big" and ("x"):rep(32 * MB) or "small"
            end }
            local idle, greedy = connect(server), connect(server)
            assert.equal("small", idle:send(get("/1")):response(server).body)
            greedy:send(get("/big"))
            pump(server, function() greedy:poll() return #greedy.buf > 0 end)
            idle.sock:close()
            greedy.sock:close() -- with most of the answer still unsent
            pump(server, function() return server.count == 0 end)
            assert.equal("small", connect(server):send(get("/2")):response(server).body)
        end)

        it("closes a connection idle for longer than its timeout", function()
            start{ timeout = 0.2 }
            local c = connect(server)
            c:send("GET /x HTTP/1.1\r\n") -- and never the rest
            assert.is_true(c:wait_closed(server))
            assert.equal(0, #seen)
        end)
    end)
end)

describe("marketo.sandbox.http in a child, with curl", function()
    local echo = test_server.fixture("spec.support.echo_app", { max_body = 16 * MB })
    setup(echo.start)
    teardown(echo.stop)

    local function sh(cmd)
        local p = assert(io.popen(cmd, "r"))
        local out = p:read("*a")
        p:close()
        return out
    end

    local function big_file(size)
        -- every byte value, NUL and CR LF included
        return require("spec.support.files").temp_file(echo_app.pattern(size))
    end

    it("reuses one connection for two requests", function()
        local out = sh(("curl -s -o /dev/null -o /dev/null -w '%%{num_connects} ' %s/echo %s/echo")
            :format(echo.url, echo.url))
        assert.equal("1 0 ", out)
    end)

    it("takes a 6 MB multipart upload byte for byte, 100-continue and all", function()
        local path = big_file(6 * MB + 7)
        finally(function() os.remove(path) end)
        local t0 = socket.gettime()
        local out = sh(("curl -s -F file=@%s %s/multipart/file | cmp - %s && echo same")
            :format(path, echo.url, path))
        assert.equal("same\n", out)
        -- without our 100 Continue, curl would wait 1 s before sending the body
        assert.is_true(socket.gettime() - t0 < 0.9)
    end)

    it("takes a chunked upload", function()
        local path = big_file(3 * MB)
        finally(function() os.remove(path) end)
        local out = sh(("curl -s -T %s -H 'Transfer-Encoding: chunked' %s/discard")
            :format(path, echo.url))
        assert.equal(tostring(3 * MB), out)
    end)

    it("sends a 5 MB answer intact", function()
        local n = 5 * MB + 3
        local body = sh(("curl -s '%s/bytes?n=%d'"):format(echo.url, n))
        assert.equal(n, #body)
        assert.is_true(body == echo_app.pattern(n))
    end)

    it("answers 50 parallel slow requests in about the time of one", function()
        local urls = {}
        for i = 1, 50 do urls[i] = ("'%s/slow?ms=500&i=%d'"):format(echo.url, i) end
        local t0 = socket.gettime()
        local out = sh("curl -s --no-progress-meter --parallel --parallel-immediate "
            .. "--parallel-max 50 -w '%{http_code}\\n' -o /dev/null "
            .. table.concat(urls, " -o /dev/null "))
        local took = socket.gettime() - t0
        local _, oks = out:gsub("200\n", "")
        assert.equal(50, oks)
        assert.is_true(took < 2.0, "took " .. took)
    end)

    it("reports a DROP as an empty reply to curl", function()
        local out = sh(("curl -s -o /dev/null -w '%%{http_code}' %s/drop; echo \" $?\"")
            :format(echo.url))
        assert.equal("000 52\n", out) -- CURLE_GOT_NOTHING
    end)
end)

describe("spec.support.server", function()
    local function alive(pid)
        local f = io.open("/proc/" .. pid .. "/stat", "r")
        if not f then return false end
        local state = f:read("*a"):match("^%d+ %b() (%S)")
        f:close()
        return state ~= "Z"
    end

    local function gone_within(pid, seconds)
        local deadline = socket.gettime() + seconds
        while alive(pid) do
            if socket.gettime() > deadline then return false end
            socket.sleep(0.05)
        end
        return true
    end

    it("starts a child on a loopback port and stops it", function()
        local s = test_server.start("spec.support.echo_app")
        assert.matches("^http://127%.0%.0%.1:%d+$", s.url)
        assert.is_true(alive(s.pid))
        s.stop()
        assert.is_false(alive(s.pid))
        assert.is_nil(socket.connect("127.0.0.1", s.port))
        s.stop() -- twice is fine
    end)

    it("passes options through to the server", function()
        local s = test_server.start("spec.support.echo_app", { max_body = 10 })
        finally(s.stop)
        local p = assert(io.popen(("curl -s -o /dev/null -w '%%{http_code}' -d 12345678901 %s/echo")
            :format(s.url)))
        local code = p:read("*a")
        p:close()
        assert.equal("413", code)
    end)

    it("raises when the app does not load", function()
        local log = os.tmpname()
        finally(function() os.remove(log) end)
        assert.has_error(function()
            test_server.start("spec/support/no_such_app.lua", { stderr = log })
        end)
        local f = assert(io.open(log))
        assert.matches("no_such_app.lua", f:read("*a"), 1, true)
        f:close()
    end)

    it("lets the child end by itself after its lifetime", function()
        local s = test_server.start("spec.support.echo_app", { lifetime = 0.5 })
        finally(s.stop)
        assert.is_true(gone_within(s.pid, 3))
    end)

    it("lets the child end by itself when its parent is gone", function()
        -- a parent that starts a server and exits without stopping it (the
        -- lifetime only bounds how long a broken check would keep the child)
        local p = assert(io.popen("lua5.4 -e 'package.path = \"./?.lua;\" .. package.path; "
            .. "local s = require(\"spec.support.server\")"
            .. ".start(\"spec.support.echo_app\", { lifetime = 5 }); "
            .. "print(s.pid); os.exit(0)'"))
        local pid = tonumber(p:read("*l"))
        p:close()
        assert.is_number(pid)
        assert.is_true(gone_within(pid, 3))
    end)
end)
