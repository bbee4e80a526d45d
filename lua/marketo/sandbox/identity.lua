--- marketo.sandbox.identity: GET|POST /identity/oauth/token and the checks on
-- `Authorization: Bearer` (the AUTH page). One client, one live token at a time: a
-- new token is issued only once the old one expired, as Marketo does.
local envelope = require("marketo.sandbox.envelope")
local params = require("marketo.sandbox.params")

local M = {}
M.__index = M

--- new{ conf, clock (seconds, monotonic), random (fn(n) -> 1..n) }
function M.new(opts)
    return setmetatable({
        conf = opts.conf, clock = opts.clock, random = opts.random,
        live = nil,      -- { token, expires_at }
        retired = {},    -- token -> true once its 602 was answered
        known = {},      -- token -> expires_at, every token ever issued
    }, M)
end

local function uuid(random)
    local hex = {}
    for i = 1, 32 do hex[i] = ("%x"):format(random(16) - 1) end
    local s = table.concat(hex)
    return ("%s-%s-4%s-%s-%s"):format(s:sub(1, 8), s:sub(9, 12), s:sub(14, 16),
        s:sub(17, 20), s:sub(21, 32))
end

local function oauth_error(status, err, description)
    local code, headers, body = envelope.json(status,
        { error = err, error_description = description })
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    return code, headers, body
end

local function credentials(req)
    local q = params.query(req)
    local ctype = (req.headers and req.headers["content-type"]) or ""
    local urlencoded = ctype:lower():find("application/x-www-form-urlencoded", 1, true)
    if req.method == "POST" and urlencoded then
        local form = params.decode(req.body)
        for k, v in pairs(form) do if q[k] == nil then q[k] = v end end
    end
    return q
end

function M:current(now)
    local live = self.live
    if live and now < live.expires_at then return live end
    local token = uuid(self.random) .. ":sb"
    live = { token = token, expires_at = now + self.conf.token_ttl }
    self.live = live
    self.known[token] = live.expires_at
    return live
end

--- The token endpoint: status, headers, body.
function M:token(req)
    if req.method ~= "GET" and req.method ~= "POST" then
        return oauth_error(405, "method_not_allowed", "Request method '" .. req.method
            .. "' not supported")
    end
    local q = credentials(req)
    if q.client_id ~= self.conf.client_id or q.client_secret ~= self.conf.client_secret then
        return oauth_error(401, "invalid_client", "Bad client credentials")
    end
    if q.grant_type == nil then
        return oauth_error(400, "invalid_request", "Missing grant type")
    elseif q.grant_type ~= "client_credentials" then
        return oauth_error(400, "unsupported_grant_type", "Unsupported grant type: "
            .. q.grant_type)
    end
    local now = self.clock()
    local live = self:current(now)
    -- Remaining whole seconds: a fresh token shows 3599, as in the docs.
    local left = math.max(0, math.ceil(live.expires_at - now) - 1)
    if self.conf.expires_in_zero then left = 0 end
    local code, headers, body = envelope.json(200, {
        access_token = live.token, token_type = "bearer",
        expires_in = left, scope = self.conf.scope,
    })
    headers["Cache-Control"] = "no-store"
    headers["Pragma"] = "no-cache"
    return code, headers, body
end

--- Ends the live token now (for specs that test 602 without waiting).
function M:expire()
    if self.live then
        self.live.expires_at = self.clock()
        self.known[self.live.token] = self.live.expires_at
    end
end

--- Finds the token of a bulk call. Returns token, how ("bearer", "query",
-- "form" or "none"). Form fields come from the parsed multipart, if any.
function M.find(_, req, query, form)
    local auth = req.headers and req.headers["authorization"]
    if auth then
        local token = auth:match("^[Bb]earer%s+(%S+)%s*$")
        return token or "", "bearer"
    end
    if query.access_token then return query.access_token, "query" end
    if form and form.access_token then return form.access_token, "form" end
    return nil, "none"
end

--- nil when the token is good, else the error code (601 or 602).
function M:check(token, how)
    if token == nil then return "601" end
    if how ~= "bearer" and not self.conf.legacy_token then return "601" end
    local expires_at = self.known[token]
    if not expires_at then return "601" end
    if self.clock() < expires_at then return nil end
    -- 602 on the first use after expiry, 601 ever after (the ERR page).
    if self.retired[token] then return "601" end
    self.retired[token] = true
    return "602"
end

return M
