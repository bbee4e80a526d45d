--- marketo.sandbox.faults: seeded fault injection. What happens to a call is
-- a pure function of the seed, the call's identity (what it asks for; see
-- bulk.lua) and how many calls with that identity came before it since the
-- last reset - not of the order in which concurrent calls arrive, nor of
-- how often a client polled meanwhile. So a fault plan replays the same on
-- every run: the third upload of a given part, or the second job made from
-- it, meets the same fate each time.
local M = {}
M.__index = M

function M.new(conf)
    local self = setmetatable({ conf = conf }, M)
    self:reset()
    return self
end

--- Forgets how many calls of each identity were seen.
function M:reset()
    self.seen = {}
end

-- The splitmix64 finaliser: a well-mixed 64-bit value of a 64-bit value.
local function mix(x)
    x = (x ~ (x >> 30)) * -4658895280553007687 -- 0xBF58476D1CE4E5B9
    x = (x ~ (x >> 27)) * -7723592293110705685 -- 0x94D049BB133111EB
    return x ~ (x >> 31)
end

--- A 64-bit hash of a string (FNV-1a, then mixed).
function M.hash(s)
    local h = -3750763034362895579 -- 0xcbf29ce484222325
    for i = 1, #s do h = (h ~ s:byte(i)) * 1099511628211 end
    return mix(h)
end

--- A float in [0, 1): draw `k` of occurrence `n` of identity `id` under `seed`.
function M.float(seed, id, n, k)
    local x = mix(mix(M.hash(id) ~ mix(seed + 0x9E3779B97F4A7C15)) + n * 0x9E3779B9 + k)
    return (x >> 11) / 9007199254740992.0
end

--- The next occurrence number of identity `id` (1 for the first).
function M:occurrence(id)
    local n = (self.seen[id] or 0) + 1
    self.seen[id] = n
    return n
end

-- Which independent draw of a call decides what.
local DROP, ERROR, CODE, SLOW, LOST, JOB = 1, 2, 3, 4, 5, 6

--- The fate of one call: a table `fate` with fate.fault (nil, or
-- { kind = "error", code = "604" }, { kind = "drop" }, { kind = "slow",
-- seconds = s }) and fate.lost (its answer is dropped once carried out).
function M:draw(id)
    local conf, seed = self.conf, self.conf.seed
    local n = self:occurrence(id)
    local function chance(rate, k) return rate > 0 and M.float(seed, id, n, k) < rate end
    local fate = { n = n, lost = chance(conf.lost_rate, LOST) }
    if chance(conf.drop_rate, DROP) then
        fate.fault = { kind = "drop" }
    elseif chance(conf.error_rate, ERROR) and #conf.error_codes > 0 then
        local i = math.floor(M.float(seed, id, n, CODE) * #conf.error_codes) + 1
        fate.fault = { kind = "error", code = conf.error_codes[i] }
    elseif chance(conf.slow_rate, SLOW) then
        fate.fault = { kind = "slow", seconds = conf.slow_seconds }
    end
    return fate
end

--- The fate of a job made from an upload with identity `id`: whether it
-- will end Failed, and the job's own identity (the upload's and which job
-- made from it this is), which calls about the job are drawn under.
function M:job(id)
    local key = "job " .. id
    local n = self:occurrence(key)
    local rate = self.conf.job_fail_rate
    return rate > 0 and M.float(self.conf.seed, key, n, JOB) < rate, key .. "#" .. n
end

return M
