-- The store part of bench/sandbox (run by the runner; see that script): for
-- each row count in ROWS (default "1000000,10000000"), a generated lead file
-- imported through `marketo-bulk import` into a fresh sandbox at speed 0 (as
-- fast as it can); the sandbox's peak RSS (VmHWM) against the file's bytes,
-- and its import throughput (rows over the span from the first job's start to
-- the last one's end, on the sandbox's clock).
local spawn = require("marketo.sandbox.spawn")
local json = require("marketo.json")

local root = arg[1] or "."
local BIN = os.getenv("MARKETO_BULK_BIN") or root .. "/build/bin/marketo-bulk"
local TARGET = 3 -- peak RSS at most this many times the file's bytes

local kit = dofile(root .. "/bench/runner_kit.lua")
local sh = kit.sh

local dir = sh("mktemp -d"):gsub("%s+$", "")

local generate = kit.leads

local function peak_kb(pid)
    local f = assert(io.open("/proc/" .. pid .. "/status"))
    local text = f:read("a")
    f:close()
    return tonumber(text:match("VmHWM:%s*(%d+)"))
end

local function run(rows)
    local src = dir .. "/leads.csv"
    io.write(("%d rows: generating ... "):format(rows))
    io.flush()
    local size = generate(src, rows)
    io.write(("%.0f MB; importing ... "):format(size / 1e6))
    io.flush()
    local sb = spawn.spawn({ bin = BIN, config = { speed = 0 }, max_lifetime = 7200 })
    local idle = peak_kb(sb.pid)
    local out = sh(("cd %s && MARKETO_BASE_URL=%s MARKETO_CLIENT_ID=%s MARKETO_CLIENT_SECRET=%s "
        .. "%s import leads leads.csv --quiet 2>&1; echo \"exit $?\"")
        :format(dir, sb.base_url, sb.client_id, sb.client_secret, BIN))
    assert(out:match("exit 0%s*$"), "the import failed: " .. out)
    local peak = peak_kb(sb.pid)
    local stored = json.decode((sb.get("/__sandbox/records"))).leads
    local first, last = math.huge, 0
    for _, job in ipairs(json.decode((sb.get("/__sandbox/jobs")))) do
        first = math.min(first, job.startedAt)
        last = math.max(last, job.finishedAt)
    end
    sb.stop()
    os.remove(src)
    assert(stored == rows, ("stored %s leads of %d"):format(tostring(stored), rows))
    local ratio = peak * 1024 / size
    print("done")
    print(("  sandbox peak RSS   %.0f MB (idle %.0f MB): %.2f x the file (target <= %d), "
        .. "%.0f bytes per row")
        :format(peak / 1024, idle / 1024, ratio, TARGET, (peak - idle) * 1024 / rows))
    print(("  import throughput  %.0f rows/s (%.1f s from the first job's start to the "
        .. "last one's end)"):format(rows / (last - first), last - first))
    return ratio <= TARGET
end

local ok = true
for n in (os.getenv("ROWS") or "1000000,10000000"):gmatch("%d+") do
    ok = run(tonumber(n)) and ok
end
os.execute("rm -rf '" .. dir .. "'")
if not ok then
    print("FAIL: peak RSS over " .. TARGET .. " x the file")
    os.exit(1)
end
