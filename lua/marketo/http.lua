--- marketo.http: the transport, over marketo.core (libcurl). Any object with
-- the same `request` method is a transport too (OpenResty brings its own).
--
--   local t = require("marketo.http").new{ timeout = 300 }
--   local res, msg, code = t:request{ method = "POST", url = ..., body = "..." }
--   -- res = { status, headers (lower-case names), body (nil with output),
--   --         time, uploaded, downloaded, connects }
--
-- Inside a task of marketo.loop the call yields and runs concurrently with the
-- other tasks; outside any loop it blocks. Transport failures return
-- nil, "COULDNT_CONNECT: ...", "COULDNT_CONNECT"; an HTTP status is data.
local core = require("marketo.core")
local Loop = require("marketo.loop")
local options = require("marketo.options")

local M = { _VERSION = "0.1.0" }

local Transport = {}
Transport.__index = Transport

--- Defaults of new(); every one can be overridden there.
M.DEFAULTS = {
    ca_path = nil,            -- a PEM bundle or a hashed directory; nil: the system's
    connect_timeout = 10,     -- seconds to establish a connection
    timeout = 300,            -- seconds for a whole request (request{timeout} overrides)
    low_speed_limit = 1,      -- bytes/s below which, for low_speed_time s, we give up
    low_speed_time = 60,
    user_agent = "marketo-bulk/" .. M._VERSION,
}

local NEW_TYPES = {
    ca_path = "string", connect_timeout = "number", timeout = "number",
    low_speed_limit = "number", low_speed_time = "number", user_agent = "string",
}

local REQUEST_TYPES = {
    method = "string", url = "string", headers = "table", body = "string",
    multipart = "table", output = "string", timeout = "number", on_progress = "function",
}

local MULTIPART_TYPES = { fields = "table", file = "table" }

local FILE_TYPES = {
    name = "string", filename = "string", content_type = "string", path = "string",
    offset = "number", length = "number", prefix = "string",
}

-- Raises on an unknown key or a value of the wrong type; level points at the
-- caller of the public function, as seen from here; `what` names a nested table.
local function check_table(t, types, fname, what, level)
    options.check(t, types, fname, level, 1, what)
end

local function usage(msg, level)
    options.fail("request", msg, level)
end

--- The misuse raised for `verify`: TLS verification has no off switch (a
-- switched-off check is how tokens leak to whoever answers); a test or a
-- private CA is trusted by naming its certificate.
M.NO_VERIFY = "verify: TLS verification is always on; to trust a private or test CA, "
    .. "give ca_path (a PEM bundle or a hashed directory)"

--- new(opts) -> transport; opts as in M.DEFAULTS (unknown keys raise).
function M.new(opts)
    opts = opts or {}
    if type(opts) == "table" and opts.verify ~= nil then options.fail("new", M.NO_VERIFY, 2) end
    check_table(opts, NEW_TYPES, "new", nil, 3)
    local self = setmetatable({}, Transport)
    for k, v in pairs(M.DEFAULTS) do self[k] = v end
    for k, v in pairs(opts) do self[k] = v end
    return self
end

local function check_multipart(mp)
    check_table(mp, MULTIPART_TYPES, "request", "multipart", 5)
    for i, f in ipairs(mp.fields or {}) do
        if type(f) ~= "table" or type(f[1]) ~= "string" or type(f[2]) ~= "string" then
            usage(("multipart.fields[%d]: { name, value } strings expected"):format(i), 5)
        end
    end
    if mp.file then
        check_table(mp.file, FILE_TYPES, "request", "multipart.file", 5)
        if not mp.file.name or not mp.file.path then
            usage("multipart.file needs name and path", 5)
        end
    end
end

local function check_request(opts)
    check_table(opts, REQUEST_TYPES, "request", nil, 4)
    if not opts.url then usage("url is required", 4) end
    if opts.body and opts.multipart then usage("body and multipart exclude each other", 4) end
    for name, value in pairs(opts.headers or {}) do
        if type(name) ~= "string" or type(value) ~= "string" or name:find("[:\r\n]")
            or value:find("[\r\n]") then
            usage("headers: name -> value strings without CR, LF or ':' in names", 4)
        end
    end
    if opts.multipart then check_multipart(opts.multipart) end
end

-- "Name: value" lines in a stable order; our User-Agent unless one is given.
local function header_lines(self, headers)
    local lines, has_agent = {}, false
    for name, value in pairs(headers or {}) do
        lines[#lines + 1] = name .. ": " .. value
        if name:lower() == "user-agent" then has_agent = true end
    end
    if not has_agent then lines[#lines + 1] = "User-Agent: " .. self.user_agent end
    table.sort(lines)
    return lines
end

local function add_parts(req, mp)
    for _, f in ipairs(mp.fields or {}) do req:add_field(f[1], f[2]) end
    local file = mp.file
    if file then
        req:add_file(file.name, file.filename, file.content_type, file.path,
            file.offset, file.length, file.prefix)
    end
end

local function configure(self, req, opts)
    local payload = opts.body or opts.multipart
    req:set_url(opts.url)
    req:set_method(opts.method or (payload and "POST" or "GET"))
    req:set_headers(header_lines(self, opts.headers))
    req:set_timeouts(self.connect_timeout, opts.timeout or self.timeout,
        self.low_speed_limit, self.low_speed_time)
    req:set_tls(true, self.ca_path)
    if opts.body then req:set_body(opts.body) end
    if opts.multipart then add_parts(req, opts.multipart) end
    if opts.output then req:set_output(opts.output) end
    if opts.on_progress then req:on_progress(opts.on_progress) end
end

local function response(req)
    local info = req:info()
    return {
        status = req:status(), headers = req:headers(), body = req:body(),
        time = info.time, uploaded = info.uploaded, downloaded = info.downloaded,
        connects = info.connects,
    }
end

--- trace: nil, or a function(exchange) called as each request ends (the
-- command line's --verbose sets it; marketo.commands.trace masks and prints):
-- exchange = { method, url, status | code (a transport failure), request_id
-- (from a JSON answer), seconds, sent, received (bytes), request_headers
-- ({ "Name: value" } as sent, the token in them), response_headers }.
M.trace = nil

local function trace(self, opts, res, code, started)
    local body, rid = res and res.body
    local ct = res and res.headers and res.headers["content-type"] or ""
    if body and ct:find("json", 1, true) then
        rid = body:match('"requestId"%s*:%s*"([^"]*)"')
    end
    M.trace({ method = opts.method or ((opts.body or opts.multipart) and "POST" or "GET"),
        url = opts.url, status = res and res.status, code = not res and code or nil,
        request_id = rid, seconds = res and res.time or (core.monotonic() - started),
        sent = res and res.uploaded or 0, received = res and res.downloaded or 0,
        request_headers = header_lines(self, opts.headers),
        response_headers = res and res.headers or {} })
end

--- request(opts) -> response | nil, "NAME: message", "NAME". See the file's
-- head for the response; opts: method, url, headers (name -> value), body or
-- multipart { fields = { {name, value}, ... }, file = { name, filename,
-- content_type, path, offset, length, prefix } }, output (a path the body is
-- streamed to), timeout (seconds), on_progress(sent, total).
function Transport:request(opts)
    check_request(opts)
    local req = core.request()
    local started = M.trace and core.monotonic()
    configure(self, req, opts)
    local loop = Loop.current()
    local ok, msg, code
    if loop then
        ok, msg, code = loop:perform(req)
    else
        ok, msg, code = req:perform()
    end
    local res = ok and response(req)
    req:close() -- a callback's error skips this; the collector closes req then
    if started and M.trace then trace(self, opts, res, code, started) end
    if not ok then return nil, msg, code end
    return res
end

return M
