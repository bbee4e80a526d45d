--- marketo.sandbox.describe: what the sandbox tells about itself on Marketo's
-- describe endpoints, in the shapes of Marketo's docs (doc/sandbox.md says
-- which parts are UNCONFIRMED): the lead fields (describe2 and describe), a
-- custom object (and the list of them), the program-member fields, a program,
-- its channel's statuses, and today's API usage. Everything comes from the
-- sandbox's schema (marketo.sandbox.schema): one place for fields and types.
--
-- The result functions take the schema (and the config) and no request, so the
-- embedded sandbox's schema can be known without a server (marketo.schema).
local envelope = require("marketo.sandbox.envelope")

local M = {}

local SEARCH_EPOCH = "2024-01-01T00:00:00Z" -- createdAt/updatedAt of what the sandbox has

local function field_view(f)
    return { name = f.name, displayName = f.display, dataType = f.type, length = f.length,
        updateable = f.updateable, crmManaged = false }
end

local function fields_of(set)
    local out = {}
    for i, f in ipairs(set.list) do out[i] = field_view(f) end
    return out
end

--- GET /rest/v1/leads/describe2.json: one entry, its fields and the lookup fields.
function M.leads2(schema)
    local searchable = {}
    for _, f in ipairs(schema.leads.list) do
        if schema.lookup[f.name] then searchable[#searchable + 1] = { f.name } end
    end
    return { { name = "Lead", searchableFields = searchable, fields = fields_of(schema.leads) } }
end

--- GET /rest/v1/leads/describe.json: the older shape, a field per entry.
function M.leads(schema)
    local out = {}
    for i, f in ipairs(schema.leads.list) do
        out[i] = { id = i, displayName = f.display, dataType = f.type, length = f.length,
            rest = { name = f.name, readOnly = not f.updateable },
            soap = { name = f.name:sub(1, 1):upper() .. f.name:sub(2),
                readOnly = not f.updateable } }
    end
    return out
end

local function object_view(o, with_fields)
    local searchable = { o.dedupe, { "marketoGUID" } }
    local view = { name = o.api_name, displayName = o.api_name, description = o.api_name,
        createdAt = SEARCH_EPOCH, updatedAt = SEARCH_EPOCH, idField = "marketoGUID",
        dedupeFields = o.dedupe, searchableFields = searchable }
    -- no `relationships`: the sandbox's objects have none (cjson writes an empty list {})
    if with_fields then view.fields = fields_of(o.fields) end
    return view
end

--- GET /rest/v1/customobjects/{apiName}/describe.json -> result | nil (1013).
function M.object(schema, api_name)
    local o = schema:object(api_name)
    return o and { object_view(o, true) }
end

--- GET /rest/v1/customobjects.json: every custom object, without fields.
function M.objects(schema)
    local out = {}
    for _, o in pairs(schema.objects) do out[#out + 1] = object_view(o, false) end
    table.sort(out, function(a, b) return a.name < b.name end)
    return out
end

-- The standard program-member fields Marketo's describe lists (a few; the
-- bulk import never writes them).
local MEMBER_FIELDS = {
    { "leadId", "integer" }, { "programId", "integer" }, { "statusName", "string" },
    { "reachedSuccess", "boolean" }, { "membershipDate", "datetime" },
    { "acquiredBy", "boolean" },
}

--- GET /rest/v1/programs/members/describe.json.
function M.members(schema)
    local fields = {}
    for _, f in ipairs(MEMBER_FIELDS) do
        fields[#fields + 1] = { name = f[1], displayName = f[1], dataType = f[2],
            updateable = false, crmManaged = false }
    end
    for _, f in ipairs(fields_of(schema.members)) do fields[#fields + 1] = f end
    return { { name = "API Program Membership",
        description = "Map for API program membership fields",
        createdAt = SEARCH_EPOCH, updatedAt = SEARCH_EPOCH,
        dedupeFields = { "leadId", "programId" },
        searchableFields = { { "leadId" }, { "reachedSuccess" }, { "statusName" } },
        fields = fields } }
end

--- GET /rest/asset/v1/program/{id}.json.
function M.program(schema, id)
    local p = schema:program(id)
    return { { id = p.id, name = p.name, description = "", type = "Default",
        channel = p.channel, workspace = "Default", status = "", url = "",
        createdAt = SEARCH_EPOCH, updatedAt = SEARCH_EPOCH } }
end

--- GET /rest/asset/v1/channels.json?name=NAME -> result | nil (none found).
-- Its statuses are those the sandbox's imports accept (schema.statuses).
function M.channel(schema, conf, name)
    local c = schema:channel(name)
    if not c then return nil end
    local names = schema.statuses(c, conf)
    local statuses = {}
    for i, s in ipairs(names) do
        statuses[i] = { name = s, step = (i - 1) * 10, hidden = false,
            success = i == #names and i > 1 }
    end
    return { { id = 1, name = c.name, applicableProgramType = "program",
        progressionStatuses = statuses, createdAt = SEARCH_EPOCH, updatedAt = SEARCH_EPOCH } }
end

--- GET /rest/v1/stats/usage.json: the calls counted today (Marketo's day).
function M.usage(sb)
    local used, day = sb.limits:used()
    return { { date = day, total = used, users = { { userId = sb.conf.scope, count = used } } } }
end

---------------------------------------------------------------------------
-- The routes (as routes.lua's: method, pattern, handler(sb, req, call, ...))

local function ok(call, result)
    return envelope.ok(call.id, result)
end

local function fail(call, code)
    call.code = tostring(code)
    return envelope.fail(call.id, envelope.error(code))
end

-- Marketo's asset API answers a search that found nothing with success and a
-- warning, no result (UNCONFIRMED: doc/sandbox.md).
local function none(call)
    return envelope.json(200, { requestId = call.id, success = true,
        warnings = { "No assets found for the given search criteria." } })
end

M.ROUTES = {
    { "GET", "^/rest/v1/leads/describe2%.json$",
      function(sb, _, call) return ok(call, M.leads2(sb.schema)) end },
    { "GET", "^/rest/v1/leads/describe%.json$",
      function(sb, _, call) return ok(call, M.leads(sb.schema)) end },
    { "GET", "^/rest/v1/customobjects%.json$",
      function(sb, _, call) return ok(call, M.objects(sb.schema)) end },
    { "GET", "^/rest/v1/customobjects/([^/]+)/describe%.json$", function(sb, _, call, name)
        local result = M.object(sb.schema, name)
        if not result then return fail(call, 1013) end
        return ok(call, result)
    end },
    { "GET", "^/rest/v1/programs/members/describe%.json$",
      function(sb, _, call) return ok(call, M.members(sb.schema)) end },
    { "GET", "^/rest/asset/v1/program/(%d+)%.json$", function(sb, _, call, id)
        return ok(call, M.program(sb.schema, math.tointeger(tonumber(id))))
    end },
    { "GET", "^/rest/asset/v1/channels%.json$", function(sb, _, call)
        local result = call.query.name and M.channel(sb.schema, sb.conf, call.query.name)
        if not result then return none(call) end
        return ok(call, result)
    end },
    { "GET", "^/rest/v1/stats/usage%.json$", function(sb, _, call)
        if not sb.conf.usage_access then return fail(call, 603) end
        return ok(call, M.usage(sb))
    end },
}

--- POST /__sandbox/usage {"total": N}: today's count of calls, so a spec can
-- put the instance near its daily quota.
M.INSPECT = {
    { "POST", "^/usage$", function(sb, req)
        local body = envelope.decode(req.body or "")
        local n = type(body) == "table" and math.tointeger(body.total)
        if not n or n < 0 then
            return envelope.json(400, { error = "expected {\"total\": N}, N a whole number >= 0" })
        end
        sb.limits:set_used(n)
        local used, day = sb.limits:used()
        return envelope.json(200, { date = day, total = used })
    end },
    { "GET", "^/usage$", function(sb)
        local used, day = sb.limits:used()
        return envelope.json(200, { date = day, total = used })
    end },
    -- POST /__sandbox/day {"next": true}: the sandbox's clock moved on to its
    -- next midnight US Central, so its day turns (a new quota) as Marketo's does.
    { "POST", "^/day$", function(sb, req)
        local body = envelope.decode(req.body or "")
        if type(body) ~= "table" or body.next ~= true or next(body, next(body)) ~= nil then
            return envelope.json(400, { error = "expected {\"next\": true}" })
        end
        local seconds = sb.limits:until_next_day()
        sb.time:advance(seconds)
        local used, day = sb.limits:used()
        return envelope.json(200, { date = day, total = used, advanced = seconds })
    end },
}

return M
