-- marketo.poll on a fake clock: the one schedule of job:wait and the scheduler.
local poll = require("marketo.poll")

local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

local function queued() return { status = "Queued" } end
local function importing(processed, failed)
    return { status = "Importing", processed = processed, failed = failed }
end

-- Runs a poller against a job described by status_at(t) until it is no longer
-- Queued/Importing or the poller gives up: the delays it asked for, and the clock.
local function run(o, status_at)
    local now, delays = 0, {}
    o.now = 0
    local p = poll.new(o)
    local info = status_at(now)
    while info.status == "Queued" or info.status == "Importing" do
        local d = p:next(info, now)
        if not d then return delays, now, "TIMEOUT" end
        delays[#delays + 1] = d
        now = now + d
        info = status_at(now)
    end
    return delays, now
end

-- A job of `rows` rows, queued until `start`, then `speed` rows/s.
local function job(rows, start, speed)
    return function(t)
        local n = (t - start) * speed
        if n >= rows then return { status = "Complete" } end
        if n <= 0 then return queued() end
        return importing(n)
    end
end

describe("marketo.poll", function()
    it("without progress to go by, starts at first and grows by factor up to max", function()
        local delays = run({ first = 1, factor = 2, max = 5 }, function(t)
            return t < 30 and importing(nil) or { status = "Complete" }
        end)
        assert.same({ 1, 2, 4, 5, 5, 5, 5, 5 }, { unpack(delays, 1, 8) })
    end)

    it("with the row count, looks again soon for a rate, then just after the predicted end",
        function()
        local delays, now = run({ first = 1, factor = 1.5, max = 30, rows = 1000 },
            job(1000, 0.5, 50)) -- ends at 20.5 s
        assert.same({ 1, 0.05 }, { delays[1], delays[2] })
        assert.equal(3, #delays)
        assert.near(20.55, now, 1e-9)
    end)

    it("predicts from the rate between the last two looks, not since the start", function()
        -- Queued for 40 s (other integrations' jobs first), then 100 rows/s.
        local delays, now = run({ first = 1, factor = 1.5, max = 30, rows = 2000 },
            job(2000, 40, 100))
        assert.is_true(now >= 60 and now < 60.2, now)
        assert.is_true(#delays <= 12, #delays)
    end)

    it("counts failed rows as done: Marketo's processed counts imported rows only", function()
        local p = poll.new{ first = 1, rows = 100, now = 0 }
        p:next(importing(10, 10), 0)
        -- 20 rows done at t = 0, 40 at t = 1: 20 rows/s, 60 left -> 3 s.
        assert.near(3.05, p:next(importing(20, 20), 1), 1e-9)
    end)

    it("backs off from a job Importing without counters, even with the row count", function()
        -- (the scheduler's own schedule looked again every 0.05 s forever here)
        local delays = run({ first = 1, factor = 2, max = 4, rows = 100 }, function(t)
            return t < 12 and importing(nil) or { status = "Complete" }
        end)
        assert.same({ 1, 2, 4, 4, 4 }, delays)
    end)

    it("without the row count never takes the quick second look", function()
        local delays = run({ first = 1, factor = 2, max = 8 }, job(100, 0, 10))
        assert.same({ 1, 2, 4, 8 }, delays)
    end)

    it("keeps between soon and max whatever the prediction", function()
        local p = poll.new{ first = 1, max = 30, rows = 1e9, now = 0 }
        p:next(importing(1), 0)
        assert.equal(30, p:next(importing(2), 1)) -- a billion seconds away
        p = poll.new{ first = 1, max = 30, rows = 100, now = 0 }
        p:next(importing(10), 0)
        assert.equal(0.05, p:next(importing(100), 1)) -- all rows seen, not Complete yet
    end)

    it("backs off while a job stalls, and predicts again once it moves", function()
        local p = poll.new{ first = 1, factor = 2, max = 30, rows = 100, now = 0 }
        assert.equal(0.05, p:next(importing(10), 0))
        assert.equal(2, p:next(importing(10), 0.05)) -- no progress: back off
        assert.equal(4, p:next(importing(10), 2.05))
        -- 20 rows in the last 4 s: 5 rows/s, 70 left -> 14 s.
        assert.near(14.05, p:next(importing(30), 6.05), 1e-9)
    end)

    it("never asks to wait past its timeout, then gives up", function()
        local delays, now, why = run({ first = 1, factor = 2, max = 30, timeout = 10 },
            function() return queued() end)
        assert.equal("TIMEOUT", why)
        assert.same({ 1, 2, 4, 3 }, delays)
        assert.equal(10, now)
    end)

    it("takes soon as at most first, for quick schedules", function()
        local p = poll.new{ first = 0.02, rows = 10, now = 0 }
        assert.equal(0.02, p:next(importing(1), 0))
    end)
end)
