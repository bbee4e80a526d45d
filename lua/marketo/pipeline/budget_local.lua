--- marketo.pipeline.budget_local: the budget backend of one process (the
-- default): counters and the calls' stamps in this Lua state, as the
-- scheduler and the limiter always kept them. See marketo.pipeline.budget.
local M = {}

local Local = {}
Local.__index = Local

--- new(limits, clock) -> backend. limits: importing, queued, in_flight,
-- calls, window (seconds, the margin included).
function M.new(limits, clock)
    return setmetatable({ limits = limits, clock = clock, held = {}, seq = 0,
        stamps = {}, first = 1, last = 0, spent = {} }, Local)
end

-- Stamps older than the window no longer count. They are a queue from
-- `first` to `last` (explicit indexes: `#` is undefined on a table with holes).
function Local:_live(now)
    local stamps, first = self.stamps, self.first
    while first <= self.last and stamps[first] <= now - self.limits.window do
        stamps[first] = nil
        first = first + 1
    end
    self.first = first
    return self.last - first + 1
end

--- try(what) -> permit | false, seconds to wait before trying again.
function Local:try(what)
    if what == "call" then
        local now = self.clock()
        if self:_live(now) >= self.limits.calls then
            return false, self.stamps[self.first] + self.limits.window - now
        end
        self.last = self.last + 1
        self.stamps[self.last] = now
        return true
    end
    local held = self.held[what] or 0
    if held >= self.limits[what] then return false, 0.02 end
    self.held[what] = held + 1
    self.seq = self.seq + 1
    return self.seq
end

function Local:release(what)
    self.held[what] = (self.held[what] or 1) - 1
    return true
end

--- spend(day, n, limit) -> calls spent that day | false, spent: the day's quota.
function Local:spend(day, n, limit)
    local spent = (self.spent[day] or 0) + n
    if limit and spent > limit then return false, spent - n end
    self.spent[day] = spent
    return spent
end

function Local.renew() return true end
function Local.close() end

return M
