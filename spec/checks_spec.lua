-- A file checked against the instance before anything is sent (issue 13):
-- the real runner against a real sandbox child. Each kind of problem is
-- caught with no bulk call in the sandbox's log and named with file:line:col;
-- a valid file imports; lenient mode rejects exactly the bad rows; the
-- schema's cache saves the second dry run its describe calls.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")

local write, read_json, inspect = cli.write, cli.read_json, cli.inspect

describe("checks against the instance", function()
    local sb, dir
    setup(function() sb = sandbox.start({ speed = 0 }) end)
    teardown(function() sb.stop() end)
    before_each(function()
        sb.control{ program_statuses = { "Member", "Attended" } }
        sb.reset()
        dir = cli.tmpdir()
    end)
    after_each(function() cli.rmdir(dir) end)

    local function run(...)
        return cli.run({ "import", ... }, { env = cli.env_cached(sb, dir .. "/cache"), cwd = dir })
    end

    -- refused before any upload, exit 1, each expected text in stderr
    local function refused(r, ...)
        assert.equal(1, r.status, r.err)
        for _, text in ipairs({ ... }) do assert.matches(text, r.err, 1, true) end
        assert.equal(0, cli.calls(sb, "^/bulk/"))
    end

    it("names a mapped field that is no field, with the near miss", function()
        write(dir .. "/crm.csv", "E-mail,First\na@example.com,A\n")
        refused(run("leads", "crm.csv", "--map", "emial=E-mail", "--map", "firstName=First",
            "--dry-run"), "mapping: no field 'emial' on leads; did you mean 'email'?")
    end)

    it("names a header in another case, with file:1:column", function()
        write(dir .. "/crm.csv", "firstName,Email\nA,a@example.com\n")
        refused(run("leads", "crm.csv"), "crm.csv:1:2: no field 'Email' on leads; "
            .. "did you mean 'email'?")
    end)

    it("wants the lookup field as a column, and one Marketo takes", function()
        write(dir .. "/crm.csv", "firstName,lastName\nA,B\n")
        refused(run("leads", "crm.csv", "--dry-run"), "lookup field 'email' is not a column")
        refused(run("leads", "crm.csv", "--lookup-field", "firstName"),
            "lookup field 'firstName' is not one Marketo takes on leads")
    end)

    it("refuses a read-only column, but lets the id be the lookup field", function()
        write(dir .. "/crm.csv", "email,updatedAt\na@example.com,2024-01-01T00:00:00Z\n")
        refused(run("leads", "crm.csv"), "crm.csv:1:2: field 'updatedAt' is read-only")
        write(dir .. "/ids.csv", "id,firstName\n1,A\n")
        local r = run("leads", "ids.csv", "--lookup-field", "id", "--dry-run")
        assert.equal(0, r.status, r.err)
    end)

    it("catches the docs' ' vin': a dedupe field with a space is no column", function()
        write(dir .. "/cars.csv", " vin,make\n1HGCM,Honda\n")
        refused(run("custom_objects", "car_c", "cars.csv"),
            "dedupe field 'vin' of custom object car_c is not a column of the file; "
            .. "the file has ' vin', with spaces around the name",
            "cars.csv:1:1: no field ' vin' on custom_objects; did you mean 'vin'?")
    end)

    it("wants a status of the program's channel", function()
        write(dir .. "/m.csv", "email\na@example.com\n")
        refused(run("program_members", "1001", "m.csv", "--status", "Registered"),
            "status 'Registered' is not one of program 1001's (channel Sandbox Channel): "
            .. "'Member', 'Attended'")
        local r = run("program_members", "1001", "m.csv", "--status", "Attended", "--dry-run")
        assert.equal(0, r.status, r.err)
    end)

    it("names a value of the wrong type with file:line:col, field, expected and found", function()
        local rows = { "email,firstName,lastName,company,title,phone,dateOfBirth" }
        for i = 1, 39 do rows[#rows + 1] = ("p%d@example.com,F,L,C,T,1,1990-12-31"):format(i) end
        rows[#rows + 1] = "late@example.com,F,L,C,T,1,31/12/1990" -- line 41
        write(dir .. "/crm.csv", table.concat(rows, "\n") .. "\n")
        refused(run("leads", "crm.csv", "--dry-run"),
            "crm.csv:41:7: dateOfBirth expects a date YYYY-MM-DD, got '31/12/1990'")
        refused(run("leads", "crm.csv"), "crm.csv:41:7: dateOfBirth expects a date")
    end)

    it("checks a renamed column in C, and a constant once", function()
        write(dir .. "/crm.csv", "Mail,Born\na@example.com,1990-12-31\nb@example.com,1990-31-12\n")
        refused(run("leads", "crm.csv", "--map", "email=Mail", "--map", "dateOfBirth=Born",
            "--dry-run"), "crm.csv:3:2: dateOfBirth expects a date YYYY-MM-DD, got '1990-31-12'")
        refused(run("leads", "crm.csv", "--map", "email=Mail", "--set", "leadScore=high"),
            "mapping: the constant of leadScore expects a whole number, got 'high'")
    end)

    it("imports a valid file, and names the instance at the start and in the report", function()
        write(dir .. "/crm.csv", "email,firstName,leadScore,dateOfBirth,unsubscribed\n"
            .. "a@example.com,A,10,1990-12-31,false\nb@example.com,B,,,\n")
        local r = run("leads", "crm.csv", "--quiet")
        assert.equal(0, r.status, r.err)
        local host = sb.base_url:match("//(.*)$")
        assert.matches("marketo-bulk: instance " .. host .. "\n", r.err, 1, true)
        assert.equal(2, inspect(sb, "records").leads)
        assert.equal(host, read_json(dir .. "/crm.csv.report.json").instance)
    end)

    it("in lenient mode rejects exactly the bad rows, and the rest go", function()
        local long = ("x"):rep(256)
        write(dir .. "/crm.csv", table.concat({
            "email,leadScore,unsubscribed,annualRevenue,firstName",
            "ok1@example.com,1,true,10.5,A",
            "bad1@example.com,lots,true,1,A",         -- line 3: integer
            "bad2@example.com,1,maybe,1,A",           -- line 4: boolean
            "bad3@example.com,1,true,$5,A",           -- line 5: currency
            "bad4@example.com,1,true,1," .. long,     -- line 6: length
            "ok2@example.com,,,,B",
        }, "\n") .. "\n")
        local r = run("leads", "crm.csv", "--lenient", "--quiet")
        assert.equal(3, r.status, r.err)
        local doc = read_json(dir .. "/crm.csv.report.json")
        assert.equal(4, doc.rows.rejected)
        assert.equal(2, doc.rows.imported)
        assert.equal(0, doc.rows.failed)
        local stored = {}
        for _, rec in ipairs(inspect(sb, "records/leads")) do stored[rec.email] = true end
        assert.same({ ["ok1@example.com"] = true, ["ok2@example.com"] = true }, stored)
        local reasons = {}
        for line in io.lines(dir .. "/crm.csv.journal.work/rejects.jsonl") do
            local rej = require("marketo.json").decode(line)
            reasons[rej.line] = rej.reason
        end
        assert.equal("leadScore expects a whole number, got 'lots'", reasons[3])
        assert.equal("unsubscribed expects true or false, got 'maybe'", reasons[4])
        assert.equal("annualRevenue expects a number, got '$5'", reasons[5])
        assert.equal("firstName takes at most 255 characters, got 256", reasons[6])
    end)

    it("asks the instance once a day: the second dry run makes no describe call", function()
        write(dir .. "/crm.csv", "email\na@example.com\n")
        assert.equal(0, run("leads", "crm.csv", "--dry-run").status)
        assert.equal(1, cli.calls(sb, "describe"))
        assert.equal(0, run("leads", "crm.csv", "--dry-run").status)
        assert.equal(1, cli.calls(sb, "describe"))
        assert.equal(0, run("leads", "crm.csv", "--dry-run", "--refresh-schema").status)
        assert.equal(2, cli.calls(sb, "describe"))
    end)

    it("warns of an email that does not look like one, and sends it", function()
        write(dir .. "/crm.csv", "email,firstName\na@example.com,A\nbob-at-example,B\n")
        local r = run("leads", "crm.csv", "--quiet")
        assert.equal(0, r.status, r.err)
        assert.matches("crm.csv:3:1: email 'bob-at-example' does not look like an email address",
            r.err, 1, true)
        assert.equal(2, inspect(sb, "records").leads)
    end)

    it("stops on a describe call that fails, naming it and --no-schema", function()
        write(dir .. "/crm.csv", "email\na@example.com\n")
        sb.control{ error_rate = 1, error_codes = { "603" } }
        local r = run("leads", "crm.csv", "--dry-run")
        sb.control{ error_rate = 0 }
        refused(r, "GET /rest/v1/leads/describe2.json failed", "603",
            "--no-schema skips every check against the instance")
    end)

    it("checks nothing with --no-schema (and asks nothing)", function()
        write(dir .. "/crm.csv", "emial\na@example.com\n")
        local r = run("leads", "crm.csv", "--dry-run", "--no-schema")
        assert.equal(0, r.status, r.err)
        assert.equal(0, #inspect(sb, "log"))
    end)
end)

describe("checks.columns", function()
    local checks = require("marketo.pipeline.checks")
    local schema = require("marketo.schema")
    local objects = require("marketo.objects")

    it("passes a field of a type it does not know unchecked, with one warning", function()
        local s = schema.new{ object = "leads", lookup = { email = true }, fields = {
            { name = "email", type = "email", updateable = true },
            { name = "geo", type = "geopoint", updateable = true },
            { name = "geo2", type = "geopoint", updateable = true } } }
        local problems, warnings = checks.columns(objects.get("leads"), {}, s,
            { { name = "email", where = "f:1:1" }, { name = "geo", where = "f:1:2" },
              { name = "geo2", where = "f:1:3" } })
        assert.same({}, problems)
        assert.equal(1, #warnings)
        assert.matches("type 'geopoint'", warnings[1], 1, true)
        assert.is_nil(checks.row(s)({ email = "a@b", geo = "anything" }))
    end)

    it("warns of the first email that does not look like one, on mapped rows too", function()
        local s = schema.new{ object = "leads", fields = {
            { name = "email", type = "email", length = 255, updateable = true } } }
        local warnings = {}
        local check = checks.row(s, warnings)
        assert.is_nil(check({ email = "a@example.com" }, 2))
        assert.is_nil(check({ email = "bob-at-example" }, 3))
        assert.is_nil(check({ email = "also bad" }, 4))
        assert.same({ "line 3, email: the email 'bob-at-example' does not look like an email "
            .. "address: Marketo imports such a row with a warning" }, warnings)
    end)

    it("has the plan check an unmapped file's values, in C: bad rows out, holes copied",
        function()
        local plan = require("marketo.pipeline.plan")
        local s = schema.new{ object = "leads", fields = {
            { name = "email", type = "email", length = 255, updateable = true },
            { name = "leadScore", type = "integer", updateable = true } } }
        local dir = cli.tmpdir()
        local path = dir .. "/crm.csv"
        write(path, "email,leadScore\na@example.com,1\nb@example.com,lots\nc@example.com,3\n"
            .. "bob-at-example,4\n")
        local warnings, rejects = {}, {}
        local ok, validate, types = checks.for_plan({ schema = s, lenient = true }, { path },
            "csv", warnings)
        assert.is_true(ok)
        assert.is_nil(validate) -- no Lua per row
        local p = assert(plan.build({ sources = { path }, format = "csv", lenient = true,
            types = types, work_dir = dir, warnings = warnings,
            on_reject = function(rej) rejects[#rejects + 1] = rej end }))
        assert.same({ read = 4, filtered = 0, rejected = 1 }, p.rows)
        assert.same({ { source = path, line = 3, column = 2, code = "INVALID_ROW",
            reason = "leadScore expects a whole number, got 'lots'",
            raw = "b@example.com,lots\n" } }, rejects)
        assert.equal(1, #p.parts)
        assert.is_true(p.parts[1].mapped) -- the part with its hole, copied without it
        local f = assert(io.open(p.parts[1].path, "rb"))
        assert.equal("email,leadScore\na@example.com,1\nc@example.com,3\nbob-at-example,4\n",
            f:read("a"))
        f:close()
        assert.same({ path .. ":5:1: email 'bob-at-example' does not look like an email "
            .. "address: Marketo imports such a row with a warning" }, warnings)
        cli.rmdir(dir)
    end)

    it("knows dates, datetimes with an offset, and lengths in characters", function()
        local f = function(t, len) return { name = "f", type = t, length = len } end
        assert.is_nil(checks.value(f("date"), "2024-02-29"))
        assert.truthy(checks.value(f("date"), "2023-02-29"))
        assert.is_nil(checks.value(f("datetime"), "2024-01-02T03:04:05+01:00"))
        assert.is_nil(checks.value(f("datetime"), "2024-01-02T03:04:05.123Z"))
        assert.truthy(checks.value(f("datetime"), "2024-01-02T03:04:05"))
        assert.truthy(checks.value(f("datetime"), "2024-01-02"))
        assert.is_nil(checks.value(f("string", 3), "äöü"))
        assert.truthy(checks.value(f("string", 3), "abcd"))
        assert.truthy(checks.value(f("integer"), "1.5"))
        assert.is_nil(checks.value(f("float"), "-1.5e3"))
        assert.truthy(checks.value(f("float"), "0x10"))
    end)
end)
