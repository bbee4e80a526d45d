--- marketo.commands.args: the flags of the ready commands.
-- parse(argv, first, spec) reads argv[first..]: `--name value`, `--name=value`,
-- bare `--flag` for booleans, repeatable flags into lists, the rest as
-- positionals. spec = { name = "string" | "number" | "boolean" | "list" }.
-- Returns flags, positionals | nil, message (a usage error, exit 2).
local M = {}

function M.parse(argv, first, spec)
    local flags, positional = {}, {}
    local i = first
    while i <= #argv do
        local a = argv[i]
        if a == "--" then
            for j = i + 1, #argv do positional[#positional + 1] = argv[j] end
            break
        end
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
                if kind == "number" then
                    local n = tonumber(value)
                    if not n then
                        return nil, ("--%s needs a number, got '%s'"):format(name, value)
                    end
                    flags[key] = n
                elseif kind == "list" then
                    flags[key] = flags[key] or {}
                    flags[key][#flags[key] + 1] = value
                else
                    flags[key] = value
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

return M
