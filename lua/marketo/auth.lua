--- marketo.auth: the access token of one client (OAuth client credentials).
--
-- The token is fetched once and shared by every call; it is renewed ahead of expiry,
-- and dropped when Marketo says it is stale (601/602) so that the next attempt fetches
-- another. Only one fetch runs at a time: concurrent tasks of a marketo.loop wait for it.
-- The secret and the token live in a private table, not in the object, so that dumping
-- a client (inspect, pretty-printers, error messages with %s) cannot show them.
local json = require("marketo.json")
local errors = require("marketo.errors")
local url = require("marketo.url")

local M = {}

local private = setmetatable({}, { __mode = "k" })

local Auth = {}
Auth.__index = Auth

function Auth.__tostring(a)
    return ("marketo.auth(%s)"):format(a.client_id)
end

--- new{ base_url, client_id, client_secret, transport, clock, sleep, log, timeout,
-- margin, user_agent }
function M.new(o)
    local a = setmetatable({
        base_url = o.base_url, client_id = o.client_id, transport = o.transport,
        clock = o.clock, sleep = o.sleep, log = o.log, timeout = o.timeout,
        margin = o.margin, user_agent = o.user_agent,
        identity_calls = 0,
    }, Auth)
    private[a] = { secret = o.client_secret, issued = {} }
    return a
end

--- Every string that must never be shown: the secret and every token seen so far.
function Auth:secrets()
    local p = private[self]
    local list = { p.secret }
    for t in pairs(p.issued) do list[#list + 1] = t end
    return list
end

local CALL = "POST /identity/oauth/token"

function Auth:fail(fields)
    fields.call = fields.call or CALL
    return errors.fail(errors.new(fields, self:secrets()))
end

-- The credentials go in a form body, never in the URL: a URL ends up in transport
-- error messages, proxy logs and the server's access log.
function Auth:request()
    local p = private[self]
    local headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        Accept = "application/json",
    }
    if self.user_agent then headers["User-Agent"] = self.user_agent end
    self.identity_calls = self.identity_calls + 1
    return self.transport:request{
        method = "POST", url = self.base_url .. "/identity/oauth/token",
        headers = headers, timeout = self.timeout,
        body = "grant_type=client_credentials&client_id=" .. url.encode(self.client_id)
            .. "&client_secret=" .. url.encode(p.secret),
    }
end

local function oauth_error(doc)
    if type(doc) ~= "table" then return nil end
    if doc.error then
        return tostring(doc.error), doc.error_description and tostring(doc.error_description)
    end
    if doc.success == false and type(doc.errors) == "table" and doc.errors[1] then
        return tostring(doc.errors[1].code), tostring(doc.errors[1].message)
    end
end

-- One identity call: the token and its lifetime, or the failure quadruple.
function Auth:fetch()
    local res, msg, code = self:request()
    if not res then
        code, msg = code or "TRANSPORT", tostring(msg)
        if msg:sub(1, #code + 2) == code .. ": " then msg = msg:sub(#code + 3) end
        return self:fail{ code = code, message = msg }
    end
    local doc = json.decode(res.body or "")
    local oerr, odesc = oauth_error(doc)
    if res.status == 401 or res.status == 400 or (oerr and res.status < 500) then
        return self:fail{
            code = "AUTH_FAILED", class = "fatal", status = res.status,
            message = ("Marketo refused client id %q: %s%s (check MARKETO_CLIENT_ID and "
                .. "MARKETO_CLIENT_SECRET)"):format(self.client_id, oerr or "unauthorized",
                odesc and (" (" .. odesc .. ")") or ""),
        }
    end
    if res.status ~= 200 then
        return self:fail{ code = "HTTP_" .. res.status, status = res.status,
            message = "identity call answered HTTP " .. res.status }
    end
    if type(doc) ~= "table" or type(doc.access_token) ~= "string" or doc.access_token == ""
        or tonumber(doc.expires_in) == nil then
        return self:fail{ code = "BAD_RESPONSE", status = res.status,
            message = "identity answer has no access_token/expires_in" }
    end
    private[self].issued[doc.access_token] = true
    return doc.access_token, tonumber(doc.expires_in)
end

-- Installs a fetched token. `expires_in: 0` is seen in the wild at the very end of a
-- token's life, and some servers send it for tokens that still work: the token is used
-- for the call at hand but trusted for one second only. If it has lapsed, Marketo
-- answers 602/601 and the call is repeated with a new one; if the server keeps saying
-- 0, we ask at most once a second.
function Auth:install(token, expires_in, now)
    local p = private[self]
    local renew_at
    if expires_in <= 0 then
        expires_in = 1
        renew_at = now + 1
    else
        renew_at = now + expires_in - math.min(self.margin, expires_in * 0.1)
        -- Marketo hands back the same token while it lives; asking again before it
        -- lapses would return it again, so keep it to the end in that case.
        if token == p.previous then renew_at = now + expires_in end
    end
    if self.log then
        self.log("info", ("access token %s (expires in %d s)")
            :format(token == p.previous and "reissued" or "obtained", expires_in))
    end
    p.token, p.expires_at, p.renew_at, p.previous = token, now + expires_in, renew_at, token
    return token
end

--- The current token (fetching one if needed), or nil, message, code, err.
function Auth:token()
    local p = private[self]
    while p.fetching do self.sleep(0.01) end
    local now = self.clock()
    if p.token and now < p.renew_at then return p.token end
    p.fetching = true
    -- A transport that raises (misuse) must not leave every other task waiting.
    local ok, token, expires_in, code, err = pcall(self.fetch, self)
    p.fetching = false
    if not ok then error(token, 0) end
    if not token then return nil, expires_in, code, err end
    return self:install(token, expires_in, self.clock())
end

--- Forgets `token` if it is still the current one (Marketo said 601/602 about it).
function Auth:invalidate(token)
    local p = private[self]
    if token == nil or p.token == token then
        p.token, p.renew_at, p.expires_at = nil, nil, nil
    end
end

return M
