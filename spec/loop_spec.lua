-- marketo.loop: tasks and timers, on a fake clock (nothing here sleeps for
-- long); transfers in tasks are covered by spec/http_spec.lua.
local Loop = require("marketo.loop")
local core = require("marketo.core")
local sleeps = require("spec.support.sleeps")

describe("marketo.loop", function()
    local now, slept, loop

    before_each(function()
        now, slept = 100, {}
        loop = Loop.new{
            clock = function() return now end,
            sleep = function(s) slept[#slept + 1] = s; now = now + s end,
        }
    end)

    describe("new", function()
        it("rejects unknown options", function()
            assert.has_error(function() Loop.new{ clok = os.clock } end,
                "bad argument #1 to 'new' (unknown option 'clok')")
        end)
    end)

    describe("spawn and run", function()
        it("runs every task to its end and keeps what it returned", function()
            local a = loop:spawn(function(x, y) return x + y, "two" end, 1, 2)
            local b = loop:spawn(function() end)
            assert.is_false(a.done)
            assert.is_true(loop:run())
            assert.is_true(a.done and b.done)
            assert.same({ 3, "two" }, { a:result() })
        end)

        it("runs tasks spawned by tasks", function()
            local order = {}
            loop:spawn(function()
                order[#order + 1] = "parent"
                loop:spawn(function() order[#order + 1] = "child" end)
            end)
            loop:run()
            assert.same({ "parent", "child" }, order)
        end)

        it("re-raises a task's error, unchanged", function()
            local err = { reason = "boom" }
            loop:spawn(function() Loop.sleep(1) end)
            loop:spawn(function() error(err) end)
            local ok, got = pcall(loop.run, loop)
            assert.is_false(ok)
            assert.equal(err, got)
            assert.is_true(loop:run()) -- the other task was abandoned
        end)

        it("raises when a task yields to something else than the loop", function()
            loop:spawn(function() coroutine.yield("hello") end)
            assert.has_error(function() loop:run() end,
                "marketo.loop: a task yielded a value the loop does not know: hello")
        end)

        it("raises on a bad argument", function()
            assert.has_error(function() loop:spawn("f") end,
                "bad argument #1 to 'spawn' (function expected, got string)")
        end)
    end)

    describe("sleep", function()
        it("wakes tasks in the order of their deadlines", function()
            local woke = {}
            for _, s in ipairs({ 0.3, 0.1, 0.2 }) do
                loop:spawn(function()
                    assert.is_true(Loop.sleep(s))
                    woke[#woke + 1] = s
                end)
            end
            loop:run()
            assert.same({ 0.1, 0.2, 0.3 }, woke)
            assert.near(100.3, now, 1e-9)
            assert.equal(3, #slept)
        end)

        it("interleaves tasks that sleep", function()
            local log = {}
            local function worker(name, n)
                for i = 1, n do
                    log[#log + 1] = name .. i
                    Loop.sleep(1)
                end
            end
            loop:spawn(worker, "a", 2)
            loop:spawn(worker, "b", 2)
            loop:run()
            assert.same({ "a1", "b1", "a2", "b2" }, log)
            assert.near(102, now, 1e-9)
        end)

        it("sleeps with the core outside a loop", function()
            sleeps(Loop.sleep)
        end)

        it("raises on a negative duration", function()
            assert.has_error(function() Loop.sleep(-1) end)
        end)
    end)

    describe("current", function()
        it("is the loop inside its tasks and nil outside", function()
            local seen
            loop:spawn(function() seen = Loop.current() end)
            assert.is_nil(Loop.current())
            loop:run()
            assert.equal(loop, seen)
        end)

        it("is nil in a plain coroutine", function()
            local co = coroutine.wrap(function() return Loop.current() end)
            assert.is_nil(co())
        end)
    end)

    describe("perform", function()
        it("raises outside a task of this loop", function()
            assert.has_error(function() loop:perform(core.request()) end,
                "marketo.loop: perform() outside a task of this loop")
        end)
    end)
end)
