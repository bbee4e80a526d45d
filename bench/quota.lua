-- bench/quota: what counting every call in the day's quota adds to a call's
-- budget (marketo.pipeline.quota's count: one spend), against the call
-- budget the limiter already takes (in flight, a stamp in the window, the
-- slot back), on the local backend and on a real redis-server over loopback.
-- Three runs each, the median; the ratio is (budget + count) / budget.
local root = arg[1]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/?.lua;"
    .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath
local core = require("marketo.core")
local budget = require("marketo.pipeline.budget")
local quota = require("marketo.pipeline.quota")
local N = tonumber(os.getenv("QUOTA_BENCH_CALLS") or "") or 3000

-- Seconds per call of `fn` over N calls.
local function per_call(fn)
    local t0 = core.monotonic()
    for _ = 1, N do fn() end
    return (core.monotonic() - t0) / N
end

local function median(xs)
    table.sort(xs)
    return xs[math.ceil(#xs / 2)]
end

local function measure(name, make)
    local with, without = {}, {}
    for run = 1, 3 do
        local b = make(run)
        -- no limit in the way: the cost of the bookkeeping alone
        b.backend.limits.calls, b.backend.limits.in_flight = 1e9, 1e9
        local q = quota.new({ budget = b, limit = 1e12 })
        local function call_budget()
            local p = assert(b:try("in_flight"))
            assert(b:try("call"))
            b:release("in_flight", p)
        end
        without[run] = per_call(call_budget)
        with[run] = per_call(function() assert(q:count()); call_budget() end)
        b:close()
    end
    local w, wo = median(with), median(without)
    print(("%-6s call budget %.1f us, with the quota's count %.1f us: x%.2f (+%.1f us a call)")
        :format(name, wo * 1e6, w * 1e6, w / wo, (w - wo) * 1e6))
end

measure("local", function() return assert(budget.new()) end)
local redis = require("spec.support.redis").start()
measure("redis", function(run)
    return assert(budget.new({ url = redis.url, instance = "bench-" .. run }))
end)
redis.stop()
