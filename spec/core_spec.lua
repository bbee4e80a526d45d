local core = require("marketo.core")
local sleeps = require("spec.support.sleeps")

describe("marketo.core", function()
    it("has a version matching the Lua layer", function()
        assert.equal(require("marketo")._VERSION, core._VERSION)
        local v = core.versions()
        assert.equal(core._VERSION, v.marketo)
        assert.matches("^%d+%.%d+%.%d+", v.curl)
    end)

    describe("monotonic", function()
        it("never goes backwards", function()
            local a = core.monotonic()
            local b = core.monotonic()
            assert.is_true(b >= a)
        end)
    end)

    describe("sleep", function()
        it("sleeps about as long as asked", function()
            sleeps(core.sleep)
        end)

        it("raises on a negative duration or NaN", function()
            assert.has_error(function() core.sleep(-1) end)
            assert.has_error(function() core.sleep(0 / 0) end, nil)
        end)

        it("sleeps as long as it can for math.huge, instead of returning at once", function()
            local pid = assert(core.fork())
            if pid == 0 then
                pcall(core.sleep, math.huge)
                core.exit_now(0)
            end
            local s = require("spec.support.proc").asleep(pid) -- in the sleep
            assert(core.kill(pid))
            local how, sig = core.wait(pid)
            assert.equal("signaled", how, "the sleep returned (state seen: " .. s .. ")")
            assert.equal(9, sig)
        end)
    end)

    describe("stop_requested", function()
        it("is false when no signal arrived", function()
            assert.is_false(core.stop_requested())
        end)
    end)
end)
