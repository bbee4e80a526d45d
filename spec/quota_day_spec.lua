-- The daily quota while an import runs (issue 15 item 2): every call counted
-- in the budget by Marketo's day, seeded from usage.json; when the day's
-- quota is spent the import stops (exit 4, the reset time, a resumable
-- journal), or with --wait-for-quota waits for the instance's day to turn.
-- Real runner, real sandbox; the sandbox's day turns through /__sandbox/day.
local cli = require("spec.support.cli")
local json = require("marketo.json")

local ROWS = 300

describe("the daily quota while importing", function()
    local ctx = cli.sandboxed({ speed = 0 })

    local function argv(...)
        return { "import", "leads", "leads.csv", "--part-bytes", "4000", "--no-schema", ... }
    end

    local function near_quota(total)
        local _, status = ctx.sb.post("/__sandbox/usage", ('{"total": %d}'):format(total))
        assert.equal(200, status)
    end

    local function next_day()
        local body, status = ctx.sb.post("/__sandbox/day", '{"next": true}')
        assert.equal(200, status, body)
        return json.decode(body)
    end

    local function stored()
        return cli.inspect(ctx.sb, "records").leads
    end

    -- Every row of the report is in one count: imported, failed, pending, not sent.
    local function accounted(doc)
        assert.is_true(doc.reconciled, doc.reconcile_error)
        local rows = doc.rows
        assert.equal(ROWS, (rows.imported or 0) + (rows.failed or 0) + (rows.pending or 0)
            + (rows.unsent or 0) + (rows.rejected or 0), json.encode(rows))
    end

    before_each(function() cli.leads_csv(ctx.dir .. "/leads.csv", ROWS) end)

    it("stops at the budget's count of the day (no 607 answer), exit 4, says when it resets; "
        .. "resume finishes after the day turns", function()
        -- the instance is 6 calls from its quota; the budget, seeded from its
        -- usage, stops the import before Marketo has to refuse a call
        near_quota(49994)
        local r = cli.run(argv("--ignore-quota", "--quiet"),
            { env = cli.env_of(ctx.sb), cwd = ctx.dir })
        assert.equal(4, r.status, r.out .. r.err)
        assert.matches("QUOTA: the day's quota of 50,000 API calls is spent %(%d%d%d%d%-%d%d%-%d%d,"
            .. " US Central; %-%-daily%-quota%)", r.out)
        assert.matches("resets at %d%d%d%d%-%d%d%-%d%d 00:00 C[SD]T %([^)]+%), in %d+ [hmins ]+",
            r.out)
        assert.matches("not finished: run the same command again", r.out, 1, true)
        local counters = cli.inspect(ctx.sb, "counters")
        assert.equal(0, counters.answered_607 or 0)
        assert.equal(50000, counters.quota_used) -- every call the budget allowed, no more
        accounted(cli.read_json(ctx.dir .. "/leads.csv.report.json"))
        assert.is_true(stored() < ROWS)
        -- the journal is resumable: once the instance's day turns, resume finishes
        assert.equal(0, next_day().total)
        local resumed = cli.run({ "resume", "leads.csv.journal", "--quiet" },
            { env = cli.env_of(ctx.sb), cwd = ctx.dir })
        assert.equal(0, resumed.status, resumed.out .. resumed.err)
        assert.equal(ROWS, stored())
        accounted(cli.read_json(ctx.dir .. "/leads.csv.report.json"))
    end)

    it("stops at Marketo's 607 when the budget thought there was more, exit 4, "
        .. "with the reset time", function()
        near_quota(49996)
        local r = cli.run(argv("--ignore-quota", "--daily-quota", "60000", "--quiet"),
            { env = cli.env_of(ctx.sb), cwd = ctx.dir })
        assert.equal(4, r.status, r.out .. r.err)
        assert.matches("607", r.out, 1, true)
        assert.matches("the instance's daily API quota is used up; it resets at "
            .. "%d%d%d%d%-%d%d%-%d%d 00:00 C[SD]T %([^)]+%), in %d+", r.out)
        -- no call after the quota ran out but those already on their way: at
        -- most two uploads and two polls at once
        local answered = cli.inspect(ctx.sb, "counters").answered_607
        assert.is_true(answered >= 1 and answered <= 4, answered)
        accounted(cli.read_json(ctx.dir .. "/leads.csv.report.json"))
    end)

    it("goes on unseeded when the API user may not read usage.json (603), saying so once",
        function()
        ctx.sb.control({ usage_access = false })
        local r = cli.run(argv("--ignore-quota", "--json"), { env = cli.env_of(ctx.sb),
            cwd = ctx.dir })
        ctx.sb.control({ usage_access = true })
        assert.equal(0, r.status, r.out .. r.err)
        local _, notices = r.err:gsub('"ev":"notice"', "")
        assert.equal(1, notices)
        assert.matches("the daily quota is counted from this run's calls only: [^\n]*603", r.err)
        assert.equal(ROWS, stored())
    end)

    it("--wait-for-quota waits (one line with the reset time) until the instance's day "
        .. "turns, then finishes", function()
        near_quota(49994)
        local job = cli.start(argv("--ignore-quota", "--wait-for-quota", "--quota-check", "0.2",
            "--json"), { env = cli.env_of(ctx.sb), cwd = ctx.dir })
        finally(function() if not job.done() then job:signal("KILL") end end)
        local line = cli.await(function()
            return job.stderr():match('[^\n]*"ev":"waiting"[^\n]*')
        end, "the runner's waiting line")
        local ev = json.decode(line)
        assert.matches("^waiting for the daily quota: it resets at %d%d%d%d%-%d%d%-%d%d 00:00 "
            .. "C[SD]T %([^)]+%), in %d+", ev.message)
        assert.equal("quota", ev.reason)
        local waiting_at = stored()
        assert.is_true(waiting_at < ROWS)
        -- the sandbox's day turns on its clock; the runner sees it in usage.json
        next_day()
        local r = job:wait()
        assert.equal(0, r.status, r.out .. r.err)
        assert.equal(ROWS, stored())
        assert.matches('"ev":"quota_reset"', r.err, 1, true)
        local _, waits = r.err:gsub('"ev":"waiting"', "")
        assert.equal(1, waits)
        -- the import's calls waited: only the wait's questions met the spent day
        for _, e in ipairs(cli.inspect(ctx.sb, "log")) do
            if e.code == "607" then assert.equal("/rest/v1/stats/usage.json", e.path) end
        end
        accounted(cli.read_json(ctx.dir .. "/leads.csv.report.json"))
    end)

    it("--quiet still says the wait, on a line of its own, and nothing else", function()
        near_quota(49994)
        local job = cli.start(argv("--ignore-quota", "--wait-for-quota", "--quota-check", "0.2",
            "--quiet"), { env = cli.env_of(ctx.sb), cwd = ctx.dir })
        finally(function() if not job.done() then job:signal("KILL") end end)
        cli.await(function() return job.stderr():find("waiting for the daily quota", 1, true) end,
            "the runner's waiting line")
        next_day()
        local r = job:wait()
        assert.equal(0, r.status, r.out .. r.err)
        assert.equal(ROWS, stored())
        -- the instance named at the start, the wait, its end: no progress
        local lines = {}
        for line in r.err:gmatch("[^\n]+") do lines[#lines + 1] = line end
        assert.equal(3, #lines, r.err)
        assert.matches("^marketo%-bulk: instance 127%.0%.0%.1:", lines[1])
        assert.matches("^waiting for the daily quota: it resets at ", lines[2])
        assert.matches("^the daily quota", lines[3])
    end)
end)
