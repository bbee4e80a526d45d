--- marketo.pipeline.budget_redis: the budget backend shared through Redis by
-- every runner, nginx worker and host importing into one Marketo instance.
-- See marketo.pipeline.budget for the interface.
--
--   local backend = budget_redis.new{ conn = redis_conn, instance = "123-ABC-456",
--       limits = {...}, lease = 30 }
--
-- Every take is one server-side script (EVALSHA), so two runners never both
-- see the last free slot; the time is Redis's own (TIME), not each host's.
-- A slot is a lease: a member of a sorted set scored by when it expires,
-- renewed while held (renew()), dropped by the next take once expired, so a
-- runner killed with -9 frees its slots within `lease` seconds. The keys are
-- marketo-bulk:{INSTANCE}:... (the braces keep them in one Redis Cluster slot).
local M = {}

local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

local NOW = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
]]

-- A permit's id is its holder's tag and the holder's own count, never Redis's:
-- a Redis restarted empty would count again from 1, and a new permit must
-- never take the name of one held from before (renewed back in).
-- KEYS: the slots' set; ARGV: limit, lease (ms), the new permit's id.
-- -> { 1, id } | { 0, ms to wait }
local SLOT = NOW .. [[
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return { 0, math.min(tonumber(first[2]) - now, 50) }
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
return { 1, ARGV[3] }
]]

-- KEYS: the calls' set; ARGV: calls, window (ms), the call's id.
-- -> { 1, id } | { 0, ms until the oldest call leaves the window }
local CALL = NOW .. [[
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return { 0, tonumber(first[2]) + tonumber(ARGV[2]) - now }
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { 1, ARGV[3] }
]]

-- KEYS: a slots' set; ARGV: lease (ms), ids. Held slots get a new expiry;
-- one that lapsed meanwhile is counted again: its job is still in Marketo.
local RENEW = NOW .. [[
for i = 2, #ARGV do
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i])
end
return #ARGV - 1
]]

-- KEYS: the day's counter; ARGV: n, limit (-1: none), ttl (s).
-- -> { 1, spent } | { 0, spent before }
local SPEND = [[
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local n, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
if limit >= 0 and spent + n > limit then return { 0, spent } end
spent = redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return { 1, spent }
]]

M.SCRIPTS = { slot = SLOT, call = CALL, renew = RENEW, spend = SPEND }

local Redis = {}
Redis.__index = Redis

-- This holder's tag: the process id (an nginx worker's, or the runner's),
-- the time and a random number.
function M.tag()
    local ngx, pid = rawget(_G, "ngx"), 0
    if ngx and ngx.worker then
        pid = ngx.worker.pid()
    else
        local ok, core = pcall(require, "marketo.core")
        if ok and core.getpid then pid = core.getpid() end
    end
    return ("%x%x%04x"):format(pid, os.time() % 65536, math.random(0, 65535))
end

--- new(o) -> backend | nil, msg, code. o.conn (anything with call(cmd, ...):
-- marketo.redis, or an adapter of lua-resty-redis), o.instance (the Marketo
-- instance: its Munchkin id or host), o.limits (as marketo.pipeline.budget's,
-- window with its margin), o.lease (seconds, 30).
function M.new(o)
    local self = setmetatable({ conn = o.conn, limits = o.limits, lease = o.lease or 30,
        prefix = ("marketo-bulk:{%s}:"):format(o.instance), sha = {}, held = {},
        tag = M.tag(), count = 0 }, Redis)
    for name, body in pairs(M.SCRIPTS) do
        local sha, msg, code = self.conn:call("SCRIPT", "LOAD", body)
        if not sha then return nil, msg, code end
        self.sha[name] = sha
    end
    return self
end

-- EVALSHA, or EVAL when the server forgot the script (a restart, SCRIPT FLUSH).
function Redis:_run(name, keys, ...)
    local args = { self.sha[name], #keys }
    for _, k in ipairs(keys) do args[#args + 1] = self.prefix .. k end
    for _, a in ipairs({ ... }) do args[#args + 1] = a end
    local reply, msg, code = self.conn:call("EVALSHA", unpack(args))
    if not reply and code == "REDIS" and msg:find("NOSCRIPT", 1, true) then
        args[1] = M.SCRIPTS[name]
        reply, msg, code = self.conn:call("EVAL", unpack(args))
    end
    return reply, msg, code
end

-- The next permit's id: TAG:N.
function Redis:_id()
    self.count = self.count + 1
    return self.tag .. ":" .. self.count
end

--- try(what) -> permit | false, seconds | nil, msg, code
function Redis:try(what)
    local reply, msg, code
    if what == "call" then
        reply, msg, code = self:_run("call", { "calls" }, self.limits.calls,
            math.floor(self.limits.window * 1000 + 0.5), self:_id())
    else
        reply, msg, code = self:_run("slot", { what }, self.limits[what],
            math.floor(self.lease * 1000 + 0.5), self:_id())
    end
    if not reply then return nil, msg, code end
    if reply[1] == 0 then return false, math.max(reply[2], 1) / 1000 end
    if what ~= "call" then
        self.held[what] = self.held[what] or {}
        self.held[what][reply[2]] = true
    end
    return reply[2]
end

function Redis:release(what, permit)
    if self.held[what] then self.held[what][permit] = nil end
    local ok, msg, code = self.conn:call("ZREM", self.prefix .. what, permit)
    if ok == nil then return nil, msg, code end
    return true
end

--- renew() -> true | nil, msg, code: every held slot's lease starts again.
function Redis:renew()
    for what, ids in pairs(self.held) do
        local list = {}
        for id in pairs(ids) do list[#list + 1] = id end
        if #list > 0 then
            local ok, msg, code = self:_run("renew", { what },
                math.floor(self.lease * 1000 + 0.5), unpack(list))
            if not ok then return nil, msg, code end
        end
    end
    return true
end

--- spend(day, n, limit) -> spent | false, spent | nil, msg, code
function Redis:spend(day, n, limit)
    local reply, msg, code = self:_run("spend", { "quota:" .. day }, n, limit or -1,
        3 * 24 * 3600)
    if not reply then return nil, msg, code end
    if reply[1] == 0 then return false, reply[2] end
    return reply[2]
end

function Redis:close()
    if self.conn.close then self.conn:close() end
end

return M
