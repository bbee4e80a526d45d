--- marketo.resty.budget_shdict: the budget backend shared by the workers of one
-- nginx through a lua_shared_dict (see marketo.pipeline.budget). One host only:
-- runners elsewhere need the Redis backend.
--
--   lua_shared_dict marketo_budget 1m;          # nginx.conf, http context
--   budget = "shdict:marketo_budget"            # marketo.import.run's option
--
-- A dict's operations are atomic one by one; each take reads, changes and
-- writes several keys, so it runs under a lock: a key `add` creates only when
-- absent, expiring by itself if its worker dies holding it. A slot is a lease
-- (its expiry kept with it), renewed while held, as in Redis.
local M = {}

local LOCK_TTL, LOCK_WAIT = 1, 2 -- seconds

local Shdict = {}
Shdict.__index = Shdict

--- new(o) -> backend | nil, msg, code. o.dict (an ngx.shared dict), o.name (its
-- name, for messages), o.instance, o.limits (window with its margin), o.lease
-- (seconds, 30).
function M.new(o)
    if not o.dict then
        return nil, ("BUDGET: no lua_shared_dict %s in nginx.conf"):format(tostring(o.name)),
            "BUDGET"
    end
    return setmetatable({ dict = o.dict, limits = o.limits, lease = o.lease or 30,
        prefix = ("marketo-bulk:{%s}:"):format(o.instance), held = {} }, Shdict)
end

local function now()
    ngx.update_time()
    return ngx.now()
end

-- fn() under the dict's lock: its results | nil, msg, "BUDGET".
function Shdict:_locked(fn)
    local key, deadline = self.prefix .. "lock", now() + LOCK_WAIT
    while true do
        local ok, err = self.dict:add(key, true, LOCK_TTL)
        if ok then break end
        if err ~= "exists" then return nil, "BUDGET: shared dict: " .. tostring(err), "BUDGET" end
        if now() > deadline then return nil, "BUDGET: shared dict lock held too long", "BUDGET" end
        ngx.sleep(0.001)
    end
    local ok, a, b = pcall(fn, now())
    self.dict:delete(key)
    if not ok then error(a, 0) end
    return a, b
end

-- A set as "id=number;..." <-> { [id] = number }
local function load(dict, key)
    local out = {}
    for id, n in (dict:get(key) or ""):gmatch("(%d+)=([^;]+);") do
        out[tonumber(id)] = tonumber(n)
    end
    return out
end

local function save(dict, key, set)
    local parts = {}
    for id, n in pairs(set) do parts[#parts + 1] = ("%d=%.3f;"):format(id, n) end
    return dict:set(key, table.concat(parts))
end

-- Live members of a set (those above `floor`), the earliest of them.
local function live(set, floor)
    local n, first = 0, nil
    for id, v in pairs(set) do
        if v <= floor then
            set[id] = nil
        else
            n = n + 1
            if not first or v < first then first = v end
        end
    end
    return n, first
end

--- try(what) -> permit | false, seconds | nil, msg, code
function Shdict:try(what)
    local key = self.prefix .. what
    local permit, wait = self:_locked(function(t)
        local set = load(self.dict, key)
        local window = self.limits.window
        local n, first = live(set, what == "call" and t - window or t)
        local limit = what == "call" and self.limits.calls or self.limits[what]
        if n >= limit then
            return false, what == "call" and (first + window - t) or 0.05
        end
        local id = self.dict:incr(self.prefix .. "ids", 1, 0)
        set[id] = what == "call" and t or t + self.lease
        local ok, err = save(self.dict, key, set)
        if not ok then return nil, "BUDGET: shared dict: " .. tostring(err) end
        return id
    end)
    if permit == nil then return nil, wait, "BUDGET" end
    if permit and what ~= "call" then
        self.held[what] = self.held[what] or {}
        self.held[what][permit] = true
    end
    return permit, wait
end

function Shdict:release(what, permit)
    if self.held[what] then self.held[what][permit] = nil end
    local key = self.prefix .. what
    return self:_locked(function()
        local set = load(self.dict, key)
        set[permit] = nil
        save(self.dict, key, set)
        return true
    end)
end

--- renew() -> true | nil, msg, code: every held slot's lease starts again.
function Shdict:renew()
    for what, ids in pairs(self.held) do
        local key = self.prefix .. what
        local ok, msg = self:_locked(function(t)
            local set = load(self.dict, key)
            for id in pairs(ids) do set[id] = t + self.lease end
            save(self.dict, key, set)
            return true
        end)
        if not ok then return nil, msg, "BUDGET" end
    end
    return true
end

--- spend(day, n, limit) -> spent | false, spent
function Shdict:spend(day, n, limit)
    local key = self.prefix .. "quota:" .. day
    return self:_locked(function()
        local spent = self.dict:get(key) or 0
        if limit and spent + n > limit then return false, spent end
        self.dict:set(key, spent + n, 3 * 24 * 3600)
        return spent + n
    end)
end

function Shdict.close() end

return M
