--- marketo.sandbox.bulk: what happens to a call on /bulk/ before its endpoint
-- runs - the order Marketo's gateway applies: the size of an upload (413, as
-- a proxy in front of Marketo refuses it, before any token is looked at),
-- token (601/602, not counted), instance limits (615, 606, 607), injected
-- faults, then the route (605/610).
local envelope = require("marketo.sandbox.envelope")
local params = require("marketo.sandbox.params")
local multipart = require("marketo.sandbox.multipart")
local routes = require("marketo.sandbox.routes")
local faults_mod = require("marketo.sandbox.faults")

local M = {}

local BAD_GATEWAY = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n"
    .. "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    .. "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

local TOO_LARGE = "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n"
    .. "<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n"
    .. "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"

-- Codes the "Error Codes" page stars: a call answered with one does not count.
local UNCOUNTED = { ["601"] = true, ["602"] = true, ["604"] = true, ["605"] = true,
                    ["608"] = true, ["611"] = true }

local function sleep(s)
    if s > 0 then require("marketo.sandbox.http").sleep(s) end
end

function M.new_call(sb, req)
    return { id = sb.request_id(sb.wall() * 1000), query = params.query(req) }
end

-- Reads the multipart body of an upload into call.parts/form/file, or notes
-- why it could not ("type" for 612, anything else for 613).
local function read_multipart(req, call, entry)
    local ctype = req.headers and req.headers["content-type"]
    local kind = ctype and ctype:match("^%s*([^;%s]+)")
    if not kind or kind:lower() ~= "multipart/form-data" then
        call.multipart_error = "type"
        return
    end
    local parts, why = multipart.parse(req.body or "", ctype)
    if not parts then
        call.multipart_error = why or "broken"
        return
    end
    call.form = {}
    entry.parts = {}
    for _, p in ipairs(parts) do
        entry.parts[#entry.parts + 1] = { name = p.name, filename = p.filename, size = #p.data }
        if p.filename == nil and call.form[p.name] == nil then call.form[p.name] = p.data end
    end
    call.file = multipart.find(parts, "file")
    call.form.file = nil
end

local function unknown_path(sb, call)
    if sb.conf.unknown_path == "404" then
        call.code = "404"
        return 404, { ["Content-Type"] = "text/plain" }, "Not Found\n"
    end
    return routes.fail(call, 610)
end

-- Bytes of each end of an uploaded file that go into its identity: enough
-- to tell parts of one file apart, cheap for a 10 MB file.
local SAMPLE = 4096

-- What a call asks for, as the fault draw sees it (faults.lua): method and
-- path; for an upload, also its file (size and both ends); a batch id is
-- replaced by the identity of the job, which does not depend on the order
-- in which concurrent uploads got their ids.
local function identity(sb, req, call, route, caps)
    local id = req.method .. " " .. req.path
    if route and route.upload then
        local data = call.file and call.file.data or ""
        local ends = #data <= 2 * SAMPLE and data
            or data:sub(1, SAMPLE) .. data:sub(-SAMPLE)
        return ("%s %d %x"):format(id, #data, faults_mod.hash(ends))
    end
    local job = route and sb.queue.jobs[math.tointeger(tonumber(caps[#caps]))]
    if job then return req.method .. " " .. route[2] .. " " .. job.identity end
    return id
end

-- Applies the fault drawn for this call, if any. Returns nil to go on, or
-- the answer.
local function injected(sb, call)
    local fault = call.fate.fault
    if not fault then return nil end
    sb.stats.faults = sb.stats.faults + 1
    call.fault = fault.kind
    if fault.kind == "drop" then
        sb.stats.dropped = sb.stats.dropped + 1
        return require("marketo.sandbox.http").DROP
    elseif fault.kind == "slow" then
        sleep(fault.seconds)
        return nil
    end
    local code = fault.code
    if UNCOUNTED[code] then sb.limits:refund() end
    if code == "502" then
        call.code = "502"
        return 502, { ["Content-Type"] = "text/html" }, BAD_GATEWAY
    elseif code == "615" then
        return routes.fail(call, 615, sb.conf.max_in_flight)
    elseif code == "606" then
        return routes.fail(call, 606, sb.conf.rate_limit, math.floor(sb.conf.rate_window))
    end
    return routes.fail(call, code)
end

-- The part of a call that runs while it is in flight.
local function admitted(sb, req, call, route, caps)
    call.identity = identity(sb, req, call, route, caps)
    call.fate = sb.faults:draw(call.identity)
    local s, h, b = injected(sb, call)
    if s then return s, h, b end
    sleep(sb.conf.latency)
    if not route then
        if caps == "method" then
            sb.limits:refund()
            return routes.fail(call, 605)
        end
        return unknown_path(sb, call)
    end
    local status, headers, body = route[3](sb, req, call, table.unpack(caps))
    -- The worst case for a client: the work is done (a job may exist) but the
    -- answer never arrives, so a blind retry would import twice.
    if call.fate.lost then
        sb.stats.faults, sb.stats.lost = sb.stats.faults + 1, sb.stats.lost + 1
        call.fault = "lost"
        return require("marketo.sandbox.http").DROP
    end
    return status, headers, body
end

--- Answers a call outside /identity and /__sandbox.
function M.handle(sb, req, call, entry)
    local route, caps = routes.match(req.method, req.path)
    if route and route.upload then
        read_multipart(req, call, entry)
        local conf = sb.conf
        local size = conf.size_limit_on == "body" and #(req.body or "")
            or (call.file and #call.file.data or 0)
        if size > conf.max_file_bytes then
            call.code = "413"
            return 413, { ["Content-Type"] = "text/html" }, TOO_LARGE
        end
    end
    local token, how = sb.identity:find(req, call.query, call.form)
    entry.auth = how
    local bad = sb.identity:check(token, how)
    if bad then return routes.fail(call, bad) end
    local limited = sb.limits:admit()
    if limited then
        call.code = limited.code
        local name = "answered_" .. limited.code
        sb.stats[name] = (sb.stats[name] or 0) + 1
        return envelope.fail(call.id, limited)
    end
    local in_flight = sb.limits.in_flight
    if in_flight > sb.stats.max_in_flight then sb.stats.max_in_flight = in_flight end
    local ok, s, h, b = pcall(admitted, sb, req, call, route, caps)
    sb.limits:done()
    if not ok then error(s, 0) end
    return s, h, b
end

return M
