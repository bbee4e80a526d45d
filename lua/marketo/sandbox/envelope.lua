--- marketo.sandbox.envelope: the JSON envelope of Marketo's REST answers,
-- its requestId, and the error codes with the messages the docs give them.
local cjson = require("cjson.safe")

local M = {}

-- Messages as Marketo's "Error Codes" page spells them (doc/sandbox.md cites it);
-- "%s" are filled by M.error(code, ...). 606/615 use the texts seen in real
-- answers (with the numbers filled in).
M.MESSAGES = {
    ["502"] = "Bad Gateway",
    ["601"] = "Access token invalid",
    ["602"] = "Access token expired",
    ["603"] = "Access denied",
    ["604"] = "Request time-out",
    ["605"] = "HTTP Method not supported",
    ["606"] = "Max rate limit '%s' exceeded with in '%s' secs",
    ["607"] = "Daily quota reached",
    ["608"] = "API Temporarily Unavailable",
    ["609"] = "Invalid JSON",
    ["610"] = "Requested resource not found",
    ["611"] = "System error",
    ["612"] = "Invalid Content Type",
    ["613"] = "Invalid Multipart Request",
    ["614"] = "Invalid Subscription",
    ["615"] = "Concurrent access limit '%s' reached",
    ["713"] = "Transient Error",
    ["719"] = "Lock wait timeout exception",
    ["1001"] = "Invalid value '%s'. Required of type '%s'",
    ["1002"] = "Missing value for the required parameter '%s'",
    ["1003"] = "%s",
    ["1006"] = "Field '%s' not found",
    ["1008"] = "Access denied to partition '%s'",
    ["1011"] = "Field '%s' not supported",
    ["1013"] = "Object not found",
    ["1016"] = "Too many imports",
    ["1025"] = "Program status not found",
}

M.JSON_TYPE = "application/json;charset=UTF-8"
M.FILE_TYPE = "text/csv;charset=UTF-8"

-- Counts are Lua integers; cjson prints integral numbers without ".0" under
-- its %.14g format, so `batchId` comes out as 3404 as Marketo sends it.
cjson.encode_sparse_array(true)

--- Ids look like Marketo's: a hex counter, '#', the wall-clock ms in hex.
function M.request_ids(start)
    local n = start or 0x1f00
    return function(now_ms)
        n = n + 1
        return ("%x#%x"):format(n, math.floor(now_ms))
    end
end

function M.encode(value)
    return assert(cjson.encode(value))
end

function M.decode(text)
    return cjson.decode(text)
end

--- The `{code, message}` of an error, message filled from its arguments.
function M.error(code, ...)
    code = tostring(code)
    local template = assert(M.MESSAGES[code], "unknown error code " .. code)
    local args = table.pack(...)
    for i = 1, args.n do args[i] = tostring(args[i]) end
    local ok, message = pcall(string.format, template, table.unpack(args, 1, args.n))
    return { code = code, message = ok and message or template }
end

local function answer(status, body)
    return status, { ["Content-Type"] = M.JSON_TYPE }, M.encode(body)
end

--- 200 with `success: true` and the result array.
function M.ok(request_id, result)
    return answer(200, { requestId = request_id, success = true, result = result })
end

--- 200 with `success: false` and one error (the HTTP status of an API error is 200).
function M.fail(request_id, err)
    return answer(200, { requestId = request_id, success = false, errors = { err } })
end

function M.json(status, value)
    return answer(status, value)
end

return M
