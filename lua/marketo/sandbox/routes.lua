--- marketo.sandbox.routes: the twelve Bulk Import endpoints (Swagger; see
-- doc/sandbox.md) - their paths, parameters (query string or multipart fields), checks and JSON
-- shapes. Auth, limits and faults happen before (see init.lua); every
-- function here gets (sb, req, call) and returns status, headers, body.
local envelope = require("marketo.sandbox.envelope")
local csv = require("marketo.sandbox.csv")
local formats = require("marketo.formats")
local schema_mod = require("marketo.sandbox.schema")
local jobs = require("marketo.sandbox.jobs")
local validate = require("marketo.sandbox.validate")

local M = {}

local function fail(call, code, ...)
    call.code = tostring(code)
    return envelope.fail(call.id, envelope.error(code, ...))
end

-- A parameter from the query string, else from a multipart field.
local function param(call, name)
    local v = call.query[name]
    if v == nil and call.form then v = call.form[name] end
    return v
end

---------------------------------------------------------------------------
-- Creating jobs

-- Checks common to the three upload endpoints (the size limit is checked
-- before the token, in bulk.lua). Returns the file text and the delimiter,
-- or nil followed by an answer (status, headers, body).
local function upload(call, conf)
    if call.multipart_error == "type" then return nil, fail(call, 612) end
    if call.multipart_error then return nil, fail(call, 613) end
    local file = call.file
    if not file then return nil, fail(call, 1002, "file") end
    local format = param(call, "format")
    if format == nil or format == "" then
        if conf.require_format then return nil, fail(call, 1002, "format") end
        format = formats.DEFAULT
    end
    local f = formats.get(format)
    if not f then return nil, fail(call, 1001, format, "csv|tsv|ssv") end
    if #file.data == 0 or not csv.has_data_rows(file.data) then
        return nil, fail(call, 1003, "Empty File")
    end
    return { text = file.data, delim = f.delimiter, format = f.name }
end

-- A path or query parameter that must be a positive 32-bit integer (1001).
local function positive_id(call, value)
    local n = value:match("^%d+$") and math.tointeger(tonumber(value))
    if not n or n < 1 or n > 2147483647 then return nil, fail(call, 1001, value, "Integer") end
    return n
end

-- lookupField: a field the lead schema does not have is 1006; a field that
-- cannot be a key is 1011.
local function lookup_field(sb, call, name)
    local f = schema_mod.find(sb.schema.leads, name, sb.conf.header_case)
    if not f then return nil, fail(call, 1006, name) end
    if not sb.schema.lookup[f.name] then return nil, fail(call, 1011, name) end
    return f.name
end

local function partition_known(conf, name)
    for _, p in ipairs(conf.partitions) do
        if p == name then return true end
    end
    return false
end

local function count_lines(text)
    local n, at = 0, 0
    while true do
        at = text:find("\n", at + 1, true)
        if not at then return n end
        n = n + 1
    end
end

-- Plans the job from its header and queues it; answers with `shape(job)`.
local function enqueue(sb, call, job, shape)
    local src = jobs.open_source(job.text, job.format, sb.conf.unbalanced_quote)
    if not src then return fail(call, 1003, "Empty File") end
    job.header, job.source, job.source_text, job.text = src.header, src, job.text, nil
    job.bytes = call.file and #call.file.data
    local plan, code, what = validate.plan(job, src.header, sb.schema, sb.conf)
    if not plan then
        src:close()
        return fail(call, code, what)
    end
    -- Where a Failed job stops (failed_imports = part): half its rows.
    job.fail_after = math.max(0, count_lines(job.source_text) - 1) // 2
    job.source_text = nil
    if job.kind == "pm" then
        plan.member_fields = {}
        for _, f in ipairs(sb.schema.members.list) do plan.member_fields[f.name] = true end
    end
    job.plan = plan
    local now = sb.clock()
    sb.queue:tick(now)
    job.id = sb.queue:next_batch_id()
    job.upload_identity = call.identity
    if not sb.queue:add(jobs.new(job), now) then
        src:close()
        sb.stats.answered_1016 = sb.stats.answered_1016 + 1
        return fail(call, 1016)
    end
    call.batch_id = job.id
    return envelope.ok(call.id, { shape(job) })
end

local function lead_created(job)
    return { batchId = job.id, importId = tostring(job.id), status = job.status }
end

function M.import_leads(sb, _, call)
    local file, a, b, c = upload(call, sb.conf)
    if not file then return a, b, c end
    local lookup, list_id
    lookup, a, b, c = lookup_field(sb, call, param(call, "lookupField") or "email")
    if not lookup then return a, b, c end
    if param(call, "listId") ~= nil then
        list_id, a, b, c = positive_id(call, param(call, "listId"))
        if not list_id then return a, b, c end
    end
    local partition = param(call, "partitionName")
    if partition ~= nil and not partition_known(sb.conf, partition) then
        return fail(call, 1008, partition)
    end
    file.kind, file.lookup, file.list_id, file.partition = "leads", lookup, list_id, partition
    return enqueue(sb, call, file, lead_created)
end

function M.import_objects(sb, _, call, api_name)
    local object = sb.schema:object(api_name)
    if not object then return fail(call, 1013) end
    local file, a, b, c = upload(call, sb.conf)
    if not file then return a, b, c end
    file.kind, file.object = "co", object
    return enqueue(sb, call, file, function(job)
        return { batchId = job.id, status = job.status, objectApiName = object.api_name }
    end)
end

-- One of the statuses the program's channel lists (its describe says the same).
local function status_known(sb, program_id, status)
    for _, s in ipairs(sb.schema:program_statuses(program_id, sb.conf)) do
        if s:lower() == status:lower() then return true end
    end
    return false
end

function M.import_members(sb, _, call, program)
    local program_id, a, b, c = positive_id(call, program)
    if not program_id then return a, b, c end
    local file
    file, a, b, c = upload(call, sb.conf)
    if not file then return a, b, c end
    local status = param(call, "programMemberStatus")
    if status == nil or status == "" then return fail(call, 1002, "programMemberStatus") end
    if not status_known(sb, program_id, status) then return fail(call, 1025) end
    -- the store and the inspection paths key programs by the id's text
    file.kind, file.program_id, file.member_status = "pm", tostring(program_id), status
    return enqueue(sb, call, file, lead_created)
end

---------------------------------------------------------------------------
-- Status, failures, warnings

local function find_job(sb, call, id, kind, api_name)
    local now = sb.clock()
    sb.queue:tick(now)
    local job = sb.queue:get(math.tointeger(tonumber(id)), now)
    if not job or job.kind ~= kind
        or (api_name and job.object.api_name:lower() ~= api_name:lower()) then
        return nil, fail(call, sb.conf.unknown_batch_code)
    end
    call.batch_id = job.id
    return job
end

local function finished(job)
    return job.status == "Complete" or job.status == "Failed"
end

local function lead_status(job)
    return { batchId = job.id, importId = tostring(job.id), status = job.status,
             numOfLeadsProcessed = job.imported, numOfRowsFailed = job.failed,
             numOfRowsWithWarning = job.warned, message = job.message }
end

local function object_status(sb, job)
    local r = { batchId = job.id, operation = "import", status = job.status,
                objectApiName = job.object.api_name, numOfObjectsProcessed = job.imported,
                numOfRowsFailed = job.failed, numOfRowsWithWarning = job.warned,
                message = job.message }
    if finished(job) then
        local took = (job.finished or sb.clock()) - job.created
        r.importTime = ("%d second(s)"):format(math.max(1, math.ceil(took)))
    end
    return r
end

function M.status(sb, _, call, kind, id, api_name)
    local job, a, b, c = find_job(sb, call, id, kind, api_name)
    if not job then return a, b, c end
    local result = kind == "co" and object_status(sb, job) or lead_status(job)
    return envelope.ok(call.id, { result })
end

function M.file(sb, _, call, kind, id, which, api_name)
    local job, a, b, c = find_job(sb, call, id, kind, api_name)
    if not job then return a, b, c end
    -- Marketo serves these files upon completion: before, there is none.
    local text = finished(job) and job:file(which) or nil
    if text == nil then
        if sb.conf.empty_files == "404" then
            call.code = "404"
            return 404, { ["Content-Type"] = "text/plain" }, ""
        end
        text = ""
    end
    return 200, { ["Content-Type"] = envelope.FILE_TYPE }, text
end

---------------------------------------------------------------------------
-- The table: method, pattern, handler(sb, req, call, captures...)

local function status_of(kind)
    return function(sb, req, call, a, b)
        if kind == "co" then return M.status(sb, req, call, kind, b, a) end
        return M.status(sb, req, call, kind, a)
    end
end

local function file_of(kind, which)
    return function(sb, req, call, a, b)
        if kind == "co" then return M.file(sb, req, call, kind, b, which, a) end
        return M.file(sb, req, call, kind, a, which)
    end
end

M.TABLE = {
    { "POST", "^/bulk/v1/leads%.json$", M.import_leads, upload = true },
    { "GET", "^/bulk/v1/leads/batch/(%d+)%.json$", status_of("leads") },
    { "GET", "^/bulk/v1/leads/batch/(%d+)/failures%.json$", file_of("leads", "failures") },
    { "GET", "^/bulk/v1/leads/batch/(%d+)/warnings%.json$", file_of("leads", "warnings") },
    { "POST", "^/bulk/v1/customobjects/([^/]+)/import%.json$", M.import_objects, upload = true },
    { "GET", "^/bulk/v1/customobjects/([^/]+)/import/(%d+)/status%.json$", status_of("co") },
    { "GET", "^/bulk/v1/customobjects/([^/]+)/import/(%d+)/failures%.json$",
      file_of("co", "failures") },
    { "GET", "^/bulk/v1/customobjects/([^/]+)/import/(%d+)/warnings%.json$",
      file_of("co", "warnings") },
    { "POST", "^/bulk/v1/program/([^/]+)/members/import%.json$", M.import_members, upload = true },
    { "GET", "^/bulk/v1/program/members/import/(%d+)/status%.json$", status_of("pm") },
    { "GET", "^/bulk/v1/program/members/import/(%d+)/failures%.json$",
      file_of("pm", "failures") },
    { "GET", "^/bulk/v1/program/members/import/(%d+)/warnings%.json$",
      file_of("pm", "warnings") },
}

for _, r in ipairs(require("marketo.sandbox.describe").ROUTES) do M.TABLE[#M.TABLE + 1] = r end

--- The route of a path: entry, captures; or nil and "method" when only the
-- method is wrong (605), nil when no route has that path (610).
function M.match(method, path)
    local wrong_method = nil
    for _, r in ipairs(M.TABLE) do
        local caps = { path:match(r[2]) }
        if caps[1] then
            if r[1] == method then return r, caps end
            wrong_method = "method"
        end
    end
    return nil, wrong_method
end

M.fail = fail

return M
