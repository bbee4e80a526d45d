--- marketo.objects: the object kinds Marketo's bulk import takes, in one place.
-- Everything that differs between leads, custom objects and program members
-- is here, as data: the one name a kind has (in scripts, the client and on the
-- command line alike), its parameters under our names and Marketo's, where
-- each goes (a path segment or the query), Marketo's paths and the counter
-- that reports progress, and how Marketo dedupes its rows.
--
-- The rule for names: Lua and the command line say `custom_objects`,
-- `lookup_field`, `program_id` (snake_case); Marketo's own spelling
-- (`lookupField`, `programId`) is only ever on the wire.
--
--   local objects = require("marketo.objects")
--   local kind = objects.get("program_members")
--   kind.params         -> ordered list of { name, marketo, type, where, required,
--                          flag, placeholder, help }
--   kind.param.program_id -> the same entry, by name
--   objects.path(kind, "status", values, encode) -> "/bulk/v1/..."
--   kind.paths.describe (and the others under /rest/) -> what marketo.schema asks
--   objects.NAMES       -> "leads, custom_objects or program_members"
--   objects.key(kind, params[, dedupe]) -> { fields = { "email" }, normalize = fn } | nil
local options = require("marketo.options")

local M = {}

-- type: "string", or "id" (a positive whole number: Marketo's ids).
-- where: "path" (in the URL; the command line takes it as a word after the
-- kind) or "query" (a query parameter; the command line takes a flag).
local LIST = {
    {
        name = "leads",
        label = "leads",
        params = {
            { name = "lookup_field", marketo = "lookupField", type = "string", where = "query",
                flag = "lookup-field", placeholder = "FIELD",
                help = "the dedupe field (default email; id = update only)" },
            { name = "list_id", marketo = "listId", type = "id", where = "query",
                flag = "list-id", placeholder = "N",
                help = "also add the leads to this static list" },
            { name = "partition_name", marketo = "partitionName", type = "string",
                where = "query", flag = "partition", placeholder = "NAME",
                help = "the lead partition" },
        },
        paths = {
            create = "/bulk/v1/leads.json",
            status = "/bulk/v1/leads/batch/{batch}.json",
            file = "/bulk/v1/leads/batch/{batch}/{file}.json",
            describe = "/rest/v1/leads/describe2.json",
            describe_old = "/rest/v1/leads/describe.json", -- where describe2 is missing
        },
        processed = "numOfLeadsProcessed",
        -- lookup: Marketo's standard fields lookupField takes; custom string,
        -- email and integer fields too (marketo.schema tells them by describe)
        dedupe = { param = "lookup_field", default = "email", lookup = {
            "id", "cookies", "email", "twitterId", "facebookId", "linkedInId", "sfdcAccountId",
            "sfdcContactId", "sfdcLeadId", "sfdcLeadOwnerId", "sfdcOpptyId" } },
    },
    {
        name = "custom_objects",
        label = "custom object {api_name}",
        params = {
            { name = "api_name", marketo = "apiName", type = "string", where = "path",
                required = true, placeholder = "API_NAME", example = "car_c",
                help = "the custom object's API name" },
        },
        paths = {
            create = "/bulk/v1/customobjects/{api_name}/import.json",
            status = "/bulk/v1/customobjects/{api_name}/import/{batch}/status.json",
            file = "/bulk/v1/customobjects/{api_name}/import/{batch}/{file}.json",
            describe = "/rest/v1/customobjects/{api_name}/describe.json",
            list = "/rest/v1/customobjects.json", -- every custom object of the instance
        },
        processed = "numOfObjectsProcessed",
        dedupe = { describe = "dedupeFields" }, -- the object's own, from its describe
    },
    {
        name = "program_members",
        label = "members of program {program_id}",
        params = {
            { name = "program_id", marketo = "programId", type = "id", where = "path",
                required = true, placeholder = "PROGRAM_ID", example = "1001",
                help = "the program's id" },
            { name = "program_member_status", marketo = "programMemberStatus",
                type = "string", where = "query", required = true, flag = "status",
                placeholder = "STATUS", help = "the members' status in the program (required)" },
        },
        paths = {
            create = "/bulk/v1/program/{program_id}/members/import.json",
            status = "/bulk/v1/program/members/import/{batch}/status.json",
            file = "/bulk/v1/program/members/import/{batch}/{file}.json",
            -- members are leads with fields of their own: both describes
            describe = "/rest/v1/programs/members/describe.json",
            program = "/rest/asset/v1/program/{program_id}.json", -- -> its channel
            channels = "/rest/asset/v1/channels.json", -- ?name= -> progressionStatuses
        },
        processed = "numOfLeadsProcessed",
        dedupe = { default = "email" }, -- members are leads: found or created by email
    },
}

local BY_NAME, names = {}, {}
for i, kind in ipairs(LIST) do
    kind.param = {}
    for _, p in ipairs(kind.params) do kind.param[p.name] = p end
    BY_NAME[kind.name] = kind
    names[i] = kind.name
end

M.LIST = LIST
M.NAMES = table.concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]

--- The kind of this name, or nil.
function M.get(name)
    return BY_NAME[name]
end

--- Is `v` a valid value for parameter `p`? -> true | nil, what is expected.
function M.valid(p, v)
    if p.type == "id" then
        if type(v) == "string" and v:match("^[1-9]%d*$") then v = tonumber(v) end
        if type(v) ~= "number" or v < 1 or v ~= math.floor(v) or v >= 2 ^ 53 then
            return nil, "a positive whole number"
        end
        return true, v
    end
    if type(v) ~= "string" or v == "" then return nil, "a non-empty string" end
    return true, v
end

--- The parameter whose Marketo name is `marketo_name`, if any (for a hint
-- when someone spells an option the wire's way).
function M.by_marketo_name(kind, marketo_name)
    for _, p in ipairs(kind.params) do
        if p.marketo == marketo_name then return p end
    end
end

local PARAM_TYPES = { id = "number|string", string = "string" }

--- check(kind, o, rules, fname, level[, argn[, needed]]) -> o: options `o`
-- checked against `rules` (marketo.options) plus the kind's parameters under
-- our names; Marketo's spelling of one is refused with ours (one spelling, in
-- Lua), and so is a parameter of another kind. `needed(p)` says whether a
-- parameter must be there (default: p.required). Raises, as options.check.
function M.check(kind, o, rules, fname, level, argn, needed)
    for name in pairs(type(o) == "table" and o or {}) do
        local p = type(name) == "string" and M.by_marketo_name(kind, name)
        if p and p.name ~= name then
            options.fail(fname, ("option '%s' is spelled '%s'"):format(name, p.name), level + 1,
                argn)
        end
        for _, other in ipairs(LIST) do
            if other ~= kind and other.param[name] and not kind.param[name] then
                options.fail(fname, ("option '%s' is for %s, not %s"):format(name, other.name,
                    kind.name), level + 1, argn)
            end
        end
    end
    local all = {}
    for k, rule in pairs(rules) do all[k] = rule end
    for _, p in ipairs(kind.params) do
        local required = (needed and needed(p)) or (not needed and p.required)
        all[p.name] = { PARAM_TYPES[p.type], required = required or nil,
            valid = function(v) return M.valid(p, v) end }
    end
    local checked = options.check(o, all, fname, level + 1, argn) -- no tail call
    return checked
end

--- Marketo's path `which` ("create", "status" or "file") of a kind, its
-- {placeholders} filled from `values` (our names, plus batch and file) through
-- `encode` (a path-segment encoder).
function M.path(kind, which, values, encode)
    return (kind.paths[which]:gsub("{([%w_]+)}", function(name)
        local v = values[name]
        if v == nil then error(("objects.path: %s needs '%s'"):format(kind.name, name), 2) end
        return encode(v)
    end))
end

--- The rule by which two rows may be the same record in Marketo's eyes: the
-- key's fields and how a value is compared. Every key field is compared
-- trimmed of spaces and tabs and with ASCII letters folded to lower case:
-- Marketo matches an email in any case, and taking more values for one key
-- can only make an import more careful (a row waits for the other), never
-- less. `dedupe` gives a custom object's dedupe fields (its describe's);
-- without them its key is not known: nil.
function M.key(kind, params, dedupe)
    local d, fields = kind.dedupe, dedupe
    if not d.describe then
        local field = d.param and params and params[d.param] or d.default
        fields = field and { field }
    end
    if not fields or not fields[1] then return nil end
    return { fields = fields, normalize = M.normalize_key }
end

--- A key field's value as Marketo compares it (see M.key).
function M.normalize_key(v)
    return (v:match("^[ \t]*(.-)[ \t]*$"):lower())
end

--- A kind's label for people, e.g. "members of program 1001".
function M.label(kind, values)
    return (kind.label:gsub("{([%w_]+)}", function(name) return tostring(values[name]) end))
end

return M
