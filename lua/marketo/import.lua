--- marketo.import: one import, end to end: plan every row, journal the parts,
-- schedule them through Marketo, and account for every row in a report.
--
--   local result = assert(require("marketo.import").run{
--       object = "leads",                 -- "leads" | "custom_objects" | "program_members"
--       lookup_field = "email",           -- leads: lookup_field, list_id, partition_name
--       -- custom objects: api_name; program members: program_id, program_member_status
--       source = "crm-export.csv",        -- a path or a list of paths
--       format = "csv",                   -- csv | tsv | ssv (default: from the name, else csv)
--       mapping = { email = "E-mail", firstName = "First" },   -- see marketo.mapping
--       filter = function(row, line) return row["E-mail"] ~= "" end,
--       validate = function(out, line) end,                      -- nil | reason [, field]
--       lenient = false,                  -- true: bad rows go to the rejects file
--       journal = "crm.journal",          -- default: <first source>.journal
--       report = "crm-report.json",       -- default: <journal>.report.json
--       work_dir = nil,                   -- default: <journal>.work
--       limits = { importing = 2, queued = 10, uploads = 2, calls = 100, window = 20,
--                  in_flight = 10 },
--       part_bytes = nil,                 -- default: marketo.csv.PART_BYTES
--       workers = 1,                      -- processes that map a file with Lua functions
--                                         -- (see marketo.pipeline.plan: more than 1 is opt-in)
--       retry = nil,                      -- a retry policy (marketo.retry)
--       client = nil,                     -- options for marketo.client (default: environment)
--       dry_run = false, on_event = function(ev) end,
--   })
--   result = { ended = "complete" | "stopped" | "failed", exit = 0 | 3 | 4, summary = text,
--              report = the JSON document, report_path, journal = path, message, code }
--
-- Running it again with the same journal resumes: finished parts are never
-- sent again, none is skipped (see marketo.pipeline.journal for the unknown case).
local csv = require("marketo.csv")
local journal_mod = require("marketo.pipeline.journal")
local plan_mod = require("marketo.pipeline.plan")
local scheduler = require("marketo.pipeline.scheduler")
local report_mod = require("marketo.pipeline.report")
local mapping_mod = require("marketo.mapping")
local limiter = require("marketo.pipeline.limiter")
local json = require("marketo.json")

local M = {}

--- Exit statuses a scheduler can act on.
M.EXIT = { ok = 0, failure = 1, usage = 2, rows_failed = 3, unfinished = 4 }

M.OBJECTS = {
    leads = { kind = "leads", params = { lookup_field = "lookupField", list_id = "listId",
        partition_name = "partitionName" } },
    custom_objects = { kind = "custom_objects", params = { api_name = "apiName" },
        required = { "api_name" } },
    program_members = { kind = "program_members", params = { program_id = "programId",
        program_member_status = "programMemberStatus" },
        required = { "program_id", "program_member_status" } },
}

local SPEC = {
    object = "string", source = "any", format = "string", mapping = "table",
    filter = "function", validate = "function", lenient = "boolean", journal = "string",
    report = "string", work_dir = "string", limits = "table", part_bytes = "number",
    retry = "function", client = "table", dry_run = "boolean", on_event = "function",
    workers = "number",
    runtime = "table", transport = "table", log = "function",
    lookup_field = "string", list_id = "number", partition_name = "string",
    api_name = "string", program_id = "any", program_member_status = "string",
}

local LIMITS = { importing = true, queued = true, uploads = true, calls = true, window = true,
    in_flight = true, poll_first = true, poll_max = true, failed_retries = true }

local function misuse(msg)
    error("bad import: " .. msg, 4)
end

local function check_spec(spec)
    if type(spec) ~= "table" then misuse("table expected") end
    for k, v in pairs(spec) do
        local want = SPEC[k]
        if not want then misuse(("unknown option '%s'"):format(tostring(k))) end
        if want ~= "any" and type(v) ~= want then
            misuse(("option '%s': %s expected, got %s"):format(k, want, type(v)))
        end
    end
    local object = M.OBJECTS[spec.object or ""]
    if not object then
        misuse("object must be leads, custom_objects or program_members")
    end
    for _, k in ipairs(object.required or {}) do
        if spec[k] == nil then misuse(("%s needs '%s'"):format(spec.object, k)) end
    end
    for k in pairs(spec.limits or {}) do
        if not LIMITS[k] then misuse(("unknown limit '%s'"):format(tostring(k))) end
    end
    if spec.workers and (spec.workers < 1 or math.floor(spec.workers) ~= spec.workers) then
        misuse("workers must be a whole number >= 1")
    end
    local sources = type(spec.source) == "table" and spec.source or { spec.source }
    if #sources == 0 or type(sources[1]) ~= "string" then
        misuse("source must be a path or a list of paths")
    end
    return object, sources
end

local function format_of(spec, sources)
    local f = spec.format or sources[1]:match("%.(%a+)$")
    f = f and f:lower()
    if f ~= "csv" and f ~= "tsv" and f ~= "ssv" then f = "csv" end
    return f
end

-- What the journal's run record says of the import: enough to resume it
-- and to refuse a different import with the same journal. No secrets.
-- The mapping as text: each field and where it comes from ("<-Column",
-- "=constant", "=function"), plus the filter, validation and leniency. Two
-- runs with different mappings are two imports, even from the same file.
local function mapping_signature(spec)
    local fields = {}
    if spec.mapping then
        for _, e in ipairs(mapping_mod.new(spec.mapping):entries()) do
            fields[#fields + 1] = e.to .. (e.from and ("<-" .. e.from)
                or e.value and ("=" .. e.value) or "=function")
        end
    end
    return table.concat(fields, "|") .. (spec.filter and "|filter" or "")
        .. (spec.validate and "|validate" or "") .. (spec.lenient and "|lenient" or "")
end

-- Byte sizes of the sources: a rerun after the file was rewritten is a new
-- import, not this journal's (unfinished parts are also checked by hash).
local function sizes_of(sources)
    local out = {}
    for i, path in ipairs(sources) do out[i] = csv.file_size(path) or -1 end
    return out
end

local function describe(spec, object, sources, format)
    local params = {}
    for k in pairs(object.params) do params[k] = spec[k] end
    return { object = spec.object, params = params, sources = sources, format = format,
        mapped = spec.mapping ~= nil or spec.filter ~= nil or spec.validate ~= nil,
        mapping = mapping_signature(spec), sizes = sizes_of(sources) }
end

-- Why a journal's import `a` is not the import `b` asked for, or nil.
local function mismatch(a, b)
    if json.encode({ a.object, a.params, a.sources, a.format, a.mapping or "" })
        ~= json.encode({ b.object, b.params, b.sources, b.format, b.mapping or "" }) then
        return ("belongs to another import (%s of %s%s)"):format(a.object,
            table.concat(a.sources, ", "),
            (a.mapping or "") ~= "" and (", mapped " .. a.mapping) or "")
    end
    for i, size in ipairs(a.sizes or {}) do
        if b.sizes[i] ~= size then
            return ("is of %s as it was (%d bytes, now %d)"):format(a.sources[i], size,
                b.sizes[i])
        end
    end
end

local function mkdir(path)
    -- Lua has no mkdir; the path is quoted, so a shell never sees it as code.
    local ok = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
    return ok == true or ok == 0 -- 5.2+ answer true, 5.1 and LuaJIT a status
end

local function save_rejects(work_dir, rejects)
    local path = work_dir .. "/rejects.json"
    local f = assert(io.open(path, "wb"))
    f:write(json.encode(rejects))
    f:close()
    return path
end

-- What a plan needs beyond the run record, so that `resume` can plan again
-- from the journal alone when a crash cut the plan short; nil when Lua
-- functions map the rows (a journal cannot hold them).
local function replan_of(spec)
    if spec.filter or spec.validate then return nil end
    local mapping
    if spec.mapping then
        mapping = {}
        for i, e in ipairs(mapping_mod.new(spec.mapping):entries()) do
            if e.fn then return nil end
            mapping[i] = { e.to, e.from or { value = e.value } }
        end
    end
    return { mapping = mapping, lenient = spec.lenient, part_bytes = spec.part_bytes }
end

-- Plans the import and writes the journal's first lines, closed by a record
-- that counts the parts: nothing is sent before it, and a journal without it
-- is planned again (see marketo.pipeline.journal).
local function start(spec, o, journal)
    local p, msg, code = plan_mod.build({ sources = o.sources, format = o.format,
        mapping = spec.mapping, filter = spec.filter, validate = spec.validate,
        lenient = spec.lenient, max_bytes = spec.part_bytes, work_dir = o.work_dir,
        max_rejects = 1e9, workers = spec.workers })
    if not p then return nil, msg, code end
    if spec.dry_run then return p end
    local run = o.description
    run.ev, run.rows, run.rejects = "run", p.rows, save_rejects(o.work_dir, p.rejects)
    run.replan = replan_of(spec)
    local ok
    ok, msg, code = journal:record(run)
    if not ok then return nil, msg, code end
    for _, part in ipairs(p.parts) do
        local hash
        hash, msg, code = require("marketo.core").hash_range(part.path, part.offset,
            part.length)
        if not hash then return nil, msg, code end
        part.ev, part.hash = "planned", hash
        ok, msg, code = journal:record(part)
        if not ok then return nil, msg, code end
    end
    ok, msg, code = journal:record({ ev = "plan_done", parts = #p.parts })
    if not ok then return nil, msg, code end
    return p
end

local function read_json(path)
    local f = path and io.open(path, "rb")
    if not f then return nil end
    local doc = json.decode(f:read("*a"))
    f:close()
    return doc
end

-- The report, from the journal alone: it is what survives a crash.
local function build_report(state, calls)
    local run = state.run
    local r = report_mod.new({ object = run.object, params = run.params, source = run.sources,
        format = run.format })
    r:count("read", run.rows.read)
    r:count("filtered", run.rows.filtered)
    r:count("rejected", run.rows.rejected)
    for _, rej in ipairs(read_json(run.rejects) or {}) do
        r:rejected(rej.line, rej.reason, rej.source)
    end
    for k = 1, state.nparts do
        local part = state.parts[k]
        local plan, fin = part.plan, part.finished
        local summary = { part = k, rows = plan.rows, first_line = plan.first_line,
            last_line = plan.last_line, source = plan.source, batch = part.batch,
            stage = part.stage }
        if fin and fin.status == "Complete" then
            local warned = fin.warned or 0
            r:count("imported", (fin.processed or 0) - warned)
            r:count("warned", warned)
            r:count("failed", fin.failed or 0)
            local res = part.fetched and read_json(part.fetched.results) or {}
            for _, row in ipairs(res.failed or {}) do r:failed(row.line, row.reason, row.values) end
            for _, row in ipairs(res.warned or {}) do r:warned(row.line, row.reason, row.values) end
            summary.header = res.header
        elseif fin then
            r:count("failed", plan.rows)
            r:failed(nil, ("the job failed: %s (lines %d-%d)")
                :format(tostring(fin.message), plan.first_line, plan.last_line))
        else
            r:count("unsent", plan.rows)
        end
        summary.status = fin and fin.status or nil
        summary.processed, summary.failed, summary.warned =
            fin and fin.processed, fin and fin.failed, fin and fin.warned
        r:part(summary)
    end
    r.api_calls = calls
    return r
end

local function write_rows(path, header, rows, format)
    if #rows == 0 or not header then return nil end
    local w = assert(csv.writer(path, { format = format, header = header }))
    for _, row in ipairs(rows) do
        if row.values then assert(w:write(row.values)) end
    end
    assert(w:close())
    return path
end

local function finish_report(r, state, o, ended)
    local base = o.report:gsub("%.json$", "")
    local header
    for _, p in ipairs(r.parts) do header = header or p.header end
    local files = {
        failed = write_rows(base .. ".failed." .. (state.run.format == "tsv" and "tsv" or "csv"),
            header, r.failures, state.run.format),
        warned = write_rows(base .. ".warned." .. (state.run.format == "tsv" and "tsv" or "csv"),
            header, r.warnings, state.run.format),
    }
    local ok, msg, code = r:write_json(o.report, ended, { files = files, journal = o.journal })
    if not ok then return nil, msg, code end
    return r:document(ended, { files = files, journal = o.journal })
end

-- Once every part is fetched, the mapped parts and lines files in the work
-- folder have served; the results and rejects files stay (status reads them).
local function remove_parts(state)
    for k = 1, state.nparts do
        local plan = state.parts[k].plan
        if plan.mapped then
            os.remove(plan.path)
            if plan.lines then os.remove(plan.lines.file) end
        end
    end
end

local function exit_status(ended, rows)
    if ended ~= "complete" then return M.EXIT.unfinished end
    if rows.failed > 0 or rows.rejected > 0 then return M.EXIT.rows_failed end
    return M.EXIT.ok
end

-- The client and its limiter wait on the runtime's clock and sleep, so that
-- in nginx a full call budget yields the light thread instead of blocking
-- the worker.
local function make_client(spec, rt)
    local limits = spec.limits or {}
    local http = spec.transport or require("marketo.http").new()
    local limited = limiter.wrap(http, { calls = limits.calls, window = limits.window,
        in_flight = limits.in_flight, clock = rt.now, sleep = rt.sleep })
    local opts = {}
    for k, v in pairs(spec.client or {}) do opts[k] = v end
    opts.transport, opts.retry, opts.log = limited, spec.retry, spec.log or opts.log
    opts.clock, opts.sleep = opts.clock or rt.now, opts.sleep or rt.sleep
    local client, msg, code = require("marketo.client").new(opts)
    if not client then return nil, msg, code end
    return client, limited
end

-- The journal's parameters (our names) under Marketo's names, for the jobs.
local function marketo_params(object, params)
    local out = {}
    for k, name in pairs(object.params) do out[name] = params[k] end
    return out
end

local function scheduler_limits(spec)
    local out = {}
    for k, v in pairs(spec.limits or {}) do
        if scheduler.DEFAULTS[k] ~= nil then out[k] = v end
    end
    return out
end

local function dry_result(p, o)
    local lines = { ("dry run: %d rows read, %d filtered, %d rejected; %d parts, nothing sent")
        :format(p.rows.read, p.rows.filtered, p.rows.rejected, #p.parts) }
    for _, part in ipairs(p.parts) do
        lines[#lines + 1] = ("  part %d: %s lines %d-%d, %d rows, %d bytes")
            :format(part.part, part.source, part.first_line, part.last_line, part.rows,
                part.bytes + #(part.prefix or ""))
    end
    for i, rej in ipairs(p.rejects) do
        if i > 10 then
            lines[#lines + 1] = ("  ... %d more rejected"):format(#p.rejects - 10)
            break
        end
        lines[#lines + 1] = "  rejected: " .. rej.reason
    end
    return { ended = "dry_run", exit = p.rows.rejected > 0 and M.EXIT.rows_failed or M.EXIT.ok,
        plan = p, summary = table.concat(lines, "\n") .. "\n", journal = o.journal }
end

--- run(spec) -> result | nil, msg, code (see the header comment).
function M.run(spec)
    local object, sources = check_spec(spec)
    local o = { sources = sources, format = format_of(spec, sources) }
    o.journal = spec.journal or (sources[1] .. ".journal")
    o.report = spec.report or (o.journal:gsub("%.journal$", "") .. ".report.json")
    o.work_dir = spec.work_dir or (o.journal .. ".work")
    o.description = describe(spec, object, sources, o.format)
    local journal, msg, code
    if not spec.dry_run then -- first: a journal in use, or no file, makes nothing
        journal, msg, code = journal_mod.open(o.journal)
        if not journal then return nil, msg, code end
    end
    if not mkdir(o.work_dir) then
        if journal then journal:close() end
        return nil, ("WORK_DIR: cannot create %s"):format(o.work_dir), "WORK_DIR"
    end
    if spec.dry_run then
        local p
        p, msg, code = start(spec, o, nil)
        if not p then return nil, msg, code end
        return dry_result(p, o)
    end
    if journal.state.plan_closed then
        local why = mismatch(journal.state.run, o.description)
        if why then
            journal:close()
            return nil, ("JOURNAL_MISMATCH: %s %s; pass another journal (--journal), or "
                .. "remove it to start over"):format(o.journal, why), "JOURNAL_MISMATCH"
        end
    else -- no plan yet, or one a crash cut short: nothing was sent, plan (again)
        local p
        p, msg, code = start(spec, o, journal)
        if not p then journal:close(); return nil, msg, code end
    end
    return M.continue(journal, spec, o, object)
end

--- continue(journal, spec, o, object): the scheduling half of run, shared with resume.
function M.continue(journal, spec, o, object)
    local result = { journal = o.journal, report_path = o.report }
    local rt = spec.runtime or require("marketo.pipeline.runtime").loop()
    local client, limited, msg, code
    client, limited = make_client(spec, rt)
    if not client then
        journal:close()
        return nil, limited, "CONFIG"
    end
    local run = journal.state.run
    if spec.on_event then
        local rows, done_rows, done_parts = 0, 0, 0
        for _, part in ipairs(journal:parts()) do
            rows = rows + part.plan.rows
            if part.stage == "fetched" then
                done_rows, done_parts = done_rows + part.plan.rows, done_parts + 1
            end
        end
        spec.on_event({ ev = "planned", rows = rows, parts = journal.state.nparts,
            rows_done = done_rows, parts_done = done_parts })
    end
    local sched = scheduler.new({ client = client,
        runtime = rt,
        journal = journal, parts = journal:parts(), work_dir = o.work_dir,
        job = { kind = object.kind, params = marketo_params(object, run.params),
            apiName = run.params.api_name },
        limits = scheduler_limits(spec), on_event = spec.on_event })
    local ok
    ok, msg, code = sched:run()
    local calls = limited:counts()
    journal:record({ ev = "calls", counts = calls })
    local ended = "complete"
    if not ok then
        ended, result.message, result.code = "failed", msg, code
    elseif sched.stopped then
        ended = "stopped"
    end
    for _, part in ipairs(journal:parts()) do
        if part.stage ~= "fetched" and ended == "complete" then ended = "stopped" end
    end
    journal:record({ ev = ended == "complete" and "done" or "stopped" })
    if ended == "complete" then remove_parts(journal.state) end
    local r = build_report(journal.state, journal.state.calls)
    local doc
    doc, msg, code = finish_report(r, journal.state, o, ended)
    journal:close()
    if not doc then return nil, msg, code end
    result.ended, result.report, result.summary = ended, doc, r:summary(ended)
    result.exit = exit_status(ended, r.rows)
    return result
end

-- What `resume` may pass on to run when it plans again.
local RESUME_OPTIONS = { "client", "limits", "retry", "on_event", "report", "transport",
    "runtime", "log", "work_dir" }

-- resume of a journal whose plan never closed: nothing was sent, so it is the
-- original import to run again, if the run record holds all the plan needs.
local function plan_again(path, state, spec)
    local run = state.run
    local again = run and run.replan
    if not again then
        local why = run and (journal_mod.incomplete(path, state) .. "; its rows are mapped by "
            .. "Lua functions, which a journal cannot hold")
            or ("JOURNAL_EMPTY: %s has no import in it: the run stopped before its plan, "
            .. "nothing was sent"):format(path)
        return nil, why .. "; run the original command or script again",
            run and "PLAN_INCOMPLETE" or "JOURNAL_EMPTY"
    end
    local s = { object = run.object, source = run.sources, format = run.format, journal = path,
        mapping = again.mapping, lenient = again.lenient, part_bytes = again.part_bytes,
        work_dir = run.rejects:match("^(.*)/rejects%.json$") }
    for k, v in pairs(run.params) do s[k] = v end
    for _, k in ipairs(RESUME_OPTIONS) do
        if spec[k] ~= nil then s[k] = spec[k] end
    end
    return M.run(s)
end

--- resume(journal_path, spec) -> result | nil, msg, code: picks up an import
-- from its journal alone (the mapping already ran: its parts are on disk).
-- spec may give client, limits, retry, on_event, report, transport, runtime.
function M.resume(path, spec)
    spec = spec or {}
    local journal, msg, code = journal_mod.open(path, { create = false })
    if not journal then return nil, msg, code end
    local state = journal.state
    if not state.plan_closed then
        journal:close()
        return plan_again(path, state, spec)
    end
    local object = M.OBJECTS[state.run.object]
    local o = { journal = path, work_dir = spec.work_dir or (path .. ".work"),
        report = spec.report or (path:gsub("%.journal$", "") .. ".report.json") }
    return M.continue(journal, spec, o, object)
end

--- report_of(journal_path) -> report document, summary | nil, msg, code:
-- what `status` shows, from the journal alone (no call to Marketo).
function M.report_of(path)
    local state, msg, code = journal_mod.read(path)
    if not state then return nil, msg, code end
    if not state.run then
        return nil, ("JOURNAL_EMPTY: %s has no import in it"):format(path), "JOURNAL_EMPTY"
    end
    local incomplete = journal_mod.incomplete(path, state)
    if incomplete then return nil, incomplete, "PLAN_INCOMPLETE" end
    local ended = state.ended == "done" and "complete" or (state.ended or "running")
    local r = build_report(state, state.calls)
    return r:document(ended), r:summary(ended)
end

return M
