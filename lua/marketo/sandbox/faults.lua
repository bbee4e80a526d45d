--- marketo.sandbox.faults: seeded fault injection. A private xorshift64*
-- generator, so a seed replays the same faults whatever else calls
-- math.random.
local M = {}
M.__index = M

function M.new(conf)
    local self = setmetatable({ conf = conf }, M)
    self:reseed(conf.seed)
    return self
end

function M:reseed(seed)
    self.seeded = seed
    self.state = (seed ~ 0x9E3779B97F4A7C15) | 1
end

--- A float in [0, 1).
function M:next()
    if self.seeded ~= self.conf.seed then self:reseed(self.conf.seed) end
    local x = self.state
    x = x ~ (x >> 12)
    x = x ~ (x << 25)
    x = x ~ (x >> 27)
    self.state = x
    return ((x * 0x2545F4914F6CDD1D) >> 11) / 9007199254740992.0
end

function M:chance(rate)
    return rate > 0 and self:next() < rate
end

--- What happens to one bulk call: nil, or { kind = "error", code = "604" },
-- { kind = "drop" }, { kind = "slow", seconds = s }.
function M:draw()
    local conf = self.conf
    if self:chance(conf.drop_rate) then return { kind = "drop" } end
    if self:chance(conf.error_rate) and #conf.error_codes > 0 then
        local i = math.floor(self:next() * #conf.error_codes) + 1
        return { kind = "error", code = conf.error_codes[i] }
    end
    if self:chance(conf.slow_rate) then return { kind = "slow", seconds = conf.slow_seconds } end
    return nil
end

--- Whether a job that starts importing now will end Failed.
function M:job_fails()
    return self:chance(self.conf.job_fail_rate)
end

return M
