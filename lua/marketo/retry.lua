--- marketo.retry: retry policies.
--
-- A policy is a plain function `policy(err, attempt) -> delay_seconds | nil`. `err` is
-- the error value of marketo.errors (its `class`, `code`, `elapsed`: seconds since the
-- call's first attempt, `attempts`: failed attempts of the call in all); `attempt`
-- counts the failed attempts of this call in err's class, from 1, so that an hour of
-- queue waits does not use up the budget for a transient error. Returning nil gives
-- up and the call fails with `err`. The default policy is built by
-- `retry.policy(options)`; a script may pass any function of that shape as the
-- client's `retry` option.
local argcheck = require("marketo.options")

local M = {}

M.defaults = {
    max_attempts = 8,       -- per call, for reauth/retry/throttle (queue waits aside)
    max_elapsed = 300,      -- seconds a call may spend retrying transient errors
    base = 0.5,             -- first back-off for `retry`, doubled each attempt ...
    cap = 30,               -- ... up to this
    reauth_attempts = 3,    -- a fresh token still refused three times is not stale
    throttle_window = 20,   -- Marketo's rate window: 100 calls per 20 s
    concurrency_base = 1,   -- 615: someone else's calls end soon
    queue_base = 5,         -- 1016/1019: a slot frees when a running job ends ...
    queue_cap = 60,         -- ... which takes minutes, so poll gently
    queue_timeout = 3600,   -- and give up after an hour of waiting
    seed = false,           -- a number: make the jitter reproducible
    random = false,         -- or a function() -> [0, 1)
}

local SECONDS = { "number", positive = true }
local OPTIONS = {
    max_attempts = { "number", integer = true, min = 1 }, max_elapsed = SECONDS,
    base = SECONDS, cap = SECONDS, reauth_attempts = { "number", integer = true, min = 0 },
    throttle_window = SECONDS, concurrency_base = SECONDS, queue_base = SECONDS,
    queue_cap = SECONDS, queue_timeout = SECONDS, seed = "number|boolean",
    random = "function|boolean",
}

--- A seedable generator in [0, 1) (Park-Miller; exact in doubles, no bit ops), so
-- specs and bug reports can replay a schedule.
function M.random(seed)
    local x = math.floor(tonumber(seed) or 1) % 2147483647
    if x <= 0 then x = x + 2147483646 end
    return function()
        x = (x * 16807) % 2147483647
        return (x - 1) / 2147483646
    end
end

local function check(options)
    local o = {}
    for k, v in pairs(M.defaults) do o[k] = v end
    for k, v in pairs(argcheck.check(options, OPTIONS, "policy", 3)) do o[k] = v end
    return o
end

--- The default policy, tuned by `options` (keys of `retry.defaults`).
-- reauth: at once, a few times. retry: exponential back-off with "equal jitter"
-- (half fixed, half random) so that many clients do not retry in lock step.
-- throttle: 606 waits a growing share of the rate window, so that after at most a
-- window's wait the oldest calls have left it; 615 backs off from a second.
-- queue: patient, growing waits bounded by `queue_timeout` rather than by attempts.
function M.policy(options)
    local o = check(options)
    local random = o.random or (o.seed and M.random(o.seed)) or math.random
    local function jitter(d)
        return d / 2 + random() * d / 2
    end
    return function(err, attempt)
        local class = err.class
        if class == "queue" then
            if (err.elapsed or 0) >= o.queue_timeout then return nil end
            return jitter(math.min(o.queue_cap, o.queue_base * 1.5 ^ (attempt - 1)))
        end
        if class == "fatal" or class == nil then return nil end
        if attempt >= o.max_attempts then return nil end
        if class == "reauth" then
            if attempt > o.reauth_attempts then return nil end
            return 0
        end
        if (err.elapsed or 0) >= o.max_elapsed then return nil end
        if class == "throttle" then
            if err.code == "606" then
                local w = o.throttle_window
                return math.min(w, w / 4 * attempt) + random() * w / 10
            end
            return jitter(math.min(o.cap, o.concurrency_base * 2 ^ (attempt - 1)))
        end
        if class == "retry" then
            return jitter(math.min(o.cap, o.base * 2 ^ (attempt - 1)))
        end
        return nil
    end
end

--- A policy that never retries (a script that wants to see every error).
function M.never() return nil end

return M
