--- marketo.schema: what an instance says about an object kind on Marketo's
-- describe endpoints, parsed into one shape for the three kinds, and cached.
--
--   local schema = require("marketo.schema")
--   local s = assert(schema.load(client, "program_members", { program_id = 1001 }))
--   s.fields      -> { { name, display, type, length, updateable }... } (file order)
--   s:field("Email") -> the field named so exactly, else nil; s:near("emial") -> "email"
--   s.lookup      -> leads: the fields lookupField takes, as a set
--   s.dedupe      -> custom objects: their dedupeFields; s.id_field
--   s.program, s.statuses -> program members: the program and its channel's statuses
--   s.instance, s.object, s.key, s.fetched (epoch seconds)
--
-- load() reads the cache (one file per instance and object, 0600, under
-- $XDG_CACHE_HOME/marketo-bulk, else ~/.cache/marketo-bulk) when it is younger
-- than a day, else asks Marketo and writes it. A cache file that does not
-- parse as a schema is asked again, never trusted. The paths are the kinds'
-- own (marketo.objects). Failures: nil, "DESCRIBE: ...", "DESCRIBE".
local core = require("marketo.core")
local json = require("marketo.json")
local objects = require("marketo.objects")
local url = require("marketo.url")

local M = {}

M.MAX_AGE = 86400
M.VERSION = 1

-- The types the checks know (marketo.pipeline.checks); others pass unchecked.
M.TYPES = { string = true, email = true, integer = true, float = true, currency = true,
    boolean = true, date = true, datetime = true, phone = true, url = true, text = true }

local Schema = {}
Schema.__index = Schema

local function index(s)
    s.by_name, s.by_lower = {}, {}
    for _, f in ipairs(s.fields) do
        s.by_name[f.name] = f
        s.by_lower[f.name:lower()] = s.by_lower[f.name:lower()] or f
    end
    return setmetatable(s, Schema)
end

--- new{ fields = {...}, lookup, dedupe, statuses, ... } -> a schema (for
-- scripts and specs that know their instance's fields already).
function M.new(t)
    return index(t)
end

--- The field named exactly `name`, or nil.
function Schema:field(name)
    return self.by_name[name]
end

-- Levenshtein distance, cut off above `max`.
local function distance(a, b, max)
    if math.abs(#a - #b) > max then return max + 1 end
    local prev = {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
        local cur, best = { [0] = i }, i
        for j = 1, #b do
            local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
            cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if cur[j] < best then best = cur[j] end
        end
        if best > max then return max + 1 end
        prev = cur
    end
    return prev[#b]
end

--- The field a misspelt `name` most likely means (another case, or a near
-- miss), or nil.
function Schema:near(name)
    local same = self.by_lower[name:lower()]
    if same then return same.name end
    local lower = name:lower():gsub("[%s_%-]", "")
    local best, best_d = nil, #lower < 4 and 1 or 2
    for _, f in ipairs(self.fields) do
        local d = distance(lower, f.name:lower(), best_d)
        if d <= best_d and (not best or d < best_d) then best, best_d = f.name, d end
    end
    return best
end

---------------------------------------------------------------------------
-- Parsing Marketo's answers

local function field_of(name, f)
    return { name = name, display = f.displayName or name, type = tostring(f.dataType or ""),
        length = tonumber(f.length), updateable = f.updateable ~= false }
end

local function fields_of(list)
    local out = {}
    for _, f in ipairs(type(list) == "table" and list or {}) do
        if type(f) == "table" and type(f.name) == "string" then
            out[#out + 1] = field_of(f.name, f)
        end
    end
    return out
end

local function set_of(list)
    local out = {}
    for _, name in ipairs(list) do out[name] = true end
    return out
end

-- Leads: lookupField takes the standard fields of the kind's list and custom
-- string, email or integer fields. Describe does not say which fields are
-- custom; the searchable ones of those types stand for them (UNCONFIRMED).
local function lead_lookups(fields, searchable)
    local kind = objects.get("leads")
    local out = set_of(kind.dedupe.lookup)
    local types = { string = true, email = true, integer = true }
    local by_name = {}
    for _, f in ipairs(fields) do by_name[f.name] = f end
    for _, s in ipairs(type(searchable) == "table" and searchable or {}) do
        local f = type(s) == "table" and #s == 1 and by_name[s[1]]
        if f and types[f.type] then out[f.name] = true end
    end
    for name in pairs(out) do
        if not by_name[name] then out[name] = nil end
    end
    return out
end

M.parse = {}

--- describe2's result, or (old = true) the older describe's.
function M.parse.leads(result, old)
    if old then
        local fields = {}
        for _, f in ipairs(result) do
            if type(f) == "table" and type(f.rest) == "table" and type(f.rest.name) == "string" then
                local fd = field_of(f.rest.name, f)
                fd.updateable = f.rest.readOnly ~= true
                fields[#fields + 1] = fd
            end
        end
        return { fields = fields, lookup = lead_lookups(fields, nil) }
    end
    local entry = result[1]
    if type(entry) ~= "table" or type(entry.fields) ~= "table" then return nil end
    local fields = fields_of(entry.fields)
    return { fields = fields, lookup = lead_lookups(fields, entry.searchableFields) }
end

function M.parse.custom_objects(result)
    local o = result[1]
    if type(o) ~= "table" or type(o.fields) ~= "table" or type(o.dedupeFields) ~= "table" then
        return nil
    end
    return { fields = fields_of(o.fields), dedupe = o.dedupeFields, id_field = o.idField,
        name = o.name }
end

--- Members: the leads' fields and the members' own; the program and the
-- statuses of its channel.
function M.parse.program_members(leads, members, program, channel)
    local m = members[1]
    if not leads or type(m) ~= "table" or type(m.fields) ~= "table" then return nil end
    local fields = {}
    for _, f in ipairs(leads.fields) do fields[#fields + 1] = f end
    for _, f in ipairs(fields_of(m.fields)) do fields[#fields + 1] = f end
    local statuses = {}
    for _, st in ipairs(channel and channel.progressionStatuses or {}) do
        if type(st) == "table" and type(st.name) == "string" then
            statuses[#statuses + 1] = st.name
        end
    end
    return { fields = fields, program = program, statuses = statuses,
        channel = channel and channel.name }
end

---------------------------------------------------------------------------
-- Asking Marketo

local function fail(msg)
    return nil, "DESCRIBE: " .. msg, "DESCRIBE"
end

-- GET `path` -> the result list (empty when Marketo sent none) | nil, msg, code.
local function get(client, path, query)
    local doc, msg, code = client:call{ method = "GET", path = path, query = query }
    if not doc then return nil, msg, code end
    return type(doc.result) == "table" and doc.result or {}
end

local function path_of(kind, which, values)
    return objects.path(kind, which, values, url.encode)
end

local function ask_leads(client)
    local kind = objects.get("leads")
    local result, msg, code = get(client, kind.paths.describe)
    local path, old = kind.paths.describe, false
    if not result and (code == "610" or code == "HTTP_404") then
        path, old = kind.paths.describe_old, true
        result, msg = get(client, path)
    end
    if not result then return fail(("GET %s failed: %s"):format(path, msg)) end
    local parsed = M.parse.leads(result, old)
    if not parsed then return fail(kind.paths.describe .. ": an answer without fields") end
    return parsed
end

local ASK = {}

ASK.leads = ask_leads

function ASK.custom_objects(client, values)
    local kind = objects.get("custom_objects")
    local path = path_of(kind, "describe", values)
    local result, msg, code = get(client, path)
    if not result and code == "1013" then
        local list = get(client, kind.paths.list) or {}
        local names = {}
        for _, o in ipairs(list) do names[#names + 1] = tostring(o.name) end
        return nil, ("DESCRIBE: no custom object '%s' on this instance (it has: %s)")
            :format(values.api_name, #names > 0 and table.concat(names, ", ") or "none"),
            "NO_OBJECT"
    end
    if not result then return fail(("GET %s failed: %s"):format(path, msg)) end
    local parsed = M.parse.custom_objects(result)
    if not parsed then return fail(path .. ": an answer without fields or dedupeFields") end
    return parsed
end

function ASK.program_members(client, values)
    local kind = objects.get("program_members")
    local leads, msg, code = ask_leads(client)
    if not leads then return nil, msg, code end
    local members
    members, msg = get(client, kind.paths.describe)
    if not members then return fail(("GET %s failed: %s"):format(kind.paths.describe, msg)) end
    local ppath = path_of(kind, "program", values)
    local programs
    programs, msg = get(client, ppath)
    if not programs then return fail(("GET %s failed: %s"):format(ppath, msg)) end
    local program = programs[1]
    if type(program) ~= "table" or type(program.channel) ~= "string" then
        return nil, ("DESCRIBE: no program %s on this instance"):format(values.program_id),
            "NO_OBJECT"
    end
    local channels
    channels, msg = get(client, kind.paths.channels, { name = program.channel })
    if not channels then return fail(("GET %s failed: %s"):format(kind.paths.channels, msg)) end
    local parsed = M.parse.program_members(leads, members,
        { id = program.id, name = program.name, channel = program.channel }, channels[1])
    if not parsed then return fail(kind.paths.describe .. ": an answer without fields") end
    return parsed
end

--- The key of an object kind's schema: "leads", "custom_objects/car_c", ...
function M.key(object, values)
    local kind = objects.get(object)
    local key = kind.name
    for _, p in ipairs(kind.params) do
        if p.where == "path" then key = key .. "/" .. tostring(values[p.name]) end
    end
    return key
end

--- The instance a client talks to, as people name it: host[:port], no secret.
function M.instance(base_url)
    return (tostring(base_url):match("^%a+://([^/?#@]+)") or tostring(base_url))
end

local function finish(s, object, values, instance, now)
    s.version, s.object, s.key = M.VERSION, object, M.key(object, values)
    s.instance, s.fetched = instance, now
    return index(s)
end

--- fetch(client, object, values) -> schema | nil, msg, code: Marketo asked now.
function M.fetch(client, object, values)
    local s, msg, code = ASK[object](client, values or {})
    if not s then return nil, msg, code end
    return finish(s, object, values or {}, M.instance(client.base_url), os.time())
end

--- from_sandbox(object, values, sandbox_schema, conf) -> schema | nil, msg,
-- code: the embedded sandbox's, known without a server (the same describe).
function M.from_sandbox(object, values, sb_schema, conf)
    local describe = require("marketo.sandbox.describe")
    local s
    if object == "leads" then
        s = M.parse.leads(describe.leads2(sb_schema))
    elseif object == "custom_objects" then
        local result = describe.object(sb_schema, values.api_name)
        if not result then
            local names = {}
            for _, o in ipairs(describe.objects(sb_schema)) do names[#names + 1] = o.name end
            return nil, ("DESCRIBE: no custom object '%s' on this instance (it has: %s)")
                :format(values.api_name, table.concat(names, ", ")), "NO_OBJECT"
        end
        s = M.parse.custom_objects(result)
    else
        local program = describe.program(sb_schema, values.program_id)[1]
        s = M.parse.program_members(M.parse.leads(describe.leads2(sb_schema)),
            describe.members(sb_schema), { id = program.id, name = program.name,
            channel = program.channel }, (describe.channel(sb_schema, conf, program.channel)
            or {})[1])
    end
    return finish(s, object, values, "embedded sandbox", os.time())
end

---------------------------------------------------------------------------
-- The cache

--- The cache folder: $XDG_CACHE_HOME/marketo-bulk, else ~/.cache/marketo-bulk.
function M.cache_dir(getenv)
    return require("marketo.config").dir("cache", getenv)
end

function M.cache_path(dir, instance, key)
    local name = require("marketo.config").file_name
    return ("%s/%s-%s.json"):format(dir, name(instance), name(key))
end

-- A cache file's schema, if it is whole and this object's; else nil.
local function read_cache(path, instance, key)
    local f = io.open(path, "rb")
    if not f then return nil end
    local text = f:read("*a")
    f:close()
    local s = json.decode(text or "")
    if type(s) ~= "table" or s.version ~= M.VERSION or s.instance ~= instance or s.key ~= key
        or type(s.fetched) ~= "number" or type(s.fields) ~= "table" then
        return nil
    end
    for _, fd in ipairs(s.fields) do
        if type(fd) ~= "table" or type(fd.name) ~= "string" or type(fd.type) ~= "string" then
            return nil
        end
    end
    return index(s), true
end

local function mkdir(path)
    local ok = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "' 2>/dev/null")
    return ok == true or ok == 0
end

local function write_cache(path, dir, s)
    local plain = {}
    for k, v in pairs(s) do
        if k ~= "by_name" and k ~= "by_lower" then plain[k] = v end
    end
    if not mkdir(dir) then return nil end
    return core.write_file(path, json.encode(plain))
end

--- load(client, object, values, opts) -> schema, how | nil, msg, code.
-- how: "cache" or "fetched". opts: refresh (ask even with a fresh cache),
-- cache_dir (default M.cache_dir()), now (epoch seconds), log(level, msg).
function M.load(client, object, values, opts)
    opts = opts or {}
    values = values or {}
    local instance, key = M.instance(client.base_url), M.key(object, values)
    local dir = opts.cache_dir or M.cache_dir()
    local path = dir and M.cache_path(dir, instance, key)
    local now = opts.now or os.time()
    if path and not opts.refresh then
        local s = read_cache(path, instance, key)
        if s and now - s.fetched < M.MAX_AGE and s.fetched <= now then return s, "cache" end
    end
    local s, msg, code = M.fetch(client, object, values)
    if not s then return nil, msg, code end
    if path and not write_cache(path, dir, s) and opts.log then
        opts.log("warn", ("could not write the schema cache %s"):format(path))
    end
    return s, "fetched"
end

--- usage(client) -> { date, total } | nil, msg, code: today's API calls.
function M.usage(client)
    local result, msg, code = get(client, "/rest/v1/stats/usage.json")
    if not result then return nil, "USAGE: GET /rest/v1/stats/usage.json failed: " .. msg, code end
    local day = result[1]
    if type(day) ~= "table" or type(day.total) ~= "number" then
        return nil, "USAGE: an answer without today's total", "USAGE"
    end
    return { date = day.date, total = day.total }
end

return M
