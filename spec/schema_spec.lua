-- marketo.schema and client:describe against the real sandbox: the three kinds
-- parsed into one shape, the cache (0600, a day, --refresh, corrupt files asked
-- again), a failing describe named, and today's usage.
local sandbox = require("spec.support.sandbox")
local schema = require("marketo.schema")
local files = require("spec.support.files")

local BASE = { error_rate = 0, error_codes = { "502", "604", "608", "611", "615" },
    program_statuses = {} }
local fx = sandbox.fixture(BASE)
setup(fx.start)
teardown(fx.stop)

local sb, client, dir

before_each(function()
    sb = fx.fresh()
    if dir then files.rmdir(dir) end
    dir = files.tmpdir()
    client = assert(require("marketo.client").new{ base_url = sb.base_url,
        client_id = sb.client_id, client_secret = sb.client_secret })
end)

local function describe_calls()
    local n = 0
    for _, e in ipairs(sb.inspect("log")) do
        if e.path:find("describe", 1, true) then n = n + 1 end
    end
    return n
end

describe("marketo.schema", function()
    it("describes leads: types, lengths, updateable, the lookup fields", function()
        local s, how = client:describe("leads", nil, { cache_dir = dir })
        assert.equal("fetched", how)
        assert.equal("date", s:field("dateOfBirth").type)
        assert.equal(255, s:field("email").length)
        assert.is_false(s:field("updatedAt").updateable)
        assert.is_true(s.lookup.email and s.lookup.id)
        assert.is_nil(s.lookup.firstName)
        assert.equal("email", s:near("Email"))
        assert.equal("email", s:near("emial"))
        assert.equal("firstName", s:near("first_name"))
        assert.is_nil(s:near("shoeSize"))
        assert.equal(sb.base_url:match("//(.*)$"), s.instance)
    end)

    it("caches a schema a day in a 0600 file; refresh and age ask again", function()
        assert(client:describe("leads", nil, { cache_dir = dir }))
        local path = schema.cache_path(dir, schema.instance(sb.base_url), "leads")
        local mode = io.popen("stat -c %a " .. files.q(path)):read("l")
        assert.equal("600", mode)
        local _, how = client:describe("leads", nil, { cache_dir = dir })
        assert.equal("cache", how)
        assert.equal(1, describe_calls())
        _, how = client:describe("leads", nil, { cache_dir = dir, refresh = true })
        assert.equal("fetched", how)
        _, how = client:describe("leads", nil, { cache_dir = dir, now = os.time() + 86401 })
        assert.equal("fetched", how)
        assert.equal(3, describe_calls())
    end)

    it("never trusts a corrupt cache file: it is asked again", function()
        local path = schema.cache_path(dir, schema.instance(sb.base_url), "leads")
        for _, text in ipairs({ "{not json", '{"version":1}', "" }) do
            files.write(path, text)
            local s, how = client:describe("leads", nil, { cache_dir = dir })
            assert.equal("fetched", how)
            assert.equal("email", s:field("email").type)
        end
    end)

    it("describes a custom object with its dedupe fields; an unknown one lists them", function()
        local s = assert(client:describe("custom_objects", { api_name = "car_c" },
            { cache_dir = dir }))
        assert.same({ "vin" }, s.dedupe)
        assert.equal("marketoGUID", s.id_field)
        assert.equal("integer", s:field("year").type)
        local none, msg, code = client:describe("custom_objects", { api_name = "boat_c" },
            { cache_dir = dir })
        assert.is_nil(none)
        assert.equal("NO_OBJECT", code)
        assert.matches("no custom object 'boat_c' on this instance %(it has: car_c%)", msg)
    end)

    it("describes program members: lead and member fields, the channel's statuses", function()
        sb.control{ program_statuses = { "Member", "On List" } }
        local s = assert(client:describe("program_members", { program_id = 1001 },
            { cache_dir = dir }))
        assert.same({ "Member", "On List" }, s.statuses)
        assert.equal("email", s:field("email").type)
        assert.is_false(s:field("statusName").updateable)
        assert.equal(1001, s.program.id)
    end)

    it("names the describe call that failed", function()
        sb.control{ error_rate = 1, error_codes = { "603" } }
        local s, msg, code = client:describe("leads", nil, { cache_dir = dir })
        assert.is_nil(s)
        assert.equal("DESCRIBE", code)
        assert.matches("GET /rest/v1/leads/describe2.json failed", msg, 1, true)
        assert.matches("603", msg, 1, true)
    end)

    it("reads today's usage", function()
        sb.post("/__sandbox/usage", '{"total": 1234}')
        local u = assert(client:usage())
        assert.equal(1235, u.total)
    end)
end)
