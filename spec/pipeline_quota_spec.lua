-- marketo.pipeline.quota on its own: the day's count in a budget (local, and
-- a real redis-server shared by two "runners"), its seed from usage.json, the
-- stop and the wait, on fake clocks (the runner's specs: quota_day_spec.lua).
local budget = require("marketo.pipeline.budget")
local quota = require("marketo.pipeline.quota")
local day = require("marketo.day")
local server = require("spec.support.redis")

local WALL = 1796660700 -- 2026-12-07 16:25 UTC, 10:25 CST
local RESET = 1796709600 -- 2026-12-08 06:00 UTC

-- A fake runtime's time: sleep moves both clocks on.
local function fake_time(wall)
    local t = { wall = wall, mono = 0, slept = 0 }
    function t.now() return t.mono end
    function t.wall_fn() return t.wall end
    function t.sleep(s)
        t.mono, t.wall, t.slept = t.mono + s, t.wall + s, t.slept + s
    end
    return t
end

local function new_quota(o)
    local t = o.time or fake_time(WALL)
    local events = {}
    local q = quota.new({ budget = o.budget or assert(budget.new({ clock = t.now })),
        limit = o.limit or 10, wait = o.wait, check_every = o.check_every or 60,
        sleep = t.sleep, now = t.now, wall = t.wall_fn, usage = o.usage,
        on_event = function(ev) events[#events + 1] = ev end,
        local_time = function(x) return os.date("!%H:%M UTC", x) end })
    return q, events, t
end

describe("marketo.pipeline.quota", function()
    it("counts by Marketo's day, from the instance's usage, and stops at the limit", function()
        local b = assert(budget.new())
        local q = new_quota({ budget = b, usage = function() return { date = "2026-12-07",
            total = 7 } end })
        assert.equal("2026-12-07", q:day())
        assert.is_true(q:seed())
        assert.equal(7, b:spend("2026-12-07", 0)) -- seeded
        assert.is_true(q:count())
        assert.is_true(q:count())
        assert.is_true(q:count())
        local ok, msg, code = q:count()
        assert.is_nil(ok)
        assert.equal("607", code)
        assert.equal("QUOTA: the day's quota of 10 API calls is spent (2026-12-07, US Central; "
            .. "--daily-quota)", msg)
        assert.equal("resets at 2026-12-08 00:00 CST (06:00 UTC), in 13 h 35 min",
            q:reset_text())
        -- once out, no call is counted or let through, even if the count had room
        assert.is_nil(q:count())
        assert.equal(10, b:spend("2026-12-07", 0))
    end)

    it("never lowers the count when seeding, nor raises it past the instance's total", function()
        local b = assert(budget.new())
        b:spend("2026-12-07", 5)
        local q = new_quota({ budget = b })
        assert.is_true(q:seed({ date = "2026-12-07", total = 3 }))
        assert.equal(5, b:spend("2026-12-07", 0))
        assert.is_true(q:seed({ date = "2026-12-07", total = 9 }))
        assert.equal(9, b:spend("2026-12-07", 0))
        -- the instance's day already turned: its count is the new day's
        assert.is_true(q:seed({ date = "2026-12-08T00:00:00Z", total = 2 }))
        assert.equal("2026-12-08", q:day())
        assert.equal(2, b:spend("2026-12-08", 0))
    end)

    it("goes on unseeded when the instance refuses usage.json (603), and says so once",
        function()
        local asked = 0
        local q, events = new_quota({ usage = function()
            asked = asked + 1
            return nil, "USAGE: 603 Access denied", "603"
        end })
        assert.is_true(q:seed())
        assert.is_true(q:count())
        assert.equal(1, #events)
        assert.equal("notice", events[1].ev)
        assert.matches("counted from this run's calls only: USAGE: 603", events[1].message)
        -- without usage.json, a wait ends by the clock: midnight and a margin
        local w, wevents, t = new_quota({ wait = true, limit = 1, usage = function()
            asked = asked + 1
            return nil, "USAGE: 603 Access denied", "603"
        end })
        assert.is_true(w:seed())
        assert.is_true(w:count())
        assert.is_true(w:count()) -- waited for the next day
        assert.equal("2026-12-08", w:day())
        assert.is_true(t.wall >= RESET + quota.MARGIN)
        assert.equal(2, asked) -- asked once each: no question while waiting by the clock
        assert.equal("notice", wevents[1].ev)
        assert.equal("waiting", wevents[2].ev)
        assert.equal("quota_reset", wevents[3].ev)
    end)

    it("waits asking the instance, which may turn its day before our midnight", function()
        local answers = { { nil, "607 Daily quota reached", "607" },
            { { date = "2026-12-07", total = 10 } }, -- the same day: not yet
            { { date = "2026-12-08", total = 1 } } }
        local asked = 0
        local q, events, t = new_quota({ wait = true, check_every = 60, usage = function()
            asked = asked + 1
            local a = answers[asked]
            return a[1], a[2], a[3]
        end })
        q:exhausted() -- Marketo said 607
        assert.is_true(q:count())
        assert.equal(3, asked)
        assert.equal("2026-12-08", q:day()) -- the instance's day, before our midnight
        assert.is_true(t.wall < RESET)
        assert.is_true(t.slept >= 180 and t.slept < 181, t.slept)
        assert.equal(2, #events)
        assert.equal("waiting", events[1].ev)
        assert.equal(RESET, events[1].resets_at)
        assert.equal("waiting for the daily quota: it resets at 2026-12-08 00:00 CST (06:00 "
            .. "UTC), in 13 h 35 min; asking the instance every 60 s", events[1].message)
        assert.equal("quota_reset", events[2].ev)
        -- the new day's count started from the instance's total, plus this call
        assert.equal(2, q.budget:spend("2026-12-08", 0))
    end)

    it("a client retry policy: Marketo's 607 stops with the reset time, or waits", function()
        local q = new_quota({ usage = function() return nil, "no", "603" end })
        local policy = q:policy(function() return "base" end)
        assert.equal("base", policy({ code = "606" }, 1))
        local err = { code = "607", status = 200 }
        assert.is_nil(policy(err, 1))
        assert.equal("the instance's daily API quota is used up; it resets at 2026-12-08 00:00 "
            .. "CST (06:00 UTC), in 13 h 35 min (--wait-for-quota waits for it)", err.hint)
        assert.is_true(q.out) -- and every runner sharing the budget sees the day spent
        assert.equal(10, q.budget:spend("2026-12-07", 0))
        local w = new_quota({ wait = true, usage = function()
            return { date = "2026-12-08", total = 0 }
        end })
        assert.equal(0, w:policy(function() end)({ code = "607", status = 200 }, 1))
        assert.equal("2026-12-08", w:day())
    end)
end)

describe("marketo.pipeline.quota (redis)", function()
    local r
    setup(function() r = server.start() end)
    teardown(function() r.stop() end)

    it("counts the calls of two runners in one day's quota", function()
        local function runner()
            return new_quota({ budget = assert(budget.new({ url = r.url, instance = "quota-1" })),
                limit = 6 })
        end
        local a, b = runner(), runner()
        assert.is_true(a:seed({ date = "2026-12-07", total = 2 }))
        assert.is_true(b:seed({ date = "2026-12-07", total = 2 })) -- not counted twice
        assert.is_true(a:count())
        assert.is_true(b:count())
        assert.is_true(a:count())
        assert.is_true(b:count())
        local ok, _, code = a:count()
        assert.is_nil(ok)
        assert.equal("607", code)
        assert.is_nil(b:count())
        assert.equal(day.of(WALL), "2026-12-07")
        a.budget:close()
        b.budget:close()
    end)
end)
