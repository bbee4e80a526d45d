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

M.encode = cjson.encode
M.null = cjson.null

return M
