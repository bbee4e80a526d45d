local budget = require("marketo.pipeline.budget")
local limiter = require("marketo.pipeline.limiter")

-- A fake clock: sleeping moves it on.
local function fake_time()
    local t = { now = 0, slept = {} }
    t.clock = function() return t.now end
    t.sleep = function(s)
        t.slept[#t.slept + 1] = s
        t.now = t.now + s
    end
    return t
end

describe("marketo.pipeline.budget (local)", function()
    it("gives at most `limit` slots of each kind, and takes them back", function()
        local t = fake_time()
        local b = budget.new({ limits = { importing = 2, queued = 3 }, clock = t.clock,
            sleep = t.sleep })
        local a1, a2 = b:try("importing"), b:try("importing")
        assert.truthy(a1)
        assert.truthy(a2)
        local none, wait = b:try("importing")
        assert.is_false(none)
        assert.is_true(wait > 0)
        -- the kinds are counted apart
        for _ = 1, 3 do assert.truthy(b:try("queued")) end
        assert.is_false(b:try("queued"))
        b:release("importing", a1)
        assert.truthy(b:try("importing"))
    end)

    it("says how long until the rolling window has room for a call", function()
        local t = fake_time()
        local b = budget.new({ limits = { calls = 2, window = 10, margin = 0 },
            clock = t.clock, sleep = t.sleep })
        assert.is_true(b:try("call"))
        t.now = 4
        assert.is_true(b:try("call"))
        local ok, wait = b:try("call")
        assert.is_false(ok)
        assert.equal(6, wait) -- the first call leaves the window at 10
        assert.is_true(b:acquire("call"))
        assert.equal(10, t.now)
    end)

    it("acquire waits on the given sleep and ends when asked to stop", function()
        local t = fake_time()
        local b = budget.new({ limits = { queued = 1 }, clock = t.clock, sleep = t.sleep })
        assert.truthy(b:acquire("queued"))
        local asked = 0
        local permit, msg, code = b:acquire("queued", function()
            asked = asked + 1
            return asked > 3
        end)
        assert.is_nil(permit)
        assert.equal("stopped", msg)
        assert.equal("STOPPED", code)
        assert.equal(3, #t.slept)
    end)

    it("counts the day's quota, refusing what would go over", function()
        local b = budget.new()
        assert.equal(3, b:spend("2026-12-07", 3, 5))
        assert.equal(5, b:spend("2026-12-07", 2, 5))
        local ok, spent = b:spend("2026-12-07", 1, 5)
        assert.is_false(ok)
        assert.equal(5, spent)
        assert.equal(1, b:spend("2026-12-08", 1, 5)) -- a new day
    end)

    it("is shared: two limiters on one budget stay within its calls together", function()
        local t = fake_time()
        local sent = {}
        local transport = { request = function()
            sent[#sent + 1] = t.now
            return { status = 200 }
        end }
        local b = budget.new({ limits = { calls = 3, window = 5, margin = 0 },
            clock = t.clock, sleep = t.sleep })
        local one = limiter.wrap(transport, { budget = b })
        local two = limiter.wrap(transport, { budget = b })
        for i = 1, 6 do (i % 2 == 0 and one or two):request({ url = "http://h/x" }) end
        -- 3 at once, then 3 more once the window has moved on
        assert.same({ 0, 0, 0, 5, 5, 5 }, sent)
    end)

    it("rejects unknown limits", function()
        assert.has_error(function() budget.new({ limits = { queue = 1 } }) end,
            "bad argument #1 to 'budget.new' (unknown option 'limits.queue')")
    end)
end)
