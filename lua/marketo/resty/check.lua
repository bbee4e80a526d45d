--- marketo.resty.check: the argument checks of the transport interface, the
-- same as marketo.http makes (that module needs marketo.core, this one must
-- not). Misuse raises, pointing at the caller of the public function.
local options = require("marketo.options")

local M = {}

M.REQUEST = {
    method = "string", url = "string", headers = "table", body = "string",
    multipart = "table", output = "string", timeout = "number", on_progress = "function",
}
M.MULTIPART = { fields = "table", file = "table" }
M.FILE = {
    name = "string", filename = "string", content_type = "string", path = "string",
    offset = "number", length = "number", prefix = "string",
}

--- table(t, types, fname, what, level): raises on a non-table, an unknown key
-- or a value of the wrong type; `what` names a nested table (nil: the options).
function M.table(t, types, fname, what, level)
    options.check(t, types, fname, level + 1, 1, what)
    return t
end

local function usage(msg, level)
    options.fail("request", msg, level + 1)
end

local function check_multipart(mp, level)
    M.table(mp, M.MULTIPART, "request", "multipart", level + 1)
    for i, f in ipairs(mp.fields or {}) do
        if type(f) ~= "table" or type(f[1]) ~= "string" or type(f[2]) ~= "string" then
            usage(("multipart.fields[%d]: { name, value } strings expected"):format(i), level + 1)
        end
    end
    if mp.file then
        M.table(mp.file, M.FILE, "request", "multipart.file", level + 1)
        if not mp.file.name or not mp.file.path then
            usage("multipart.file needs name and path", level + 1)
        end
    end
end

--- request(opts, level): the options of t:request.
function M.request(opts, level)
    M.table(opts, M.REQUEST, "request", nil, level + 1)
    if not opts.url then usage("url is required", level + 1) end
    if opts.body and opts.multipart then
        usage("body and multipart exclude each other", level + 1)
    end
    for name, value in pairs(opts.headers or {}) do
        if type(name) ~= "string" or type(value) ~= "string" or name:find("[:\r\n]")
            or value:find("[\r\n]") then
            usage("headers: name -> value strings without CR, LF or ':' in names", level + 1)
        end
    end
    if opts.multipart then check_multipart(opts.multipart, level + 1) end
end

return M
