-- bench/csv.lua: see bench/csv (a dry run with type checks against one
-- without: issue 13's budget is at most 1.5x, peak RSS <= 32 MB). Each
-- measurement runs in its own process.
-- The dry runs are of a lead file (bench/csv_leads_gen.py: columns named and
-- typed by the default lead schema, all values valid, every email its own),
-- unmapped, strict, in two ways, each timed 3 times (median) with the peak
-- RSS of the 3 (GNU time): the runner's own `import leads FILE --dry-run`
-- (the embedded sandbox's lead schema) against the same with --no-schema
-- (no schema: no column checks, no value checks; all else the same, the
-- pass that finds repeated keys included); and the same dry run made by
-- marketo.import in a Lua child with the key pass (marketo.pipeline.keys,
-- issue 14) made a no-op in both, since it holds a hash of every key.
-- Baselines are timed from outside; ours time the call inside the child (as
-- the runner would make it), and the start-up of such a process (Lua and
-- marketo.core with libcurl) is printed once on its own. Ours report their
-- peak RSS (VmHWM, and GNU time's for workers). Mapped outputs must equal
-- Python's byte for byte.
local root = arg[1]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/lua5.4/?.so;" .. package.cpath

local csv = require("marketo.csv")
local core = require("marketo.core")

local SRC = { "id", "Email Address", "Full Name", "Last Name", "Company", "Job Title", "Phone",
              "City", "Score", "Notes" }
local RENAME = { "leadId", "email", "fullName", "lastName", "company", "title", "phone", "city",
                 "score", "notes" }

local function peak_kb()
    for line in io.lines("/proc/self/status") do
        local kb = line:match("^VmHWM:%s+(%d+)")
        if kb then return tonumber(kb) end
    end
end

-- The work of one child process: plan, rename or func on a file.
local UPPER, SPACE_UPPER = {}, {}
for c = ("a"):byte(), ("z"):byte() do
    local l = string.char(c)
    UPPER[l], SPACE_UPPER[" " .. l] = l:upper(), " " .. l:upper()
end

-- A dry run of an import of a lead file, unmapped, with its values checked
-- against the embedded sandbox's lead fields (marketo.pipeline.checks) or not
-- (what --no-schema plans), the key pass a no-op in both: the checks' cost,
-- with everything else the same.
local function dry_run(src, dst, checked)
    local schema
    if checked == "checked" then
        schema = require("marketo.schema").from_sandbox("leads", {},
            require("marketo.sandbox.schema").new(), require("marketo.sandbox.config").defaults())
    end
    require("marketo.pipeline.keys").spread = function() return true end
    local prepared = assert(require("marketo.import").prepare({ object = "leads", source = src,
        dry_run = true, schema = schema, journal = dst .. ".journal" }))
    assert(prepared.result.plan.rows.rejected == 0)
    return prepared
end

local TASKS = {
    dry = dry_run,
    plan = function(src)
        return assert(csv.plan(src))
    end,
    rename = function(src, dst)
        local m = {}
        for i = 1, #SRC do m[i] = { to = RENAME[i], from = SRC[i] } end
        return assert(csv.map(src, dst, m))
    end,
    func = function(src, dst, workers)
        return assert(csv.map(src, dst, {
            { to = "email", from = "Email Address", fn = string.lower },
            { to = "fullName", from = "Full Name", fn = function(v)
                -- like Python's string.capwords: each word capitalised
                return (v:lower():gsub("^%l", UPPER):gsub(" %l", SPACE_UPPER))
            end },
            { to = "score", from = "Score", fn = function(v) return math.floor(tonumber(v)) end },
            { to = "company", from = "Company" },
        }, { filter = function(row) return row["Email Address"] ~= "" end,
             workers = tonumber(workers) }))
    end,
}

-- the keys section (its own file: bench/csv_keys.lua)
local keys_bench = dofile(root .. "/bench/csv_keys.lua")
for name, task in pairs(keys_bench.tasks) do TASKS[name] = task end

if arg[2] == "child" then
    local t0 = core.monotonic()
    if arg[3] ~= "none" then TASKS[arg[3]](arg[4], arg[5], arg[6]) end
    io.write(core.monotonic() - t0, " ", peak_kb(), "\n")
    os.exit(0)
end

local function sh(cmd)
    local ok = os.execute(cmd)
    if not ok then error("failed: " .. cmd) end
end

local function timed(cmd)
    local t0 = core.monotonic()
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    local ok = p:close()
    if not ok then error("failed: " .. cmd) end
    return core.monotonic() - t0, out
end

-- Best of n: the machine is shared, and short runs are noisy.
local function best(n, cmd, after)
    local t = math.huge
    for _ = 1, n do
        t = math.min(t, (timed(cmd)))
        if after then sh(after) end
    end
    return t
end

-- Best of n of ours: the time and peak RSS the child reports.
-- The peak RSS is the largest of the child's own and, by GNU time (which
-- sees the processes it reaped), that of any worker the child forked.
local function ours(n, cmd)
    local t, rss = math.huge, 0
    for _ = 1, n do
        local _, out = timed("/usr/bin/time -f 'RSS %M' " .. cmd .. " 2>&1")
        local dt, kb = out:match("^(%S+) (%d+)")
        local all = out:match("RSS (%d+)")
        t = math.min(t, tonumber(dt))
        rss = math.max(rss, tonumber(kb), tonumber(all))
    end
    return t, rss
end

-- Two commands run in turns, n times each (a busy machine's slow spells then
-- fall on both): for each, the median wall time and CPU time (user + system,
-- GNU time) and the largest peak RSS.
local function in_turns(n, cmd_a, cmd_b)
    local got = { {}, {} }
    for _ = 1, n do
        for k, cmd in ipairs({ cmd_a, cmd_b }) do
            local _, out = timed("/usr/bin/time -f 'TIME %e %U %S %M' " .. cmd
                .. " 2>&1 >/dev/null")
            local t, u, sy, kb = out:match("TIME ([%d.]+) ([%d.]+) ([%d.]+) (%d+)")
            local g = got[k]
            g[#g + 1] = { tonumber(t), tonumber(u) + tonumber(sy) }
            g.rss = math.max(g.rss or 0, tonumber(kb))
        end
    end
    local function median(g, i)
        local v = {}
        for j, m in ipairs(g) do v[j] = m[i] end
        table.sort(v)
        return v[(#v + 1) // 2]
    end
    local a, b = got[1], got[2]
    return { median(a, 1), median(a, 2), a.rss }, { median(b, 1), median(b, 2), b.rss }
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local tmp = assert(io.popen("mktemp -d")):read("l")
local sizes = {}
for mb in (os.getenv("CSV_BENCH_MB") or "100 1000"):gmatch("%d+") do sizes[#sizes + 1] = mb end
local lua = "lua5.4 " .. q(root .. "/bench/csv.lua") .. " " .. q(root) .. " child "
local py = "python3 " .. q(root .. "/bench/csv_baseline.py") .. " "
local rows, dry_rows = {}, {}
local dry_only = os.getenv("CSV_BENCH_DRY_ONLY") == "1" -- the dry runs alone
local cores = core.cpus()

local function add(size, task, mine, rss, base_name, base)
    rows[#rows + 1] = ("%-6s %-26s %8.3f s  %-20s %8.3f s  %6.1fx  %7.1f MB"):format(
        size, task, mine, base_name, base, base / mine, rss / 1024)
end

local ok, err = pcall(function()
    for _, mb in ipairs(sizes) do
        local label = tonumber(mb) >= 1000 and (tonumber(mb) / 1000) .. " GB" or mb .. " MB"
        if not dry_only then
            local f = tmp .. "/in.csv"
            -- a 20 MB body repeated: generation stays fast at 1 GB
            sh(("python3 %s %s 20 %d"):format(q(root .. "/bench/csv_gen.py"), q(f),
                math.floor(tonumber(mb) / 20 + 0.5)))
            local fq, out, pout = q(f), q(tmp .. "/ours.csv"), q(tmp .. "/py.csv")
            local wc = best(3, "wc -l " .. fq)
            local split = best(3, "cd " .. q(tmp) .. " && split -C 10000000 in.csv part-",
                "rm -f " .. q(tmp) .. "/part-*")
            local plan, prss = ours(3, lua .. "plan " .. fq)
            add(label, "plan parts", plan, prss, "wc -l", wc)
            add(label, "plan parts", plan, prss, "split -C 10000000", split)
            -- the Lua-function mapping in one process, then on every core
            for _, run in ipairs({ { "rename", 1 }, { "func", 1 }, { "func", cores } }) do
                local task, n = run[1], run[2]
                local t, rss = ours(1, lua .. task .. " " .. fq .. " " .. out .. " " .. n)
                local base = best(1, py .. task .. " " .. fq .. " " .. pout)
                sh("cmp -s " .. out .. " " .. pout) -- same bytes as Python's, or the bench fails
                add(label, task == "rename" and "map: rename only" or
                    ("map: Lua fn, %d process%s"):format(n, n > 1 and "es" or ""),
                    t, rss, "Python csv", base)
            end
            sh("rm -f " .. q(tmp) .. "/*.csv")
        end
        -- a dry run with the type checks against the same without: at most 1.5x
        local leads = tmp .. "/leads.csv"
        sh(("python3 %s %s 20 %d"):format(q(root .. "/bench/csv_leads_gen.py"), q(leads),
            math.floor(tonumber(mb) / 20 + 0.5)))
        local lq = q(leads)
        local runner = ("env -u MARKETO_BASE_URL -u MARKETO_MUNCHKIN_ID -u MARKETO_CLIENT_ID "
            .. "-u MARKETO_CLIENT_SECRET XDG_CACHE_HOME=%s %s import leads %s --dry-run")
            :format(q(tmp .. "/cache"), q(root .. "/build/bin/marketo-bulk"), lq)
        local checked, plain = in_turns(3, runner, runner .. " --no-schema")
        dry_rows[#dry_rows + 1] = { label, "runner, keys included", checked, plain }
        checked, plain = in_turns(3, lua .. "dry " .. lq .. " " .. lq .. " checked",
            lua .. "dry " .. lq .. " " .. lq .. " plain")
        dry_rows[#dry_rows + 1] = { label, "no key pass (both)", checked, plain }
        sh("rm -f " .. q(tmp) .. "/*.csv")
    end
    if os.getenv("CSV_BENCH_KEYS") ~= "0" then
        keys_bench.run({ root = root, tmp = tmp, lua = lua, timed = timed, sh = sh, q = q })
    end
end)
sh("rm -rf " .. q(tmp))
if not ok then error(err, 0) end

local cpu = io.open("/proc/cpuinfo"):read("a"):match("model name%s*:%s*([^\n]+)")
local pyv = assert(io.popen("python3 --version")):read("l")
print(("machine: %s, %d cores; %s, %s"):format(cpu or "?",
    tonumber(assert(io.popen("nproc")):read("l")), _VERSION, pyv))
print(("start-up of a Lua 5.4 process loading marketo.core (not in 'ours'): %.3f s")
    :format(best(3, lua .. "none")))
print(("%-6s %-26s %10s  %-20s %10s  %7s  %10s"):format(
    "file", "task", "ours", "baseline", "baseline", "ratio", "peak RSS"))
for _, r in ipairs(rows) do print(r) end
print()
print("dry run of an unmapped lead file, types checked against --no-schema, run in turns "
    .. "(median of 3 wall and CPU times; the largest peak RSS of the 3):")
print(("%-6s %-22s %9s %9s %6s  %9s %9s %6s  %11s %11s"):format("file", "dry run",
    "checked", "unchecked", "ratio", "CPU chk", "CPU unchk", "ratio", "RSS checked",
    "RSS unchk"))
for _, d in ipairs(dry_rows) do
    local c, u = d[3], d[4]
    print(("%-6s %-22s %7.2f s %7.2f s %5.2fx  %7.2f s %7.2f s %5.2fx  %8.1f MB %8.1f MB")
        :format(d[1], d[2], c[1], u[1], c[1] / u[1], c[2], u[2], c[2] / u[2], c[3] / 1024,
            u[3] / 1024))
end
