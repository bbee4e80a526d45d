--- marketo.options: the checks of the library's option tables, in one message style
-- (Lua's own, for arguments), so a misuse reads the same whichever function saw it:
--
--   bad argument #1 to 'import' (unknown option 'wokers')
--   bad argument #1 to 'import' (option 'workers': whole number >= 1 expected, got 0)
--   bad argument #1 to 'import' (option 'path': string expected, got no value)
--
--   options.check(opts, { path = { "string", required = true }, workers =
--       { "number", integer = true, min = 1 }, on_event = "function" }, "import", 2)
--
-- A rule is a type name ("string", "number", "boolean", "table", "function",
-- "userdata", "any"; alternatives as "table|userdata"), or a table with the type
-- first and any of: required = true, integer = true, positive = true (> 0),
-- min = n, max = n, one_of = { values }, values = rule (for every value of a table),
-- valid = function(v) -> ok [, what is expected] with expected = "what is expected"
-- (a check a registry makes, e.g. marketo.formats.get).
local M = {}

local function list_text(list)
    local out = {}
    for i, v in ipairs(list) do out[i] = tostring(v) end
    if #out < 2 then return out[1] or "" end
    return table.concat(out, ", ", 1, #out - 1) .. " or " .. out[#out]
end

-- The type(s) a rule wants, as a message says them.
local function type_text(rule)
    local want = rule[1] or "any"
    if want == "any" then return "a value" end
    return (want:gsub("|", " or "))
end

-- The values a rule wants.
local function expected(rule)
    if rule.expected then return rule.expected end
    if rule.one_of then return list_text(rule.one_of) end
    local text = rule.integer and "whole number" or type_text(rule)
    if rule.positive then return text .. " > 0" end
    if rule.min and rule.max then return ("%s from %s to %s"):format(text, rule.min, rule.max) end
    if rule.min then return ("%s >= %s"):format(text, rule.min) end
    if rule.max then return ("%s <= %s"):format(text, rule.max) end
    return text
end

local function shown(v)
    if type(v) == "string" then return ("%q"):format(v) end
    return tostring(v)
end

local function type_ok(want, v)
    if want == "any" then return true end
    local t = type(v)
    for alt in want:gmatch("[^|]+") do
        if alt == t then return true end
    end
    return false
end

local function in_list(list, v)
    for _, x in ipairs(list) do
        if x == v then return true end
    end
    return false
end

local function fits(rule, v)
    if rule.one_of then return in_list(rule.one_of, v) end
    if type(v) ~= "number" then return true end
    return not ((rule.integer and v ~= math.floor(v)) or (rule.positive and v <= 0)
        or (rule.min and v < rule.min) or (rule.max and v > rule.max))
end

-- What is wrong with value v of the option called `name`, or nil.
local function problem(rule, v, name)
    if type(rule) == "string" then rule = { rule } end
    if v == nil then
        if rule.required then return ("option '%s': %s expected, got no value")
            :format(name, type_text(rule)) end
        return nil
    end
    if not type_ok(rule[1] or "any", v) then
        return ("option '%s': %s expected, got %s"):format(name, type_text(rule), type(v))
    end
    if not fits(rule, v) then
        return ("option '%s': %s expected, got %s"):format(name, expected(rule), shown(v))
    end
    if rule.valid then
        local ok, want = rule.valid(v)
        if not ok then
            return ("option '%s': %s expected, got %s"):format(name, want or expected(rule),
                shown(v))
        end
    end
    if rule.values and type(v) == "table" then
        for k, x in pairs(v) do
            local msg = problem(rule.values, x, name .. "." .. tostring(k))
            if msg then return msg end
        end
    end
    return nil
end

--- fail(fname, msg, level[, argn]): raises "bad argument #argn to 'fname' (msg)";
-- level as error's, seen from the function calling fail.
function M.fail(fname, msg, level, argn)
    error(("bad argument #%d to '%s' (%s)"):format(argn or 1, fname, msg), level + 1)
end

--- check(opts, spec, fname, level[, argn[, name]]) -> opts, or {} for nil. Raises on
-- a value that is not a table, an unknown key, or a value its rule refuses; `level`
-- as error's, seen from the function calling check; `name`: the option this table
-- is (e.g. "multipart.file"), its keys shown as name.key.
function M.check(opts, spec, fname, level, argn, name)
    local msg
    if opts == nil then opts = {} end
    local prefix = name and name .. "." or ""
    if type(opts) ~= "table" then
        msg = name and ("option '%s': table expected, got %s"):format(name, type(opts))
            or ("table expected, got %s"):format(type(opts))
    else
        for k in pairs(opts) do
            if spec[k] == nil then
                msg = ("unknown option '%s'"):format(prefix .. tostring(k))
                break
            end
        end
        for k, rule in pairs(spec) do
            if msg then break end
            msg = problem(rule, opts[k], prefix .. tostring(k))
        end
    end
    if msg then M.fail(fname, msg, level + 1, argn) end
    return opts
end

return M
