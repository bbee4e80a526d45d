--- marketo.mapping: how source rows become the rows sent to Marketo.
-- A mapping names each Marketo field and where its value comes from:
--
--   mapping = {
--       email = "E-mail Address",                 -- a source column, renamed
--       leadSource = { value = "CRM export" },    -- a constant
--       lastName = function(row, line) return row.Last:upper() end,  -- computed
--   }
--
-- (fields in alphabetical order), or the same as a list to choose the order:
-- { { "email", "E-mail Address" }, { "leadSource", { value = "CRM" } }, ... }.
-- A filter `function(row, line) -> keep?` drops rows (counted as filtered); a
-- validation `function(out, line) -> nil | reason [, field]` rejects rows
-- (the run stops on the first one unless lenient). `row` is the source row by
-- header name, `out` the mapped row by Marketo field name.
local options = require("marketo.options")

local M = {}

local Mapping = {}
Mapping.__index = Mapping

-- Mappings come from import's options (the CLI's mapping file is one too).
local function bad(msg)
    options.fail("import", "option 'mapping': " .. msg, 4)
end

local function entry(to, from)
    if type(to) ~= "string" or to == "" then bad("a Marketo field name must be a string") end
    local t = type(from)
    if t == "string" then return { to = to, from = from } end
    if t == "function" then return { to = to, fn = from } end
    if t == "table" and from.value ~= nil then
        local v = from.value
        if type(v) ~= "string" and type(v) ~= "number" then
            bad(("constant for '%s' must be a string or number"):format(to))
        end
        return { to = to, value = tostring(v) }
    end
    bad(("'%s' must map from a column name, { value = ... } or a function"):format(to))
end

local function entries(spec)
    local list = {}
    if spec[1] ~= nil then
        for i, pair in ipairs(spec) do
            if type(pair) ~= "table" then bad(("entry %d must be { field, source }"):format(i)) end
            list[#list + 1] = entry(pair[1], pair[2])
        end
    else
        local names = {}
        for k in pairs(spec) do names[#names + 1] = k end
        table.sort(names)
        for _, k in ipairs(names) do list[#list + 1] = entry(k, spec[k]) end
    end
    local seen = {}
    for _, e in ipairs(list) do
        if seen[e.to] then bad(("field '%s' is mapped twice"):format(e.to)) end
        seen[e.to] = true
    end
    if #list == 0 then bad("it maps no field") end
    return list
end

local function check_fns(filter, validate)
    options.check({ filter = filter, validate = validate },
        { filter = "function", validate = "function" }, "import", 4)
end

--- new(spec, filter, validate) -> mapping (raises on a malformed spec).
function M.new(spec, filter, validate)
    if type(spec) ~= "table" then
        options.fail("import", "option 'mapping': table expected, got " .. type(spec), 3)
    end
    check_fns(filter, validate)
    local list = entries(spec)
    local fast = filter == nil and validate == nil
    for _, e in ipairs(list) do
        if e.fn then fast = false end
    end
    return setmetatable({ list = list, filter = filter, validate = validate, fast = fast },
        Mapping)
end

--- identity(filter, validate): every column as it is, with a filter/validation.
function M.identity(filter, validate)
    check_fns(filter, validate)
    return setmetatable({ identity = true, filter = filter, validate = validate, fast = false },
        Mapping)
end

function Mapping:is_fast() return self.fast end

--- The entries, in output order: { to, from | value | fn }.
function Mapping:entries() return self.list end

--- The spec csv.map runs in C (only for a fast mapping).
function Mapping:fast_spec()
    local out = {}
    for i, e in ipairs(self.list) do out[i] = { to = e.to, from = e.from, value = e.value } end
    return out
end

--- bind(header, source) -> true | nil, msg: resolves source columns.
function Mapping:bind(header, source)
    self.header = header
    if self.identity then
        self.list = {}
        for i, name in ipairs(header) do self.list[i] = { to = name, from = name, index = i } end
        return true
    end
    local where = {}
    for i, name in ipairs(header) do where[name] = i end
    for _, e in ipairs(self.list) do
        if e.from then
            e.index = where[e.from]
            if not e.index then
                local spaced -- the name with spaces around it in the file, if so
                for _, name in ipairs(header) do
                    if name:match("^%s*(.-)%s*$") == e.from then spaced = name end
                end
                return nil, ("%s:1: the mapping of '%s' reads column '%s', which the header "
                    .. "does not have (it has: %s); fix the mapping or the file%s")
                    :format(source, e.to, e.from, table.concat(header, ", "), spaced and
                        ("; the file has '%s', with spaces around the name"):format(spaced) or "")
            end
        end
    end
    self.needs_named = self.filter ~= nil
    for _, e in ipairs(self.list) do
        if e.fn then self.needs_named = true end
    end
    return true
end

--- names() -> the output header (Marketo field names).
function Mapping:names()
    local out = {}
    for i, e in ipairs(self.list) do out[i] = e.to end
    return out
end

-- A function's value as the text sent: nil is empty, a whole number has no
-- ".0", a boolean is true/false; anything else is the row's fault.
local function text_of(e, v)
    local t = type(v)
    if t == "number" then
        if v == math.floor(v) and v > -2^53 and v < 2^53 then return ("%d"):format(v) end
        return tostring(v)
    end
    if t == "boolean" then return tostring(v) end
    return nil, ("the mapping of '%s' returned a %s"):format(e.to, t)
end

-- A message handler: the error with where in the script it was raised
-- (assert and error(msg, 0) give none), for a fix in the script, not the row.
local function raised(err)
    local msg = tostring(err)
    if msg:match("^[^:\n]+:%d+: ") then return msg end
    for level = 2, 20 do
        local info = debug.getinfo(level, "Sl")
        if not info then break end
        if info.currentline and info.currentline > 0 then
            return ("%s:%d: %s"):format(info.short_src, info.currentline, msg)
        end
    end
    return msg
end

local function script_error(what, err)
    local where, msg = err:match("^([^:\n]+:%d+): (.*)$")
    if not where then return ("%s raised an error: %s"):format(what, err) end
    return ("%s raised an error at %s: %s"):format(what, where, msg)
end

--- apply(row, line, named, out) -> "keep" | "filtered" | "invalid", reason, column,
-- fix: fix is "script" when one of the script's functions raised an error (the
-- row may be fine), nil when the row is what is wrong.
-- Fills `out` (positional, in names() order); `named` is a scratch table reused
-- between rows for the row by header name, or the same object as `row` when
-- that answers both (a reader's lazy row).
function Mapping:apply(row, line, named, out)
    if self.needs_named and named ~= row then
        for i, name in ipairs(self.header) do named[name] = row[i] end
    end
    if self.filter then
        local ok, keep = xpcall(self.filter, raised, named, line)
        if not ok then return "invalid", script_error("the filter", keep), nil, "script" end
        if not keep then return "filtered" end
    end
    local list = self.list
    for i = 1, #list do -- the hot loop of a mapped import: no closure, no extra call
        local e = list[i]
        if e.index then
            out[i] = row[e.index] or ""
        elseif e.value then
            out[i] = e.value
        else
            local ok, v = xpcall(e.fn, raised, named, line)
            if not ok then
                return "invalid", script_error(("the mapping of '%s'"):format(e.to), v), nil,
                    "script"
            end
            if type(v) == "string" then
                out[i] = v
            elseif v == nil then
                out[i] = ""
            else
                local text, err = text_of(e, v)
                if not text then return "invalid", err, nil, "script" end
                out[i] = text
            end
        end
    end
    if self.validate then
        local mapped = {}
        for i, e in ipairs(self.list) do mapped[e.to] = out[i] end
        local ok, reason, field = xpcall(self.validate, raised, mapped, line)
        if not ok then
            return "invalid", script_error("the validation", reason), nil, "script"
        end
        if reason ~= nil then
            local column
            for i, e in ipairs(self.list) do
                if e.to == field then column = e.index or i end
            end
            return "invalid", tostring(reason), column
        end
    end
    return "keep"
end

return M
