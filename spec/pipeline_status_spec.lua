-- Program members with a status per row (--status-column): one mixed file
-- into one program, each member with its row's status; blank and unknown
-- statuses as bad input. The real runner against the real sandbox over loopback.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")

local write, read_json = cli.write, cli.read_json

local STATUSES = { "Registered", "Attended", "No Show" }
local MAYBE = "email,Status\na@example.com,Registered\nb@example.com,Maybe\n" -- not a status

-- The program's members by email, each once.
local function members(sb, program)
    local out, n = {}, 0
    for _, m in ipairs(cli.inspect(sb, "records/programs/" .. program .. "/members")) do
        assert.is_nil(out[m.email:lower()], "two members for " .. m.email)
        out[m.email:lower()], n = m, n + 1
    end
    return out, n
end

-- Imports `content` as members of program 1001 by their Status column.
local function import_members(t, content, ...)
    local src = t.dir .. "/members.csv"
    write(src, content)
    local r = cli.run({ "import", "program_members", "1001", src, "--status-column", "Status",
        ... }, { env = cli.env_of(t.sb) })
    return r, src
end

describe("program members with --status-column", function()
    local fx = sandbox.fixture({ speed = 0, program_statuses = STATUSES })
    local t = cli.per_test(fx, { setup, teardown, before_each, after_each })

    it("imports a mixed file into one program, each member with its row's status, the "
        .. "column not sent, counts per status", function()
        -- member i's status cycles; members 1-20 come again at the end with
        -- another status, which must win
        local src, out, want = t.dir .. "/members.csv", { "email,firstName,Status" }, {}
        for i = 1, 900 do
            local s = STATUSES[i % 3 + 1]
            out[#out + 1] = ("m%d@example.com,M%d,%s"):format(i, i, s)
            want[("m%d@example.com"):format(i)] = s
        end
        for i = 1, 20 do
            out[#out + 1] = ("m%d@example.com,M%d, Attended "):format(i, i)
            want[("m%d@example.com"):format(i)] = "Attended"
        end
        write(src, table.concat(out, "\n") .. "\n")
        local r = cli.run({ "import", "program_members", "1001", src, "--status-column",
            "Status", "--part-bytes", "6000", "--quiet" }, { env = cli.env_of(t.sb) })
        assert.equal(0, r.status, r.err .. r.out)
        local held, n = members(t.sb, 1001)
        assert.equal(900, n)
        for email, status in pairs(want) do
            assert.equal(status, held[email] and held[email].status, email)
            assert.is_nil(held[email].Status) -- the column is not sent
        end
        local doc = read_json(src .. ".report.json")
        assert.is_true(doc.reconciled)
        assert.same({ rows = 320, imported = 320, warned = 0, failed = 0, pending = 0, unsent = 0 },
            doc.statuses.Attended)
        assert.equal(300, doc.statuses.Registered.rows)
        assert.equal(300, doc.statuses["No Show"].rows)
        assert.equal(20, doc.keys.repeated)
        assert.matches("statuses: Attended 320 (320 imported", r.out, 1, true)
        -- every upload carried one of the statuses
        local uploads = 0
        for _, e in ipairs(cli.inspect(t.sb, "log")) do
            if e.method == "POST" and e.path:match("/members/import%.json$") then
                uploads = uploads + 1
                assert.is_truthy(doc.statuses[
                    e.query.programMemberStatus], e.query.programMemberStatus)
            end
        end
        assert.equal(#doc.parts, uploads)
    end)

    it("stops at a blank status naming the line, nothing sent", function()
        local r = import_members(t, "email,Status\na@example.com,Registered\nb@example.com,"
            .. "  \n")
        assert.equal(1, r.status)
        assert.matches("members.csv:3:Status: the status column 'Status' is blank", r.err, 1,
            true)
        assert.same({}, cli.inspect(t.sb, "records/programs/1001/members"))
    end)

    it("rejects a blank status in lenient mode", function()
        local r, src = import_members(t, "email,Status\na@example.com,Registered\n"
            .. "b@example.com,\n", "--lenient", "--quiet")
        assert.equal(3, r.status, r.err)
        local doc = read_json(src .. ".report.json")
        assert.equal(1, doc.rows.rejected)
        assert.equal(3, doc.rejects[1].line)
        local _, n = members(t.sb, 1001)
        assert.equal(1, n)
    end)

    it("stops at a status the program does not have (its schema says which), naming the "
        .. "line, nothing sent", function()
        local r = import_members(t, MAYBE, "--quiet")
        assert.equal(1, r.status, r.err .. r.out)
        assert.matches("members.csv:3:Status: status 'Maybe' is not one of the program's "
            .. "(Registered, Attended, No Show)", r.err, 1, true)
        assert.same({}, cli.inspect(t.sb, "records/programs/1001/members"))
    end)

    it("rejects a status the program does not have in lenient mode", function()
        local r, src = import_members(t, MAYBE, "--lenient", "--quiet")
        assert.equal(3, r.status, r.err .. r.out)
        local doc = read_json(src .. ".report.json")
        assert.equal(1, doc.rows.rejected)
        assert.equal(3, doc.rejects[1].line)
        assert.equal(1, doc.statuses.Registered.imported)
    end)

    it("without the schema, stops where Marketo refuses a status, naming it and its first "
        .. "line", function()
        local r, src = import_members(t, MAYBE, "--quiet", "--no-schema")
        assert.equal(4, r.status, r.err .. r.out)
        assert.matches("program status 'Maybe' (" .. src .. ":3, the first row of part 2) "
            .. "is refused", r.out, 1, true)
        r = import_members(t, MAYBE, "--lenient", "--quiet", "--no-schema", "--journal",
            t.dir .. "/lenient.journal")
        assert.equal(3, r.status, r.err .. r.out)
        local doc = read_json(t.dir .. "/lenient.report.json")
        assert.same({ rows = 1, imported = 0, warned = 0, failed = 1, pending = 0, unsent = 0 },
            doc.statuses.Maybe)
        assert.equal(1, doc.statuses.Registered.imported)
    end)

    it("refuses a file without the column, and the flag with --status or for leads",
        function()
        local r, src = import_members(t, "email,Stage\na@example.com,Registered\n",
            "--no-schema")
        assert.equal(1, r.status)
        assert.matches("has no column 'Status' (the status column); its columns are email, "
            .. "Stage", r.err, 1, true)
        r = cli.run({ "import", "program_members", "1001", src, "--status-column", "Stage",
            "--status", "Registered" }, { env = cli.env_of(t.sb) })
        assert.equal(2, r.status)
        assert.matches("--status and --status-column: one or the other", r.err, 1, true)
        r = cli.run({ "import", "leads", src, "--status-column", "Stage" },
            { env = cli.env_of(t.sb) })
        assert.equal(2, r.status)
        assert.matches("--status-column is for program_members", r.err, 1, true)
    end)
end)
