-- Helpers shared by the client library's sandbox specs (client_spec, job_spec,
-- secrets_spec): a sandbox per spec file, inspection calls, and the capture of
-- everything the library logs or returns, for the secret scan.
local http = require("marketo.http")
local json = require("marketo.json")
local retry = require("marketo.retry")

local M = {}

local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

local function pack(...)
    return { n = select("#", ...), ... }
end

local CLIENT_ID, CLIENT_SECRET = "client-spec-id", "client-spec-secret-7f3a9c"

-- Until spec/support/sandbox.lua exists: the sandbox's handler served by the
-- generic test server child (spec/support/server.lua).
local function serve_sandbox(inspect_post)
    local app = os.tmpname() .. ".lua"
    local f = assert(io.open(app, "w"))
    f:write(([[
local sb = assert(require("marketo.sandbox").new{ quiet = true,
    client_id = %q, client_secret = %q })
return { handler = function(req) return sb:handle(req) end, max_body = sb:max_body() }
]]):format(CLIENT_ID, CLIENT_SECRET))
    f:close()
    local s = require("spec.support.server").start(app)
    local sb = { base_url = s.url, client_id = CLIENT_ID, client_secret = CLIENT_SECRET }
    function sb.stop() s.stop(); os.remove(app) end
    function sb.control(changes) return inspect_post(sb, "/config", changes) end
    return sb
end

--- Starts a sandbox for the spec file: { base_url, client_id, client_secret, stop,
-- control = function(changes) }.
function M.sandbox(options)
    local ok, support = pcall(require, "spec.support.sandbox")
    if ok then
        local started, sb = pcall(support.start, options)
        if started then return sb end
        -- The runner is not built (or is stale): serve the same sandbox code from
        -- the generic test server instead, and say so.
        io.stderr:write("client specs: sandbox runner unavailable (", tostring(sb),
            "); serving marketo.sandbox through spec/support/server.lua\n")
    end
    local sb = serve_sandbox(M.post)
    if options then sb.control(options) end
    return sb
end

local inspector = http.new{ timeout = 10 }

function M.inspect(sb, path)
    local res = assert(inspector:request{ method = "GET",
        url = sb.base_url .. "/__sandbox" .. path })
    assert(res.status == 200, "inspection " .. path .. ": HTTP " .. res.status)
    return assert(json.decode(res.body))
end

function M.post(sb, path, body)
    local res = assert(inspector:request{ method = "POST",
        url = sb.base_url .. "/__sandbox" .. path,
        headers = { ["Content-Type"] = "application/json" }, body = json.encode(body or {}) })
    assert(res.status == 200, "inspection " .. path .. ": HTTP " .. res.status .. " " .. res.body)
    return json.decode(res.body)
end

--- A retry policy with the default's shape but tiny delays, so specs stay fast.
function M.fast_retry(extra)
    local o = { base = 0.01, cap = 0.05, throttle_window = 1, concurrency_base = 0.01,
        queue_base = 0.05, queue_cap = 0.2, queue_timeout = 30, max_elapsed = 30, seed = 1 }
    for k, v in pairs(extra or {}) do o[k] = v end
    return retry.policy(o)
end

M.fast_wait = { first = 0.02, factor = 1.5, max_interval = 0.1, timeout = 30 }

M.SCRIPTED_SECRET = "unit-secret-value"

local function json_answer(status, doc)
    return { status = status, headers = { ["content-type"] = "application/json;charset=UTF-8" },
        body = json.encode(doc) }
end

--- A transport answering from a script, for specs on a fake clock: identity hands
-- out tok-1, tok-2, ... (401 unless the body carries SCRIPTED_SECRET); `bulk` is a
-- list of answers (functions of the request) for the other calls, then a Complete
-- job status. opts: ttl, expires_in, bulk. t.log holds every request.
function M.scripted(opts)
    local t = { log = {}, issued = 0, ttl = opts.ttl or 3600, bulk = opts.bulk or {} }
    function t.request(self, req)
        self.log[#self.log + 1] = req
        if req.url:find("/identity/oauth/token", 1, true) then
            if not req.body:find("client_secret=" .. M.SCRIPTED_SECRET, 1, true) then
                return json_answer(401, { error = "invalid_client",
                    error_description = "Bad client credentials" })
            end
            self.issued = self.issued + 1
            return json_answer(200, { access_token = "tok-" .. self.issued,
                token_type = "bearer", expires_in = opts.expires_in or self.ttl, scope = "x" })
        end
        local answer = table.remove(self.bulk, 1)
        if answer then return answer(req) end
        return json_answer(200, { requestId = "a#1", success = true,
            result = { { batchId = 1, status = "Complete" } } })
    end
    return t
end

--- A scripted answer: Marketo's error envelope with `code`.
function M.envelope_error(code)
    return function()
        return json_answer(200, { requestId = "b#2", success = false,
            errors = { { code = code, message = "m" .. code } } })
    end
end

--- A scripted answer: anything.
function M.answer(status, content_type, body)
    return function()
        return { status = status, headers = { ["content-type"] = content_type }, body = body }
    end
end

M.json_answer = function(status, doc) return function() return json_answer(status, doc) end end

--- Writes `text` to a fresh temporary file; returns its path.
M.file = require("spec.support.files").temp_file

-- Every string reachable from v (keys and values, through nested tables).
local function strings(v, out, seen)
    local t = type(v)
    if t == "string" then out[#out + 1] = v
    elseif t == "number" or t == "boolean" then out[#out + 1] = tostring(v)
    elseif t == "table" and not seen[v] then
        seen[v] = true
        local mt = getmetatable(v)
        if mt and mt.__tostring then out[#out + 1] = tostring(v) end
        for k, x in pairs(v) do
            strings(k, out, seen)
            strings(x, out, seen)
        end
    end
    return out
end

--- A capture: `log` is a sink for the client's log option; `watch(obj)` wraps a
-- client or a job so that every method result (and any job it returns) is kept;
-- `clients` remembers the clients whose tokens must never show.
function M.capture()
    local cap = { lines = {}, clients = {} }
    function cap.log(level, message)
        cap.lines[#cap.lines + 1] = level .. ": " .. message
    end
    function cap.keep(...)
        for i = 1, select("#", ...) do
            strings(select(i, ...), cap.lines, {})
        end
        return ...
    end
    function cap.watch(obj)
        if type(obj) == "table" and obj.auth then cap.clients[#cap.clients + 1] = obj end
        cap.lines[#cap.lines + 1] = tostring(obj)
        return setmetatable({}, {
            __index = function(_, k)
                local v = obj[k]
                if type(v) ~= "function" then return v end
                return function(_, ...)
                    local r = pack(v(obj, ...))
                    local n = r.n
                    for i = 1, n do
                        cap.keep(r[i])
                        if type(r[i]) == "table" and r[i].client and r[i].kind then
                            r[i] = cap.watch(r[i])
                        end
                    end
                    return unpack(r, 1, n)
                end
            end,
            __tostring = function() return tostring(obj) end,
        })
    end
    --- Every secret: the given ones and every token the watched clients were issued.
    function cap.secrets(extra)
        local list = {}
        for _, s in ipairs(extra or {}) do list[#list + 1] = s end
        for _, c in ipairs(cap.clients) do
            for _, s in ipairs(c.auth:secrets()) do list[#list + 1] = s end
        end
        return list
    end
    return cap
end

--- The leaks: "secret #i in: line" for every captured line that holds a secret.
function M.scan(lines, secrets)
    local leaks = {}
    for _, line in ipairs(lines) do
        for i, s in ipairs(secrets) do
            if #s > 0 and line:find(s, 1, true) then
                leaks[#leaks + 1] = ("secret #%d in: %s"):format(i, line:sub(1, 200))
            end
        end
    end
    return leaks
end

--- Strings from the sandbox's request log that the client sent, identity calls aside
-- (the identity call must carry the secret, in its body).
function M.sent(sb)
    local out = {}
    for _, entry in ipairs(M.inspect(sb, "/log")) do
        if not tostring(entry.path):find("^/identity/") then strings(entry, out, {}) end
    end
    return out
end

return M
