-- bench/csv_keys.lua: bench/csv's keys section (issue 14: planning with keys
-- of a 1 GB file at most 2x the dry run without them; peak RSS <= 96 MB for
-- 2,000,000 keys). A dry run of a lead import with duplicate detection
-- (marketo.pipeline.keys) against the same dry run with keys.spread left
-- out, each in its own process, 3 runs, the median; and a lenient dry run of
-- csv_gen.py's file, whose 5% blank emails are rejected rows (parts with
-- holes, written again), against the same without keys.
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

-- Median time and peak RSS (KB) of n runs of the child.
local function runs(kit, n, src, how)
    local ts, kbs = {}, {}
    for i = 1, n do
        local journal = kit.tmp .. "/k.journal"
        local _, out = kit.timed(kit.lua .. "keys " .. kit.q(src) .. " " .. kit.q(journal)
            .. " " .. how)
        local dt, kb = out:match("^(%S+) (%d+)")
        ts[i], kbs[i] = tonumber(dt), tonumber(kb)
        kit.sh("rm -rf " .. kit.q(journal) .. "*")
    end
    return median(ts), median(kbs)
end

-- kit: { root, tmp, lua (the child's command), timed, sh, q }
function M.run(kit)
    local lines = {}
    local function compare(label, src, how)
        local with, with_kb = runs(kit, 3, src, how)
        local without, without_kb = runs(kit, 3, src, how .. "-nokeys")
        lines[#lines + 1] = ("%-44s %8.3f s  %8.3f s  %5.2fx  %7.1f MB  %7.1f MB"):format(
            label, with, without, with / without, with_kb / 1024, without_kb / 1024)
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
    kit.sh("rm -f " .. kit.q(two))
    local blanks = kit.tmp .. "/keys-blanks.csv"
    kit.sh(("python3 %s %s 20 10"):format(kit.q(kit.root .. "/bench/csv_gen.py"),
        kit.q(blanks)))
    compare("200 MB, 5% blank emails rejected, mapped", blanks, "map")
    kit.sh("rm -f " .. kit.q(blanks))
    print(("%-44s %10s  %10s  %6s  %10s  %10s"):format("keys: lenient dry run of",
        "with keys", "without", "ratio", "RSS with", "without"))
    for _, l in ipairs(lines) do print(l) end
    print("(median of 3 runs each; the machine is shared, so times vary run to run)")
end

return M
