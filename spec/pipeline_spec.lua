-- The import pipeline end to end: the real marketo-bulk runner against the
-- real sandbox over loopback. Every check is on what the sandbox stored and
-- what the report says, never on what the code intended.
local cli = require("spec.support.cli")

local write, read_json, leads_csv = cli.write, cli.read_json, cli.leads_csv
local inspect = cli.inspect

local function lead_emails(sb)
    local seen, n = {}, 0
    for _, rec in ipairs(inspect(sb, "records/leads")) do
        local email = rec.email
        assert.is_nil(seen[email], "stored twice: " .. tostring(email))
        seen[email] = rec
        n = n + 1
    end
    return seen, n
end

local function assert_reconciled(doc)
    assert.is_true(doc.reconciled, doc.reconcile_error)
    local r = doc.rows
    assert.equal(r.read, r.imported + r.warned + r.failed + r.filtered + r.rejected + r.unsent
        + r.pending)
end

describe("the import pipeline", function()
    -- one sandbox for the file, reset before each test; a new folder each
    local ctx = cli.sandboxed({ speed = 0 })
    local sb, dir
    before_each(function() sb, dir = ctx.sb, ctx.dir end)

    it("imports leads in several parts, each row stored once, and reports every row", function()
        local src = dir .. "/leads.csv"
        leads_csv(src, 3000, { bad_every = 500, warn_every = 700 })
        -- rows Marketo fails (--no-schema: not stopped before they reach it)
        local r = cli.run({ "import", "leads", src, "--no-schema", "--part-bytes", "30000",
            "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err) -- some rows failed: the documented status
        local doc = read_json(dir .. "/leads.csv.report.json")
        assert_reconciled(doc)
        assert.is_true(#doc.parts > 5)
        assert.equal(3000, doc.rows.read)
        assert.equal(6, doc.rows.failed)
        assert.equal(4, doc.rows.warned)
        local lines = {}
        for _, f in ipairs(doc.failures) do lines[#lines + 1] = f.line end
        table.sort(lines)
        assert.same({ 501, 1001, 1501, 2001, 2501, 3001 }, lines) -- row i is line i + 1
        local stored, n = lead_emails(sb)
        assert.equal(3000 - 6, n)
        assert.is_not_nil(stored["lead1@example.com"])
        assert.equal("Last, 1", stored["lead1@example.com"].lastName)
        assert.is_nil(stored["lead500@example.com"])
        assert.equal(#doc.parts, doc.api_calls.import) -- one upload per part, no retries
        -- the failed rows come back as a file the user can fix and import as is
        local f = assert(io.open(doc.files.failed))
        assert.equal("email,firstName,lastName,company,leadScore", f:read("l"))
        f:close()
    end)

    it("imports custom objects in several parts", function()
        local src = dir .. "/cars.csv"
        local rows = { "vin,make,model,color,year" }
        for i = 1, 1200 do
            rows[#rows + 1] = ("VIN%06d,make%d,model %d,red,%d"):format(i, i % 9, i, 1990 + i % 30)
        end
        write(src, table.concat(rows, "\n") .. "\n")
        local r = cli.run({ "import", "custom_objects", "car_c", src, "--part-bytes", "9000",
            "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.err)
        local doc = read_json(dir .. "/cars.csv.report.json")
        assert_reconciled(doc)
        assert.is_true(#doc.parts >= 4)
        assert.equal(1200, doc.rows.imported)
        assert.equal(1200, #inspect(sb, "records/customobjects/car_c"))
    end)

    it("imports program members in several parts", function()
        local src = dir .. "/members.csv"
        local rows = { "email,firstName" }
        for i = 1, 900 do rows[#rows + 1] = ("member%d@example.com,M%d"):format(i, i) end
        write(src, table.concat(rows, "\n") .. "\n")
        local r = cli.run({ "import", "program_members", "1001", src, "--status", "On List",
            "--part-bytes", "8000", "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.err)
        local doc = read_json(dir .. "/members.csv.report.json")
        assert_reconciled(doc)
        assert.is_true(#doc.parts >= 3)
        assert.equal(900, #inspect(sb, "records/programs/1001/members"))
    end)

    it("ties the failures and warnings of a mapped import to their source lines", function()
        local src = dir .. "/crm.csv"
        write(src, table.concat({
            "Mail,Given,Points",
            "ANN@EXAMPLE.COM,ann,10",           -- line 2
            ",nobody,1",                        -- line 3: filtered (no email)
            "bob@example.com,bob,many",         -- line 4: Marketo fails the score
            '"cy-at-example",cy,"3"',           -- line 5: Marketo warns about the email
            "dee@example.com,dee,7",            -- line 6
        }, "\n") .. "\n")
        write(dir .. "/import.lua", ([[
            local result = assert(require("marketo.import").run{
                object = "leads", source = %q,
                mapping = {
                    email = function(row) return row.Mail:lower() end,
                    firstName = function(row) return row.Given:upper() end,
                    leadScore = "Points",
                },
                filter = function(row) return row.Mail ~= "" end,
            })
            return result.exit
        ]]):format(src))
        local r = cli.run({ "run", dir .. "/import.lua" }, { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err)
        local doc = read_json(dir .. "/crm.csv.report.json")
        assert_reconciled(doc)
        assert.same({ read = 5, imported = 2, warned = 1, failed = 1, filtered = 1,
            rejected = 0, unsent = 0, pending = 0 }, doc.rows)
        assert.equal(4, doc.failures[1].line)
        assert.matches("Lead Score", doc.failures[1].reason)
        assert.equal(5, doc.warnings[1].line)
        -- the mapped parts were work files: gone once every part is fetched
        local ls = assert(io.popen("ls " .. dir .. "/crm.csv.journal.work"))
        local left = ls:read("a")
        ls:close()
        assert.not_matches("%.csv", left)
        assert.matches("part%-0001%.results%.json", left)
        local stored = lead_emails(sb)
        assert.equal("ANN", stored["ann@example.com"].firstName)
    end)

    it("maps with Lua functions in several worker processes, lines still tied back", function()
        local src = dir .. "/leads.csv"
        leads_csv(src, 3000, { bad_every = 500, warn_every = 700 })
        write(dir .. "/import.lua", ([[
            require("marketo.csv").SHARE_BYTES = 4096 -- a small file, still in shares
            local pids = {}
            local result = assert(require("marketo.import").run{
                object = "leads", source = %q, part_bytes = 20000, workers = 3,
                mapping = {
                    email = function(row)
                        pids[require("marketo.core").getpid()] = true
                        return row.email:upper()
                    end,
                    firstName = "firstName", lastName = "lastName",
                    leadScore = function(row) return row.leadScore end,
                },
            })
            assert(next(pids) == nil, "the functions ran in this process")
            return result.exit
        ]]):format(src))
        local r = cli.run({ "run", dir .. "/import.lua" }, { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err)
        local doc = read_json(dir .. "/leads.csv.report.json")
        assert_reconciled(doc)
        assert.equal(3000, doc.rows.read)
        assert.equal(4, doc.rows.warned)
        local lines = {}
        for _, f in ipairs(doc.failures) do lines[#lines + 1] = f.line end
        table.sort(lines)
        assert.same({ 501, 1001, 1501, 2001, 2501, 3001 }, lines)
        local stored, n = lead_emails(sb)
        assert.equal(3000 - 6, n)
        assert.equal("Last, 2999", stored["LEAD2999@EXAMPLE.COM"].lastName)
    end)

    it("ties failures back to source lines when the mapping runs in C", function()
        local src = dir .. "/crm.csv"
        local rows = { "Points,Mail,Ignored" }
        for i = 1, 400 do
            local points = (i % 90 == 0) and "lots" or tostring(i)
            -- a quoted newline every so often: physical lines and rows differ
            local ignored = (i % 7 == 0) and '"two\nlines"' or "x"
            rows[#rows + 1] = ("%s,m%d@example.com,%s"):format(points, i, ignored)
        end
        write(src, table.concat(rows, "\n") .. "\n")
        local r = cli.run({ "import", "leads", src, "--no-schema", "--map", "email=Mail",
            "--map", "leadScore=Points", "--part-bytes", "1500", "--quiet" },
            { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err)
        local doc = read_json(dir .. "/crm.csv.report.json")
        assert.is_true(#doc.parts > 3)
        -- the expected line of row i: 1 + i + the quoted newlines before it
        local want = {}
        for i = 90, 400, 90 do want[#want + 1] = 1 + i + math.floor((i - 1) / 7) end
        local got = {}
        for _, f in ipairs(doc.failures) do got[#got + 1] = f.line end
        table.sort(got)
        assert.same(want, got)
    end)

    it("names the source line when a mapping or a validation rejects a row", function()
        local src = dir .. "/crm.csv"
        write(src, "Mail,Points\na@example.com,1\nb@example.com,x\nc@example.com,3\n")
        local function script(body)
            write(dir .. "/import.lua", ([[
                local result, msg = require("marketo.import").run{
                    object = "leads", source = %q, %s }
                if not result then io.stderr:write(msg, "\n") return 4 end
                return result.exit
            ]]):format(src, body))
            return cli.run({ "run", dir .. "/import.lua" }, { env = cli.env_of(sb) })
        end
        local r = script([[mapping = { email = "Mail", leadScore = function(row)
            return assert(math.tointeger(tonumber(row.Points)), "not a whole number") end }]])
        assert.equal(4, r.status)
        -- the script's own line (assert gives none), and the fix is the script's
        assert.matches(src .. ":3: the mapping of 'leadScore' raised an error at "
            .. dir .. "/import.lua:3: not a whole number; fix the script\n", r.err, 1, true)
        r = script([[mapping = { email = "Mail", leadScore = "Points" },
            validate = function(out) if not out.leadScore:match("^%d+$") then
                return "score must be a whole number", "leadScore" end end]])
        assert.equal(4, r.status)
        assert.matches(src .. ":3:2: score must be a whole number; fix the row, or pass "
            .. "--lenient to reject it as invalid", r.err, 1, true)
        assert.equal(0, #inspect(sb, "log")) -- nothing was sent either time
    end)

    it("stops before sending anything when a row is malformed, naming file, line and column",
        function()
            local src = dir .. "/bad.csv"
            local rows = { "email,firstName" }
            for i = 1, 50 do rows[#rows + 1] = ("x%d@example.com,X"):format(i) end
            rows[#rows + 1] = "late@example.com,oops,extra" -- line 52
            write(src, table.concat(rows, "\n") .. "\n")
            local r = cli.run({ "import", "leads", src, "--quiet" }, { env = cli.env_of(sb) })
            -- 1, not 4: running it again cannot help, the file must be fixed
            assert.equal(1, r.status)
            assert.matches(src .. ":52:", r.err, 1, true)
            assert.matches("CSV_FIELD_COUNT", r.err, 1, true)
            for _, e in ipairs(inspect(sb, "log")) do -- the describe calls, no upload
                assert.is_nil(e.path:match("^/bulk/"), e.path)
            end
            assert.equal(0, inspect(sb, "records").leads)
            -- and no empty journal is left to look like an import
            assert.is_nil(io.open(src .. ".journal"))
        end)

    it("reads a bad file before it starts the embedded sandbox", function()
        local src = dir .. "/bad-embedded.csv"
        write(src, "email,firstName\na@example.com,A\nb@example.com,B,extra\n")
        local r = cli.run({ "import", "leads", src, "--quiet" }, { env = {} })
        assert.equal(1, r.status)
        assert.matches(src .. ":3:", r.err, 1, true)
        assert.not_matches("embedded sandbox", r.err, 1, true)
        assert.is_nil(io.open(src .. ".journal"))
    end)

    it("with --lenient imports the good rows and reports the malformed ones", function()
        local src = dir .. "/bad.csv"
        write(src, "email,firstName\na@example.com,A\nb@example.com,B,extra\nc@example.com,C\n")
        local r = cli.run({ "import", "leads", src, "--lenient", "--quiet" },
            { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err)
        local doc = read_json(dir .. "/bad.csv.report.json")
        assert_reconciled(doc)
        assert.equal(1, doc.rows.rejected)
        assert.equal(3, doc.rejects[1].line)
        assert.equal(2, select(2, lead_emails(sb)))
    end)

    it("does a dry run that plans every part and sends nothing", function()
        local src = dir .. "/leads.csv"
        leads_csv(src, 500)
        local r = cli.run({ "import", "leads", src, "--dry-run", "--part-bytes", "5000" },
            { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.err)
        assert.matches("dry run: 500 rows read", r.out, 1, true)
        assert.matches("part 5:", r.out, 1, true)
        assert.equal(0, #inspect(sb, "log"))
    end)

    it("never sends a finished part again when the same command runs twice", function()
        local src = dir .. "/leads.csv"
        leads_csv(src, 400)
        local argv = { "import", "leads", src, "--part-bytes", "4000", "--quiet" }
        assert.equal(0, cli.run(argv, { env = cli.env_of(sb) }).status)
        local uploads = 0
        for _, e in ipairs(inspect(sb, "log")) do
            if e.method == "POST" and e.path == "/bulk/v1/leads.json" then uploads = uploads + 1 end
        end
        local again = cli.run(argv, { env = cli.env_of(sb) })
        assert.equal(0, again.status, again.err)
        local after = 0
        for _, e in ipairs(inspect(sb, "log")) do
            if e.method == "POST" and e.path == "/bulk/v1/leads.json" then after = after + 1 end
        end
        assert.is_true(uploads > 3)
        assert.equal(uploads, after)
        -- the same file with another mapping is another import: not this journal's
        local other = cli.run({ "import", "leads", src, "--map", "email=email", "--quiet" },
            { env = cli.env_of(sb) })
        assert.equal(1, other.status)
        assert.matches("JOURNAL_MISMATCH", other.err, 1, true)
        -- and so is the same command after the file was rewritten
        local f = assert(io.open(src, "ab"))
        f:write("late@example.com,Late,Comer,Acme,1\n")
        f:close()
        local changed = cli.run(argv, { env = cli.env_of(sb) })
        assert.equal(1, changed.status)
        assert.matches("JOURNAL_MISMATCH: .* as it was %(%d+ bytes, now %d+%)", changed.err)
    end)
end)
