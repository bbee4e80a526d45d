-- `marketo-bulk fields` for each kind, against a real sandbox child through
-- the real runner: the instance's describe, cached, and an unknown object.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")

describe("marketo-bulk fields", function()
    local sb, cache
    setup(function() sb = sandbox.start({ program_statuses = { "Member", "Attended" } }) end)
    teardown(function() sb.stop() end)
    before_each(function()
        sb.reset()
        cache = cli.tmpdir()
    end)
    after_each(function() cli.rmdir(cache) end)

    local function fields(...)
        return cli.run({ "fields", ... }, { env = cli.env_cached(sb, cache) })
    end

    it("lists the lead fields with type, length, updateable and lookup; cached", function()
        local r = fields("leads")
        assert.equal(0, r.status, r.err)
        local host = sb.base_url:match("//(.*)$")
        assert.matches("leads on " .. host:gsub("%p", "%%%0") .. ": %d+ fields", r.out)
        assert.matches("\nemail +Email Address +email +255 +yes +yes\n", r.out)
        assert.matches("\nupdatedAt +Updated At +datetime +no\n", r.out)
        assert.matches("\nfirstName +First Name +string +255 +yes\n", r.out)
        assert.equal(1, cli.calls(sb, "describe"))
        assert.equal(0, fields("leads").status)
        assert.equal(1, cli.calls(sb, "describe")) -- the cache answered
        assert.equal(0, fields("leads", "--refresh-schema").status)
        assert.equal(2, cli.calls(sb, "describe"))
    end)

    it("lists a custom object's fields with its dedupe fields, as JSON too", function()
        local r = fields("custom_objects", "car_c", "--json")
        assert.equal(0, r.status, r.err)
        local doc = require("marketo.json").decode(r.out)
        assert.same({ "vin" }, doc.dedupeFields)
        local by = {}
        for _, f in ipairs(doc.fields) do by[f.name] = f end
        assert.is_true(by.vin.key)
        assert.equal("integer", by.year.dataType)
        assert.is_false(by.marketoGUID.updateable)
    end)

    it("says an unknown custom object is unknown and lists the instance's", function()
        local r = fields("custom_objects", "boat_c")
        assert.equal(1, r.status)
        assert.matches("no custom object 'boat_c' on this instance %(it has: car_c%)", r.err)
    end)

    it("lists program members' fields and the program's statuses", function()
        local r = fields("program_members", "1001")
        assert.equal(0, r.status, r.err)
        assert.matches("\nstatusName +statusName +string +no", r.out)
        assert.matches("statuses of program 1001 %(Program 1001, channel Sandbox Channel%): "
            .. "Member, Attended\n", r.out)
    end)

    it("stops on a describe that fails, naming the call and --no-schema", function()
        sb.control{ error_rate = 1, error_codes = { "603" } }
        local r = fields("leads")
        sb.control{ error_rate = 0 }
        assert.equal(1, r.status)
        assert.matches("GET /rest/v1/leads/describe2.json failed: .*603", r.err)
        assert.matches("--no-schema skips every check", r.err, 1, true)
    end)

    it("with no credentials, lists the embedded sandbox's fields without starting it", function()
        local r = cli.run({ "fields", "leads" })
        assert.equal(0, r.status, r.err)
        assert.matches("leads on embedded sandbox", r.out, 1, true)
        assert.equal("", r.err)
    end)
end)
