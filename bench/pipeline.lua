-- The work of bench/pipeline (run by the runner; see that script).
local spawn = require("marketo.sandbox.spawn")
local json = require("marketo.json")

local root = arg[1] or "."
local ROWS = tonumber(os.getenv("ROWS")) or 2000000
local SPEED = tonumber(os.getenv("SPEED")) or 12000
local BIN = root .. "/build/bin/marketo-bulk"

local kit = dofile(root .. "/bench/runner_kit.lua")
local sh = kit.sh

local dir = sh("mktemp -d"):gsub("%s+$", "")
local src = dir .. "/leads.csv"

local function generate()
    return kit.leads(src, ROWS)
end

local function env_of(sb)
    return ("MARKETO_BASE_URL=%s MARKETO_CLIENT_ID=%s MARKETO_CLIENT_SECRET=%s")
        :format(sb.base_url, sb.client_id, sb.client_secret)
end

-- Runs a command under /usr/bin/time: wall seconds, peak RSS (KB), stderr.
local function timed(sb, args)
    local err = dir .. "/stderr"
    local out = sh(("cd %s && env %s /usr/bin/time -f 'TIME %%e %%M' %s %s 2>%s")
        :format(dir, env_of(sb), BIN, args, err))
    local f = assert(io.open(err))
    local text = f:read("a")
    f:close()
    local wall, rss = text:match("TIME ([%d.]+) (%d+)")
    assert(wall, "the command failed: " .. out .. text)
    return tonumber(wall), tonumber(rss), text, out
end

local function stored(sb)
    local body = sb.get("/__sandbox/records")
    return json.decode(body).leads
end

io.write(("generating %d rows ... "):format(ROWS))
io.flush()
generate()
local size = tonumber(sh("stat -c %s " .. src))
io.write(("%.0f MB\n"):format(size / 1e6))

local sb = spawn.spawn({ bin = BIN, config = { speed = SPEED }, max_lifetime = 3600 })

-- The --changed-only section (bench/pipeline_changed.lua); ONLY=changed runs it alone.
local function changed_section()
    dofile(root .. "/bench/pipeline_changed.lua")({ sh = sh, timed = timed, dir = dir,
        src = src, ROWS = ROWS, sb = sb })
end
if os.getenv("ONLY") == "changed" then
    changed_section()
    sb.stop()
    os.execute("rm -rf '" .. dir .. "'")
    return
end

-- Ours: the import command, events as JSON to time the first upload.
local wall, rss, events = timed(sb, "import leads leads.csv --json")
local first_sending, first_uploaded, parts
for line in events:gmatch("[^\n]+") do
    local ev = line:sub(1, 1) == "{" and json.decode(line)
    if ev and ev.ev == "sending" and not first_sending then first_sending = ev.t end
    if ev and ev.ev == "uploaded" and not first_uploaded then first_uploaded = ev.t end
    if ev and ev.ev == "planned" then parts = ev.parts end
end
assert(stored(sb) == ROWS, "ours did not store every row")
local first_upload = first_uploaded - first_sending
local ideal = ROWS / (2 * SPEED) + first_upload

-- Peers' way: the same library, one part at a time: upload, poll, next.
sb.reset()
local seq_script = dir .. "/sequential.lua"
local f = assert(io.open(seq_script, "wb"))
f:write([[
local csv = require("marketo.csv")
local client = assert(require("marketo.client").new())
local plan = assert(csv.plan("leads.csv"))
for _, part in ipairs(plan.parts) do
    local job = assert(client:import_leads{ path = "leads.csv", offset = part.offset,
        length = part.length, prefix = plan.header })
    assert(job:wait{ rows = part.rows })
end
]])
f:close()
local seq_wall = timed(sb, "run sequential.lua")
assert(stored(sb) == ROWS, "the sequential loop did not store every row")
changed_section()
sb.stop()
os.execute("rm -rf '" .. dir .. "'")

print(("rows %d in %d parts, %.0f MB; sandbox speed %d rows/s per importing job")
    :format(ROWS, parts, size / 1e6, SPEED))
print(("%-34s %9s %9s"):format("", "seconds", "ratio"))
print(("%-34s %9.2f %9s"):format("ideal (rows/(2*speed) + 1st upload)", ideal, "1.00"))
print(("%-34s %9.2f %9.3f  (target <= 1.10)"):format("marketo-bulk import", wall, wall / ideal))
print(("%-34s %9.2f %9.3f  (ours %.2fx faster; target >= 1.8)"):format(
    "sequential upload -> poll -> next", seq_wall, seq_wall / ideal, seq_wall / wall))
print(("peak RSS of the runner: %.1f MB (target <= 64 MB)"):format(rss / 1024))
