-- --changed-only with the rest of the import, through the real runner and the
-- real sandbox: a warned row is held and a failed one sent again; program
-- members by status (a member whose status changed is a changed row; a
-- state is of one program); a mapping run by forked workers (the rows left
-- still tie back to their source lines).
local cli = require("spec.support.cli")

local STATUSES = { "Registered", "Attended", "No Show" }

describe("--changed-only with", function()
    local ctx = cli.sandboxed({ speed = 0, program_statuses = STATUSES })

    -- Rows uploaded since the last call.
    local seen = 0
    local function uploaded()
        local n = 0
        for _, job in ipairs(cli.inspect(ctx.sb, "jobs")) do n = n + job.rows end
        n, seen = n - seen, n
        return n
    end
    before_each(function() seen = 0 end)

    local function env()
        local e = cli.env_of(ctx.sb)
        e.XDG_STATE_HOME = ctx.dir .. "/state"
        return e
    end

    local function copy(t)
        local out = {}
        for i, v in ipairs(t) do out[i] = v end
        return out
    end

    local function run(argv, journal)
        for _, a in ipairs({ "--changed-only", "--no-schema", "--part-bytes", "3000",
            "--journal", ctx.dir .. "/" .. journal }) do
            argv[#argv + 1] = a
        end
        return cli.run(argv, { env = env() })
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
        local argv = { "import", "program_members", "1001", src, "--status-column", "Status" }
        local r = run(copy(argv), "1.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(120, uploaded())

        r = run(copy(argv), "2.journal")
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(0, uploaded())
        assert.matches("120 unchanged", r.out, 1, true)

        -- three members change status (one of them into a group it was not in)
        local changed = { [3] = "Attended", [40] = "No Show", [41] = "Registered" }
        members_csv(src, 120, changed)
        r = run(copy(argv), "3.journal")
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
        argv[3] = "1002"
        r = run(copy(argv), "4.journal")
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
        assert.equal("Edited2950", cli.first_names(ctx.sb)["LEAD2950@EXAMPLE.COM"])
        -- the rows left make one part or two, not a sliver of each share's parts
        assert.is_true(#doc.parts <= 2, #doc.parts)
    end)
end)
