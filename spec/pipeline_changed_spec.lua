-- --changed-only through the real runner and the real sandbox: each import
-- sends exactly the new rows, the changed ones and the ones that failed
-- before (the sandbox's jobs count what was uploaded); a kill -9 in the
-- middle of one leaves the state to the resume; a state of another import,
-- or a damaged one, is refused. With the rest of the import: a warned row is
-- held and a failed one sent again; program members by status (a member
-- whose status changed is a changed row; a state is of one program); a
-- mapping run by forked workers (the rows left still tie back to their
-- source lines).
local cli = require("spec.support.cli")
local core = require("marketo.core")

-- n leads, every 50th with a score the sandbox refuses (the schema's checks are
-- off: those rows reach it); the rows `edited`
-- names get another firstName.
local function leads(path, n, edited)
    cli.leads_csv(path, n, { bad_every = 50 })
    local text = cli.read(path)
    for i in pairs(edited or {}) do
        text = text:gsub(("\nlead%d@example.com,First%d,"):format(i, i),
            ("\nlead%d@example.com,Edited%d,"):format(i, i))
    end
    cli.write(path, text)
end

local function set(from, to, step)
    local s = {}
    for i = from, to, step or 1 do s[i] = true end
    return s
end

local STATUSES = { "Registered", "Attended", "No Show" }

describe("--changed-only", function()
    local ctx = cli.sandboxed({ speed = 0, program_statuses = STATUSES })

    -- Rows uploaded since the last call.
    local seen = 0
    local function uploaded()
        local n = 0
        for _, job in ipairs(cli.inspect(ctx.sb, "jobs")) do n = n + job.rows end
        n, seen = n - seen, n
        return n
    end

    local function env()
        local e = cli.env_of(ctx.sb)
        e.XDG_STATE_HOME = ctx.dir .. "/state"
        return e
    end

    -- an import of src's leads (or argv, a command line of its own)
    local function import(src, journal, extra, argv)
        argv = argv and src or { "import", "leads", src }
        for _, a in ipairs({ "--changed-only", "--journal", ctx.dir .. "/" .. journal,
            "--part-bytes", argv[2] == "leads" and "4000" or "3000", "--no-schema" }) do
            argv[#argv + 1] = a
        end
        for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
        return cli.run(argv, { env = env() })
    end

    before_each(function() seen = 0 end)

    it("sends only new, changed and failed rows across imports, through a kill -9",
        function()
        local src = ctx.dir .. "/leads.csv"
        leads(src, 300)
        local r = import(src, "1.journal")
        assert.equal(3, r.status, r.err .. r.out) -- 6 rows failed
        assert.equal(300, uploaded())
        assert.matches("294 imported", r.out, 1, true)

        -- 10 edited, 20 new; the 6 that failed go again (and fail again)
        leads(src, 320, set(11, 20))
        r = import(src, "2.journal")
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(10 + 20 + 6, uploaded())
        assert.matches("284 unchanged", r.out, 1, true)
        assert.equal("Edited15", cli.first_names(ctx.sb)["lead15@example.com"])

        -- 55 edited across the parts; killed once a part is in Marketo
        leads(src, 320, set(101, 320, 4)) -- 55 edited, one of them failing (300)
        ctx.sb.freeze()
        local argv = { "import", "leads", src, "--changed-only", "--journal",
            ctx.dir .. "/3.journal", "--part-bytes", "1000", "--no-schema", "--quiet" }
        local job = cli.start(argv, { env = env() })
        cli.await(function()
            return (cli.read(ctx.dir .. "/3.journal") or ""):find('"ev":"uploaded"', 1, true)
        end, "a part uploaded")
        job:signal("KILL")
        job:wait()
        assert.is_nil((cli.read(ctx.dir .. "/3.journal")):find('"ev":"state"', 1, true))
        ctx.sb.thaw()
        r = cli.run(argv, { env = env() })
        assert.equal(3, r.status, r.err .. r.out)
        local sent = uploaded()
        assert.is_true(sent >= 55 + 6 - 1, sent) -- a part sent twice may count twice
        assert.matches('"ev":"state"', cli.read(ctx.dir .. "/3.journal"), 1, true)

        -- nothing changed since: only the failing rows go
        r = import(src, "4.journal")
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(6, uploaded())
        assert.matches("314 unchanged", r.out, 1, true)
        local names = cli.first_names(ctx.sb)
        assert.equal("Edited101", names["lead101@example.com"])
        assert.equal("First102", names["lead102@example.com"])

        -- --full sends everything
        r = import(src, "5.journal", { "--full" })
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(320, uploaded())
    end)

    it("a plan a crash cut short is made again by resume, with the same state", function()
        local src = ctx.dir .. "/leads.csv"
        leads(src, 100)
        local r = import(src, "1.journal")
        assert.equal(3, r.status, r.err .. r.out) -- rows 50 and 100 fail
        assert.equal(100, uploaded())
        -- the run record alone (the journal's first line): the plan was cut short
        cli.write(ctx.dir .. "/2.journal", cli.read(ctx.dir .. "/1.journal"):match("^[^\n]*\n"))
        r = cli.run({ "resume", ctx.dir .. "/2.journal" }, { env = env() })
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(2, uploaded())
        assert.matches("98 unchanged", r.out, 1, true)
    end)

    it("refuses a state of another object or key field, naming both", function()
        local src, state = ctx.dir .. "/leads.csv", ctx.dir .. "/my.state"
        leads(src, 10)
        local other = core.state_new("elsewhere", "leads", "email")
        assert(other:save(state))
        local r = import(src, "1.journal", { "--state", state })
        assert.equal(1, r.status)
        assert.matches("STATE_MISMATCH: .*my.state holds the state of instance elsewhere, "
            .. "object leads, key field email; this import is of instance 127%.0%.0%.1:%d+, "
            .. "object leads, key field email", r.err)
        assert.equal(0, uploaded())
    end)

    it("refuses a damaged state, saying to use --full, which writes it anew; state show "
        .. "and forget", function()
        local src, state = ctx.dir .. "/leads.csv", ctx.dir .. "/my.state"
        leads(src, 10)
        local r = import(src, "1.journal", { "--state", state })
        assert.equal(0, r.status, r.err .. r.out)
        local whole = cli.read(state)
        cli.write(state, whole:sub(1, #whole - 8))
        uploaded()
        r = import(src, "2.journal", { "--state", state })
        assert.equal(1, r.status)
        assert.matches("STATE_CORRUPT: .*my.state: it is truncated; run with %-%-full", r.err)
        assert.equal(0, uploaded())
        r = import(src, "3.journal", { "--state", state, "--full" })
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(10, uploaded())
        assert.equal("600", cli.mode_of(state))
        r = import(src, "4.journal", { "--state", state })
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(0, uploaded())
        r = cli.run({ "state", "show", state })
        assert.equal(0, r.status, r.err)
        assert.matches("my.state: instance 127%.0%.0%.1:%d+, object leads, key field email; "
            .. "10 keys; last import: ", r.out)
        r = cli.run({ "state", "forget", state })
        assert.equal(0, r.status, r.err)
        assert.is_nil(cli.read(state))
        r = import(src, "5.journal", { "--state", state })
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(10, uploaded())
    end)

    -- argv (a new list) with --changed-only, small parts and the journal
    local function run(argv, journal)
        return import(argv, journal, nil, true)
    end

    local function failed_lines(journal)
        local doc = cli.read_json(ctx.dir .. "/" .. journal:gsub("%.journal$", ".report.json"))
        local lines = {}
        for _, f in ipairs(doc.failures) do lines[#lines + 1] = f.line end
        table.sort(lines)
        return lines, doc
    end

    it("warnings: a warned row is held, a failed row is sent again", function()
        local src = ctx.dir .. "/leads.csv"
        -- every 25th row fails (a score the sandbox refuses), every 7th is warned
        cli.leads_csv(src, 100, { bad_every = 25, warn_every = 7 })
        local r = run({ "import", "leads", src }, "1.journal")
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(100, uploaded())
        local lines, doc = failed_lines("1.journal")
        assert.same({ 26, 51, 76, 101 }, lines)
        assert.equal(14, doc.rows.warned)

        r = run({ "import", "leads", src }, "2.journal")
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(4, uploaded()) -- the failed rows alone; the warned ones are held
        lines, doc = failed_lines("2.journal")
        assert.same({ 26, 51, 76, 101 }, lines)
        assert.equal(0, doc.rows.warned)
        assert.equal(96, doc.rows.unchanged)
    end)

    -- The program's members by email: their status.
    local function statuses(program)
        local out = {}
        for _, m in ipairs(cli.inspect(ctx.sb, "records/programs/" .. program .. "/members")) do
            out[m.email:lower()] = m.status
        end
        return out
    end

    -- n members; with a Status column unless `bare`
    local function members_csv(path, n, changed, bare)
        local out = { bare and "email,firstName" or "email,firstName,Status" }
        for i = 1, n do
            local status = (changed or {})[i] or STATUSES[i % 3 + 1]
            out[#out + 1] = ("m%d@example.com,M%d"):format(i, i) .. (bare and "" or "," .. status)
        end
        cli.write(path, table.concat(out, "\n") .. "\n")
    end

    it("--status-column: a member whose status changed is sent again with it; a state is "
        .. "of one program", function()
        local src = ctx.dir .. "/members.csv"
        members_csv(src, 120)
        local program = "1001"
        local function members(id)
            return { "import", "program_members", id, src, "--status-column", "Status" }
        end
        local r = run(members(program), "1.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(120, uploaded())

        r = run(members(program), "2.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(0, uploaded())
        assert.matches("120 unchanged", r.out, 1, true)

        -- three members change status (one of them into a group it was not in)
        local changed = { [3] = "Attended", [40] = "No Show", [41] = "Registered" }
        members_csv(src, 120, changed)
        r = run(members(program), "3.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(3, uploaded())
        assert.matches("117 unchanged", r.out, 1, true)
        local held = statuses(1001)
        for i, status in pairs(changed) do
            assert.equal(status, held[("m%d@example.com"):format(i)])
        end
        -- each sent with its own status
        for _, e in ipairs(cli.inspect(ctx.sb, "log")) do
            if e.method == "POST" and e.path:match("/members/import%.json$") then
                assert.is_truthy(e.query.programMemberStatus)
            end
        end

        -- the same members into another program: all of them
        program = "1002"
        r = run(members(program), "4.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(120, uploaded())
        local n = 0
        for _ in pairs(statuses(1002)) do n = n + 1 end
        assert.equal(120, n)
        local ls = assert(io.popen("ls " .. ctx.dir .. "/state/marketo-bulk"))
        local files = ls:read("a")
        ls:close()
        assert.matches("program_members_1001%-email%.state", files)
        assert.matches("program_members_1002%-email%.state", files)
    end)

    it("--status: the same members with another status are all sent again", function()
        local src = ctx.dir .. "/members.csv"
        members_csv(src, 30, nil, true)
        local r = run({ "import", "program_members", "1001", src, "--status", "Registered" },
            "1.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(30, uploaded())
        r = run({ "import", "program_members", "1001", src, "--status", "Registered" },
            "2.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(0, uploaded())
        r = run({ "import", "program_members", "1001", src, "--status", "Attended" },
            "3.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(30, uploaded())
        assert.equal("Attended", statuses(1001)["m7@example.com"])
    end)

    it("a mapping in forked workers: only the changed rows go, tied to their lines",
        function()
        local src = ctx.dir .. "/leads.csv"
        local script = ctx.dir .. "/import.lua"
        cli.write(script, ([[
            require("marketo.csv").SHARE_BYTES = 4096 -- a small file, still in shares
            local pids = {}
            local result = assert(require("marketo.import").run{
                object = "leads", source = %q, part_bytes = 20000, workers = 3,
                changed_only = true, instance = "sandbox", state = %q,
                journal = arg[1],
                mapping = { email = "email", lastName = "lastName", leadScore = "leadScore",
                    firstName = function(row)
                        pids[require("marketo.core").getpid()] = true
                        return row.firstName:upper()
                    end },
            })
            assert(not pids[require("marketo.core").getpid()], "the map ran in this process")
            return result.exit
        ]]):format(src, ctx.dir .. "/leads.state"))
        cli.leads_csv(src, 3000, { bad_every = 500 })
        local r = cli.run({ "run", script, ctx.dir .. "/1.journal" }, { env = env() })
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(3000, uploaded())

        -- 30 rows edited, spread over every share
        local text = cli.read(src)
        for i = 50, 3000, 100 do
            text = text:gsub(("\nlead%d@example.com,First%d,"):format(i, i),
                ("\nlead%d@example.com,Edited%d,"):format(i, i))
        end
        cli.write(src, text)
        r = cli.run({ "run", script, ctx.dir .. "/2.journal" }, { env = env() })
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(30 + 6, uploaded()) -- the edited rows and the failed ones
        local lines, doc = failed_lines("2.journal")
        assert.same({ 501, 1001, 1501, 2001, 2501, 3001 }, lines)
        assert.equal(3000 - 36, doc.rows.unchanged)
        assert.equal("EDITED2950", cli.first_names(ctx.sb)["lead2950@example.com"])
        -- the rows left make one part or two, not a sliver of each share's parts
        assert.is_true(#doc.parts <= 2, #doc.parts)
    end)
end)
