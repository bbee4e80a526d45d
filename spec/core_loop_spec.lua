-- marketo.core loop: transfers in flight on a libcurl multi handle.
-- Lua 5.1 syntax: this file also runs under LuaJIT and under ASan+UBSan.
local core = require("marketo.core")
local server = require("spec.support.server")
local fails = require("spec.support.fails")
local json = require("cjson")

local it_54 = (_VERSION >= "Lua 5.4") and it or pending

-- Waits until nothing is in flight; returns the finished requests in order.
local function drain(loop)
    local finished = {}
    local deadline = core.monotonic() + 20
    while loop:count() > 0 and core.monotonic() < deadline do
        for _, req in ipairs(loop:wait(1)) do finished[#finished + 1] = req end
    end
    return finished
end

describe("marketo.core loop", function()
    local echo = server.fixture("spec.support.echo_app")
    setup(echo.start)
    teardown(echo.stop)

    local loop
    before_each(function() loop = core.loop() end)
    after_each(function() loop:close() end)

    local function request(path)
        return core.request():set_url(echo.url .. path)
    end

    -- req, closed when the test ends, added to the loop.
    local function added(req)
        finally(function() req:close() end)
        assert.is_true(loop:add(req))
        return req
    end

    it("runs ten transfers concurrently", function()
        local requests = {}
        for i = 1, 10 do
            requests[i] = request("/slow?ms=300")
            assert.is_true(loop:add(requests[i]))
        end
        assert.equal(10, loop:count())
        local finished = drain(loop)
        assert.equal(10, #finished)
        local last_start, first_end = -math.huge, math.huge
        for _, req in ipairs(finished) do
            assert.is_true(req:result())
            assert.equal(200, req:status())
            local t = json.decode(req:body())
            last_start = math.max(last_start, t.start)
            first_end = math.min(first_end, t["end"])
            req:close()
        end
        -- every answer started before any ended: the intervals overlap
        assert.is_true(last_start < first_end)
    end)

    it("keeps requests it holds alive through collections", function()
        -- only the loop references these; a collection in every callback
        -- would free anything it failed to anchor
        for _ = 1, 3 do
            loop:add(request("/bytes?n=200000"):on_progress(function() collectgarbage() end))
        end
        local finished = drain(loop)
        assert.equal(3, #finished)
        for _, req in ipairs(finished) do
            assert.is_true(req:result())
            assert.equal(200000, #req:body())
        end
    end)

    it("returns each finished request once, with its result", function()
        local ok_req, refused = request("/echo"), core.request():set_url("http://127.0.0.1:1/")
        finally(function() ok_req:close(); refused:close() end)
        loop:add(ok_req)
        loop:add(refused)
        local finished = drain(loop)
        assert.equal(2, #finished)
        assert.is_true(ok_req:result())
        assert.matches("^COULDNT_CONNECT: ", fails("COULDNT_CONNECT", refused:result()))
        assert.same({}, loop:wait(0))
    end)

    it("returns a timeout as the request's failure", function()
        local req = added(request("/slow?ms=3000"):set_timeouts(5, 0.2))
        drain(loop)
        fails("OPERATION_TIMEDOUT", req:result())
    end)

    it("sleeps for the timeout when nothing is in flight", function()
        local t0 = core.monotonic()
        assert.same({}, loop:wait(0.15))
        assert.is_true(core.monotonic() - t0 >= 0.14)
    end)

    it("wakes early from wait when a stop is requested", function()
        -- in a child process: a caught SIGINT stays requested for good. The
        -- signal comes once the child sleeps in the wait (a stop requested
        -- before a wait begins is, by design, not a reason to end that wait):
        -- a wait that returned at once would report no stop requested, one
        -- that missed the signal would take 10 s.
        local script = "local core = require('marketo.core'); core.catch_signals(); "
            .. "io.write(core.getpid(), '\\n'); io.flush(); "
            .. "local t0 = core.monotonic(); local done = core.loop():wait(10); "
            .. "io.write(('%.2f %s %d'):format(core.monotonic() - t0, "
            .. "tostring(core.stop_requested()), #done))"
        local pipe = assert(io.popen("LUA_CPATH='build/lua5.4/?.so;;' exec lua5.4 -e \""
            .. script .. "\""))
        local pid = assert(tonumber(pipe:read("*l")))
        require("spec.support.proc").asleep(pid)
        os.execute("kill -INT " .. pid)
        local out = pipe:read("*a")
        pipe:close()
        local elapsed, signal, done = out:match("^([%d.]+) (%S+) (%d+)$")
        assert.equal("SIGINT", signal)
        assert.equal("0", done)
        assert.is_true(tonumber(elapsed) < 5, out) -- not the whole 10 s
    end)

    it("reuses connections across the loop's transfers", function()
        local first, second = request("/echo"), request("/echo")
        finally(function() first:close(); second:close() end)
        loop:add(first)
        drain(loop)
        loop:add(second)
        drain(loop)
        assert.equal(0, second:info().connects)
        assert.equal(first:info().local_port, second:info().local_port)
    end)

    it("fails to add a request whose file is missing", function()
        local req = request("/multipart"):add_file("file", "f.csv", nil, "/nonexistent/f.csv")
        finally(function() req:close() end)
        fails("ENOENT", loop:add(req))
        assert.equal(0, loop:count())
    end)

    it("re-raises a callback's error from wait, then finishes the request", function()
        local req = added(request("/slow?ms=200"):on_progress(function() error("boom", 0) end))
        assert.has_error(function() loop:wait(5) end, "boom")
        drain(loop)
        fails("ABORTED_BY_CALLBACK", req:result())
    end)

    it("removes a request in flight", function()
        local req = added(request("/slow?ms=2000"))
        loop:wait(0.05)
        assert.is_true(loop:remove(req))
        assert.equal(0, loop:count())
        fails("ABORTED_BY_CALLBACK", req:result())
        assert.has_error(function() loop:remove(req) end)
    end)

    it("raises when a request in flight is performed or added again", function()
        local req = added(request("/slow?ms=100"))
        assert.has_error(function() req:perform() end, "marketo.request is in a transfer")
        assert.has_error(function() loop:add(req) end, "marketo.request is in a transfer")
        assert.has_error(function() req:set_url("http://x/") end,
            "marketo.request is in a transfer")
        drain(loop)
        assert.is_true(req:result())
    end)

    it("lets a request in flight be closed", function()
        local req = request("/slow?ms=2000")
        loop:add(req)
        loop:wait(0.05)
        assert.is_true(req:close())
        assert.equal(0, loop:count())
    end)

    it("abandons what is in flight when closed", function()
        local req = added(request("/slow?ms=2000"))
        assert.is_true(loop:close())
        assert.is_true(loop:close())
        fails("ABORTED_BY_CALLBACK", req:result())
        assert.equal("marketo.loop (closed)", tostring(loop))
        assert.has_error(function() loop:wait(0) end, "attempt to use a closed marketo.loop")
    end)

    it("is collected with its requests in flight", function()
        local weak = setmetatable({}, { __mode = "v" })
        weak[1], weak[2] = core.loop(), request("/slow?ms=1000")
        weak[1]:add(weak[2])
        weak[3] = core.loop()
        weak[3]:close()
        collectgarbage()
        collectgarbage()
        assert.is_nil(next(weak))
    end)

    it_54("is closed by a <close> variable", function()
        local leave_scope = assert(load("local l <close> = ... ; return l"))
        assert.equal("marketo.loop (closed)", tostring(leave_scope(core.loop())))
    end)
end)
