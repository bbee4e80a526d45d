-- The --changed-only section of bench/pipeline (dofile'd by bench/pipeline.lua,
-- alone with ONLY=changed). Against the same file and sandbox speed:
--   the first --changed-only import (every row sent, the state built): the
--   full import; the dry run; the same file again (nothing to send: <= 3x the
--   dry run); the file with 1% of its rows edited, each run from the state
--   the full import left (<= 1/30 of the full import). Each timed 3 times,
--   the median reported (the machine is shared).
local json = require("marketo.json")

return function(k)
    local sh, timed, dir, src, ROWS = k.sh, k.timed, k.dir, k.src, k.ROWS
    local state = dir .. "/leads.state"
    local runs = 0

    local function import(sb, file, extra)
        runs = runs + 1
        local journal = ("%s/c%d.journal"):format(dir, runs)
        local wall, rss, text, out = timed(sb, ("import leads %s --changed-only --state %s "
            .. "--no-schema --journal %s %s"):format(file, state, journal, extra or ""))
        os.execute(("rm -rf '%s' '%s'.*"):format(journal, journal))
        if os.getenv("VERBOSE") then
            io.stderr:write(("%s %s: %.2f s\n"):format(file, extra or "", wall))
        end
        return wall, rss, text, out
    end

    local function median(t)
        table.sort(t)
        return t[(#t + 1) // 2]
    end

    -- the same file, every 100th row's leadScore changed
    local edited = dir .. "/leads-1pct.csv"
    local inp, out = assert(io.open(src, "rb")), assert(io.open(edited, "wb"))
    out:write(inp:read("l"), "\n")
    local n, buf = 0, {}
    for line in inp:lines() do
        n = n + 1
        if n % 100 == 0 then line = line:gsub("(%d+)$", function(s) return s + 1000 end) end
        buf[#buf + 1] = line
        if #buf == 10000 then out:write(table.concat(buf, "\n"), "\n"); buf = {} end
    end
    if #buf > 0 then out:write(table.concat(buf, "\n"), "\n") end
    inp:close()
    out:close()

    -- one sandbox throughout (the state is per instance: its address), never
    -- reset (a spawned sandbox was seen to die in the import after a reset)
    local sb = k.sb
    local function jobs()
        local list = json.decode(sb.get("/__sandbox/jobs"))
        return #(list.jobs or list)
    end
    local full, dry, same, pct, pct_rss, pct_sent = {}, {}, {}, {}, {}, 0
    for i = 1, 3 do
        os.remove(state)
        full[i] = import(sb, "leads.csv")
    end
    sh(("cp '%s' '%s.kept'"):format(state, state))
    for i = 1, 3 do
        dry[i] = timed(sb, "import leads leads.csv --dry-run --no-schema")
        local before = jobs()
        local wall, _, text, summary = import(sb, "leads.csv")
        same[i] = wall
        assert(summary:find(("%d unchanged"):format(ROWS), 1, true),
            "not every row unchanged: " .. text .. summary)
        assert(jobs() == before, "an unchanged file uploaded something")
    end
    for i = 1, 3 do
        sh(("cp '%s.kept' '%s'"):format(state, state))
        local wall, rss, text = import(sb, "leads-1pct.csv", "--json")
        pct[i], pct_rss[i] = wall, rss
        pct_sent = 0
        for line in text:gmatch("[^\n]+") do
            local ev = line:sub(1, 1) == "{" and json.decode(line)
            if ev and ev.ev == "planned" then pct_sent = ev.parts end
        end
    end
    local f, d, s, p = median(full), median(dry), median(same), median(pct)
    print(("--changed-only, %d rows (medians of 3; the machine is shared)"):format(ROWS))
    print(("%-40s %9s %9s"):format("", "seconds", "ratio"))
    print(("%-40s %9.2f %9s"):format("full import (state built)", f, "1.00"))
    print(("%-40s %9.2f"):format("dry run", d))
    print(("%-40s %9.2f %9.2f  (x the dry run; target <= 3)"):format(
        "same file again (nothing sent)", s, s / d))
    print(("%-40s %9.2f %9.4f  (1/%.1f of the full; target <= 1/30)"):format(
        ("1%% of rows changed (%d parts)"):format(pct_sent), p, p / f, f / p))
    print(("peak RSS, 1%% changed: %.1f MB"):format(median(pct_rss) / 1024))
    print(("runs: full %s; dry %s; same %s; 1%% %s"):format(table.concat(full, " "),
        table.concat(dry, " "), table.concat(same, " "), table.concat(pct, " ")))
end
