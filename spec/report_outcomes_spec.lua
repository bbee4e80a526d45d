-- The report of a lenient import and of a stopped one, through the real runner
-- against the real sandbox: rejected rows grouped by reason in the summary and
-- listed with their line, reason and row in REPORT.rejected.csv; the failed
-- rows file stays re-importable as it is, its reasons in a sidecar; and rows
-- in jobs Marketo holds when an import stops are pending, never "not sent".
local cli = require("spec.support.cli")

local function csv_lines(path)
    local out = {}
    for line in assert(cli.read(path)):gmatch("[^\n]+") do out[#out + 1] = line end
    return out
end

describe("the report", function()
    local ctx = cli.sandboxed()

    it("groups rejected rows by reason and lists each in REPORT.rejected.csv", function()
        local sb, dir = ctx.sb, ctx.dir
        -- row i on line i + 1: every 10th has a field too many, every 25th an
        -- unbalanced quote... that the reader sees as the row's end; every 7th
        -- clean one a score Marketo fails
        local src, out, failing = dir .. "/leads.csv", { "email,firstName,leadScore" }, {}
        local extra = {}
        for i = 1, 300 do
            if i % 10 == 0 then
                out[#out + 1] = ("x%d@example.com,B,1,extra"):format(i)
                extra[#extra + 1] = i + 1
            else
                local score = i % 7 == 0 and "lots" or "5"
                if score == "lots" then failing[#failing + 1] = i + 1 end
                out[#out + 1] = ("lead%d@example.com,First%d,%s"):format(i, i, score)
            end
        end
        out[#out + 1] = 'tail@example.com,"Never closed,1'
        cli.write(src, table.concat(out, "\n") .. "\n")
        local r = cli.run({ "import", "leads", src, "--no-schema", "--lenient", "--quiet" },
            { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err)
        -- the summary: one line per reason, with its count and first lines
        assert.matches(("\n  rejected: 30 rows: row has 4 fields, the header has 3; [^\n]* "
            .. "%(lines 11, 21, 31, 41, 51, %.%.%.%)\n"), r.out)
        assert.matches("\n  rejected: 1 row: unbalanced quote[^\n]*%(line 302%)\n", r.out)
        assert.matches(("\n  failed: %d rows: Invalid data type[^\n]*%%(lines 8, 15, 22, 29, "
            .. "36, %%.%%.%%.%%)\n"):format(#failing), r.out)
        -- every rejected row, with its line, reason and the row as it was
        local base = src .. ".report"
        local rows = csv_lines(base .. ".rejected.csv")
        assert.equal("line,reason,source,column,row", rows[1])
        assert.equal(32, #rows)
        for k, line in ipairs(extra) do
            assert.equal(("%d,"):format(line), rows[k + 1]:sub(1, #tostring(line) + 1))
            assert.matches(('"x%d@example.com,B,1,extra"$'):format(line - 1), rows[k + 1])
        end
        assert.matches("^302,", rows[32])
        assert.equal("600", cli.mode_of(base .. ".rejected.csv"))
        -- the JSON report counts them by reason too
        local doc = cli.read_json(base .. ".json")
        assert.is_true(doc.reconciled, doc.reconcile_error)
        assert.equal(31, doc.rows.rejected)
        assert.same({ 30, 1 }, { doc.rejected_reasons[1].count, doc.rejected_reasons[2].count })
        assert.equal(base .. ".rejected.csv", doc.files.rejected)
        -- the failed rows as uploaded (no extra column), their lines and reasons beside
        local failed = csv_lines(base .. ".failed.csv")
        local reasons = csv_lines(base .. ".failed.reasons.csv")
        assert.equal("email,firstName,leadScore", failed[1])
        assert.equal("line,reason", reasons[1])
        assert.equal(#failing + 1, #failed)
        assert.equal(#failed, #reasons)
        for k, line in ipairs(failing) do
            assert.equal(("lead%d@example.com,First%d,lots"):format(line - 1, line - 1),
                failed[k + 1])
            assert.matches(("^%d,Invalid data type"):format(line), reasons[k + 1])
        end
        assert.equal(base .. ".failed.reasons.csv", doc.files.failed_reasons)
        -- and the failed rows file imports again as it is
        local again = cli.run({ "import", "leads", base .. ".failed.csv", "--no-schema",
            "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(3, again.status, again.err)
        assert.matches(("%d rows read: 0 imported, 0 imported with warnings, %d failed")
            :format(#failing, #failing), again.out)
    end)

    -- what a stopped import's report says of the rows Marketo holds
    local function assert_pending(src, r)
        local doc = cli.read_json(src .. ".report.json")
        assert.is_true(doc.reconciled, doc.reconcile_error)
        local uploaded = 0
        for _, part in ipairs(doc.parts) do
            if part.batch and not part.status then uploaded = uploaded + part.rows end
        end
        assert.is_true(uploaded > 0)
        assert.equal(uploaded, doc.rows.pending)
        assert.equal(3000 - uploaded, doc.rows.unsent)
        assert.matches((", %d not sent, %d uploaded, outcome pending %%(resume to learn it%%)\n")
            :format(3000 - uploaded, uploaded), r.out)
    end

    it("counts rows in jobs Marketo holds at a quota stop as pending", function()
        local sb, dir = ctx.sb, ctx.dir
        local src = dir .. "/leads.csv"
        cli.leads_csv(src, 3000)
        sb.control({ speed = 1500, daily_quota = 3 }) -- two uploads and a poll, then 607
        sb.freeze()
        local r = cli.run({ "import", "leads", src, "--part-bytes", "30000", "--quiet" },
            { env = cli.env_of(sb) })
        sb.thaw()
        sb.control({ speed = 0, daily_quota = 50000 })
        assert.equal(4, r.status, r.err)
        assert.matches("607", r.out, 1, true)
        assert_pending(src, r)
    end)

    it("counts rows in jobs Marketo holds at a stop as pending, not as not sent", function()
        local sb, dir = ctx.sb, ctx.dir
        local src = dir .. "/leads.csv"
        cli.leads_csv(src, 3000)
        sb.control({ speed = 1500 })
        sb.freeze() -- no job ends: every uploaded part is still Marketo's at the stop
        local job = cli.start({ "import", "leads", src, "--part-bytes", "30000", "--uploads",
            "1", "--json" }, { env = cli.env_of(sb) })
        cli.await(function()
            return (cli.read(src .. ".journal") or ""):find('"ev":"uploaded"', 1, true)
        end, "an upload")
        job:signal("INT")
        local r = job:wait()
        sb.thaw()
        sb.control({ speed = 0 })
        assert.equal(4, r.status, r.err)
        assert_pending(src, r)
    end)
end)
