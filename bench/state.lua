-- bench/state.lua: the --changed-only state (src/state.c) at 10,000,000 keys
-- (issue 14: built and diffed at peak RSS <= 256 MB). Each step runs in its
-- own process, so its peak RSS (VmHWM) is its own:
--   build: a 10M-row file's rows recorded into a new state (reader:record, as
--          after an import's parts are fetched), saved;
--   diff:  the state loaded, the same file with 1% of its rows changed
--          sifted against it (reader:sift, as a --changed-only plan does),
--          the rows left written to a file.
-- Run: bench/state (lua5.4 bench/state.lua ROOT [ROWS]). The machine may be shared: run it
-- three times and take the median.
local root, rows = arg[1] or ".", tonumber(arg[2]) or 10000000
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local function peak_mb()
    for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmHWM:%s+(%d+)")
        if kb then return tonumber(kb) / 1024 end
    end
end

local step, dir = arg[3], arg[4]
if step then -- a child: one step
    local csv = require("marketo.csv")
    local core = require("marketo.core")
    local t0 = core.monotonic()
    if step == "build" then
        local st = core.state_new("bench", "leads", "email")
        local r = assert(csv.open(dir .. "/same.csv", { format = "csv" }))
        assert(r:header())
        local put = assert(r:record(st, 1, {}, false))
        r:close()
        assert(put == rows, put)
        assert(st:save(dir .. "/bench.state"))
        io.write(("%.2f %.1f %d\n"):format(core.monotonic() - t0, peak_mb(), st:count()))
    else
        local st = assert(core.state_load(dir .. "/bench.state"))
        local r = assert(csv.open(dir .. "/changed.csv", { format = "csv" }))
        local w = assert(csv.writer(dir .. "/left.csv", { format = "csv", header = r:header() }))
        local kept, unchanged = assert(r:sift(st, 1, w, false))
        r:close()
        assert(w:close())
        assert(kept == rows // 100 and unchanged == rows - kept, kept)
        io.write(("%.2f %.1f %d\n"):format(core.monotonic() - t0, peak_mb(), kept))
    end
    return
end

local function sh(cmd)
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    return out
end

dir = sh("mktemp -d"):gsub("%s+$", "")
local same, changed = assert(io.open(dir .. "/same.csv", "wb")),
    assert(io.open(dir .. "/changed.csv", "wb"))
same:write("email,firstName,score\n")
changed:write("email,firstName,score\n")
local a, b = {}, {}
for i = 1, rows do
    local row = ("lead%d@example.com,First%d,%d\n"):format(i, i, i % 100)
    a[#a + 1] = row
    b[#b + 1] = i % 100 == 0 and ("lead%d@example.com,First%d,%d\n"):format(i, i, 1000) or row
    if #a == 10000 then
        same:write(table.concat(a)); changed:write(table.concat(b)); a, b = {}, {}
    end
end
same:write(table.concat(a))
changed:write(table.concat(b))
same:close()
changed:close()

local self = ("lua5.4 %s/bench/state.lua %s %d"):format(root, root, rows)
local build = sh(("%s build %s"):format(self, dir))
local diff = sh(("%s diff %s"):format(self, dir))
local size = tonumber(sh("stat -c %s " .. dir .. "/bench.state"))
os.execute("rm -rf '" .. dir .. "'")
local bt, bm = build:match("^(%S+) (%S+)")
local dt, dm = diff:match("^(%S+) (%S+)")
print(("state of %d keys: file %.0f MB"):format(rows, size / 1e6))
print(("build (record %d rows, save): %6.2f s, peak RSS %6.1f MB (target <= 256)")
    :format(rows, bt, bm))
print(("diff (load, sift 1%% changed):  %6.2f s, peak RSS %6.1f MB (target <= 256)")
    :format(dt, dm))
