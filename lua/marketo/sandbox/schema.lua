--- marketo.sandbox.schema: the fields the sandbox knows, per object type.
-- Leads get Marketo's standard fields (API name, type, display name - the
-- display name is what failure reasons quote, as the BPMI page shows); custom objects and
-- extra fields come from options or a JSON schema file:
--   { "leadFields": [ { "name": "favColor", "type": "string", "displayName": "Fav" } ],
--     "programMemberFields": [ ... ],
--     "customObjects": [ { "apiName": "car_c", "dedupeFields": ["vin"],
--                          "fields": [ { "name": "vin", "type": "string" } ] } ],
--     "channels": [ { "name": "Webinar", "statuses": ["Invited", "Attended"] } ],
--     "programs": [ { "id": 1001, "name": "Spring", "channel": "Webinar" } ] }
-- A field may also say "length" and "updateable" (what describe serves).
local json = require("marketo.json")

local M = {}
M.__index = M

-- name, type, display name
local LEAD_FIELDS = {
    { "id", "integer", "Id", updateable = false }, { "email", "email", "Email Address" },
    { "firstName", "string", "First Name" }, { "lastName", "string", "Last Name" },
    { "middleName", "string", "Middle Name" }, { "salutation", "string", "Salutation" },
    { "title", "string", "Job Title" }, { "company", "string", "Company Name" },
    { "department", "string", "Department" }, { "phone", "phone", "Phone Number" },
    { "mobilePhone", "phone", "Mobile Phone Number" }, { "fax", "phone", "Fax Number" },
    { "website", "url", "Website" }, { "address", "text", "Address" },
    { "city", "string", "City" }, { "state", "string", "State" },
    { "postalCode", "string", "Postal Code" }, { "country", "string", "Country" },
    { "leadSource", "string", "Lead Source" }, { "leadStatus", "string", "Lead Status" },
    { "industry", "string", "Industry" }, { "annualRevenue", "currency", "Annual Revenue" },
    { "numberOfEmployees", "integer", "Num Employees" },
    { "leadScore", "integer", "Lead Score" }, { "rating", "string", "Lead Rating" },
    { "dateOfBirth", "date", "Date of Birth" }, { "unsubscribed", "boolean", "Unsubscribed" },
    { "unsubscribedReason", "text", "Unsubscribed Reason" },
    { "doNotCall", "boolean", "Do Not Call" },
    { "doNotCallReason", "string", "Do Not Call Reason" },
    { "marketingSuspended", "boolean", "Marketing Suspended" },
    { "leadRole", "string", "Role" }, { "personType", "string", "Person Type" },
    { "externalCompanyId", "string", "External Company Id" },
    { "externalSalesPersonId", "string", "External Sales Person Id" },
    { "cookies", "string", "Cookies" }, { "twitterId", "string", "Twitter Id" },
    { "facebookId", "string", "Facebook Id" }, { "linkedInId", "string", "LinkedIn Id" },
    { "sfdcAccountId", "string", "SFDC Account Id" },
    { "sfdcContactId", "string", "SFDC Contact Id" },
    { "sfdcLeadId", "string", "SFDC Lead Id" },
    { "sfdcLeadOwnerId", "string", "SFDC Lead Owner Id" },
    { "sfdcOpptyId", "string", "SFDC Oppty Id" },
    { "createdAt", "datetime", "Created At", updateable = false },
    { "updatedAt", "datetime", "Updated At", updateable = false },
}

-- Marketo's lengths for the types that have one (UNCONFIRMED for text: doc/sandbox.md).
local LENGTHS = { string = 255, email = 255, phone = 255, url = 255, text = 65535 }

-- The channel of a program the schema does not name: its statuses, in step order
-- (the first is the one a lead has before it joins; UNCONFIRMED: doc/sandbox.md).
local DEFAULT_CHANNEL = { name = "Sandbox Channel", statuses = {
    "Not in Program", "Member", "On List", "Invited", "Registered", "Attended" } }

-- lookupField values Swagger lists, besides custom string/email/integer fields.
local LOOKUP_FIELDS = {
    "id", "cookies", "email", "twitterId", "facebookId", "linkedInId", "sfdcAccountId",
    "sfdcContactId", "sfdcLeadId", "sfdcLeadOwnerId", "sfdcOpptyId",
}

-- The custom object of the docs' walkthrough (the BCOI page).
local DEFAULT_OBJECTS = {
    { apiName = "car_c", dedupeFields = { "vin" }, fields = {
        { name = "vin", type = "string" }, { name = "make", type = "string" },
        { name = "model", type = "string" }, { name = "color", type = "string" },
        { name = "year", type = "integer" }, { name = "customerId", type = "integer" },
    } },
}

-- The fields every custom object has (its idField first).
local OBJECT_FIELDS = {
    { "marketoGUID", "string", length = 36, updateable = false },
    { "createdAt", "datetime", updateable = false },
    { "updatedAt", "datetime", updateable = false },
}

local TYPES = {
    string = true, email = true, integer = true, float = true, currency = true,
    boolean = true, date = true, datetime = true, phone = true, url = true, text = true,
}

local function field(name, ftype, display, custom, more)
    if not TYPES[ftype] then error(("unknown field type '%s' for '%s'"):format(ftype, name), 0) end
    more = more or {}
    return { name = name, type = ftype, display = display or name, custom = custom,
        length = more.length or LENGTHS[ftype], updateable = more.updateable ~= false }
end

-- A set of fields that can be found by name, exactly or case-insensitively.
local function field_set()
    return { list = {}, exact = {}, lower = {} }
end

local function add(set, f)
    if not set.exact[f.name] then set.list[#set.list + 1] = f end
    set.exact[f.name] = f
    set.lower[f.name:lower()] = f
end

function M.new()
    local self = setmetatable({ leads = field_set(), members = field_set(), objects = {} }, M)
    for _, f in ipairs(LEAD_FIELDS) do add(self.leads, field(f[1], f[2], f[3], nil, f)) end
    self.channels, self.programs = { [DEFAULT_CHANNEL.name:lower()] = DEFAULT_CHANNEL }, {}
    self.lookup = {}
    for _, name in ipairs(LOOKUP_FIELDS) do self.lookup[name] = true end
    for _, o in ipairs(DEFAULT_OBJECTS) do self:add_object(o) end
    return self
end

function M:add_object(o)
    if type(o.apiName) ~= "string" or type(o.dedupeFields) ~= "table" then
        error("a custom object needs apiName and dedupeFields", 0)
    end
    local set = field_set()
    for _, f in ipairs(o.fields or {}) do
        add(set, field(f.name, f.type or "string", f.displayName, nil, f))
    end
    for _, name in ipairs(o.dedupeFields) do
        if not set.exact[name] then add(set, field(name, "string")) end
    end
    -- what Marketo keeps of every record, never written by an import
    for _, f in ipairs(OBJECT_FIELDS) do
        if not set.exact[f[1]] then add(set, field(f[1], f[2], nil, nil, f)) end
    end
    self.objects[o.apiName:lower()] =
        { api_name = o.apiName, dedupe = o.dedupeFields, fields = set }
end

--- Adds what a decoded schema table declares; raises with a message on a bad one.
function M:extend(t)
    for _, f in ipairs(t.leadFields or {}) do
        local fd = field(f.name, f.type or "string", f.displayName, true, f)
        add(self.leads, fd)
        if fd.type == "string" or fd.type == "email" or fd.type == "integer" then
            self.lookup[fd.name] = true
        end
    end
    for _, f in ipairs(t.programMemberFields or {}) do
        add(self.members, field(f.name, f.type or "string", f.displayName, true, f))
    end
    for _, o in ipairs(t.customObjects or {}) do self:add_object(o) end
    for _, c in ipairs(t.channels or {}) do
        if type(c.name) ~= "string" or type(c.statuses) ~= "table" then
            error("a channel needs name and statuses", 0)
        end
        self.channels[c.name:lower()] = { name = c.name, statuses = c.statuses }
    end
    for _, p in ipairs(t.programs or {}) do
        local id = (math.tointeger or tonumber)(p.id) -- (LuaJIT too, through marketo.schema)
        if not id or not self.channels[tostring(p.channel):lower()] then
            error("a program needs an id and a channel the schema has", 0)
        end
        self.programs[id] = { id = id, name = p.name or ("Program " .. id), channel = p.channel }
    end
end

--- The program of this id: the schema's, else one on the default channel.
function M:program(id)
    return self.programs[id] or { id = id, name = "Program " .. id, channel = DEFAULT_CHANNEL.name }
end

--- The channel named (case-insensitively) `name`, or nil.
function M:channel(name)
    return self.channels[name:lower()]
end

--- The statuses of channel c (in step order), as its describe lists them and
-- the imports of its programs' members accept them: the `program_statuses`
-- option of conf when it is set, else the channel's.
function M.statuses(c, conf)
    local set = conf and conf.program_statuses
    if set and #set > 0 then return set end
    return c.statuses
end

--- The statuses a member of program `id` can be given (see statuses()).
function M:program_statuses(id, conf)
    return M.statuses(self:channel(self:program(id).channel), conf)
end

--- Loads a JSON schema file into this schema. Returns true or nil, message.
function M:load(path)
    local t, msg = json.decode_file(path)
    if not t then return nil, msg end
    local ok, e = pcall(self.extend, self, t)
    if not ok then return nil, ("%s: %s"):format(path, e) end
    return true
end

--- The custom object named (case-insensitively) `api_name`, or nil.
function M:object(api_name)
    return self.objects[api_name:lower()]
end

--- Finds a header name in a field set, honouring the header_case option.
function M.find(set, name, case)
    if case == "sensitive" then return set.exact[name] end
    return set.lower[name:lower()]
end

return M
