--- marketo.json: lua-cjson with whole numbers kept whole. Under Lua 5.3+
-- cjson 2.1.0 decodes every number as a float, so a batchId of 3404 would
-- come back as 3404.0 and end up in a URL as "3404.0"; decode() turns every
-- integral float back into an integer. On 5.1/LuaJIT numbers are all doubles
-- and print whole anyway.
local cjson = require("cjson")

local tointeger = rawget(math, "tointeger") -- nil before 5.3

local M = {}

local function whole(v)
    local t = type(v)
    if t == "number" and tointeger then
        return tointeger(v) or v
    elseif t == "table" then
        for k, x in pairs(v) do v[k] = whole(x) end
    end
    return v
end

--- decode(text) -> value | nil, msg (never raises on bad input).
function M.decode(text)
    local ok, value = pcall(cjson.decode, text)
    if not ok then return nil, tostring(value) end
    return whole(value)
end

--- decode_file(path[, what]) -> table | nil, msg: a whole file holding a JSON
-- object or array. msg: io.open's (it names the file), or "path: not <what>"
-- (e.g. what = "the JSON the import wrote"), or without `what` "path: " and the
-- reason.
function M.decode_file(path, what)
    local f, msg = io.open(path, "rb")
    if not f then return nil, msg end
    local text = f:read("*a")
    f:close()
    local doc, err = M.decode(text or "")
    if type(doc) ~= "table" then
        return nil, path .. ": " .. (what and "not " .. what or err or "not a JSON object or array")
    end
    return doc
end

M.encode = cjson.encode
M.null = cjson.null

return M
