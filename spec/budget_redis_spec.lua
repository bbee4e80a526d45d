-- The shared budget against a real redis-server: several budgets (standing for
-- runners on other hosts) on one Redis, each with its own connection.
local budget = require("marketo.pipeline.budget")
local redis = require("marketo.redis")
local Loop = require("marketo.loop")
local core = require("marketo.core")
local server = require("spec.support.redis")

describe("marketo.pipeline.budget (redis)", function()
    local r

    setup(function() r = server.start() end)
    teardown(function() r.stop() end)

    local n = 0
    -- A runner's budget; each test has its own instance, so its own keys.
    local function runner(limits, o)
        o = o or {}
        local b, msg = budget.new({ url = r.url, instance = o.instance or ("test-" .. n),
            limits = limits, lease = o.lease, spawn = o.spawn })
        assert(b, msg)
        return b
    end
    before_each(function() n = n + 1 end)

    it("never gives two runners more slots than the instance has", function()
        local a, b = runner({ importing = 2 }), runner({ importing = 2 })
        local p1, p2 = a:try("importing"), b:try("importing")
        assert.truthy(p1)
        assert.truthy(p2)
        local none, wait = b:try("importing")
        assert.is_false(none)
        assert.is_true(wait > 0 and wait <= 0.05)
        assert.is_false(a:try("importing"))
        a:release("importing", p1)
        assert.truthy(b:try("importing"))
        -- another instance's slots are its own
        assert.truthy(runner({ importing = 2 }, { instance = "elsewhere-" .. n }):try("importing"))
    end)

    it("counts every runner's calls in one rolling window", function()
        local a, b = runner({ calls = 3, window = 20 }), runner({ calls = 3, window = 20 })
        assert.truthy(a:try("call"))
        assert.truthy(b:try("call"))
        assert.truthy(a:try("call"))
        local ok, wait = b:try("call")
        assert.is_false(ok)
        -- until the first call leaves the window (20 s and the margin)
        assert.is_true(wait > 19 and wait <= 20.25, tostring(wait))
    end)

    it("frees the slot of a runner that stopped renewing once its lease is over", function()
        local gone = runner({ queued = 1 }, { lease = 0.3 })
        assert.truthy(gone:try("queued")) -- and never released nor renewed
        local other = runner({ queued = 1 }, { lease = 0.3 })
        assert.is_false(other:try("queued"))
        local t0 = core.monotonic()
        assert.truthy(other:acquire("queued"))
        local waited = core.monotonic() - t0
        assert.is_true(waited > 0.2 and waited < 2, tostring(waited))
    end)

    it("keeps a held slot past its lease by renewing it, without stalling the loop", function()
        local loop = Loop.new()
        local spawn = function(fn) return loop:spawn(fn) end
        local holder = runner({ queued = 1 }, { lease = 0.3, spawn = spawn })
        local waiter = runner({ queued = 1 }, { lease = 0.3 })
        local released_at, got_at, ticks, ticked_at = nil, nil, 0, nil
        loop:spawn(function()
            local p = assert(holder:acquire("queued"))
            Loop.sleep(1) -- over three leases
            released_at = core.monotonic()
            holder:release("queued", p)
        end)
        loop:spawn(function()
            Loop.sleep(0.05)
            assert.truthy(waiter:acquire("queued"))
            got_at = core.monotonic()
        end)
        loop:spawn(function() -- the other tasks go on while Redis is asked
            for _ = 1, 20 do Loop.sleep(0.02); ticks = ticks + 1 end
            ticked_at = core.monotonic()
        end)
        loop:run()
        assert.truthy(released_at)
        assert.is_true(got_at >= released_at, "the slot went before it was released")
        assert.equal(20, ticks)
        assert.is_true(ticked_at < released_at, "the waiter held the loop up")
    end)

    it("counts the day's quota across runners", function()
        local a, b = runner(), runner()
        assert.equal(3, a:spend("2026-12-07", 3, 5))
        assert.equal(5, b:spend("2026-12-07", 2, 5))
        local ok, spent = a:spend("2026-12-07", 1, 5)
        assert.is_false(ok)
        assert.equal(5, spent)
    end)

    it("loads its scripts again when Redis has forgotten them", function()
        local a = runner({ importing = 1 })
        local conn = assert(redis.connect(r.url))
        assert.equal("OK", conn:call("SCRIPT", "FLUSH"))
        conn:close()
        assert.truthy(a:try("importing"))
        assert.is_false(a:try("importing"))
    end)

    it("says clearly when Redis is unreachable, and never shows the password", function()
        local closed = require("socket").bind("127.0.0.1", 0)
        local _, port = closed:getsockname()
        closed:close()
        local b, msg, code = budget.new({ url = ("redis://:s3cret@127.0.0.1:%d/0"):format(port) })
        assert.is_nil(b)
        assert.equal("BUDGET", code)
        assert.matches("^BUDGET: Redis at 127%.0%.0%.1:" .. port .. " is unreachable: ", msg)
        assert.is_nil(msg:find("s3cret", 1, true))
        b, msg = budget.new({ url = "redis:/:s3cret@nowhere" })
        assert.is_nil(b)
        assert.is_nil(msg:find("s3cret", 1, true), msg)
    end)
end)

describe("marketo.pipeline.budget (redis gone mid-run)", function()
    local r
    before_each(function() r = server.start() end)
    after_each(function() r.stop() end)

    local function runner(url, heard)
        return assert(budget.new({ url = url, instance = "gone",
            notify = function(ev) heard[#heard + 1] = ev end }))
    end

    it("pauses, says so once, and makes up what Redis missed when it is back", function()
        local heard = {}
        local b = runner(r.url .. "?wait=60", heard)
        local kept, given = assert(b:try("queued")), assert(b:try("queued"))
        r.halt()
        assert.is_true(b:release("queued", given)) -- made once Redis answers again
        local ok, wait = b:try("queued")
        assert.is_false(ok)
        assert.is_true(wait > 0 and wait <= budget.RETRY, tostring(wait))
        assert.is_false(b:try("importing"))
        assert.equal(1, #heard)
        assert.equal("paused", heard[1].state)
        assert.matches(("^budget: Redis at 127%%.0%%.0%%.1:%d unreachable, paused since "
            .. "%%d+%%-%%d+%%-%%d+ [%%d:]+ UTC"):format(r.port), heard[1].message)
        r.resume() -- empty
        local taken = assert(b:acquire("queued"))
        assert.equal(2, #heard)
        assert.equal("resumed", heard[2].state)
        local conn = assert(redis.connect(r.url))
        local held = conn:call("ZRANGE", "marketo-bulk:{gone}:queued", 0, -1)
        table.sort(held)
        local want = { kept, taken }
        table.sort(want)
        assert.same(want, held) -- the kept one back, the given one not
        conn:close()
    end)

    it("stops with BUDGET once the URL's wait is over", function()
        local b = runner(r.url .. "?wait=0", {})
        assert.truthy(b:try("queued"))
        r.halt()
        local ok, msg, code = b:try("queued")
        assert.is_nil(ok)
        assert.equal("BUDGET", code)
        assert.matches(("^BUDGET: Redis at 127%%.0%%.0%%.1:%d unreachable since .- UTC: "
            .. "stopped after waiting 0 s"):format(r.port), msg)
    end)

    it("takes lease and wait from the URL, and refuses others", function()
        local b = budget.new({ url = r.url .. "?lease=3&wait=7", instance = "opts" })
        assert.equal(1, b.renew_every)
        assert.equal(7, b.wait)
        for _, bad in ipairs({ "?lease=0", "?wait=-1", "?ttl=5", "?lease=x" }) do
            local none, msg = require("marketo.redis").parse(
                "redis://:s3cret@127.0.0.1:1/0" .. bad)
            assert.is_nil(none)
            assert.matches("expected lease=SECONDS (>= 1) or wait=SECONDS (>= 0)", msg, 1, true)
            assert.is_nil(msg:find("s3cret", 1, true), msg)
        end
    end)
end)
