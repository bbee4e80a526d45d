--- marketo.url: percent-encoding of what goes into a URL or a form: path segments
-- (a batchId, an apiName), query parameters, the identity call's credentials.
local M = {}

-- Whole numbers as integers: under Lua 5.3+ a listId of 42.0 must not become "42.0".
local function text(v)
    if type(v) == "number" and v == math.floor(v) then return ("%d"):format(v) end
    return tostring(v)
end

--- encode(v) -> v as text with every byte but RFC 3986's unreserved ones as %XX.
function M.encode(v)
    return (text(v):gsub("[^%w%-%._~]", function(c)
        return ("%%%02X"):format(c:byte())
    end))
end

--- query(t) -> "?k=v&..." in key order (stable URLs for logs and specs), or "".
function M.query(t)
    if not t then return "" end
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    local out = {}
    for _, k in ipairs(keys) do
        out[#out + 1] = M.encode(k) .. "=" .. M.encode(t[k])
    end
    if #out == 0 then return "" end
    return "?" .. table.concat(out, "&")
end

return M
