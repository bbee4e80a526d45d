--- marketo.client: a Marketo REST client for the Bulk Import API.
--
--   local client = assert(require("marketo.client").new())   -- from the environment
--   local job = assert(client:import_leads{ path = "leads.csv", lookup_field = "email" })
--   local status = assert(job:wait{ timeout = 3600 })
--   for _, row in ipairs(assert(job:failures())) do print(row.reason) end
--
-- Every call checks the HTTP status, the content type and Marketo's envelope, and
-- handles a failure by its class (marketo.errors): fresh token and repeat (reauth),
-- back off and repeat (retry, throttle), wait for an import slot (queue) or fail at once
-- (fatal), as the retry policy (marketo.retry) decides. Failures come back as
-- `nil, message, code, err`.
local json = require("marketo.json")
local config = require("marketo.config")
local argcheck = require("marketo.options")
local url = require("marketo.url")
local errors = require("marketo.errors")
local retry = require("marketo.retry")
local auth = require("marketo.auth")

local M = {}

local Client = {}
Client.__index = Client

function Client.__tostring(c)
    return ("marketo.client(%s, client id %s)"):format(c.base_url, c.client_id)
end

local function default_sleep()
    local ok, loop = pcall(require, "marketo.loop")
    if ok and type(loop) == "table" and loop.sleep then return loop.sleep end
    return require("marketo.core").sleep
end

local function default_transport(s)
    local http = require("marketo.http")
    local o = { timeout = s.upload_timeout, user_agent = s.user_agent }
    for k, v in pairs(s.http or {}) do o[k] = v end
    return http.new(o)
end

--- new(options) -> client | nil, message, "CONFIG". Options (all optional):
-- base_url | munchkin_id, client_id, client_secret (else the environment, or `env`, a
-- table standing in for it); transport (any object with :request, default
-- marketo.http); http (options for the default transport); retry (a policy function,
-- default retry.policy()); classes (overrides of errors.classes); clock, sleep (for
-- fake time); log (function(level, message)); timeout, upload_timeout,
-- identity_timeout (seconds); token_margin (renew that long before expiry);
-- user_agent.
function M.new(options)
    argcheck.check(options, config.options, "client.new", 2)
    if options and options.http and options.http.verify ~= nil then
        argcheck.fail("client.new", "http." .. require("marketo.http").NO_VERIFY, 2)
    end
    local s, msg, code = config.resolve(options or {})
    if not s then return nil, msg, code end
    local c = setmetatable({
        base_url = s.base_url, client_id = s.client_id,
        timeout = s.timeout, upload_timeout = s.upload_timeout,
        retry = s.retry or retry.policy(), classes = s.classes,
        clock = s.clock or require("marketo.core").monotonic,
        sleep = s.sleep or default_sleep(),
        log = s.log,
        user_agent = s.user_agent,
    }, Client)
    c.transport = s.transport or default_transport(s)
    c.auth = auth.new{
        base_url = c.base_url, client_id = c.client_id, client_secret = s.client_secret,
        transport = c.transport, clock = c.clock, sleep = c.sleep,
        log = c.log and function(level, message) c:emit(level, message) end,
        timeout = s.identity_timeout, margin = s.token_margin, user_agent = c.user_agent,
    }
    return c
end

function Client:emit(level, message)
    if self.log then self.log(level, errors.redact(message, self.auth:secrets())) end
end

--- Fetches a token now: a script can check its credentials before it starts.
-- Returns true or nil, message, code, err.
function Client:authenticate()
    local ok, msg, code, err = self:with_retries("POST /identity/oauth/token", function()
        local token, m, c, e = self.auth:token()
        if not token then return nil, e or errors.new{ code = c, message = m } end
        return true
    end)
    if not ok then return nil, msg, code, err end
    return true
end

--- How many identity calls this client made (specs check the token is cached).
function Client:identity_calls()
    return self.auth.identity_calls
end

function Client:new_error(fields)
    fields.class = fields.class or errors.classify(fields.code, self.classes)
    return errors.new(fields, self.auth:secrets())
end

-- Marketo's first error in an envelope, as an error value.
function Client:envelope_error(doc, call, status)
    local e = type(doc.errors) == "table" and doc.errors[1] or {}
    return self:new_error{
        code = e.code ~= nil and tostring(e.code) or "BAD_RESPONSE",
        message = e.message ~= nil and tostring(e.message) or "success false without errors",
        request_id = doc.requestId, call = call, status = status,
    }
end

local function is_json(res)
    local ct = res.headers and (res.headers["content-type"] or res.headers["Content-Type"])
    return ct ~= nil and ct:lower():find("json", 1, true) ~= nil
end

local function snippet(body)
    body = tostring(body or ""):sub(1, 80):gsub("%c", " ")
    return body
end

-- A non-200 answer: Marketo's error envelope when it sent one, else the status.
function Client:status_error(res, call)
    local doc = is_json(res) and json.decode(res.body or "") or nil
    if type(doc) == "table" and doc.success == false then
        return self:envelope_error(doc, call, res.status)
    end
    return self:new_error{ code = "HTTP_" .. res.status, status = res.status,
        call = call, message = "HTTP status " .. res.status }
end

-- A JSON answer: the decoded envelope, or an error value.
function Client:check_json(res, call)
    if res.status ~= 200 then return nil, self:status_error(res, call) end
    if not is_json(res) then
        return nil, self:new_error{ code = "BAD_RESPONSE", call = call, status = res.status,
            message = "expected JSON, got content type "
                .. tostring(res.headers and res.headers["content-type"]) }
    end
    local doc = json.decode(res.body or "")
    if type(doc) ~= "table" then
        return nil, self:new_error{ code = "BAD_RESPONSE", call = call, status = res.status,
            message = "unparsable JSON: " .. snippet(res.body) }
    end
    if doc.success ~= true then return nil, self:envelope_error(doc, call, res.status) end
    return doc
end

-- A file answer (failures, warnings): the body, `false` for "no file" (404 or an
-- empty body), or an error value when Marketo sent an error envelope instead.
function Client:check_file(res, call)
    if res.status == 404 then return false end
    if res.status ~= 200 then return nil, self:status_error(res, call) end
    if is_json(res) then
        local doc = json.decode(res.body or "")
        if type(doc) == "table" and doc.success == false then
            return nil, self:envelope_error(doc, call, res.status)
        end
        return nil, self:new_error{ code = "BAD_RESPONSE", call = call, status = 200,
            message = "expected a file, got JSON: " .. snippet(res.body) }
    end
    if res.body == nil or res.body == "" then return false end
    return res.body
end

-- One attempt of a call: value, or nil, error value, token used.
function Client:attempt(req, call)
    local token, msg, code, err = self.auth:token()
    if not token then
        err = err or self:new_error{ code = code, message = msg, call = call }
        -- The client's own overrides apply to identity failures too.
        if self.classes and self.classes[err.code] then err.class = self.classes[err.code] end
        return nil, err
    end
    -- A fresh header table on every attempt: the token may have been renewed, and a
    -- retried request must never go out without it.
    local headers = {}
    for k, v in pairs(req.headers or {}) do headers[k] = v end
    headers.Authorization = "Bearer " .. token
    if self.user_agent then headers["User-Agent"] = self.user_agent end
    local res, tmsg, tcode = self.transport:request{
        method = req.method, url = self.base_url .. req.path .. url.query(req.query),
        headers = headers, body = req.body, multipart = req.multipart,
        timeout = req.timeout or self.timeout, on_progress = req.on_progress,
    }
    if self.log then
        self:emit("debug", ("%s -> %s"):format(call, res and tostring(res.status)
            or tostring(tcode)))
    end
    if not res then
        tcode = tcode or "TRANSPORT"
        -- The transport's message starts with its code; ours prints the code once.
        tmsg = tostring(tmsg)
        if tmsg:sub(1, #tcode + 2) == tcode .. ": " then tmsg = tmsg:sub(#tcode + 3) end
        return nil, self:new_error{ code = tcode, message = tmsg, call = call }, token
    end
    if req.expect == "file" then
        local body, e = self:check_file(res, call)
        if body == nil then return nil, e, token end
        return body
    end
    local doc, e = self:check_json(res, call)
    if not doc then return nil, e, token end
    if type(doc.warnings) == "table" and #doc.warnings > 0 then
        local list = {}
        for k, w in ipairs(doc.warnings) do
            list[k] = type(w) == "table" and (tostring(w.code) .. " " .. tostring(w.message))
                or tostring(w)
        end
        self:emit("warn", ("%s: Marketo warns: %s"):format(call, table.concat(list, "; ")))
    end
    -- A reply can be a well-formed envelope and still lack what the call needs
    -- (an empty `result` has been seen on status calls): that is transient too.
    local problem = req.validate and req.validate(doc)
    if problem then
        return nil, self:new_error{ code = "BAD_RESPONSE", call = call, status = res.status,
            request_id = doc.requestId, message = problem }, token
    end
    return doc
end

--- Runs `once()` (-> value | nil, err, token) until it succeeds or the retry policy
-- gives up. Returns the value or nil, message, code, err.
function Client:with_retries(call, once)
    local start = self.clock()
    local counts, attempts = {}, 0
    while true do
        local value, err, token = once()
        if value ~= nil then return value end
        attempts = attempts + 1
        counts[err.class] = (counts[err.class] or 0) + 1
        err.attempts, err.elapsed = attempts, self.clock() - start
        err.call = err.call or call
        if err.class == "reauth" then self.auth:invalidate(token) end
        local delay = self.retry(err, counts[err.class])
        if type(delay) ~= "number" then
            self:emit("error", tostring(err))
            return errors.fail(err)
        end
        self:emit("warn", ("%s; %s in %.2f s"):format(tostring(err),
            err.class == "queue" and "waiting for an import slot, again" or "retrying", delay))
        if delay > 0 then self.sleep(delay) end
    end
end

--- call{ method, path, query, headers, body | multipart, timeout, on_progress,
-- expect = "json" | "file", validate = function(doc) -> nil | problem } -> the
-- decoded envelope (or the file body, or false for no file), or nil, message, code,
-- err. The low-level door that the job functions use.
function Client:call(req)
    local call = req.method .. " " .. req.path
    return self:with_retries(call, function() return self:attempt(req, call) end)
end

--- The jobs API (marketo.job) as client methods. Not tail calls: a misuse error
-- must point at the script's line, and a tail call would hide it.
local job = require("marketo.job")

function Client:import(kind, options)
    local j, msg, code, err = job.create(self, kind, options)
    return j, msg, code, err
end
-- client:import_leads(options), :import_custom_objects, ...: one a kind of
-- the registry, Client:import with its kind given.
for _, kind in ipairs(require("marketo.objects").LIST) do
    Client["import_" .. kind.name] = function(self, options)
        local j, msg, code, err = job.create(self, kind.name, options)
        return j, msg, code, err
    end
end
--- A job created earlier (e.g. by a previous run), by its batch id.
function Client:job(kind, batch_id, options)
    local j = job.attach(self, kind, batch_id, options)
    return j
end

--- describe(object, values, opts) -> the instance's schema of an object kind
-- (marketo.schema: fields, types, lookup/dedupe fields, statuses), cached a day;
-- usage() -> { date, total }: today's API calls.
function Client:describe(object, values, opts)
    local s, msg, code = require("marketo.schema").load(self, object, values, opts)
    return s, msg, code
end
function Client:usage()
    local u, msg, code = require("marketo.schema").usage(self)
    return u, msg, code
end

M.Client = Client
return M
