--- marketo.sandbox.params: query strings and url-encoded forms as tables.
local M = {}

local function unescape(s)
    s = s:gsub("+", " ")
    return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- "a=1&b=x%20y" -> { a = "1", b = "x y" }; the first of repeated names wins.
function M.decode(s)
    local out = {}
    if not s then return out end
    for pair in s:gmatch("[^&]+") do
        local k, v = pair:match("^([^=]*)=(.*)$")
        if not k then k, v = pair, "" end
        k = unescape(k)
        if out[k] == nil then out[k] = unescape(v) end
    end
    return out
end

--- The query of a request, whatever form the HTTP layer handed it in.
function M.query(req)
    if type(req.params) == "table" then return req.params end
    if type(req.query) == "table" then return req.query end
    local q = req.query or (req.target or ""):match("%?(.*)$")
    return M.decode(q)
end

return M
