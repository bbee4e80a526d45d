--- marketo.errors: what a failed call means, and the error value scripts get.
--
-- Every runtime failure of the client library is returned as
--     nil, message, code, err
-- `message` is for people; `code` is a stable string programs compare: Marketo's code
-- ("607", "1016"), "HTTP_<status>", a transport code (curl's name without CURLE_,
-- e.g. "COULDNT_CONNECT"), or one of ours: AUTH_FAILED (bad client id/secret),
-- BAD_RESPONSE (not the JSON/file we expect), JOB_FAILED (a job ended
-- Failed), TIMEOUT (a wait ran out), CONFIG (missing or bad settings). `err` is the
-- same failure as a table (see `new`), with the class that decided how it was handled.
--
-- `classes` maps a code to what the client does about it. It is an ordinary table: a
-- script may read it, or change an entry (`errors.classes["1003"] = "retry"`) for every
-- client, or pass `classes = { ["1003"] = "retry" }` to one client.
local M = {}

-- What the client can do about a failure (the values of `classes`).
M.CLASSES = { "reauth", "retry", "throttle", "queue", "fatal" }

M.classes = {
    -- The token is stale: fetch another and repeat the call.
    ["601"] = "reauth", ["602"] = "reauth",
    -- Transient on Marketo's side: back off (with jitter) and repeat.
    ["500"] = "retry", ["502"] = "retry", ["604"] = "retry", ["608"] = "retry",
    ["611"] = "retry", ["614"] = "retry", ["713"] = "retry", ["719"] = "retry",
    -- Over the instance's shared limits (100 calls / 20 s, 10 in flight).
    ["606"] = "throttle", ["615"] = "throttle",
    -- The import queue is full (1016) or the list is being imported into (1019): a
    -- slot frees up when a running job ends, so wait patiently.
    ["1016"] = "queue", ["1019"] = "queue",
    -- Retrying cannot help; 607 in particular resets only at midnight CST.
    ["607"] = "fatal", ["603"] = "fatal", ["605"] = "fatal", ["609"] = "fatal",
    ["610"] = "fatal", ["612"] = "fatal", ["613"] = "fatal", ["616"] = "fatal",
    ["HTTP_400"] = "fatal", ["HTTP_401"] = "fatal", ["HTTP_403"] = "fatal",
    ["HTTP_404"] = "fatal", ["HTTP_413"] = "fatal", ["HTTP_414"] = "fatal",
    ["HTTP_429"] = "throttle",
    -- Our own codes.
    AUTH_FAILED = "fatal", JOB_FAILED = "fatal", TIMEOUT = "fatal", CONFIG = "fatal",
    -- A body that is not the JSON we expect is most often a reply cut short.
    BAD_RESPONSE = "retry",
    -- Network failures and dropped connections (transport codes).
    COULDNT_CONNECT = "retry", COULDNT_RESOLVE_HOST = "retry",
    COULDNT_RESOLVE_PROXY = "retry", OPERATION_TIMEDOUT = "retry",
    GOT_NOTHING = "retry", RECV_ERROR = "retry", SEND_ERROR = "retry",
    PARTIAL_FILE = "retry", HTTP2 = "retry", HTTP2_STREAM = "retry",
    SSL_CONNECT_ERROR = "retry", WEIRD_SERVER_REPLY = "retry",
}

-- What to do about a few errors whose cause the message alone does not tell.
M.hints = {
    ["607"] = "the instance's daily API quota is used up; it resets at midnight US Central time",
    ["603"] = "the API user lacks a permission, or this address is not on the IP allow list",
    ["610"] = "the base URL or the path is wrong (bulk paths start at /bulk/v1/)",
    ["1016"] = "the import queue is full (10 jobs); wait for running jobs to end",
    -- Refused when the job is created: retrying the same file cannot help.
    ["1006"] = "a column (or the lookup field) is not a field of this object: names are "
        .. "API names, case-sensitive, without spaces around them; fix the header",
    ["1008"] = "the API user may not import into that lead partition; check --partition",
    ["1011"] = "that field cannot be a lookup field: use email, id, another key field, or "
        .. "a custom string, email or integer field",
    HTTP_413 = "the upload is over Marketo's 10 MB limit: split the file into smaller parts",
    HTTP_401 = "the request was refused: check the credentials",
    HTTP_404 = "no such endpoint: check the base URL",
}

--- The class of `code`, looking in `overrides` first, then `classes`. HTTP 5xx
-- statuses that are not listed are transient; anything else unknown is fatal, because
-- repeating a call we do not understand risks doubling an import.
function M.classify(code, overrides)
    code = tostring(code)
    local class = overrides and overrides[code] or M.classes[code]
    if class then return class end
    if code:match("^HTTP_5%d%d$") then return "retry" end
    return "fatal"
end

local function escape_pattern(s)
    return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

--- `text` with every string in `secrets` (and anything that looks like a token or a
-- secret in a URL, header or form) replaced by "***".
function M.redact(text, secrets)
    text = tostring(text)
    if secrets then
        for _, s in pairs(secrets) do
            if type(s) == "string" and #s >= 4 then
                text = text:gsub(escape_pattern(s), "***")
            end
        end
    end
    text = text:gsub("([?&;]access_token=)[^&%s\"']+", "%1***")
    text = text:gsub("([?&;]?client_secret=)[^&%s\"']+", "%1***")
    text = text:gsub("([Bb]earer )[%w%-%._~+/:=]+", "%1***")
    return text
end

local Error = {}
Error.__index = Error

function Error.__tostring(e)
    local parts = {}
    if e.call then parts[#parts + 1] = e.call .. ":" end
    parts[#parts + 1] = e.code
    if e.message and e.message ~= "" then parts[#parts + 1] = e.message end
    local s = table.concat(parts, " ")
    if e.request_id then s = s .. " (requestId " .. e.request_id .. ")" end
    if e.attempts and e.attempts > 1 then
        s = s .. (" after %d attempts"):format(e.attempts)
    end
    if e.hint then s = s .. ": " .. e.hint end
    return s
end

--- A new error value. Fields: code (string, required), message, call
-- ("POST /bulk/v1/leads.json"), request_id, status (HTTP), class, hint (from
-- `hints` unless given); the client adds attempts and elapsed. `secrets` (not
-- stored) are redacted from the message.
function M.new(fields, secrets)
    local e = setmetatable({}, Error)
    for k, v in pairs(fields) do e[k] = v end
    e.code = tostring(e.code)
    if e.message ~= nil then e.message = M.redact(e.message, secrets) end
    e.class = e.class or M.classify(e.code)
    if e.hint == nil then e.hint = M.hints[e.code] end
    return e
end

function M.is_error(v)
    return getmetatable(v) == Error
end

--- The failure quadruple of an error value: nil, message, code, err.
function M.fail(e)
    return nil, tostring(e), e.code, e
end

return M
