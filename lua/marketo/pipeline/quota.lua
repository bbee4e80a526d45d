--- marketo.pipeline.quota: the instance's daily quota of API calls, counted in
-- the budget (marketo.pipeline.budget: spend(day, n, limit), shared by every
-- runner on a shared backend) by Marketo's day (marketo.day), seeded from
-- what the instance says it used today (GET /rest/v1/stats/usage.json).
--
--   local q = quota.new{ budget = b, limit = 50000, wait = false, sleep = rt.sleep,
--       now = rt.now, stop = rt.stop_requested, on_event = fn, usage = fn }
--   q:seed([usage])          -- before the first call
--   q:count()                -- every call (the limiter): true | nil, msg, "607"
--   client retry = q:policy(retry.policy())   -- a 607 answer: stop, or wait
--
-- When the day's quota is spent (the budget says so, or Marketo answers 607)
-- the import stops (no further call leaves: each is refused here as 607) with
-- when the quota resets; with `wait`, the calls wait for the reset instead,
-- asking the instance every `check_every` seconds so that a reset it sees
-- (its clock is the one that counts) ends the wait before our midnight.
local day = require("marketo.day")

local M = {}

M.DAILY = 50000      -- Marketo's default daily quota of API calls
M.CHECK_EVERY = 60   -- seconds between the wait's questions to the instance
M.MARGIN = 60        -- without usage.json, seconds past midnight before going on

local Quota = {}
Quota.__index = Quota

--- new(o) -> quota. o.budget; o.limit (calls a day, M.DAILY); o.wait (wait
-- for the reset instead of stopping); o.check_every (seconds); o.sleep and
-- o.now (the runtime's: in nginx the wait yields); o.stop() (true: stop
-- waiting); o.wall() (epoch seconds, os.time); o.on_event(ev); o.usage()
-- -> { date, total } | nil, msg, code (the client's usage()); o.local_time
-- (marketo.day.reset_text's, for specs).
function M.new(o)
    return setmetatable({ budget = o.budget, limit = o.limit or M.DAILY, wait = o.wait,
        check_every = o.check_every or M.CHECK_EVERY, sleep = o.sleep, now = o.now,
        stop = o.stop or function() return false end, wall = o.wall or os.time,
        on_event = o.on_event or function() end, usage = o.usage, local_time = o.local_time,
        floor = nil, out = false, asking = false, waiting = false, can_ask = o.usage ~= nil,
    }, Quota)
end

--- The day the budget counts: Marketo's by our clock, or the instance's own
-- when it has said it is later (its day turned before our midnight).
function Quota:day()
    local d = day.of(self.wall())
    if self.floor and self.floor > d then return self.floor end
    return d
end

local function count_text(n)
    local s = tostring(math.floor(n)):reverse():gsub("(%d%d%d)", "%1,"):reverse()
    return (s:gsub("^,", ""))
end

--- When the quota of the day being counted resets, for people.
function Quota:reset_text()
    local reset = day.start(day.after(self:day()))
    return day.reset_text(reset, self.wall(), self.local_time)
end

-- Raises the day's count to `total` if it is below (never above `total`,
-- whatever other runners add meanwhile: spend's limit guards each step).
function Quota:_raise(d, total)
    local spent, before, code = self.budget:spend(d, 0)
    while spent ~= nil do
        local now_spent = spent or before
        if now_spent >= total then return true end
        spent, before, code = self.budget:spend(d, total - now_spent, total)
    end
    return nil, before, code
end

-- The instance's answer about today, taken in: a later day than ours is
-- the instance's reset; its total raises the day's count.
function Quota:_take(u)
    local date = day.normalize(u.date)
    if date and date > self:day() then self.floor = date end
    if date and date < self:day() then return true end -- its day has not turned yet
    return self:_raise(self:day(), math.floor(u.total or 0))
end

function Quota:_ask()
    self.asking = true
    local ok, u, msg, code = pcall(self.usage)
    self.asking = false
    if not ok then error(u, 0) end
    return u, msg, code
end

--- seed([u]) -> true | nil, msg, code (the budget's failure): the day's count
-- raised to what the instance used today (`u`, if the caller has just read
-- it, else asked). An instance that does not let the API user ask (603) or
-- does not answer: counted from our calls only, said once. An answer 607:
-- the day's quota is already spent.
function Quota:seed(u)
    if not u and self.can_ask then
        local msg, code
        u, msg, code = self:_ask()
        if not u then
            if code == "607" then return self:exhausted() end
            if code == "603" then self.can_ask = false end
            self.on_event({ ev = "notice", message = ("the daily quota is counted from this "
                .. "run's calls only: %s"):format(tostring(msg)) })
            return true
        end
    end
    if not u then return true end
    return self:_take(u)
end

--- The instance said 607: the day's count goes to the limit, so that every
-- runner sharing the budget stops (or waits) too.
function Quota:exhausted()
    self.out = true
    return self:_raise(self:day(), self.limit)
end

--- The refusal of a call once the day's quota is spent.
function Quota:refusal()
    return ("QUOTA: the day's quota of %s API calls is spent (%s, US Central; "
        .. "--daily-quota)"):format(count_text(self.limit), self:day())
end

--- count() -> true | nil, msg, code: one call of the import, counted; when
-- the day's quota is spent, nil, msg, "607", or with `wait`, after the reset.
-- The wait's own question to the instance is counted, never refused.
function Quota:count()
    if self.asking then
        local ok, msg, code = self.budget:spend(self:day(), 1)
        if ok == nil then return nil, msg, code end
        return true
    end
    while true do
        if not self.out then
            local spent, before, code = self.budget:spend(self:day(), 1, self.limit)
            if spent == nil then return nil, before, code end
            if spent then return true end
            self.out = true
        end
        if not self.wait then return nil, self:refusal(), "607" end
        local ok, msg, code = self:wait_for_reset()
        if not ok then return nil, msg, code end
    end
end

-- Waits until the day turns: the instance says so (usage.json answers, with
-- a later date), or without usage.json, our clock passed its midnight.
function Quota:_wait()
    local spent_day = self:day()
    local reset = day.start(day.after(spent_day))
    self.on_event({ ev = "waiting", reason = "quota", day = spent_day, resets_at = reset,
        message = ("waiting for the daily quota: it %s%s"):format(self:reset_text(),
            self.can_ask and ("; asking the instance every %g s"):format(self.check_every)
            or "") })
    -- the first question at our midnight at the latest, then every check_every
    local next_ask = self.now() + math.min(self.check_every, math.max(reset - self.wall(), 0))
    while true do
        if self.stop() then return nil, "stopped while waiting for the daily quota", "STOPPED" end
        if self.can_ask and self.now() >= next_ask then
            next_ask = self.now() + self.check_every
            local u, _, code = self:_ask()
            local date = u and day.normalize(u.date)
            if date and date > spent_day then
                local ok, msg, bcode = self:_take(u)
                if not ok then return nil, msg, bcode end
                break
            end
            if not u and code == "603" then self.can_ask = false end
        elseif not self.can_ask and self.wall() >= reset + M.MARGIN then
            break
        end
        self.sleep(self.can_ask and math.min(1, math.max(next_ask - self.now(), 0.05)) or 1)
    end
    self.out = false
    self.on_event({ ev = "quota_reset", day = self:day(),
        message = ("the daily quota is new (%s): going on"):format(self:day()) })
    return true
end

--- wait_for_reset() -> true | nil, msg, code. One task waits (and asks);
-- the others wait for its outcome.
function Quota:wait_for_reset()
    if self.waiting then
        while self.waiting do
            if self.stop() then return nil, "stopped while waiting for the daily quota",
                "STOPPED" end
            self.sleep(0.25)
        end
        if self.out then return nil, self:refusal(), "607" end
        return true
    end
    self.waiting = true
    local ok, r, msg, code = pcall(self._wait, self)
    self.waiting = false
    if not ok then error(r, 0) end
    return r, msg, code
end

--- policy(base) -> a client retry policy: a 607 answer (Marketo's, or ours
-- from count) ends the call with when the quota resets, or with `wait`,
-- repeats it after the reset; anything else is `base`'s.
function Quota:policy(base)
    return function(err, attempt)
        if err.code ~= "607" then return base(err, attempt) end
        if self.asking then return nil end -- the wait's question: 607 means not yet
        if err.status then self:exhausted() end -- Marketo's answer, not our count's
        if self.wait and err.status then
            local ok = self:wait_for_reset()
            if ok then return 0 end
        end
        err.hint = (err.status and "the instance's daily API quota is used up; it " or "it ")
            .. self:reset_text() .. " (--wait-for-quota waits for it)"
        return nil
    end
end

return M
