--- marketo.pipeline.checks: a file checked against the instance's schema
-- (marketo.schema) before anything is sent: what Marketo would otherwise
-- refuse row by row, after spending its import queue.
--
--   local problems, warnings = checks.columns(kind, params, schema, columns)
--     columns = { { name = "emial", where = "crm.csv:1:3" }, ... } (what is sent)
--     problems = { "crm.csv:1:3: no field 'emial' on leads; did you mean 'email'?" }
--   local check = checks.row(schema, names) -- names: the fields sent, in order
--   check(values, line) -> nil | reason, field  (values: field -> text)
--
-- The column checks: every column names a field of the object (a near miss,
-- or another case, gets a suggestion); none is read-only (but the leads'
-- lookup field, which Marketo reads to find the record); leads: the lookup
-- field is one Marketo allows and a column; custom objects: every dedupe
-- field is a column; program members: the status is one of the program's
-- channel. The row check: each value has its field's type and length; a blank
-- cell is fine; a field of a type the schema module does not know is passed
-- unchecked (a warning from columns()).
local csv = require("marketo.csv")
local mapping_mod = require("marketo.mapping")

local M = {}

local function quote_list(list)
    local out = {}
    for i, v in ipairs(list) do out[i] = "'" .. v .. "'" end
    return table.concat(out, ", ")
end

local function sorted_keys(set)
    local out = {}
    for k in pairs(set) do out[#out + 1] = k end
    table.sort(out)
    return out
end

-- The key columns a kind needs: leads their lookup field, custom objects
-- their dedupe fields, program members email (members are found by it).
local function key_checks(kind, params, s, present, problems)
    local what = s.object == "custom_objects" and ("custom object " .. tostring(params.api_name))
        or kind.name
    if kind.dedupe.param then
        local lookup = params[kind.dedupe.param] or kind.dedupe.default
        if s.lookup and not s.lookup[lookup] then
            problems[#problems + 1] = ("lookup field '%s' is not one Marketo takes on %s "
                .. "(it takes: %s)"):format(lookup, what, table.concat(sorted_keys(s.lookup), ", "))
        elseif not present[lookup] then
            problems[#problems + 1] = ("lookup field '%s' is not a column of the file: every "
                .. "row needs it to find its lead"):format(lookup)
        end
        return lookup
    end
    local keys = s.dedupe or { kind.dedupe.default }
    for _, name in ipairs(keys) do
        if not present[name] then
            local spaced
            for col in pairs(present) do
                if col:match("^%s*(.-)%s*$") == name and col ~= name then spaced = col end
            end
            problems[#problems + 1] = ("%s field '%s' of %s is not a column of the file%s")
                :format(s.dedupe and "dedupe" or "key", name, what, spaced
                    and ("; the file has '%s', with spaces around the name"):format(spaced) or "")
        end
    end
end

--- columns(kind, params, schema, columns) -> problems, warnings (lists of
-- messages; empty when all is well). kind: a marketo.objects kind; params:
-- the import's parameters by our names.
function M.columns(kind, params, s, columns)
    local problems, warnings, present = {}, {}, {}
    for _, c in ipairs(columns) do present[c.name] = true end
    local lookup = key_checks(kind, params, s, present, problems)
    local odd_types = {}
    for _, c in ipairs(columns) do
        local f = s:field(c.name)
        if not f then
            local near = s:near(c.name)
            problems[#problems + 1] = ("%s: no field '%s' on %s%s"):format(c.where, c.name,
                kind.name, near and ("; did you mean '%s'?"):format(near) or "")
        elseif not f.updateable and f.name ~= lookup then
            problems[#problems + 1] = ("%s: field '%s' is read-only on %s: an import cannot "
                .. "write it; drop the column"):format(c.where, c.name, kind.name)
        elseif not M.TYPES[f.type] and not odd_types[f.type] then
            odd_types[f.type] = true
            warnings[#warnings + 1] = ("field '%s' is of type '%s', which this tool does not "
                .. "know: its values go unchecked"):format(f.name, f.type)
        end
    end
    local status = params.program_member_status
    if status and s.statuses then
        local known = false
        for _, st in ipairs(s.statuses) do
            if st:lower() == status:lower() then known = true end
        end
        if not known then
            problems[#problems + 1] = ("status '%s' is not one of program %s's (channel %s): "
                .. "%s"):format(status, tostring(s.program and s.program.id), tostring(s.channel),
                #s.statuses > 0 and quote_list(s.statuses) or "none")
        end
    end
    return problems, warnings
end

---------------------------------------------------------------------------
-- Values

local function utf8_length(v)
    local _, continuation = v:gsub("[\128-\191]", "")
    return #v - continuation
end

local DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function is_date(v)
    local y, m, d = v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
    if not y then return false end
    m, d = tonumber(m), tonumber(d)
    if m < 1 or m > 12 or d < 1 or d > DAYS[m] then return false end
    if m == 2 and d == 29 then
        y = tonumber(y)
        return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
    end
    return true
end

local function is_datetime(v)
    local date, h, mi, s, rest = v:match("^(%d%d%d%d%-%d%d%-%d%d)T(%d%d):(%d%d):(%d%d)(.*)$")
    if not date or not is_date(date) then return false end
    if tonumber(h) > 23 or tonumber(mi) > 59 or tonumber(s) > 60 then return false end
    rest = rest:gsub("^%.%d+", "")
    return rest == "Z" or rest:match("^[-+]%d%d:?%d%d$") ~= nil
end

local function is_number(v)
    return v:match("^[-+]?%d+%.?%d*$") ~= nil or v:match("^[-+]?%.%d+$") ~= nil
        or v:match("^[-+]?%d+%.?%d*[eE][-+]?%d+$") ~= nil
end

local BOOLEANS = { ["true"] = true, ["false"] = true, ["1"] = true, ["0"] = true,
    yes = true, no = true }

-- type -> check(v) and what it expects, for the message.
M.TYPES = {
    integer = { function(v) return v:match("^[-+]?%d+$") ~= nil end, "a whole number" },
    float = { is_number, "a number" },
    currency = { is_number, "a number" },
    boolean = { function(v) return BOOLEANS[v:lower()] == true end, "true or false" },
    date = { is_date, "a date YYYY-MM-DD" },
    datetime = { is_datetime, "a date and time YYYY-MM-DDThh:mm:ss with its offset "
        .. "(Z or +hh:mm)" },
    email = { function() return true end }, -- a bad one is a warning (M.is_email)
    string = { function() return true end }, text = { function() return true end },
    phone = { function() return true end }, url = { function() return true end },
}

--- Whether `v` looks like an email address (as the sandbox and csv_types.c
-- see it): a value that does not is imported with a warning, in Marketo too.
function M.is_email(v)
    return v:match("^[^@%s]+@[^@%s]+%.[^@%s%.]+$") ~= nil
end

local function email_warning(where, count, value)
    return ("%s: %s '%s' does not look like an email address%s: Marketo imports such a "
        .. "row with a warning"):format(where, count and "email" or "the email", value,
        count and count > 1 and (" (nor do %d more)"):format(count - 1) or "")
end

--- The problem with value `v` of field `f`, or nil.
function M.value(f, v)
    local t = M.TYPES[f.type]
    if not t then return nil end
    if not t[1](v) then
        return ("%s expects %s, got '%s'"):format(f.name, t[2], v)
    end
    if f.length and #v > f.length and utf8_length(v) > f.length then
        return ("%s takes at most %d characters, got %d"):format(f.name, f.length, utf8_length(v))
    end
    return nil
end

--- row(schema[, warnings]) -> check(values, line) -> nil | reason, field:
-- the values of a mapped row (field -> text) against their fields' types, in
-- the schema's order of fields (every row has the same fields: the list is
-- made once). The first value of an email field that does not look like one
-- is added to `warnings` (a worker's share's come back in its result: plan.lua).
function M.row(s, warnings)
    local list, warned
    return function(values, line)
        if not list then
            list = {}
            for _, f in ipairs(s.fields) do
                if values[f.name] ~= nil and M.TYPES[f.type] then list[#list + 1] = f end
            end
        end
        for i = 1, #list do
            local f = list[i]
            local v = values[f.name]
            if v ~= "" then
                local problem = M.value(f, v)
                if problem then return problem, f.name end
                if f.type == "email" and warnings and not warned and not M.is_email(v) then
                    warned = true
                    warnings[#warnings + 1] = email_warning(("line %s, %s"):format(
                        tostring(line), f.name), nil, v)
                end
            end
        end
        return nil
    end
end

--- validate(schema, user) -> the validation a plan runs: the types first,
-- then the user's own (mapping's validate: (values, line) -> nil | reason, field).
function M.validate(s, user, warnings)
    local types = M.row(s, warnings)
    return function(values, line)
        local reason, field = types(values, line)
        if reason then return reason, field end
        if user then return user(values, line) end
        return nil
    end
end

-- What a file sends: the mapping's fields, else each source's header; the
-- status column (status_column) is read, not sent.
local function columns_of(spec, sources, format)
    local out = {}
    local status = spec.status_column and spec.status_column:match("^%s*(.-)%s*$"):lower()
    if spec.mapping then
        for _, name in ipairs(mapping_mod.new(spec.mapping):names()) do
            if name:lower() ~= status then out[#out + 1] = { name = name, where = "mapping" } end
        end
        return out
    end
    local seen = { [status or false] = true }
    for _, path in ipairs(sources) do
        local reader, msg, code = csv.open(path, { format = format })
        if not reader then return nil, msg, code end
        for i, name in ipairs(reader:header()) do
            if not seen[name] and not seen[name:match("^%s*(.-)%s*$"):lower()] then
                seen[name] = true
                out[#out + 1] = { name = name, where = ("%s:1:%d"):format(path, i) }
            end
        end
        reader:close()
    end
    return out
end

--- import(spec, kind, sources, format) -> warnings | nil, msg, "SCHEMA":
-- the column checks of an import against spec.schema, every problem named.
function M.import(spec, kind, sources, format)
    local columns, msg, code = columns_of(spec, sources, format)
    if not columns then return nil, msg, code end
    local problems, warnings = M.columns(kind, M.params(kind, spec), spec.schema, columns)
    if #problems == 0 then return warnings end
    return nil, ("SCHEMA: %s does not fit %s on %s:\n  %s\nnothing was sent; fix the file or "
        .. "the mapping (marketo-bulk fields lists the instance's fields)"):format(
        table.concat(sources, ", "), kind.name, tostring(spec.schema.instance),
        table.concat(problems, "\n  ")), "SCHEMA"
end

---------------------------------------------------------------------------
-- The fast path: unmapped and rename-only files, checked in C

-- Lua's type -> the C pass's check of it (csv_types.c).
local C_KINDS = { integer = "integer", float = "number", currency = "number",
    boolean = "boolean", date = "date", datetime = "datetime", email = "email" }

-- The C checks of each source column: which field it fills, from the header
-- (unmapped) or the mapping's renames; constants checked here, once.
local function column_checks(s, header, entries)
    local by_column, kinds, lengths = {}, {}, {}
    if entries then
        local where = {}
        for i, name in ipairs(header) do where[name] = i end
        for _, e in ipairs(entries) do
            local f = s:field(e.to)
            if f and e.value and e.value ~= "" then
                local problem = M.value(f, e.value)
                if problem then return nil, "mapping: the constant of " .. problem end
            elseif f and e.from and where[e.from] then
                -- (a column the header lacks is the mapping's error, named by plan)
                by_column[where[e.from]] = f
            end
        end
    else
        for i, name in ipairs(header) do by_column[i] = s:field(name) end
    end
    for i = 1, #header do
        local f = by_column[i]
        kinds[i] = f and C_KINDS[f.type] or false
        lengths[i] = f and M.TYPES[f.type] and f.length or false
    end
    return by_column, kinds, lengths
end

-- The C pass over a source: rows, failures | nil, msg, code. Malformed rows
-- are passed over (the plan names them).
local function check_source(path, format, kinds, lengths)
    local reader, msg, code = csv.open(path, { format = format, lenient = true,
        on_reject = function() end })
    if not reader then return nil, msg, code end
    local rows, failures, extra = reader:check_types(kinds, lengths, 1)
    reader:close()
    return rows, failures, extra
end

-- The first failure of the file, in file order: nil | failure | nil, msg,
-- code; the emails that do not look like one go to `warnings`.
local function first_failure(path, format, kinds, lengths, warnings)
    local rows, failures, extra = check_source(path, format, kinds, lengths)
    if not rows then return nil, failures, extra end
    if extra and warnings then
        warnings[#warnings + 1] = email_warning(("%s:%d:%d"):format(path, extra.line,
            extra.column), extra.count, extra.value)
    end
    return failures[1]
end

-- The C pass over one source: true | false (rows failed: lenient mode plans
-- them in Lua, with their reasons) | nil, msg, code (strict: the first).
local function fast_source(spec, s, path, format, entries, warnings)
    local reader, msg, code = csv.open(path, { format = format })
    if not reader then return nil, msg, code end
    local header = reader:header()
    reader:close()
    local by_column, kinds, lengths = column_checks(s, header, entries)
    if not by_column then return nil, "SCHEMA: " .. kinds, "SCHEMA" end
    local bad
    bad, msg, code = first_failure(path, format, kinds, lengths, warnings)
    if msg then return nil, msg, code end
    if not bad then return true end
    if spec.lenient then return false end
    local reason = M.value(by_column[bad.column], bad.value)
    return nil, ("INVALID_ROW: %s:%d:%d: %s; fix the row, or pass lenient mode to reject it")
        :format(path, bad.line, bad.column, reason), "INVALID_ROW"
end

-- The checks an unmapped source's plan runs as it scans (csv.plan's types;
-- csv.copy's for the parts with holes): failure names a value's problem,
-- warn adds the note of the emails that do not look like one to `warnings`.
local function plan_types(s, path, format, warnings)
    local reader, msg, code = csv.open(path, { format = format })
    if not reader then return nil, msg, code end
    local header = reader:header()
    reader:close()
    local by_column, kinds, lengths = column_checks(s, header, nil)
    return { kinds = kinds, lengths = lengths,
        failure = function(column, value) return M.value(by_column[column], value) end,
        warn = function(note)
            if warnings then
                warnings[#warnings + 1] = email_warning(("%s:%d:%d"):format(path, note.line,
                    note.column), note.count, note.value)
            end
        end }
end

--- for_plan(spec, sources, format, warnings) -> true, validate, types | nil,
-- msg, code: the validation the plan runs; emails that do not look like one
-- are added to `warnings`. With a schema, an unmapped file's values are
-- checked by the plan itself as it scans, in C on every core (types: source
-- -> csv.plan's types; a bad row fails the plan or, lenient, is rejected
-- with its reason). A rename-only file is checked by the C pass first:
-- clean, the mapping stays on its fast path (no validation in Lua); in
-- lenient mode with bad rows, the mapping checks every row in Lua (to reject
-- them with their reasons). A mapping with functions, a filter or a
-- validation of the user's is checked in Lua, on what it makes.
function M.for_plan(spec, sources, format, warnings)
    local s = spec.schema
    if not s then return true, spec.validate end
    local lua_path = M.validate(s, spec.validate, warnings)
    if spec.filter or spec.validate then return true, lua_path end
    if not spec.mapping then
        local types = {}
        for _, path in ipairs(sources) do
            local t, msg, code = plan_types(s, path, format, warnings)
            if not t then return nil, msg, code end
            types[path] = t
        end
        return true, nil, types
    end
    local m = mapping_mod.new(spec.mapping)
    if not m:is_fast() then return true, lua_path end
    local entries = m:entries()
    for _, path in ipairs(sources) do
        local clean, msg, code = fast_source(spec, s, path, format, entries, warnings)
        if clean == nil then return nil, msg, code end
        if not clean then return true, lua_path end
    end
    return true, nil
end

--- The kind's parameters of an import spec, by our names.
function M.params(kind, spec)
    local out = {}
    for _, p in ipairs(kind.params) do out[p.name] = spec[p.name] end
    return out
end

return M
