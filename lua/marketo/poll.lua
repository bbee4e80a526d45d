--- marketo.poll: when to look at an import job's status next. One schedule for
-- job:wait (a script) and the pipeline's scheduler, so both spend the same calls
-- on a job of the same size. Pure: it is told the clock, it never sleeps.
--
--   local p = poll.new{ first = 1, factor = 1.5, max = 30, timeout = 3600, rows = n,
--       now = clock() }
--   local delay = p:next(info, clock())   -- seconds until the next status call,
--                                         -- nil once the timeout is reached
--
-- Without progress to go by, the delay starts at `first` and grows by `factor` up
-- to `max`. With the uploaded row count and a job Importing, a second look comes
-- `soon` after the first, to get a rate; from then on the next look comes `soon`
-- after the end the rate between the last two looks predicts (never later than
-- `max`): a job is seen Complete right after it is, with a handful of calls.
local M = {}

M.defaults = { first = 1, factor = 1.5, max = 30, soon = 0.05 }

local Poller = {}
Poller.__index = Poller

--- new(o) -> poller. o: first, factor, max, soon (seconds, see above; soon is at most
-- first), timeout (seconds from o.now; none: never gives up), rows (data rows
-- uploaded, or nil), now (the clock at the start).
function M.new(o)
    local d = M.defaults
    local first = o.first or d.first
    return setmetatable({
        first = first, factor = o.factor or d.factor, max = o.max or d.max,
        soon = math.min(o.soon or d.soon, first), rows = o.rows,
        deadline = o.timeout and o.now + o.timeout or math.huge,
        delay = nil, -- the last delay given
        last = nil,  -- { t, done } at the last look at an Importing job with counters
    }, Poller)
end

-- Rows the job has been through (imported or not), or nil when it does not say.
local function done_of(info)
    if not info or info.status ~= "Importing" or type(info.processed) ~= "number" then
        return nil
    end
    return info.processed + (tonumber(info.failed) or 0)
end

-- Seconds to the end the rate between the last look and this one predicts, or nil.
local function predicted(self, done, now)
    local last = self.last
    if not (self.rows and done and last and done > last.done and now > last.t) then
        return nil
    end
    local rate = (done - last.done) / (now - last.t)
    return math.max(0, self.rows - done) / rate
end

--- next(info, now) -> seconds to wait before the next status call, or nil when the
-- timeout is reached. `info` is the last status (marketo.job's normalised info; nil
-- before any), `now` the clock when it came.
function Poller:next(info, now)
    local left = self.deadline - now
    if left <= 0 then return nil end
    local done = done_of(info)
    local eta = predicted(self, done, now)
    local delay
    if eta then
        delay = math.max(self.soon, math.min(self.max, eta + self.soon))
    elseif done and self.rows and not self.last then
        delay = self.soon
    elseif self.delay then
        delay = math.min(self.max, math.max(self.delay, self.first) * self.factor)
    else
        delay = self.first
    end
    self.delay = delay
    self.last = done and { t = now, done = done } or nil
    return math.min(delay, left)
end

return M
