--- marketo.sandbox.limits: the instance-wide limits of Marketo's REST API -
-- calls per rolling window (606), calls in flight (615), a daily quota (607).
-- Identity calls are not counted. A call refused by a limit is (the "Error
-- Codes" page stars only 601, 602, 604, 605, 608 and 611 as uncounted), so a
-- client that hammers stays refused; `count_refused = false` lets it in
-- again as soon as the window rolls on (the older docs' reading).
local envelope = require("marketo.sandbox.envelope")
local marketo_day = require("marketo.day")

local M = {}
M.__index = M

function M.new(opts)
    local self = setmetatable({ conf = opts.conf, clock = opts.clock, wall = opts.wall }, M)
    self:reset()
    return self
end

function M:reset()
    self.calls = {}    -- times of counted calls, a queue from head to tail
    self.head, self.tail = 1, 0
    self.in_flight = 0
    self.quota_day = nil
    self.quota_used = 0
end

-- Calls still inside the rolling window ending now.
function M:in_window(now)
    local edge = now - self.conf.rate_window
    while self.head <= self.tail and self.calls[self.head] <= edge do
        self.calls[self.head] = nil
        self.head = self.head + 1
    end
    return self.tail - self.head + 1
end

-- Counts a call in the window and the quota.
function M:count(now)
    self.tail = self.tail + 1
    self.calls[self.tail] = now
    self.quota_used = self.quota_used + 1
end

-- The limit a call at `now` runs into, if any.
function M:refusal(now)
    local conf = self.conf
    self:used()
    if self.in_flight >= conf.max_in_flight then
        return envelope.error("615", conf.max_in_flight)
    end
    if self:in_window(now) >= conf.rate_limit then
        return envelope.error("606", conf.rate_limit, math.floor(conf.rate_window))
    end
    if self.quota_used >= conf.daily_quota then return envelope.error("607") end
    return nil
end

--- Admits a bulk call: returns nil, or the error object to answer with.
-- An admitted call is in flight until M:done().
function M:admit()
    local now = self.clock()
    local refused = self:refusal(now)
    if refused and not self.conf.count_refused then return refused end
    self:count(now)
    if refused then return refused end
    self.in_flight = self.in_flight + 1
    return nil
end

--- used() -> calls counted today, today's date (YYYY-MM-DD, Marketo's day:
-- it starts at midnight US Central, CST or CDT: marketo.day).
function M:used()
    local day = marketo_day.of(self.wall())
    if day ~= self.quota_day then self.quota_day, self.quota_used = day, 0 end
    return self.quota_used, day
end

--- Seconds from now on the sandbox's clock until its day turns.
function M:until_next_day()
    local wall = self.wall()
    return marketo_day.next_reset(wall) - wall
end

--- Sets today's count (a spec puts the instance near its quota).
function M:set_used(n)
    self:used()
    self.quota_used = n
end

--- The answer of an admitted call went out.
function M:done()
    self.in_flight = self.in_flight - 1
end

--- An admitted call turned out not to count (answers 601/602 and the other
-- starred codes): give it back to the window and the quota.
function M:refund()
    if self.tail >= self.head then
        self.calls[self.tail] = nil
        self.tail = self.tail - 1
    end
    self.quota_used = math.max(0, self.quota_used - 1)
end

function M:snapshot()
    return { in_window = self:in_window(self.clock()), in_flight = self.in_flight,
             quota_used = self.quota_used }
end

return M
