-- bench/csv_keys.lua: bench/csv's keys section (issue 14: planning with keys
-- of a 1 GB file at most 2x the dry run without them; peak RSS <= 96 MB for
-- 2,000,000 keys). A dry run of a lead import with duplicate detection
-- (marketo.pipeline.keys) against the same dry run with keys.spread left
-- out, each in its own process, 3 runs, the median: wall time, CPU time and
-- peak RSS. Also files whose 5% blank emails are rejected rows (every part
-- has holes, written again), and one whose keys each come 10 times (most
-- rows moved to trailing parts).
-- CSV_BENCH_KEYS_MB="1000" sets the big file's size; CSV_BENCH_KEYS=0 skips it.
local M = {}

local DRY_MAP = { { "numberOfEmployees", "id" }, { "email", "Email Address" },
    { "firstName", "Full Name" }, { "lastName", "Last Name" }, { "company", "Company" },
    { "title", "Job Title" }, { "phone", "Phone" }, { "city", "City" },
    { "annualRevenue", "Score" }, { "unsubscribedReason", "Notes" } }

-- The child: a lenient dry run of src as leads, mapped ("map": csv_gen.py's
-- column names) or as it is ("raw"), with keys or without ("nokeys").
M.tasks = {
    keys = function(src, journal, how)
        if how:find("nokeys", 1, true) then
            require("marketo.pipeline.keys").spread = function() return true end
        end
        return assert(require("marketo.import").prepare({ object = "leads", source = src,
            mapping = how:find("map", 1, true) and DRY_MAP or nil, dry_run = true,
            journal = journal, lenient = true }))
    end,
}

local function median(xs)
    table.sort(xs)
    return xs[(#xs + 1) // 2]
end

-- Median time, CPU time (user + system, by GNU time: steadier than the
-- wall time on a shared machine) and peak RSS (KB) of n runs of the child.
local function runs(kit, n, src, how)
    local ts, cpus, kbs = {}, {}, {}
    for i = 1, n do
        local journal = kit.tmp .. "/k.journal"
        local _, out = kit.timed("/usr/bin/time -f 'CPU %U %S' " .. kit.lua .. "keys "
            .. kit.q(src) .. " " .. kit.q(journal) .. " " .. how .. " 2>&1")
        local dt, kb = out:match("^(%S+) (%d+)")
        local user, sys = out:match("CPU (%S+) (%S+)")
        ts[i], kbs[i], cpus[i] = tonumber(dt), tonumber(kb), tonumber(user) + tonumber(sys)
        kit.sh("rm -rf " .. kit.q(journal) .. "*")
    end
    return median(ts), median(kbs), median(cpus)
end

-- kit: { root, tmp, lua (the child's command), timed, sh, q }
function M.run(kit)
    local lines = {}
    local function compare(label, src, how)
        local with, with_kb, with_cpu = runs(kit, 3, src, how)
        local without, without_kb, without_cpu = runs(kit, 3, src, how .. "-nokeys")
        local fmt = "%-40s %7.3f s %7.3f s %5.2fx  %6.2f s %6.2f s %5.2fx  %6.1f MB %5.1f MB"
        lines[#lines + 1] = fmt:format(label, with, without, with / without, with_cpu, without_cpu,
                with_cpu / without_cpu, with_kb / 1024, without_kb / 1024)
    end
    local gen = "python3 " .. kit.q(kit.root .. "/bench/keys_gen.py") .. " "
    local mb = tonumber(os.getenv("CSV_BENCH_KEYS_MB") or "1000")
    local big, two = kit.tmp .. "/keys-big.csv", kit.tmp .. "/keys-2m.csv"
    -- 200,000 rows (20 MB) a body, each copy with its own emails; 1,000
    -- copies of the first keys appended (moved to a trailing part)
    kit.sh(gen .. kit.q(big) .. " 200000 " .. math.max(1, math.floor(mb / 22 + 0.5))
        .. " 1000")
    compare(("%d MB leads, keys as they are"):format(mb), big, "raw")
    kit.sh("rm -f " .. kit.q(big))
    kit.sh(gen .. kit.q(two) .. " 200000 10 0")
    compare("2,000,000 keys (219 MB)", two, "raw")
    -- 5% of the rows with no email: rejected, so every part has holes
    kit.sh(gen .. kit.q(two) .. " 200000 10 0 0.05")
    compare("2,000,000 rows, 5% blank emails", two, "raw")
    kit.sh(gen .. kit.q(two) .. " 200000 10 0 0.05 csv_gen")
    compare("the same, mapped (renamed columns)", two, "map")
    -- csv_gen.py's file: its 20 MB body 10 times, so 90% of the rows are
    -- later copies of a key, moved to trailing parts
    kit.sh(("python3 %s %s 20 10"):format(kit.q(kit.root .. "/bench/csv_gen.py"),
        kit.q(two)))
    compare("200 MB, each key 10 times, mapped", two, "map")
    kit.sh("rm -f " .. kit.q(two))
    print(("%-40s %9s %9s %6s  %8s %8s %6s  %9s %8s"):format("keys: lenient dry run of",
        "with keys", "without", "ratio", "CPU with", "without", "ratio", "RSS with",
        "without"))
    for _, l in ipairs(lines) do print(l) end
    print("(median of 3 runs each; the machine is shared, so times vary run to run)")
end

return M
