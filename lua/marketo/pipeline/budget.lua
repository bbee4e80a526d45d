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
-- task renews the leases while permits are held); the backend: o.url
-- ("local", the default, shdict:NAME in nginx, or redis://HOST:PORT/DB; with
-- o.instance, the Marketo instance the keys are for, o.lease in seconds, 30,
-- and o.timeout), or o.backend (a backend table) with o.renew_every (seconds).
function M.new(o)
    o = o or {}
    local limits = {}
    for k, v in pairs(M.DEFAULTS) do limits[k] = v end
    for k, v in pairs(options.check(o.limits, M.LIMITS, "budget.new", 2, 1, "limits")) do
        limits[k] = v
    end
    limits.window = limits.window + limits.margin -- the server stamps a call later than we do
    local clock = o.clock or require("marketo.core").monotonic
    local backend, msg, code = backend_of(o, limits, clock)
    if not backend then return nil, msg, code end
    local renew_every = o.renew_every
    if not o.backend and o.url and o.url ~= "local" then renew_every = (o.lease or 30) / 3 end
    return setmetatable({
        limits = limits, clock = clock,
        sleep = o.sleep or require("marketo.loop").sleep,
        backend = backend, renew_every = renew_every, renewed = clock(), spawn = o.spawn,
        holding = 0, keeping = false,
    }, Budget)
end

-- Renews the leases when they are due: every wait and every take passes here.
function Budget:_renew()
    if not self.renew_every or self.clock() - self.renewed < self.renew_every then return true end
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

--- try(what) -> permit | false, seconds | nil, msg, code: without waiting.
function Budget:try(what)
    local ok, msg, code = self:_renew()
    if not ok then return nil, msg, code end
    local permit, wait
    permit, wait, code = self.backend:try(what)
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

function Budget:release(what, permit)
    self.holding = self.holding - 1
    return self.backend:release(what, permit)
end

function Budget:spend(day, n, limit)
    return self.backend:spend(day, n, limit)
end

function Budget:close()
    return self.backend:close()
end

return M
