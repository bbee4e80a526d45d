-- Jobs of all three object types against the sandbox: create -> wait -> Complete,
-- failures and warnings parsed and tied back to the right source lines; Failed jobs
-- and timeouts end the wait. Ends with the secret scan of this file's output.
local client = require("marketo.client")
local results = require("marketo.results")
local h = require("spec.support.client")
local fails = require("spec.support.fails")

-- Line 1 is the header. Line 3 and line 8 are the same failing row (leadScore is an
-- integer field), so is line 9; line 5 has an invalid email (a warning); the row on
-- line 6 spans two lines.
local LEADS = table.concat({
    "email,firstName,leadScore",
    "ann@example.org,Ann,10",
    "bob@example.org,Bob,lots",
    "cy@example.org,Cy,3",
    "not-an-email,Di,4",
    "ed@example.org,\"Ed\nward\",5",
    "bob@example.org,Bob,lots",
    "fay@example.org,Fay,many",
}, "\n") .. "\n"

local CARS = table.concat({
    "vin,make,model,year",
    "V1,bmw,2002,1999",
    "V2,audi,a4,old",
    ",fiat,uno,1990",
    "V4,vw,golf,2001",
}, "\n") .. "\n"

local MEMBERS = table.concat({
    "email,firstName,leadScore",
    "pm1@example.org,Pam,1",
    "pm2@example.org,Pat,x",
    "bad-address,Poe,2",
}, "\n") .. "\n"

local function lines_of(rows)
    local out = {}
    for _, r in ipairs(rows) do out[#out + 1] = r.line end
    table.sort(out)
    return out
end

describe("marketo.job (sandbox)", function()
    local sb, cap, files = nil, nil, {}

    local function new_client()
        return cap.watch(assert(client.new{ base_url = sb.base_url, client_id = sb.client_id,
            client_secret = sb.client_secret, log = cap.log, retry = h.fast_retry(),
            timeout = 10 }))
    end

    local function file(text)
        local p = h.file(text)
        files[#files + 1] = p
        return p
    end

    setup(function()
        sb = h.sandbox()
        cap = h.capture()
    end)

    teardown(function()
        for _, p in ipairs(files) do os.remove(p) end
        if sb then sb.stop() end
    end)

    before_each(function()
        h.post(sb, "/reset")
        sb.control{ speed = 0, job_fail_rate = 0, error_rate = 0, drop_rate = 0,
            empty_files = "404", token_ttl = 2 }
    end)

    after_each(function()
        for _, l in ipairs(h.sent(sb)) do cap.lines[#cap.lines + 1] = l end
    end)

    it("leads: create, wait, Complete; failures and warnings tied to source lines", function()
        local c = new_client()
        local path = file(LEADS)
        local job = assert(c:import_leads{ path = path, lookup_field = "email", format = "csv" })
        assert.is_not_nil(job.id)
        local info = assert(job:wait(h.fast_wait))
        assert.equal("Complete", info.status)
        assert.equal(3, info.failed)
        assert.equal(1, info.warned)
        local part = assert(results.read_part{ path = path })
        local failures = assert(job:failures(part))
        assert.equal(3, #failures)
        assert.same({ 3, 8, 9 }, lines_of(failures))
        for _, r in ipairs(failures) do
            assert.equal("Invalid data type in field Lead Score", r.reason)
        end
        local warnings = assert(job:warnings(part))
        assert.equal(1, #warnings)
        assert.equal(5, warnings[1].line)
        assert.equal("Invalid email address", warnings[1].reason)
        assert.equal("not-an-email", warnings[1].fields.email)
    end)

    it("leads: a part (a byte range after a header prefix) ties back to source lines", function()
        local c = new_client()
        local path = file(LEADS)
        local header = "email,firstName,leadScore\n"
        -- Lines 5 to 9 of the source: skip the header and lines 2-4.
        local skip = #header + #"ann@example.org,Ann,10\nbob@example.org,Bob,lots\n"
            + #"cy@example.org,Cy,3\n"
        local range = { path = path, offset = skip, length = #LEADS - skip, prefix = header }
        local job = assert(c:import_leads{ path = path, offset = range.offset,
            length = range.length, prefix = header })
        local info = assert(job:wait(h.fast_wait))
        assert.equal(2, info.failed)
        range.first_line = 5
        local part = assert(results.read_part(range))
        local failures = results.tie(assert(job:failures()), part)
        assert.same({ 8, 9 }, lines_of(failures))
        local warned = assert(results.tie(assert(job:warnings()), part)[1])
        assert.equal(5, warned.line)
    end)

    it("leads: duplicates of which only some failed are marked ambiguous", function()
        local part = { header = { "email", "firstName", "leadScore" }, rows = {
            { line = 2, values = { "bob@example.org", "Bob", "lots" } },
            { line = 9, values = { "bob@example.org", "Bob", "lots" } },
        } }
        local rows = results.parse("email,firstName,leadScore,Import Failure Reason\n"
            .. "bob@example.org,Bob,lots,Invalid\n", { reason = "Import Failure Reason" })
        results.tie(rows, part)
        assert.equal(2, rows[1].line)
        assert.is_true(rows[1].ambiguous)
        assert.same({ 2, 9 }, rows[1].candidates)
    end)

    it("custom objects: own paths and counters, failures tied back", function()
        local c = new_client()
        local path = file(CARS)
        local job = assert(c:import_custom_objects{ api_name = "car_c", path = path })
        local info = assert(job:wait(h.fast_wait))
        assert.equal("Complete", info.status)
        assert.equal(info.raw.numOfObjectsProcessed, info.processed)
        assert.equal("car_c", info.raw.objectApiName)
        assert.equal(2, info.failed)
        local part = assert(results.read_part{ path = path })
        local failures = results.tie(assert(job:failures()), part)
        assert.same({ 3, 4 }, lines_of(failures))
        local by_line = {}
        for _, r in ipairs(failures) do by_line[r.line] = r.reason end
        assert.equal("missing.dedupe.fields", by_line[4])
        local warnings = assert(job:warnings())
        assert.equal(0, #warnings)
        assert.is_true(warnings.none)
        local log = h.inspect(sb, "/log")
        local paths = {}
        for _, e in ipairs(log) do paths[tostring(e.path)] = true end
        assert.is_true(paths["/bulk/v1/customobjects/car_c/import.json"])
        assert.is_true(paths[("/bulk/v1/customobjects/car_c/import/%s/status.json"):format(job.id)])
    end)

    it("program members: program_id and program_member_status; failures and warnings", function()
        local c = new_client()
        local path = file(MEMBERS)
        local job = assert(c:import_program_members{ program_id = 1001,
            program_member_status = "Member", path = path })
        local info = assert(job:wait(h.fast_wait))
        assert.equal("Complete", info.status)
        local part = assert(results.read_part{ path = path })
        local failures = results.tie(assert(job:failures()), part)
        assert.same({ 3 }, lines_of(failures))
        local warnings = results.tie(assert(job:warnings()), part)
        assert.same({ 4 }, lines_of(warnings))
    end)

    it("takes an empty 200 as no failures file", function()
        sb.control{ empty_files = "empty" }
        local c = new_client()
        local job = assert(c:import_leads{ path = file("email,firstName\nz@example.org,Zed\n") })
        assert(job:wait(h.fast_wait))
        local rows = assert(job:failures())
        assert.equal(0, #rows)
        assert.is_true(rows.none)
    end)

    it("ends the wait on a Failed job with its message", function()
        sb.control{ job_fail_rate = 1 }
        local c = new_client()
        local job = assert(c:import_leads{ path = file(LEADS) })
        local msg, err = fails("JOB_FAILED", job:wait(h.fast_wait))
        assert.equal("Failed", err.info.status)
        assert.is_string(err.message)
        assert.matches(err.message, msg, 1, true)
    end)

    it("ends the wait at its timeout", function()
        sb.control{ speed = 1 }
        local c = new_client()
        local job = assert(c:import_leads{ path = file(LEADS) })
        fails("TIMEOUT", job:wait{ first = 0.05, max_interval = 0.1, timeout = 0.3 })
    end)

    it("polls quickly at first, then backs off", function()
        sb.control{ speed = 4 }
        local c = new_client()
        local job = assert(c:import_leads{ path = file(LEADS) })
        local times, clock = {}, require("marketo.core").monotonic
        assert(job:wait{ first = 0.05, factor = 2, max_interval = 0.4, timeout = 10,
            on_status = function() times[#times + 1] = clock() end })
        assert.is_true(#times >= 3)
        assert.is_true(times[3] - times[2] > times[2] - times[1])
    end)

    it("runs jobs of all three types at once in a marketo.loop, on one token", function()
        sb.control{ speed = 20 }
        h.post(sb, "/expire-token") -- start from no live token: one fetch for all tasks
        local Loop = require("marketo.loop")
        local c = new_client()
        local loop = Loop.new()
        local done = {}
        local function run(kind, options)
            loop:spawn(function()
                local job = assert(c:import(kind, options))
                done[kind] = assert(job:wait(h.fast_wait))
            end)
        end
        run("leads", { path = file(LEADS) })
        run("custom_objects", { api_name = "car_c", path = file(CARS) })
        run("program_members", { program_id = 1002, program_member_status = "Member",
            path = file(MEMBERS) })
        loop:run()
        assert.equal("Complete", done.leads.status)
        assert.equal("Complete", done.custom_objects.status)
        assert.equal("Complete", done.program_members.status)
        assert.equal(1, c:identity_calls())
        -- Run one after the other, a job would be polled before the next upload;
        -- run at once, the three uploads come first.
        local bulk = {}
        for _, e in ipairs(h.inspect(sb, "/log")) do
            if not tostring(e.path):find("^/identity/") then bulk[#bulk + 1] = e.method end
        end
        assert.same({ "POST", "POST", "POST" }, { bulk[1], bulk[2], bulk[3] })
    end)

    it("rejects bad options", function()
        local c = new_client()
        assert.has_error(function() c:import_custom_objects{ path = "x" } end)
        assert.has_error(function() c:import_program_members{ program_id = 1, path = "x" } end)
        assert.has_error(function() c:import_leads{ path = "x", format = "xls" } end)
        assert.has_error(function() c:import_program_members{ program_id = "abc", path = "x",
            program_member_status = "Member" } end)
    end)

    it("has one spelling for a parameter, and names it when given Marketo's", function()
        local c = new_client()
        assert.has_error(function() c:import_leads{ path = "x", lookupField = "email" } end,
            "bad argument #1 to 'import' (option 'lookupField' is spelled 'lookup_field')")
        assert.has_error(function() c:job("custom_objects", 1, { apiName = "car_c" }) end,
            "bad argument #3 to 'job' (option 'apiName' is spelled 'api_name')")
    end)

    it("nothing logged, returned or sent holds the secret or a token", function()
        assert.is_true(#cap.lines > 20)
        local secrets = cap.secrets({ sb.client_secret })
        assert.is_true(#secrets >= 2)
        assert.same({}, h.scan(cap.lines, secrets))
    end)
end)
