--- marketo.sandbox.validate: what becomes of each row of an import - imported,
-- imported with a warning, or failed - with the reason strings of the BCOI and
-- BPMI pages (doc/sandbox.md).
-- A plan is made once from the header; check() then runs per row.
local cjson = require("cjson")
local schema_mod = require("marketo.sandbox.schema")

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

-- Email: what Marketo's docs show as a warning (INVALID_EMAIL) is any value
-- that is not local@domain.tld in printable ASCII without spaces, at most 254
-- bytes, with no empty dot-separated piece. Never a failure: the row imports.
local function is_email(v)
    if #v > 254 or v:find("[^\33-\126]") or v:find("..", 1, true) then return false end
    local localpart, domain = v:match("^([^@]+)@([^@]+)$")
    if not localpart or localpart:sub(1, 1) == "." or localpart:sub(-1) == "." then
        return false
    end
    return domain:match("^[^%.]+%.[^@]*[^%.]$") ~= nil
end

-- 32-bit, as describe's "integer" is a Java int: digits with an optional
-- minus, nothing else (no spaces, no plus sign, no decimal point).
local INT_MIN, INT_MAX = -2147483648, 2147483647

local function is_integer(v)
    if not v:match("^%-?%d+$") or #v > 11 then return false end
    local n = math.tointeger(tonumber(v))
    return n ~= nil and n >= INT_MIN and n <= INT_MAX
end

-- A decimal number: digits with an optional minus, point and exponent; no
-- spaces, hex, NaN or infinity.
local function is_decimal(v)
    local mantissa = v:match("^%-?(%d*%.?%d*)[eE][-+]?%d+$") or v:match("^%-?(%d*%.?%d*)$")
    return mantissa ~= nil and mantissa:find("%d") ~= nil
end

local DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function is_date(v)
    local y, m, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)")
    if not y then return false end
    y, m, d = tonumber(y), tonumber(m), tonumber(d)
    if m < 1 or m > 12 or d < 1 or d > DAYS[m] then return false end
    local leap = y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
    return not (m == 2 and d == 29 and not leap)
end

-- Type checks per describe's type (schema.lua holds the types).
local CHECKS = {
    integer = is_integer,
    float = is_decimal,
    currency = is_decimal,
    boolean = function(v)
        local l = v:lower()
        return l == "true" or l == "false" or l == "1" or l == "0" or l == "yes" or l == "no"
    end,
    date = function(v) return #v == 10 and is_date(v) end,
    datetime = function(v)
        if not is_date(v) then return false end
        if #v == 10 then return true end
        local rest = v:sub(11)
        return rest:match("^[T ]%d%d:%d%d:%d%d$") ~= nil
            or rest:match("^[T ]%d%d:%d%d:%d%d[Zz]$") ~= nil
            or rest:match("^[T ]%d%d:%d%d:%d%d[-+]%d%d:?%d%d$") ~= nil
    end,
}
M.CHECKS = CHECKS
M.is_email = is_email

-- Columns of the header: each maps to a field (or false). Also the first
-- name that is no field, and the first that names a field again.
local function map_columns(header, sets, case)
    local cols, unknown, duplicate, seen = {}, nil, nil, {}
    for i, name in ipairs(header) do
        local f
        for _, set in ipairs(sets) do
            f = schema_mod.find(set, name, case)
            if f then break end
        end
        cols[i] = f or false
        if not f then
            unknown = unknown or name
        elseif seen[f] then
            duplicate = duplicate or name
        end
        if f then seen[f] = true end
    end
    return cols, unknown, duplicate
end

local function column_of(cols, name)
    for i, f in ipairs(cols) do
        if f and f.name == name then return i end
    end
    return nil
end

--- plan(job, header, schema, conf) -> plan, or nil, code, argument for a
-- header Marketo refuses when the job is created: an unknown name (1006,
-- "Field 'x' not found") or a field named twice (1003).
-- job.kind is "leads", "co" or "pm"; job.lookup the leads' lookupField;
-- job.object the custom object of a "co" job.
function M.plan(job, header, schema, conf)
    local sets
    if job.kind == "co" then sets = { job.object.fields }
    elseif job.kind == "pm" then sets = { schema.leads, schema.members }
    else sets = { schema.leads } end
    local cols, unknown, duplicate = map_columns(header, sets, conf.header_case)
    local plan = { kind = job.kind, cols = cols, width = #header, blank = conf.blank_cells }
    if job.kind == "co" then
        plan.keys = {}
        for _, name in ipairs(job.object.dedupe) do
            local i = column_of(cols, name)
            if not i then
                plan.all_fail = M.REASONS.dedupe
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
        if not plan.keys[1] then plan.all_fail = plan.key_reason end
    end
    -- The docs' custom-object example (` vin`) creates a job whose rows fail
    -- with missing.dedupe.fields: a missing dedupe column wins over the
    -- unknown name the same typo makes.
    local documented = job.kind == "co" and plan.all_fail
    if conf.unknown_column == "reject" and not documented then
        if unknown then return nil, "1006", unknown end
        if duplicate then return nil, "1003", ("Duplicate field '%s'"):format(duplicate) end
    end
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
    if plan.lookup == "email" then k = k:lower() end
    return { ok = true, record = record, key = k, warning = warning }
end

return M
