--- marketo.job: bulk import jobs for leads, custom objects and program members.
--
-- Each object type has its own paths, parameters and counters (API doc, sections 4-6); this
-- module hides the differences behind one job object:
--   job.kind, job.id (the batchId), job.status, job.info (last status, normalised)
--   job:refresh()   -> info | nil, message, code, err     (one status call)
--   job:wait(opts)  -> info | nil, ...     (polls until Complete; Failed is an error)
--   job:failures([part]) -> rows | nil, ...  (marketo.results rows; none: empty
--   job:warnings([part]) -> rows | nil, ...   list; with the part: tied to lines)
-- `info` = { batch_id, status, message, processed, failed, warned, raw } where
-- `processed` is numOfLeadsProcessed or numOfObjectsProcessed as the type has it, and
-- `raw` is Marketo's own result object.
local errors = require("marketo.errors")
local options = require("marketo.options")
local poll = require("marketo.poll")
local results = require("marketo.results")
local objects = require("marketo.objects")
local formats = require("marketo.formats")
local enc = require("marketo.url").encode

local M = {}

local FORMAT = { "string", valid = formats.get, expected = formats.NAMES }
local BYTES = { "number", integer = true, min = 0 }

-- What create accepts besides the kind's parameters (marketo.objects).
local COMMON = {
    path = { "string", required = true }, offset = BYTES, length = BYTES, prefix = "string",
    filename = "string", format = FORMAT, content_type = "string",
    timeout = { "number", positive = true }, on_progress = "function",
}

local Job = {}
Job.__index = Job

function Job.__tostring(j)
    return ("marketo.job(%s %s, %s)"):format(j.kind, tostring(j.id), tostring(j.status))
end

local function kind_of(kind, fname)
    local k = objects.get(kind)
    if not k then
        options.fail(fname, ("%s expected, got %s"):format(objects.NAMES, tostring(kind)), 4)
    end
    return k
end

local function check_params(k, o, spec, fname, level, argn, needed)
    local checked = objects.check(k, o, spec, fname, level + 1, argn, needed) -- no tail call
    return checked
end

local function check_create(k, o)
    local spec = {}
    for name, rule in pairs(COMMON) do spec[name] = rule end
    check_params(k, o, spec, "import", 4)
    return formats.get(o.format or formats.DEFAULT)
end

local function new_job(client, k, o, format)
    local j = setmetatable({ client = client, kind = k.name, type = k, format = format.name,
        ids = {} }, Job)
    for _, p in ipairs(k.params) do
        if p.where == "path" and o[p.name] ~= nil then j.ids[p.name] = o[p.name] end
    end
    return j
end

-- Marketo's path `which` of this job.
function Job:path(which, file)
    local values = { batch = self.id, file = file }
    for name, v in pairs(self.ids) do values[name] = v end
    return objects.path(self.type, which, values, enc)
end

local function normalise(k, r)
    return {
        batch_id = r.batchId, status = r.status, message = r.message,
        processed = r[k.processed], failed = r.numOfRowsFailed,
        warned = r.numOfRowsWithWarning, raw = r,
    }
end

-- What is wrong with a job envelope, or nil.
local function invalid(doc)
    local r = type(doc.result) == "table" and doc.result[1]
    if type(r) ~= "table" or r.batchId == nil or type(r.status) ~= "string" then
        return "no batchId/status in the result"
    end
end

function Job:take(doc, call)
    local problem = invalid(doc)
    if problem then
        return nil, self.client:new_error{ code = "BAD_RESPONSE", class = "fatal", call = call,
            request_id = doc.requestId, message = problem }
    end
    local r = doc.result[1]
    self.id = self.id or r.batchId
    self.status = r.status
    self.info = normalise(self.type, r)
    return self.info
end

--- create(client, kind, options) -> job | nil, message, code, err.
-- options: path (the file to upload), offset, length (a byte range of it), prefix
-- (bytes sent before the range, e.g. the header line of a part), filename, format
-- (marketo.formats: csv, tsv, ssv; default csv), content_type (of the file part,
-- default the format's), timeout, on_progress(sent, total); and the kind's
-- parameters under our names (marketo.objects): leads lookup_field, list_id,
-- partition_name; custom_objects api_name; program_members program_id,
-- program_member_status.
function M.create(client, kind, opts)
    local k = kind_of(kind, "import")
    local o = opts or {}
    local format = check_create(k, o)
    local j = new_job(client, k, o, format)
    local query = { format = format.name }
    for _, p in ipairs(k.params) do
        if p.where == "query" and o[p.name] ~= nil then query[p.marketo] = o[p.name] end
    end
    local path = j:path("create")
    local doc, msg, code, err = client:call{
        method = "POST", path = path, query = query, timeout = o.timeout or client.upload_timeout,
        on_progress = o.on_progress,
        multipart = { fields = {}, file = {
            name = "file", path = o.path, offset = o.offset, length = o.length,
            prefix = o.prefix, content_type = o.content_type or format.content_type,
            filename = o.filename or o.path:match("[^/]+$"),
        } },
    }
    if not doc then return nil, msg, code, err end
    local ok, e = j:take(doc, "POST " .. path)
    if not ok then return errors.fail(e) end
    client:emit("info", tostring(j) .. " created")
    return j
end

--- attach(client, kind, batch_id, options) -> job: a job created earlier. options:
-- the kind's path parameters (custom_objects api_name), format (of the uploaded
-- file: how failures are parsed).
function M.attach(client, kind, batch_id, opts)
    local k = kind_of(kind, "job")
    -- an earlier job needs only what names its paths (not the upload's parameters)
    local o = check_params(k, opts, { format = FORMAT }, "job", 3, 3, function(p)
        return k.paths.status:find("{" .. p.name .. "}", 1, true) ~= nil
    end)
    local format = formats.get(o.format or formats.DEFAULT)
    local j = new_job(client, k, o, format)
    j.id = batch_id
    return j
end

--- One status call: info, or nil, message, code, err.
function Job:refresh()
    local path = self:path("status")
    local doc, msg, code, err = self.client:call{ method = "GET", path = path,
        validate = invalid }
    if not doc then return nil, msg, code, err end
    local info, e = self:take(doc, "GET " .. path)
    if not info then return errors.fail(e) end
    return info
end

M.wait_defaults = { timeout = 3600, first = 1, factor = 1.5, max_interval = 30 }

local SECONDS = { "number", positive = true }
local WAIT = { timeout = SECONDS, first = SECONDS, factor = { "number", min = 1 },
    max_interval = SECONDS, on_status = "function", rows = { "number", min = 0 } }

--- Polls until the job ends, on marketo.poll's schedule. options: timeout (seconds,
-- default an hour), first (the first interval, 1 s), factor (growth per poll while
-- nothing tells when the job ends, 1.5), max_interval (30 s: the top of the docs'
-- 5-30 s), rows (data rows uploaded: with them, polls come near the end the job's
-- progress predicts instead of up to max_interval late), on_status (function(info)
-- called after every poll).
-- Complete -> info. Failed -> nil, message, "JOB_FAILED", err (err.info, Marketo's
-- message in err.message). Out of time -> nil, message, "TIMEOUT", err.
function Job:wait(opts)
    local o = options.check(opts, WAIT, "wait", 2)
    local d = M.wait_defaults
    local timeout = o.timeout or d.timeout
    local client = self.client
    local poller = poll.new{ first = o.first or d.first, factor = o.factor or d.factor,
        max = o.max_interval or d.max_interval, timeout = timeout, rows = o.rows,
        now = client.clock() }
    while true do
        if self.status == "Complete" then return self.info end
        if self.status == "Failed" then return self:failed() end
        local delay = poller:next(self.info, client.clock())
        if not delay then
            return errors.fail(client:new_error{ code = "TIMEOUT", class = "fatal",
                call = "wait " .. tostring(self),
                message = ("job still %s after %g s"):format(tostring(self.status), timeout) })
        end
        client.sleep(delay)
        local info, msg, code, err = self:refresh()
        if not info then return nil, msg, code, err end
        if o.on_status then o.on_status(info) end
    end
end

function Job:failed()
    local e = self.client:new_error{ code = "JOB_FAILED", class = "fatal",
        call = "job " .. self.kind .. " " .. tostring(self.id),
        message = self.info and self.info.message or "Failed" }
    e.info = self.info
    return errors.fail(e)
end

-- The failures or warnings file, parsed (and tied to `part`'s lines if given);
-- `what` is "failures" or "warnings".
function Job:file(what, reason, part)
    if self.id == nil then error("job has no batchId", 3) end
    local doc, msg, code, err = self.client:call{ method = "GET",
        path = self:path("file", what), expect = "file" }
    if doc == nil then return nil, msg, code, err end
    if doc == false then return results.empty(reason) end
    local rows = results.parse(doc, { format = self.format, reason = reason })
    if part then results.tie(rows, part) end
    return rows
end

local function check_part(part, fname)
    if part ~= nil and (type(part) ~= "table" or type(part.header) ~= "table"
        or type(part.rows) ~= "table") then
        options.fail(fname, "a part { header, rows } expected, as results.read_part returns",
            3)
    end
end

--- Failed rows: a list of { values, fields, reason, record } (see marketo.results);
-- no file (404 or empty) is an empty list. Given the uploaded `part` (from
-- results.read_part), each row also gets its source `line` (results.tie).
function Job:failures(part)
    check_part(part, "failures")
    return self:file("failures", "Import Failure Reason", part)
end
--- Warned rows, as failures.
function Job:warnings(part)
    check_part(part, "warnings")
    return self:file("warnings", "Import Warning Reason", part)
end

return M
