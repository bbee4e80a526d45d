--- marketo.sandbox.validate: what becomes of each row of an import - imported,
-- imported with a warning, or failed - with the reason strings of docs sec. 7.
-- A plan is made once from the header; check() then runs per row.
local cjson = require("cjson")
local schema_mod = require("marketo.sandbox.schema")
-- emails are matched as the import plans keys: trimmed, case-insensitive
local normalize_key = require("marketo.objects").normalize_key

local M = {}

M.REASONS = {
    lookup = "Value for lookup field '%s' not found",
    dedupe = "missing.dedupe.fields",
    type = "Invalid data type in field %s",
    email = "Invalid email address",
    unknown = "Field '%s' not found",
    malformed = "Malformed row: %s",
    not_found = "Lead not found",
}

local function is_email(v)
    return v:match("^[^@%s]+@[^@%s]+%.[^@%s%.]+$") ~= nil
end

local CHECKS = {
    integer = function(v) return v:match("^%s*[-+]?%d+%s*$") ~= nil end,
    float = function(v) return tonumber(v) ~= nil end,
    currency = function(v) return tonumber(v) ~= nil end,
    boolean = function(v)
        local l = v:lower()
        return l == "true" or l == "false" or l == "1" or l == "0" or l == "yes" or l == "no"
    end,
    date = function(v) return v:match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil end,
    datetime = function(v)
        return v:match("^%d%d%d%d%-%d%d%-%d%d$") ~= nil
            or v:match("^%d%d%d%d%-%d%d%-%d%d[T ]%d%d:%d%d") ~= nil
    end,
}

-- Columns of the header: each maps to a field (or is unknown).
local function map_columns(header, sets, case)
    local cols, unknown = {}, nil
    for i, name in ipairs(header) do
        local f
        for _, set in ipairs(sets) do
            f = schema_mod.find(set, name, case)
            if f then break end
        end
        cols[i] = f or false
        if not f and not unknown then unknown = name end
    end
    return cols, unknown
end

local function column_of(cols, name)
    for i, f in ipairs(cols) do
        if f and f.name == name then return i end
    end
    return nil
end

--- plan(job, header, schema, conf) -> plan, or nil and an error message for
-- a job-level refusal (unknown_column = reject).
-- job.kind is "leads", "co" or "pm"; job.lookup the leads' lookupField;
-- job.object the custom object of a "co" job.
function M.plan(job, header, schema, conf)
    local sets
    if job.kind == "co" then sets = { job.object.fields }
    elseif job.kind == "pm" then sets = { schema.leads, schema.members }
    else sets = { schema.leads } end
    local cols, unknown = map_columns(header, sets, conf.header_case)
    local plan = { kind = job.kind, cols = cols, width = #header, blank = conf.blank_cells }
    if unknown and conf.unknown_column == "reject" then return nil, unknown end
    if job.kind == "co" then
        plan.keys = {}
        for _, name in ipairs(job.object.dedupe) do
            local i = column_of(cols, name)
            if not i then
                plan.all_fail = plan.all_fail or M.REASONS.dedupe
                break
            end
            plan.keys[#plan.keys + 1] = i
        end
        plan.key_reason = M.REASONS.dedupe
    else
        local lookup = job.kind == "pm" and "email" or job.lookup
        plan.lookup = lookup
        plan.keys = { column_of(cols, lookup) }
        plan.key_reason = M.REASONS.lookup:format(lookup)
        if not plan.keys[1] then plan.all_fail = plan.all_fail or plan.key_reason end
    end
    -- A missing key column is what the docs' ` vin` example reports, so it
    -- wins over the unknown column that the same typo also makes.
    if unknown then plan.all_fail = plan.all_fail or M.REASONS.unknown:format(unknown) end
    return plan
end

--- check(plan, cells, parse_error) -> outcome:
-- { ok = true, record = {field -> value}, key = "...", warning = reason|nil }
-- or { ok = false, reason = "..." }.
function M.check(plan, cells, parse_error)
    if parse_error then return { ok = false, reason = M.REASONS.malformed:format(parse_error) } end
    if #cells ~= plan.width then
        return { ok = false, reason = M.REASONS.malformed:format(
            ("%d fields for %d columns"):format(#cells, plan.width)) }
    end
    if plan.all_fail then return { ok = false, reason = plan.all_fail } end
    local key = {}
    for i, col in ipairs(plan.keys) do
        local v = cells[col]
        if v == "" then return { ok = false, reason = plan.key_reason } end
        key[i] = v
    end
    local record, warning = {}, nil
    for i, f in ipairs(plan.cols) do
        local v = cells[i]
        if v == "" then
            if plan.blank == "null" then record[f.name] = cjson.null end
        else
            local check = CHECKS[f.type]
            if check and not check(v) then
                return { ok = false, reason = M.REASONS.type:format(f.display) }
            end
            if f.type == "email" and not is_email(v) then warning = M.REASONS.email end
            record[f.name] = v
        end
    end
    local k = table.concat(key, "\0")
    if plan.lookup == "email" then k = normalize_key(k) end
    return { ok = true, record = record, key = k, warning = warning }
end

return M
