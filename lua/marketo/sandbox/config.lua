--- marketo.sandbox.config: every option of the sandbox, its default, its flag
-- and its help line, in one table. The same checks serve flags, a Lua/JSON
-- table given in-process, and POST /__sandbox/config at runtime.
local MESSAGES = require("marketo.sandbox.envelope").MESSAGES

local M = {}

-- { name, kind, default, help }. Defaults are Marketo's own numbers (doc/sandbox.md);
-- specs lower them. Kinds: int, number, bool, string, list (comma-separated
-- or a JSON array), enum:a|b.
M.OPTIONS = {
    { "port", "int", 0, "TCP port on 127.0.0.1 (0 = a free port)" },
    { "client_id", "string", "sandbox-client", "the client id Identity accepts" },
    { "client_secret", "string", "sandbox-secret", "the client secret Identity accepts" },
    { "scope", "string", "apis@sandbox.local", "the API user shown as `scope`" },
    { "token_ttl", "number", 3600, "seconds a token lives" },
    { "expires_in_zero", "bool", false, "answer `expires_in: 0` (token still valid)" },
    { "legacy_token", "bool", false, "also accept the `access_token` query/form parameter" },
    { "rate_limit", "int", 100, "calls allowed per rate window (606 beyond)" },
    { "rate_window", "number", 20, "seconds of the rolling rate window" },
    { "max_in_flight", "int", 10, "calls answered at once (615 beyond)" },
    { "daily_quota", "int", 50000, "calls per day (607 beyond); resets at midnight US Central" },
    { "max_importing", "int", 2, "jobs Importing at once" },
    { "max_queue", "int", 10, "jobs Queued + Importing (1016 beyond)" },
    { "speed", "number", 0, "rows per second a job imports (0 = as fast as it can)" },
    { "max_file_bytes", "int", 10000000,
      "upload size limit, checked before the token (HTTP 413 beyond; 10485760 = 10 MiB)" },
    { "size_limit_on", "enum:file|body", "file", "what the size limit measures" },
    { "latency", "number", 0, "seconds added to every bulk answer" },
    { "empty_files", "enum:404|empty", "404", "failures/warnings with no rows: 404 or empty 200" },
    { "blank_cells", "enum:skip|null", "skip",
      "an empty cell keeps (skip) or clears (null) a value" },
    { "header_case", "enum:sensitive|insensitive", "sensitive", "how headers match fields" },
    { "unknown_column", "enum:reject|fail", "reject",
      "unknown header (leads, members): the upload gets 1006 (reject) or its rows fail (fail)" },
    { "partitions", "list", "Default", "lead partitions partitionName may name (1008 else)" },
    { "count_refused", "bool", true, "calls refused with 606/607/615 count in the window" },
    { "usage_access", "bool", true, "the API user may read stats/usage.json (603 if not)" },
    { "failed_imports", "enum:part|none", "part",
      "a Failed job imported half its rows first (part) or none (none)" },
    { "unbalanced_quote", "enum:rest|line", "rest",
      "an unclosed quote takes the rest of the file (rest) or its line (line)" },
    { "require_format", "bool", false, "missing `format` is 1002 instead of csv" },
    { "unknown_path", "enum:610|404", "610", "unknown /bulk path: 610 envelope or HTTP 404" },
    { "unknown_batch_code", "enum:1013|610", "1013", "error for an unknown/expired batchId" },
    { "batch_days", "number", 7, "days a batchId stays valid" },
    { "failed_message", "string", "Import failed: system error", "message of a Failed job" },
    { "program_statuses", "list", "",
      "statuses programMemberStatus accepts (empty = its channel's)" },
    { "seed", "int", 1, "seed of the fault generator" },
    { "error_rate", "number", 0, "share of bulk calls answered with a transient error" },
    { "error_codes", "list", "502,604,608,611,615",
      "transient errors to draw from (any code of Marketo's table, or 502)" },
    { "drop_rate", "number", 0, "share of bulk calls whose connection is dropped" },
    { "lost_rate", "number", 0, "share of bulk calls carried out whose answer is dropped" },
    { "slow_rate", "number", 0, "share of bulk calls answered late" },
    { "slow_seconds", "number", 2, "how late a slow answer is" },
    { "job_fail_rate", "number", 0, "share of jobs that end Failed" },
    { "duplicate_hazard", "bool", false,
      "two Importing jobs that upsert one lead key create two records" },
    { "schema", "string", "", "JSON file adding lead fields and custom objects" },
    { "log_size", "int", 10000, "requests kept in the inspection log" },
    { "parent_pid", "int", 0, "exit when this process is gone (0 = never)" },
    { "max_lifetime", "number", 0, "exit after this many seconds (0 = never)" },
    { "quiet", "bool", false, "no request lines on stderr" },
}

local by_name = {}
for _, o in ipairs(M.OPTIONS) do by_name[o[1]] = o end

local function split_list(v)
    local out = {}
    for item in tostring(v):gmatch("[^,]+") do
        item = item:match("^%s*(.-)%s*$")
        if item ~= "" then out[#out + 1] = item end
    end
    return out
end

-- Turns a flag string or a decoded JSON/Lua value into the option's type.
local function coerce(opt, v)
    local kind = opt[2]
    if kind == "int" or kind == "number" then
        -- (also read on LuaJIT, through marketo.schema: no math.tointeger there)
        local n = tonumber(v)
        local whole = n ~= nil and n == math.floor(n) and math.abs(n) < 2 ^ 53
        if whole and math.tointeger then n = math.tointeger(n) end
        if n == nil or n < 0 or (kind == "int" and not whole) then
            local shown = type(v) == "number" and ("%.14g"):format(v) or tostring(v)
            return nil, ("option %s: expected a non-negative %s, got '%s'")
                :format(opt[1], kind == "int" and "integer" or "number", shown)
        end
        return n
    elseif kind == "bool" then
        if v == true or v == "true" or v == "1" or v == "yes" then return true end
        if v == false or v == "false" or v == "0" or v == "no" then return false end
        return nil, ("option %s: expected true or false, got '%s'"):format(opt[1], tostring(v))
    elseif kind == "list" then
        if type(v) == "table" then
            local out = {}
            for i, item in ipairs(v) do out[i] = tostring(item) end
            return out
        end
        return split_list(v)
    elseif kind:sub(1, 5) == "enum:" then
        v = tostring(v)
        for choice in kind:sub(6):gmatch("[^|]+") do
            if choice == v then return v end
        end
        return nil, ("option %s: expected one of %s, got '%s'"):format(opt[1], kind:sub(6), v)
    end
    if type(v) ~= "string" and type(v) ~= "number" then
        return nil, ("option %s: expected a string"):format(opt[1])
    end
    return tostring(v)
end

local function known_codes()
    local codes = {}
    for code in pairs(MESSAGES) do codes[#codes + 1] = code end
    table.sort(codes, function(a, b) return tonumber(a) < tonumber(b) end)
    return table.concat(codes, ", ")
end

--- Defaults, as a fresh table.
function M.defaults()
    local c = {}
    for _, o in ipairs(M.OPTIONS) do
        local v, msg = coerce(o, o[3])
        c[o[1]] = v
        assert(v ~= nil, msg)
    end
    return c
end

--- Applies `changes` (name -> value) to `conf`; all or nothing.
-- Returns true, or nil and a message naming the bad option.
function M.apply(conf, changes)
    local staged = {}
    for k, v in pairs(changes) do
        local opt = by_name[k]
        if not opt then return nil, ("unknown option '%s'"):format(tostring(k)) end
        local value, msg = coerce(opt, v)
        if msg then return nil, msg end
        if k == "error_codes" then
            for _, code in ipairs(value) do
                if not MESSAGES[code] then
                    return nil, ("option error_codes: '%s' is not an error code the sandbox "
                        .. "knows (one of %s)"):format(code, known_codes())
                end
            end
        end
        staged[k] = value
    end
    for k, v in pairs(staged) do conf[k] = v end
    return true
end

--- Flags `--name value` / `--name=value` (dashes or underscores) into a table.
-- Returns the table, or nil and a message.
function M.parse_args(argv, first)
    local changes = {}
    local i = first or 1
    while argv[i] do
        local arg = argv[i]
        local name, value = arg:match("^%-%-([%w_-]+)=(.*)$")
        if not name then name = arg:match("^%-%-([%w_-]+)$") end
        if not name then return nil, ("unexpected argument '%s'"):format(arg) end
        name = name:gsub("-", "_")
        local opt = by_name[name]
        if not opt then return nil, ("unknown option '--%s'"):format(arg:match("^%-%-([^=]+)")) end
        if value == nil then
            if opt[2] == "bool" and (argv[i + 1] == nil or argv[i + 1]:sub(1, 2) == "--") then
                value = "true"
            else
                i = i + 1
                value = argv[i]
                if value == nil then
                    return nil, ("option --%s needs a value"):format(arg:sub(3))
                end
            end
        end
        changes[name] = value
        i = i + 1
    end
    return changes
end

--- Reads a JSON file of options (names as in OPTIONS). Returns the table,
-- or nil and a message.
M.load_file = require("marketo.json").decode_file

--- The option lines of `--help`.
function M.help()
    local lines = {}
    for _, o in ipairs(M.OPTIONS) do
        local flag = "--" .. o[1]:gsub("_", "-")
        local kind = o[2]:gsub("^enum:", "")
        local default = o[3] == "" and "" or (" [" .. tostring(o[3]) .. "]")
        lines[#lines + 1] = ("  %-22s %-20s %s%s"):format(flag, kind, o[4], default)
    end
    return table.concat(lines, "\n") .. "\n"
end

--- What /__sandbox/config shows: everything but the secret.
function M.public(conf)
    local out = {}
    for k, v in pairs(conf) do out[k] = v end
    out.client_secret = nil
    return out
end

return M
