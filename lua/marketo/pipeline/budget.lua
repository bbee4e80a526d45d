--- marketo.pipeline.budget: Marketo's limits belong to the instance, not to one
-- runner. The scheduler and the limiter take their permits here, from a
-- backend that may be this process alone ("local", the default) or shared by
-- every runner, nginx worker and host (marketo.pipeline.budget_redis).
--
--   local b = budget.new{ limits = {...}, clock = rt.now, sleep = rt.sleep }
--   local p = b:acquire("queued", stop)  -- waits (rt.sleep) until a slot is free
--   b:release("queued", p)
--
-- What there is to take:
--   "importing"  one of the instance's jobs Marketo imports at once (2)
--   "queued"     one of its jobs in Marketo's queue, Queued or Importing (10)
--   "in_flight"  one of its calls in flight (10)
--   "call"       a call within the rolling window (100 per 20 s): nothing to release
-- and the day's quota: spend(day, n, limit).
--
-- A shared backend out of reach (Redis gone: code BUDGET) pauses the import:
-- try answers "not yet" (it never proceeds without a budget), o.notify hears
-- it once ("budget: Redis at HOST:PORT unreachable, paused since ..."), and
-- once Redis answers again the held slots are renewed (a Redis restarted empty
-- has forgotten them), the releases it missed are made, and the import goes
-- on. After `wait` seconds (the URL's ?wait=, M.WAIT by default) try fails
-- with BUDGET instead: the import stops cleanly, its journal resumable.
--
-- A backend has try(what) -> permit | false, seconds to wait | nil, msg, code;
-- release(what, permit); renew() (leases: a shared backend's permits expire
-- unless renewed, so a runner killed with -9 frees its slots); spend; close.
local options = require("marketo.options")

local M = {}

M.DEFAULTS = { importing = 2, queued = 10, in_flight = 10, calls = 100, window = 20,
    margin = 0.25 }

local COUNT = { "number", integer = true, min = 1 }
--- The limits new takes, as marketo.options rules.
M.LIMITS = { importing = COUNT, queued = COUNT, in_flight = COUNT, calls = COUNT,
    window = { "number", positive = true }, margin = { "number", min = 0 } }

--- Seconds an import paused by its shared budget's Redis waits for it, and
-- between two looks at it meanwhile.
M.WAIT, M.RETRY = 600, 0.25

local Budget = {}
Budget.__index = Budget

-- The backend o.url names: "local" (or none), redis://HOST:PORT/DB, or in
-- nginx shdict:NAME (a lua_shared_dict).
local function backend_of(o, limits, clock)
    if o.backend then return o.backend end
    if o.url == nil or o.url == "local" then
        return require("marketo.pipeline.budget_local").new(limits, clock)
    end
    local dict = o.url:match("^shdict:(.+)$")
    if dict then -- in nginx: its workers share a lua_shared_dict
        local ngx = rawget(_G, "ngx")
        if not ngx then return nil, "BUDGET: " .. o.url .. " is for nginx", "BUDGET" end
        return require("marketo.resty.budget_shdict").new({ dict = ngx.shared[dict],
            name = dict, instance = o.instance or "default", limits = limits, lease = o.lease })
    end
    -- in nginx, lua-resty-redis on cosockets; elsewhere our own client
    local client = rawget(_G, "ngx") and "marketo.resty.redis" or "marketo.redis"
    local conn, msg, code = require(client).connect(o.url,
        { sleep = o.sleep, clock = clock, timeout = o.timeout })
    if not conn then return nil, msg, code end
    local backend
    backend, msg, code = require("marketo.pipeline.budget_redis").new({ conn = conn,
        instance = o.instance or "default", limits = limits, lease = o.lease })
    if not backend then conn:close() end
    return backend, msg, code
end

--- new(o) -> budget | nil, msg, code. o.limits (M.DEFAULTS keys), o.clock,
-- o.sleep (the runtime's: in nginx they yield), o.spawn (the runtime's: a
-- task renews the leases while permits are held), o.notify(event) (hears a
-- pause and its end: { ev = "budget", state = "paused" | "resumed", message });
-- the backend: o.url ("local", the default, shdict:NAME in nginx, or
-- redis://HOST:PORT/DB[?lease=S&wait=S]; with o.instance, the Marketo instance
-- the keys are for, o.lease in seconds, 30, o.wait (M.WAIT) and o.timeout;
-- the URL's lease and wait win), or o.backend (a backend table) with
-- o.renew_every (seconds).
function M.new(o)
    o = o or {}
    local limits = {}
    for k, v in pairs(M.DEFAULTS) do limits[k] = v end
    for k, v in pairs(options.check(o.limits, M.LIMITS, "budget.new", 2, 1, "limits")) do
        limits[k] = v
    end
    limits.window = limits.window + limits.margin -- the server stamps a call later than we do
    local clock = o.clock or require("marketo.core").monotonic
    local redis = type(o.url) == "string" and o.url:find("^redis://")
        and require("marketo.redis").parse(o.url)
    if redis then
        local copy = {}
        for k, v in pairs(o) do copy[k] = v end
        copy.lease, copy.wait = redis.lease or o.lease, redis.wait or o.wait
        o = copy
    end
    local backend, msg, code = backend_of(o, limits, clock)
    if not backend then return nil, msg, code end
    local renew_every = o.renew_every
    if not o.backend and o.url and o.url ~= "local" then renew_every = (o.lease or 30) / 3 end
    return setmetatable({
        limits = limits, clock = clock,
        sleep = o.sleep or require("marketo.loop").sleep,
        backend = backend, renew_every = renew_every, renewed = clock(), spawn = o.spawn,
        holding = 0, keeping = false, notify = o.notify,
        -- a Redis out of reach pauses the import (nil: never; the local backend)
        where = redis and ("%s:%d"):format(redis.host, redis.port),
        wait = o.wait or M.WAIT, lost = nil, unreleased = {},
    }, Budget)
end

-- Renews the leases when they are due (or `now`): every wait and every take
-- passes here.
function Budget:_renew(now)
    if not self.renew_every then return true end
    if not now and self.clock() - self.renewed < self.renew_every then return true end
    self.renewed = self.clock()
    return self.backend:renew()
end

-- While permits are held, a task renews them (in short sleeps: it ends soon
-- after the last one is released, and the runtime's run() with it).
function Budget:_keep()
    if self.keeping or not (self.spawn and self.renew_every) then return end
    self.keeping = true
    self.spawn(function()
        while self.holding > 0 do
            self.sleep(math.min(0.25, self.renew_every))
            self:_renew()
        end
        self.keeping = false
    end)
end

-- Says a pause and its end: to o.notify, or (none given) on stderr.
function Budget:_say(state, message)
    local ev = { ev = "budget", state = state, message = message }
    if self.notify then return self.notify(ev) end
    io.stderr:write(message, "\n")
end

-- A failure of the backend: Redis out of reach pauses (false, seconds: look
-- again then) until `wait` is over; anything else is the caller's failure.
function Budget:_unreachable(msg, code, wait)
    if not self.where or code ~= "BUDGET" then return nil, msg, code end
    local now = self.clock()
    if not self.lost then
        self.lost = { at = now, probed = now, msg = msg,
            since = os.date("!%Y-%m-%d %H:%M:%S UTC") }
        self:_say("paused", ("budget: Redis at %s unreachable, paused since %s (%s)")
            :format(self.where, self.lost.since, msg:gsub("^BUDGET: ", "")))
    end
    if now - self.lost.at >= self.wait then
        return nil, ("BUDGET: Redis at %s unreachable since %s: stopped after waiting %g s "
            .. "for it (the budget URL's ?wait=SECONDS)"):format(self.where, self.lost.since,
            self.wait), "BUDGET"
    end
    return false, wait or M.RETRY
end

-- Redis answers again: the releases it missed, then say so.
function Budget:_back()
    local lost = self.lost
    self.lost = nil
    local missed = self.unreleased
    self.unreleased = {}
    for _, r in ipairs(missed) do self:_release(r[1], r[2]) end
    self:_say("resumed", ("budget: Redis at %s answers again after %.0f s: going on")
        :format(self.where, self.clock() - lost.at))
end

--- try(what) -> permit | false, seconds | nil, msg, code: without waiting.
-- While Redis is out of reach: false, seconds (see _unreachable).
function Budget:try(what)
    local lost = self.lost
    if lost then -- paused: Redis is asked again every M.RETRY s, whichever task asks
        local since = self.clock() - lost.probed
        if since < M.RETRY then return self:_unreachable(lost.msg, "BUDGET", M.RETRY - since) end
        lost.probed = self.clock()
    end
    -- back from a pause, the held slots first: a restarted Redis lost them
    local ok, msg, code = self:_renew(lost ~= nil)
    if not ok then return self:_unreachable(msg, code) end
    local permit, wait
    permit, wait, code = self.backend:try(what)
    if permit == nil then return self:_unreachable(wait, code) end
    if self.lost then self:_back() end
    if permit and what ~= "call" then
        self.holding = self.holding + 1
        self:_keep()
    end
    return permit, wait, code
end

--- acquire(what[, stop]) -> permit | nil, msg, code: waits until it may
-- take one; stop() true ends the wait with nil, "stopped", "STOPPED".
function Budget:acquire(what, stop)
    while true do
        local permit, wait, code = self:try(what)
        if permit then return permit end
        if permit == nil then return nil, wait, code end
        if stop and stop() then return nil, "stopped", "STOPPED" end
        self.sleep(math.min(wait, self.renew_every or wait))
    end
end

-- A release Redis did not hear is made once it answers again (the backend
-- has let go of the permit already: it is no longer renewed meanwhile).
function Budget:_release(what, permit)
    local ok, msg, code = self.backend:release(what, permit)
    if ok == nil and self.where and code == "BUDGET" then
        self.unreleased[#self.unreleased + 1] = { what, permit }
        return true
    end
    return ok, msg, code
end

function Budget:release(what, permit)
    self.holding = self.holding - 1
    return self:_release(what, permit)
end

--- spend(day, n, limit) -> spent | false, spent | nil, msg, code: the day's
-- quota. While Redis is out of reach it waits (sleep), as try pauses.
function Budget:spend(day, n, limit)
    while true do
        local ok, msg, code = true, nil, nil
        if self.lost then ok, msg, code = self:_renew(true) end
        local spent, before
        if ok then
            spent, before, code = self.backend:spend(day, n, limit)
            msg = before
        end
        if spent ~= nil then
            if self.lost then self:_back() end
            return spent, before
        end
        local wait
        ok, wait, code = self:_unreachable(msg, code)
        if ok == nil then return nil, wait, code end
        self.sleep(wait)
    end
end

function Budget:close()
    return self.backend:close()
end

return M
