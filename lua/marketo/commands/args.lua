--- marketo.commands.args: the flags of the ready commands.
-- parse(argv, first, spec) reads argv[first..]: `--name value`, `--name=value`,
-- bare `--flag` for booleans, repeatable flags into lists, the rest as
-- positionals; `-h` is --help where spec has help. spec = { name = KIND },
-- KIND one of "string", "boolean", "list" or a number kind: a name of
-- M.KINDS ("count", "seconds", "port", ...) or a table made the same way
-- (M.bytes(max)).
-- Returns flags, positionals | nil, message (a usage error, exit 2).
local M = {}

-- A number kind: integer or not, its bounds (min, above: a strict lower
-- bound, max) and how to tell a user what it allows.
M.KINDS = {
    count = { integer = true, min = 1, says = "a whole number of 1 or more" },
    seconds = { above = 0, says = "a number of seconds above 0" },
    positive = { above = 0, says = "a number above 0" },
    port = { integer = true, min = 0, max = 65535,
        says = "a port number from 0 to 65535 (0: any free port)" },
    share = { min = 0, max = 1, says = "a share from 0 to 1" },
}

--- A count of bytes from 1 to max.
function M.bytes(max)
    return { integer = true, min = 1, max = max,
        says = ("a number of bytes from 1 to %d"):format(max) }
end

-- Plain decimal only: no sign, exponent, hex, inf or nan, which tonumber
-- would take and a user never means in a count. "3.0" is the whole number 3
-- (the value checks that a whole number is whole).
local function decimal(text)
    if text:match("^%d+%.?%d*$") or text:match("^%.%d+$") then return tonumber(text) end
    return nil
end

--- value(kind, v) -> the number | nil, what the kind allows. v is the text of
-- a flag (or a number, from a config file); kind a name of M.KINDS or a kind.
function M.value(kind, v)
    local k = type(kind) == "table" and kind or M.KINDS[kind]
    if not k then error(("bad argument #1 to 'value' (no number kind '%s')"):format(kind), 2) end
    local n
    if type(v) == "number" then
        n = v
    elseif type(v) == "string" then
        n = decimal(v)
    end
    if n and k.integer then n = math.tointeger(n) end
    if n == nil or n ~= n or (k.min and n < k.min) or (k.max and n > k.max)
        or (k.above and n <= k.above) then
        return nil, k.says
    end
    return n
end

--- "--NAME VALUE: want WHAT" for a value a number kind refuses, or nil.
function M.refusal(flag, kind, v)
    local n, says = M.value(kind, v)
    if n then return nil end
    local shown = type(v) == "number" and ("%.14g"):format(v) or tostring(v)
    return ("%s %s: want %s"):format(flag, shown, says)
end

local function is_number_kind(kind)
    return type(kind) == "table" or M.KINDS[kind] ~= nil
end

function M.parse(argv, first, spec)
    local flags, positional = {}, {}
    local i = first
    while i <= #argv do
        local a = argv[i]
        if a == "--" then
            for j = i + 1, #argv do positional[#positional + 1] = argv[j] end
            break
        end
        if a == "-h" and spec.help then a = "--help" end
        local name, value = a:match("^%-%-([%w-]+)=(.*)$")
        name = name or a:match("^%-%-([%w-]+)$")
        if name then
            local key = name:gsub("-", "_")
            local kind = spec[key]
            if not kind then return nil, ("unknown flag --%s"):format(name) end
            if kind == "boolean" then
                if value then return nil, ("--%s takes no value"):format(name) end
                flags[key] = true
            else
                if not value then
                    i = i + 1
                    value = argv[i]
                    if value == nil then return nil, ("--%s needs a value"):format(name) end
                end
                if is_number_kind(kind) then
                    local n = M.value(kind, value)
                    if not n then return nil, M.refusal("--" .. name, kind, value) end
                    flags[key] = n
                elseif kind == "list" then
                    flags[key] = flags[key] or {}
                    flags[key][#flags[key] + 1] = value
                elseif kind == "string" then
                    flags[key] = value
                else
                    error(("bad argument #3 to 'parse' (flag kind '%s' of --%s)")
                        :format(tostring(kind), name), 2)
                end
            end
        elseif a:match("^%-%a") and a ~= "-" then
            return nil, ("unknown flag %s"):format(a)
        else
            positional[#positional + 1] = a
        end
        i = i + 1
    end
    return flags, positional
end

--- Writes a usage error as one line, with the way to the command's help
-- (never the whole help: the error would scroll away); returns the exit
-- status of a usage error (2).
function M.usage_error(err, command, msg)
    err:write(("marketo-bulk %s: %s; see 'marketo-bulk %s --help'\n"):format(command, msg,
        command))
    return 2
end

return M
