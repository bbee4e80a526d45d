-- The sandbox's describe endpoints (doc/sandbox.md, "Describe"): the shapes of
-- Marketo's docs, from the sandbox's own schema, through a real child.
local sandbox = require("spec.support.sandbox")

local SCHEMA = os.tmpname()
do
    local f = assert(io.open(SCHEMA, "wb"))
    f:write([[{ "leadFields": [ { "name": "favColor", "type": "string", "length": 40 } ],
  "programMemberFields": [ { "name": "seat", "type": "integer" } ],
  "channels": [ { "name": "Webinar", "statuses": ["Not in Program", "Registered", "Attended"] } ],
  "programs": [ { "id": 2002, "name": "Spring webinar", "channel": "Webinar" } ] }]])
    f:close()
end

local BASE = { program_statuses = {}, daily_quota = 50000 }
local fx = sandbox.fixture(BASE)
local sb
setup(function()
    fx.sb = sandbox.start({ schema = SCHEMA })
end)
teardown(function() fx.stop(); os.remove(SCHEMA) end)
before_each(function() sb = fx.fresh() end)

local function result(path)
    local status, doc = sb.api_get(path)
    assert.equal(200, status)
    assert.is_true(doc.success, path)
    return doc.result, doc
end

local function by_name(fields)
    local out = {}
    for _, f in ipairs(fields) do out[f.name] = f end
    return out
end

describe("sandbox describe", function()
    it("serves the lead fields as describe2: types, lengths, updateable, lookups", function()
        local r = result("/rest/v1/leads/describe2.json")
        assert.equal(1, #r)
        assert.equal("Lead", r[1].name)
        local f = by_name(r[1].fields)
        assert.same({ name = "email", displayName = "Email Address", dataType = "email",
            length = 255, updateable = true, crmManaged = false }, f.email)
        assert.equal("date", f.dateOfBirth.dataType)
        assert.equal(40, f.favColor.length)
        assert.is_false(f.createdAt.updateable)
        local searchable = {}
        for _, s in ipairs(r[1].searchableFields) do searchable[s[1]] = true end
        assert.is_true(searchable.email and searchable.id and searchable.favColor)
        assert.is_nil(searchable.firstName)
    end)

    it("serves the older describe with rest.name and readOnly", function()
        local r = result("/rest/v1/leads/describe.json")
        local found
        for _, f in ipairs(r) do if f.rest.name == "updatedAt" then found = f end end
        assert.equal("datetime", found.dataType)
        assert.is_true(found.rest.readOnly)
    end)

    it("describes a custom object with idField and dedupeFields; 1013 for none", function()
        local r = result("/rest/v1/customobjects/car_c/describe.json")
        assert.equal("car_c", r[1].name)
        assert.equal("marketoGUID", r[1].idField)
        assert.same({ "vin" }, r[1].dedupeFields)
        local f = by_name(r[1].fields)
        assert.equal("integer", f.year.dataType)
        assert.is_false(f.marketoGUID.updateable)
        local list = result("/rest/v1/customobjects.json")
        assert.equal("car_c", list[1].name)
        local _, doc = sb.api_get("/rest/v1/customobjects/boat_c/describe.json")
        assert.is_false(doc.success)
        assert.equal("1013", doc.errors[1].code)
    end)

    it("describes program members, a program, its channel and statuses", function()
        local m = by_name(result("/rest/v1/programs/members/describe.json")[1].fields)
        assert.equal("integer", m.seat.dataType)
        assert.is_true(m.seat.updateable)
        assert.is_false(m.statusName.updateable)
        local p = result("/rest/asset/v1/program/2002.json")
        assert.equal("Webinar", p[1].channel)
        local c = result("/rest/asset/v1/channels.json?name=Webinar")
        local names = {}
        for i, s in ipairs(c[1].progressionStatuses) do names[i] = s.name end
        assert.same({ "Not in Program", "Registered", "Attended" }, names)
        local _, none = sb.api_get("/rest/asset/v1/channels.json?name=Nope")
        assert.is_true(none.success)
        assert.is_nil(none.result)
        -- the statuses the sandbox's imports take, when set, are the channel's
        sb.control{ program_statuses = { "Member", "Gold" } }
        c = result("/rest/asset/v1/channels.json?name=Webinar")
        assert.equal("Gold", c[1].progressionStatuses[2].name)
    end)

    it("imports members with the statuses their program's channel lists, and no other",
        function()
            local function import(program, status)
                local _, res = sb.upload{ path = ("/bulk/v1/program/%d/members/import.json")
                    :format(program), fields = { { "format", "csv" },
                    { "programMemberStatus", status } }, data = "email\na@example.com\n" }
                return res.success or res.errors[1].code
            end
            local function listed(channel)
                local names = {}
                for i, st in ipairs(result("/rest/asset/v1/channels.json?name=" .. channel)[1]
                    .progressionStatuses) do names[i] = st.name:lower() end
                return table.concat(names, ",")
            end
            -- program_statuses unset: each channel's own
            assert.matches(",attended", listed("Webinar"), 1, true)
            assert.is_true(import(2002, "attended"))
            assert.equal("1025", import(2002, "Member")) -- not a Webinar status
            assert.matches(",member,", listed("Sandbox%20Channel"), 1, true)
            assert.is_true(import(3003, "Member")) -- a program on the default channel
            assert.equal("1025", import(3003, "Gold"))
            -- set: what every channel lists and every import takes
            sb.control{ program_statuses = { "Member", "Gold" } }
            assert.equal("member,gold", listed("Webinar"))
            assert.is_true(import(2002, "Gold"))
            assert.equal("1025", import(2002, "Attended"))
        end)

    it("counts today's calls in usage, settable through /__sandbox/usage", function()
        local body, status = sb.post("/__sandbox/usage", '{"total": 49990}')
        assert.equal(200, status, body)
        local r = result("/rest/v1/stats/usage.json")
        assert.equal(49991, r[1].total) -- the usage call itself counts
        assert.truthy(r[1].date:match("^%d%d%d%d%-%d%d%-%d%d$"))
        local _, bad = sb.post("/__sandbox/usage", '{"total": -1}')
        assert.equal(400, bad)
        sb.control{ daily_quota = 49992 }
        result("/rest/v1/stats/usage.json")
        local _, doc = sb.api_get("/rest/v1/stats/usage.json")
        assert.equal("607", doc.errors[1].code)
    end)
end)
