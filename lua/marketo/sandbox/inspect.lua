--- marketo.sandbox.inspect: what a test may ask the sandbox itself, under
-- /__sandbox/ (no Marketo path starts so): the stored records, the jobs, a log
-- of every request, counters, the config (read and change), a reset, the
-- sandbox's clock (read, move on, freeze).
-- None of these calls count against the limits or show up in the log.
local envelope = require("marketo.sandbox.envelope")
local config = require("marketo.sandbox.config")

local M = {}

M.PREFIX = "/__sandbox"

-- Query/form values never worth keeping: a token or a secret.
local SECRET = { access_token = true, client_secret = true }

--- A log entry's view of a query table: names kept, secret values hidden.
function M.scrub(query)
    local out = {}
    for k, v in pairs(query) do out[k] = SECRET[k] and "(hidden)" or v end
    return out
end

local function json(value)
    return envelope.json(200, value)
end

-- cjson writes an empty table as {}; a list endpoint must still say [].
local function list(value)
    if next(value) == nil then
        local status, headers = envelope.json(200, {})
        return status, headers, "[]"
    end
    return json(value)
end

local function bad(message)
    return envelope.json(400, { error = message })
end

-- Records encoded per piece of a streamed answer.
local BATCH = 1000

-- The records first..last of a view as a JSON array, one piece at a time
-- (the server sends a function body chunked), so a store of millions is
-- never one string in memory.
local function stream(view, first, last)
    local i, done = first, false
    return function()
        if done then return nil end
        if i > last then
            done = true
            return i == first and "[]" or "]"
        end
        local out = {}
        for j = i, math.min(last, i + BATCH - 1) do out[#out + 1] = envelope.encode(view.at(j)) end
        local piece = (i == first and "[" or ",") .. table.concat(out, ",")
        i = i + BATCH
        return piece
    end
end

-- A query parameter that must be a whole number >= 0, or nil when absent.
local function whole(req, name)
    local v = (req.params or {})[name]
    if v == nil then return nil end
    local n = v:match("^%d+$") and math.tointeger(tonumber(v))
    if not n then return nil, ("%s: expected a whole number >= 0, got '%s'"):format(name, v) end
    return n
end

-- A records endpoint: the records of a view from ?offset= (0 first) up to
-- ?limit= of them (all by default); a big answer is streamed.
local function records(req, view)
    local offset, err = whole(req, "offset")
    if err then return bad(err) end
    local limit
    limit, err = whole(req, "limit")
    if err then return bad(err) end
    offset = offset or 0
    local first, last = offset + 1, view.count
    if limit and limit < last - offset then last = offset + limit end -- never overflows
    if last - first < BATCH then
        local out = {}
        for i = first, last do out[#out + 1] = view.at(i) end
        return list(out)
    end
    local status, headers = envelope.json(200, {})
    return status, headers, stream(view, first, last)
end

local function job_view(job)
    return {
        batchId = job.id, kind = job.kind, status = job.status, format = job.format,
        rows = job.rows, imported = job.imported, failed = job.failed, warned = job.warned,
        message = job.message, objectApiName = job.object and job.object.api_name,
        programId = job.program_id, lookupField = job.lookup, listId = job.list_id,
        partitionName = job.partition, bytes = job.bytes,
        -- when it was queued, started and ended, on the sandbox's monotonic
        -- clock: a spec can replay how full the import slots were kept
        queuedAt = job.created, startedAt = job.started, finishedAt = job.finished,
    }
end

local function set_config(sb, body)
    local changes = envelope.decode(body or "")
    if type(changes) ~= "table" then return bad("body must be a JSON object") end
    local ok, msg = sb:configure(changes)
    if not ok then return bad(msg) end
    return json(config.public(sb.conf))
end

local function set_clock(sb, body)
    local change = envelope.decode(body or "")
    if type(change) ~= "table" then return bad("body must be a JSON object") end
    for k in pairs(change) do
        if k ~= "advance" and k ~= "freeze" then
            return bad(("unknown clock field '%s' (advance, freeze)"):format(tostring(k)))
        end
    end
    local advance, freeze = change.advance, change.freeze
    if advance ~= nil and (type(advance) ~= "number" or advance < 0 or advance ~= advance) then
        return bad("advance: expected a non-negative number of seconds")
    end
    if freeze ~= nil and type(freeze) ~= "boolean" then
        return bad("freeze: expected true or false")
    end
    if freeze == true then sb.time:freeze() elseif freeze == false then sb.time:thaw() end
    if advance then sb.time:advance(advance) end
    sb.queue:tick(sb.clock())
    return json(sb.time:view())
end

-- A call that changes the sandbox must come from a test or a tool, never from
-- a web page (CSRF): a page's form cannot send a JSON content type without a
-- CORS preflight, which is never granted, and a browser names the page in
-- Origin. Returns nil, or the refusal.
local function refused(req)
    local headers = req.headers or {}
    if headers["origin"] then
        return envelope.json(403, { error = "a call from a web page (Origin: "
            .. headers["origin"] .. ") may not change the sandbox" })
    end
    local kind = (headers["content-type"] or ""):match("^%s*([^;%s]+)")
    if not kind or kind:lower() ~= "application/json" then
        return envelope.json(415, { error = "a call that changes the sandbox must send "
            .. "Content-Type: application/json" })
    end
    return nil
end

-- The stored records by kind: PATH answers them, PATH/count their number.
local VIEWS = {
    { "^/records/leads", function(sb) return sb.store:lead_view() end },
    { "^/records/customobjects/([^/]+)",
      function(sb, name) return sb.store:object_view(name) end },
    { "^/records/programs/([^/]+)/members",
      function(sb, id) return sb.store:member_view(id) end },
    { "^/records/lists/(%d+)",
      function(sb, id) return sb.store:list_view(math.tointeger(tonumber(id))) end },
}

local ROUTES = {
    { "GET", "^/records$", function(sb) return json(sb.store:summary()) end },
    { "GET", "^/jobs$", function(sb)
        sb.queue:tick(sb.clock())
        local out = {}
        for i, job in ipairs(sb.queue:list()) do out[i] = job_view(job) end
        return list(out)
    end },
    { "GET", "^/log$", function(sb) return list(sb.log.entries) end },
    { "GET", "^/counters$", function(sb) return json(sb:counters()) end },
    { "GET", "^/config$", function(sb) return json(config.public(sb.conf)) end },
    { "POST", "^/config$", function(sb, req) return set_config(sb, req.body) end },
    { "POST", "^/reset$", function(sb)
        sb:reset()
        return json({ reset = true })
    end },
    { "POST", "^/expire%-token$", function(sb)
        sb.identity:expire()
        return json({ expired = true })
    end },
    { "GET", "^/clock$", function(sb) return json(sb.time:view()) end },
    { "POST", "^/clock$", function(sb, req) return set_clock(sb, req.body) end },
}

for _, v in ipairs(VIEWS) do
    local path, view = v[1], v[2]
    ROUTES[#ROUTES + 1] = { "GET", path .. "$",
        function(sb, req, ...) return records(req, view(sb, ...)) end }
    ROUTES[#ROUTES + 1] = { "GET", path .. "/count$",
        function(sb, _, ...) return json({ count = view(sb, ...).count }) end }
end
for _, r in ipairs(require("marketo.sandbox.describe").INSPECT) do ROUTES[#ROUTES + 1] = r end

--- Answers a request whose path starts with PREFIX.
function M.handle(sb, req)
    local rest = req.path:sub(#M.PREFIX + 1)
    local known = false
    for _, r in ipairs(ROUTES) do
        local caps = { rest:match(r[2]) }
        if caps[1] ~= nil or rest:match(r[2]) then
            if r[1] == req.method then
                if req.method ~= "GET" then
                    local status, headers, body = refused(req)
                    if status then return status, headers, body end
                end
                return r[3](sb, req, table.unpack(caps))
            end
            known = true
        end
    end
    if known then return envelope.json(405, { error = "method not allowed" }) end
    return envelope.json(404, { error = "no such inspection endpoint" })
end

--- A bounded request log (oldest entries dropped first).
function M.new_log(size)
    local log = { entries = {}, n = 0 }
    function log.add(entry)
        log.n = log.n + 1
        entry.n = log.n
        local entries = log.entries
        entries[#entries + 1] = entry
        local limit = size()
        if #entries > limit then table.remove(entries, 1) end
    end
    function log.clear()
        log.entries = {}
    end
    return log
end

return M
