--- marketo.import: one import, end to end, in two steps: `prepare` reads,
-- checks and plans every row and writes the plan to the journal (no call to
-- Marketo: a bad file stops here, before anything is sent or started), and
-- `send` schedules the parts through Marketo and accounts for every row in a
-- report built from the journal alone. `run` is both.
--
--   local result = assert(require("marketo.import").run{
--       object = "leads",                 -- marketo.objects: leads | custom_objects |
--                                         -- program_members
--       lookup_field = "email",           -- the kind's parameters, by their Lua names:
--       -- leads lookup_field, list_id, partition_name; custom_objects api_name;
--       -- program_members program_id, program_member_status
--       source = "crm-export.csv",        -- a path or a list of paths
--       format = "csv",                   -- marketo.formats (default: from the names)
--       mapping = { email = "E-mail", firstName = "First" },   -- see marketo.mapping
--       filter = function(row, line) return row["E-mail"] ~= "" end,
--       validate = function(out, line) end,                      -- nil | reason [, field]
--       lenient = false,                  -- true: bad rows go to the report as rejected
--       journal = "crm.journal",          -- default: <first source>.journal
--       report = "crm-report.json",       -- default: <journal>.report.json
--       work_dir = nil,                   -- default: <journal>.work
--       limits = { importing = 2, queued = 10, uploads = 2, calls = 100, window = 20,
--                  in_flight = 10 },
--       part_bytes = nil,                 -- default: marketo.csv.PART_BYTES
--       workers = 1,                      -- processes that map a file with Lua functions
--       retry = nil,                      -- a retry policy (marketo.retry)
--       client = nil,                     -- options for marketo.client (default: environment)
--       status_column = nil,              -- program_members: the column with each row's
--                                         -- status (instead of program_member_status)
--       dedupe_fields = nil,              -- custom_objects: its dedupe fields, so that
--                                         -- no key is in two jobs at once (see README)
--       dry_run = false, on_event = function(ev) end,
--       schema = nil,                     -- marketo.schema (client:describe): the columns
--                                         -- and every value checked against it first
--       instance = nil,                   -- the instance's name, for the journal and report
--       restart = false,                  -- true: the journal set aside as .N, a new import
--       budget = nil,                     -- "redis://HOST:PORT/DB": the instance's limits
--                                         -- shared with every runner using that Redis
--                                         -- (marketo.pipeline.budget), or in nginx
--                                         -- "shdict:NAME" (its workers'); default: this one's
--       daily_quota = 50000,              -- the instance's API calls a day: every call is
--                                         -- counted in the budget by Marketo's day, from
--                                         -- what GET /rest/v1/stats/usage.json says
--       wait_for_quota = false,           -- true: once the day's quota is spent, wait for
--                                         -- its reset (midnight US Central) and go on; else
--                                         -- stop (exit 4, resumable), saying when it resets
--       quota_check = 60,                 -- seconds between the wait's usage.json calls
--   })
--   result = { ended = "complete" | "stopped" | "failed" | "dry_run", exit = 0 | 1 | 3 | 4,
--              summary = text, report = the JSON document, report_path, journal = path,
--              message, code, fix (exit 1: what to fix before running again),
--              already (the journal was finished: nothing sent, and this says so) }
--
-- Running it again with the same journal resumes: finished parts are never
-- sent again, none is skipped (see marketo.pipeline.journal for the unknown
-- case). Every path the journal names is absolute, so `resume` and `status`
-- work from any folder.
local core = require("marketo.core")
local csv = require("marketo.csv")
local objects = require("marketo.objects")
local formats = require("marketo.formats")
local mapping_mod = require("marketo.mapping")
local journal_mod = require("marketo.pipeline.journal")
local plan_mod = require("marketo.pipeline.plan")
local scheduler = require("marketo.pipeline.scheduler")
local report_mod = require("marketo.pipeline.report")
local rejects_mod = require("marketo.pipeline.rejects")
local limiter = require("marketo.pipeline.limiter")
local budget = require("marketo.pipeline.budget")
local quota_mod = require("marketo.pipeline.quota")
local progress = require("marketo.pipeline.progress")
local options = require("marketo.options")
local checks = require("marketo.pipeline.checks")
local changed = require("marketo.pipeline.changed")

local M = {}

--- Exit statuses a scheduler can act on.
M.EXIT = { ok = 0, failure = 1, usage = 2, rows_failed = 3, unfinished = 4 }

-- Failures that running the same import again can get past (exit 4): a
-- journal in use, a full disk, a shared budget out of reach (Redis down), a
-- plan a crash cut short (the original command plans it again), the day's
-- API quota spent (607: after its reset, marketo.pipeline.quota says when);
-- any other failure to prepare is the input's or the setup's, to fix first (exit 1).
local LATER = { JOURNAL_BUSY = true, ENOSPC = true, JOURNAL_WRITE = true,
    PLAN_INCOMPLETE = true, JOURNAL_EMPTY = true, BUDGET = true, ["607"] = true }

-- Failures while sending that no rerun gets past until the user fixes what
-- is named (exit 1), each with the fix; any other failure while sending
-- leaves a journal that a rerun resumes (exit 4). The journal is kept either
-- way: once fixed, the same command picks up where this one stopped.
M.FIX_FIRST = {
    AUTH_FAILED = "check the client id and secret (MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET "
        .. "or the profile's)",
    CONFIG = "check the instance's settings (MARKETO_* or the profile)",
    HTTP_401 = "check the client id and secret", HTTP_403 = "check the API user's permissions",
    HTTP_404 = "check the base URL (the REST endpoint on Marketo's Web Services page)",
    HTTP_400 = "check the base URL and the object", HTTP_413 = "give a smaller --part-bytes",
    ["603"] = "give the API user the permission, or add this address to the IP allow list",
    ["610"] = "check the base URL (the REST endpoint on Marketo's Web Services page)",
    ["1003"] = "check the file and the object's parameters",
    ["1006"] = "check the columns: each must be a field of the object (--map FIELD=COLUMN)",
    ["1013"] = "check the object's name: it does not exist on this instance",
    ["1025"] = "check --status: the program has no such member status",
}

--- exit_for(code, sending) -> the exit status for a failure of `code`;
-- `sending`: the failure came after the first call to Marketo.
function M.exit_for(code, sending)
    if LATER[code] then return M.EXIT.unfinished end
    if sending and not M.FIX_FIRST[code] then return M.EXIT.unfinished end
    return M.EXIT.failure
end

local COUNT = { "number", integer = true, min = 1 }

-- What run and prepare accept besides the kind's parameters (marketo.objects).
local SPEC = {
    object = { "string", required = true, valid = objects.get, expected = objects.NAMES },
    source = { "string|table", required = true }, format = "string", mapping = "table",
    filter = "function", validate = "function", lenient = "boolean", journal = "string",
    report = "string", work_dir = "string", limits = "table", part_bytes = COUNT,
    retry = "function", client = "table", dry_run = "boolean", on_event = "function",
    restart = "boolean", budget = { "string", valid = function(v)
        return v == "local" or v:match("^shdict:[%w_]+$") ~= nil
            or require("marketo.redis").parse(v) ~= nil
    end, expected = "'local', redis://HOST:PORT/DB or (in nginx) shdict:NAME" },
    workers = COUNT, runtime = "table", transport = "table", log = "function",
    schema = "table", instance = "string", -- marketo.schema: checked before sending
    status_column = { "string", valid = function(v) return v:match("%S") ~= nil end,
        expected = "a column name" },
    dedupe_fields = { "table", values = "string" },
    changed_only = "boolean", full = "boolean", state = "string", -- marketo.pipeline.changed
    daily_quota = COUNT, wait_for_quota = "boolean", quota_check = { "number", positive = true },
    usage = "table", -- today's usage if the caller has just read it: { date, total }
}

-- The limits: the scheduler's and the call budget's.
local LIMITS = {}
for k, rule in pairs(scheduler.LIMITS) do LIMITS[k] = rule end
for _, k in ipairs({ "calls", "window", "in_flight" }) do LIMITS[k] = limiter.OPTIONS[k] end

-- `level` as options.check's: 2 is the caller of check_spec's caller.
local function check_spec(spec, level)
    if type(spec) ~= "table" then
        options.fail("import", "table expected, got " .. type(spec), level + 1)
    end
    local kind = objects.get(spec.object)
    if not kind then -- the kind says which other options there are
        options.check({ object = spec.object }, { object = SPEC.object }, "import", level + 1)
    end
    -- with a status column, each row says its members' status
    objects.check(kind, spec, SPEC, "import", level + 1, nil, function(p)
        return p.required and not (spec.status_column and p.name == "program_member_status")
    end)
    if spec.status_column ~= nil and kind.name ~= "program_members" then
        options.fail("import", "option 'status_column' is for program_members, not "
            .. kind.name, level + 1)
    elseif spec.dedupe_fields ~= nil and kind.name ~= "custom_objects" then
        options.fail("import", "option 'dedupe_fields' is for custom_objects (the lookup "
            .. "field is the key of " .. kind.name .. ")", level + 1)
    elseif spec.status_column ~= nil and spec.program_member_status ~= nil then
        options.fail("import", "options 'status_column' and 'program_member_status': one or "
            .. "the other (a status per row, or one for all)", level + 1)
    end
    options.check(spec.limits, LIMITS, "import", level + 1, 1, "limits")
    local sources = type(spec.source) == "table" and spec.source or { spec.source }
    for i = 1, math.max(#sources, 1) do
        if type(sources[i]) ~= "string" then
            options.fail("import", "option 'source': a path or a list of paths expected",
                level + 1)
        end
    end
    return kind, sources
end

local function absolute(path)
    if path:sub(1, 1) == "/" then return path end
    local cwd, msg, code = core.cwd()
    if not cwd then return nil, msg, code end
    return (cwd .. "/" .. path:gsub("^%./", ""))
end

-- The one format of every source: --format for all, else each file's name
-- says its own, and files of two formats are two imports.
local function format_of(spec, sources)
    local first
    for _, path in ipairs(sources) do
        local f, msg, code = formats.choose(spec.format, path)
        if not f then return nil, msg, code end
        if first and f ~= first then
            return nil, ("FORMAT: %s is %s but %s is %s: import them separately, or give "
                .. "the format of all of them (--format)"):format(sources[1], first.name, path,
                f.name), "FORMAT"
        end
        first = f
    end
    return first
end

-- What the journal's run record says of the import: enough to resume it
-- and to refuse a different import with the same journal. No secrets.
-- The mapping as text: each field and where it comes from ("<-Column",
-- "=constant", "=function"), plus the filter, validation and leniency. Two
-- runs with different mappings are two imports, even from the same file.
-- A function's script text as a hash: an edited mapping, filter or check is
-- another import, though its fields are the same. Its file's bytes (the
-- whole script: a helper it calls may be what changed), or the text it was
-- loaded from.
local function text_hash(fn)
    local source = debug.getinfo(fn, "S").source
    local path = source:match("^@(.*)$")
    if path then
        local size = csv.file_size(path)
        return size and core.hash_range(path, 0, size) or "?"
    end
    local h = 0
    for i = 1, #source do h = (h * 31 + source:byte(i)) % 2147483647 end
    return ("%08x"):format(h)
end

local function fn_signature(name, fn)
    return fn and ("|%s#%s"):format(name, text_hash(fn)) or ""
end

local function mapping_signature(spec)
    local fields = {}
    if spec.mapping then
        for _, e in ipairs(mapping_mod.new(spec.mapping):entries()) do
            fields[#fields + 1] = e.to .. (e.from and ("<-" .. e.from)
                or e.value and ("=" .. e.value) or ("=function#" .. text_hash(e.fn)))
        end
    end
    return table.concat(fields, "|") .. fn_signature("filter", spec.filter)
        .. fn_signature("validate", spec.validate) .. (spec.lenient and "|lenient" or "")
end

-- Byte sizes and hashes of the sources: a rerun after the file was changed,
-- even to the same size, is a new import, not this journal's.
local function sizes_of(sources)
    local sizes, hashes = {}, {}
    for i, path in ipairs(sources) do
        sizes[i] = csv.file_size(path) or -1
        hashes[i] = sizes[i] >= 0 and core.hash_range(path, 0, sizes[i]) or "?"
    end
    return sizes, hashes
end

-- How two descriptions of an import can differ, each with what to say.
local DIFFERENCES = {
    { "object", "another object" }, { "params", "other parameters" },
    { "sources", "other files" }, { "format", "another format" },
    { "mapping", "another mapping" }, { "status_column", "another status column" },
    { "dedupe_fields", "other dedupe fields" }, { "changed", "another --changed-only state" },
}

-- Whether two values read from JSON are the same: key by key, since the order
-- in which a table's keys are encoded differs from one process to the next.
local function same(x, y)
    if type(x) ~= "table" or type(y) ~= "table" then return x == y end
    for k, v in pairs(x) do
        if not same(v, y[k]) then return false end
    end
    for k in pairs(y) do
        if x[k] == nil then return false end
    end
    return true
end

-- Why a journal's import `a` is not the import `b` asked for, and what to do;
-- or nil.
local function mismatch(a, b)
    local start_over = "--restart to import anew (the journal kept as .1), or pass "
        .. "another journal (--journal)"
    for _, d in ipairs(DIFFERENCES) do
        if d[1] == "mapping" and a.mapping ~= b.mapping
            and (a.mapping or ""):gsub("#%w+", "") == (b.mapping or ""):gsub("#%w+", "") then
            return ("belongs to an import whose mapping script has changed since: an edited "
                .. "function is another import; %s"):format(start_over)
        end
        if not same(a[d[1]] or "", b[d[1]] or "") then
            return ("belongs to an import of %s (%s of %s%s); %s"):format(d[2], a.object,
                table.concat(a.sources, ", "),
                (a.mapping or "") ~= "" and (", mapped " .. a.mapping) or "", start_over)
        end
    end
    for i, size in ipairs(a.sizes or {}) do
        if b.sizes[i] ~= size then
            return ("is of %s as it was (%d bytes, now %d); %s"):format(a.sources[i], size,
                b.sizes[i], start_over)
        end
    end
    for i, hash in ipairs(a.hashes or {}) do
        if b.hashes[i] ~= hash then
            return ("is of %s as it was (its bytes changed since, the size did not); %s")
                :format(a.sources[i], start_over)
        end
    end
    if a.part_bytes ~= b.part_bytes then
        return ("was planned with part_bytes (--part-bytes) %s and this run asks for %s; "
            .. "to resume it, run with %s, or %s"):format(tostring(a.part_bytes or "default"),
            tostring(b.part_bytes or "default"),
            a.part_bytes and ("--part-bytes " .. a.part_bytes) or "no --part-bytes", start_over)
    end
end

-- The work folder, made with mkdir(2): no path reaches a shell or is read as a flag.
local function mkdir(path)
    local ok, msg = core.mkdir(path)
    if ok then return true end
    return nil, ("WORK_DIR: cannot create the work folder %s (%s); give another --work-dir")
        :format(path, (msg:gsub("^[%u_]+: ", ""))), "WORK_DIR"
end

-- The report must have somewhere to go before anything is sent.
local function check_report(path)
    local dir = path:match("^(.*)/[^/]*$")
    if dir and dir ~= "" and not core.is_folder(dir) then
        return nil, ("REPORT: the report's folder %s does not exist; create it or give "
            .. "another --report"):format(dir), "REPORT"
    end
    return true
end

-- The paths of an import, absolute, and its description for the journal.
local function setup(spec, kind, sources)
    local format, msg, code = format_of(spec, sources)
    if not format then return nil, msg, code end
    local abs = {}
    for i, s in ipairs(sources) do
        abs[i], msg, code = absolute(s)
        if not abs[i] then return nil, msg, code end
    end
    local o = { sources = abs, format = format.name }
    o.journal, msg, code = absolute(spec.journal or (sources[1] .. ".journal"))
    if not o.journal then return nil, msg, code end
    o.report = absolute(spec.report or (o.journal:gsub("%.journal$", "") .. ".report.json"))
    o.work_dir = absolute(spec.work_dir or (o.journal .. ".work"))
    if spec.state then o.state_file = absolute(spec.state) end
    local ok
    ok, msg, code = check_report(o.report)
    if not ok then return nil, msg, code end
    local params = {}
    for _, p in ipairs(kind.params) do
        local _, v = objects.valid(p, spec[p.name])
        if spec[p.name] ~= nil then params[p.name] = v end
    end
    local sizes, hashes = sizes_of(abs)
    o.description = { object = kind.name, params = params, sources = abs, format = format.name,
        mapping = mapping_signature(spec), sizes = sizes, hashes = hashes,
        part_bytes = spec.part_bytes, report = o.report, work_dir = o.work_dir,
        status_column = spec.status_column, lenient = spec.lenient or nil,
        dedupe_fields = spec.dedupe_fields,
        instance = spec.instance or (spec.schema and spec.schema.instance) }
    return o
end

local function key_of(spec, o)
    return objects.key(objects.get(o.description.object), o.description.params,
        spec.dedupe_fields or (spec.schema and spec.schema.dedupe))
end

local function plan_of(spec, o, work_dir, on_reject)
    local ok, validate, types = checks.for_plan(spec, o.sources, o.format, o.warnings)
    if not ok then return nil, validate, types end
    return plan_mod.build({ sources = o.sources, format = o.format,
        mapping = spec.mapping, filter = spec.filter, validate = validate, types = types,
        lenient = spec.lenient, max_bytes = spec.part_bytes, work_dir = work_dir,
        max_rejects = 1e9, workers = spec.workers, on_reject = on_reject, warnings = o.warnings,
        status_column = spec.status_column,
        statuses = spec.schema and spec.schema.statuses and spec.schema.statuses[1]
            and spec.schema.statuses,
        key = key_of(spec, o), state = not spec.full and o.state or nil })
end

-- What a plan needs beyond the run record, so that `resume` can plan again
-- from the journal alone when a crash cut the plan short; nil when Lua
-- functions map, filter or check the rows (a journal cannot hold them).
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
    return { mapping = mapping, lenient = spec.lenient, part_bytes = spec.part_bytes,
        workers = spec.workers, status_column = spec.status_column,
        dedupe_fields = spec.dedupe_fields, checked = spec.schema and true or nil }
end

-- Plans the import and writes the plan to the journal: the run record, a
-- `planned` record for each part (with a hash of its bytes), and a
-- `plan_done` record that counts them. A journal without that last record
-- holds no plan (see marketo.pipeline.journal): nothing was sent for it.
local function plan_into(journal, spec, o)
    -- the rejects stream to a file as they are found: none is held in memory
    local rejects = o.work_dir .. "/rejects.jsonl"
    local w, msg, code = rejects_mod.writer(rejects)
    if not w then return nil, msg, code end
    local p
    p, msg, code = plan_of(spec, o, o.work_dir, function(rej) w:add(rej) end)
    local ok, cmsg, ccode = w:close()
    if not p then return nil, msg, code end
    if not ok then return nil, cmsg, ccode end
    local run = {}
    for k, v in pairs(o.description) do run[k] = v end
    run.ev, run.rows, run.rejects, run.keys = "run", p.rows, rejects, p.keys
    run.replan = replan_of(spec)
    ok, msg, code = journal:record(run)
    if not ok then return nil, msg, code end
    for _, part in ipairs(p.parts) do
        local hash
        hash, msg, code = core.hash_range(part.path, part.offset, part.length)
        if not hash then return nil, msg, code end
        part.ev, part.hash = "planned", hash
        ok, msg, code = journal:record(part)
        if not ok then return nil, msg, code end
    end
    ok, msg, code = journal:record({ ev = "plan_done", parts = #p.parts })
    if not ok then return nil, msg, code end
    return p
end

-- Every file a plan wrote (mapped parts, lines files), removed: after a dry
-- run, or once every part is fetched (the results and rejects files stay:
-- status reads them).
local function remove_written(parts)
    for _, part in ipairs(parts) do
        if part.mapped then
            os.remove(part.path)
            if part.lines then os.remove(part.lines.file) end
        end
    end
end

-- A dry run plans into a folder of its own and leaves no copy of any row.
local function dry_run(spec, o)
    local dir = ("%s.dry-run-%d"):format(o.work_dir, core.getpid())
    local made, msg, code = mkdir(dir)
    if not made then return nil, msg, code end
    local groups = rejects_mod.groups() -- a dry run keeps no row: only their reasons
    local p
    p, msg, code = plan_of(spec, o, dir, function(rej)
        groups:add(rej.code, rej.reason, rej.line)
    end)
    if p then remove_written(p.parts) end
    os.remove(dir)
    if not p then return nil, msg, code end
    local lines = { ("dry run: %d rows read, %d filtered, %d rejected%s; %d parts, nothing sent")
        :format(p.rows.read, p.rows.filtered, p.rows.rejected, p.rows.unchanged
            and (", %d unchanged"):format(p.rows.unchanged) or "", #p.parts) }
    for _, part in ipairs(p.parts) do
        lines[#lines + 1] = ("  part %d: %s lines %d-%d, %d rows, %d bytes%s")
            :format(part.part, part.source, part.first_line, part.last_line, part.rows,
                part.bytes + #(part.prefix or ""),
                (part.status and (", status " .. part.status) or "")
                .. (part.after and (", after part " .. table.concat(part.after, ", ")) or ""))
    end
    if p.keys and p.keys.repeated > 0 then
        lines[#lines + 1] = ("  keys: %d %s values seen more than once, %d rows moved to "
            .. "later parts"):format(p.keys.repeated, p.keys.field, p.keys.moved)
    end
    for _, line in ipairs(groups:lines("rejected")) do lines[#lines + 1] = line end
    return { ended = "dry_run", exit = p.rows.rejected > 0 and M.EXIT.rows_failed or M.EXIT.ok,
        plan = p, summary = table.concat(lines, "\n") .. "\n", journal = o.journal }
end

local Prepared = {}
Prepared.__index = Prepared

-- 0 only when every row is accounted for and none failed.
local function exit_status(ended, r, code)
    if ended == "failed" then return M.exit_for(code, true) end
    if ended ~= "complete" then return M.EXIT.unfinished end
    if not r:reconcile() or r.rows.failed > 0 or r.rows.rejected > 0 or r.problems[1] then
        return M.EXIT.rows_failed
    end
    return M.EXIT.ok
end

-- When a finished journal's import ended: its last part's fetch.
local function finished_at(state)
    local t = 0
    for k = 1, state.nparts do
        local fetched = state.parts[k].fetched
        if fetched and (fetched.t or 0) > t then t = fetched.t end
    end
    return os.date("!%Y-%m-%d %H:%M UTC", t)
end

-- A rerun of a finished import sends nothing: it says so first, with the
-- finished import's summary and exit status, and how to import again; its
-- report is written again from the journal (the run that finished may have
-- stopped on a full disk before it was whole). prepared | nil, msg, code.
local function already_done(state, o, how)
    local r = report_mod.from_journal(state)
    local doc, msg, code = r:save(o.report, "complete", { journal = o.journal })
    if not doc then return nil, msg, code end
    return setmetatable({ o = o, result = { ended = "complete", report = doc,
        exit = exit_status("complete", r), summary = r:summary("complete"),
        journal = o.journal, report_path = o.report,
        already = ("already imported on %s per journal %s; nothing sent. %s to import again.")
            :format(finished_at(state), o.journal, how or "--restart") } }, Prepared)
end

-- --restart: the journal (and its work folder) set aside as JOURNAL.N, the
-- first N free, so that the import starts anew and the old record is kept.
-- The journal is locked while it moves: one in use by a run stays put.
local function set_aside(o)
    if csv.file_size(o.journal) == nil then return true end
    local journal, msg, code = journal_mod.open(o.journal, { create = false })
    if not journal then return nil, msg, code end
    local n = 1
    local function taken(k) return csv.file_size(o.journal .. "." .. k)
        or core.is_folder(o.work_dir .. "." .. k) end
    while taken(n) do n = n + 1 end
    local kept = o.journal .. "." .. n
    local ok, why = os.rename(o.journal, kept)
    if ok and core.is_folder(o.work_dir) then
        ok, why = os.rename(o.work_dir, o.work_dir .. "." .. n)
    end
    journal:close()
    if not ok then
        return nil, ("JOURNAL_WRITE: cannot set %s aside: %s"):format(o.journal, why),
            "JOURNAL_WRITE"
    end
    return kept
end

--- prepare(spec) -> prepared | nil, msg, code: everything before the first
-- call to Marketo. Every row is read, mapped and validated, the parts are
-- planned and the plan journalled (or the journal's plan taken up again, if
-- it is this import's). prepared.result is set for a dry run (nothing else
-- to do); otherwise prepared:close() releases the journal if it is not sent.
-- Misuse raises; bad input, a journal of another import or one in use return
-- nil, msg, code (M.exit_for(code) is the exit status).
local function prepare(spec, level)
    local kind, sources = check_spec(spec, level + 1)
    local o, msg, code = setup(spec, kind, sources)
    if not o then return nil, msg, code end
    local attached
    attached, msg, code = changed.attach(o, spec, key_of(spec, o))
    if not attached then return nil, msg, code end
    if spec.schema then -- the columns against the instance, before any row is read
        o.warnings, msg, code = checks.import(spec, kind, sources, o.format)
        if not o.warnings then return nil, msg, code end
    end
    if spec.dry_run then
        local result
        result, msg, code = dry_run(spec, o)
        if not result then return nil, msg, code end
        return setmetatable({ result = result, o = o }, Prepared)
    end
    local kept
    if spec.restart then
        kept, msg, code = set_aside(o)
        if not kept then return nil, msg, code end
    end
    -- the journal first: one in use by another run makes nothing here
    local existed = csv.file_size(o.journal) ~= nil
    local journal
    journal, msg, code = journal_mod.open(o.journal)
    if not journal then return nil, msg, code end
    local made
    made, msg, code = mkdir(o.work_dir)
    if not made then
        journal:close()
        if not existed then os.remove(o.journal) end
        return nil, msg, code
    end
    local state = journal.state
    if state.plan_closed then
        local why = mismatch(state.run, o.description)
        if why then
            journal:close()
            return nil, ("JOURNAL_MISMATCH: %s %s"):format(o.journal, why), "JOURNAL_MISMATCH"
        end
        if state.ended == "done" then
            journal:close()
            return already_done(state, o)
        end
    else
        -- no journal, or a plan cut short (nothing was sent for it): plan anew
        local p
        p, msg, code = plan_into(journal, spec, o)
        if not p then
            journal:close()
            if not existed and not state.run then os.remove(o.journal) end
            return nil, msg, code
        end
    end
    return setmetatable({ journal = journal, o = o, kind = kind,
        kept = kept ~= true and kept or nil }, Prepared)
end

function M.prepare(spec)
    local prepared, msg, code = prepare(spec, 2) -- not a tail call: misuse names the caller
    return prepared, msg, code
end

function Prepared:close()
    if self.journal then self.journal:close() end
end

-- In nginx the defaults are OpenResty's runtime and transport: libcurl and
-- marketo.loop would hold the worker for every call and every wait.
local function in_nginx()
    local ngx = rawget(_G, "ngx")
    return ngx ~= nil and ngx.socket ~= nil
end

-- The client and its limiter wait on the runtime's clock and sleep, so that
-- in nginx a full call budget yields the light thread instead of blocking
-- the worker. The budget is the instance's: its keys are named after the
-- client's host, so the client comes first, and the limiter below it after.
local function make_client(opts, rt, on_event)
    local limits = opts.limits or {}
    local http = opts.transport or (in_nginx() and require("marketo.resty.transport").new())
        or require("marketo.http").new()
    local front = {}
    function front.request(_, req) return front.limited:request(req) end
    local copts = {}
    for k, v in pairs(opts.client or {}) do copts[k] = v end
    copts.transport, copts.log = front, opts.log or copts.log
    copts.clock, copts.sleep = copts.clock or rt.now, copts.sleep or rt.sleep
    -- the day's quota: every call counted (the limiter), a 607 answer handled
    local client, quota
    quota = quota_mod.new({ limit = opts.daily_quota, wait = opts.wait_for_quota,
        check_every = opts.quota_check, sleep = rt.sleep, now = rt.now,
        stop = rt.stop_requested, on_event = on_event,
        usage = function() return client:usage() end })
    copts.retry = quota:policy(opts.retry or copts.retry or require("marketo.retry").policy())
    local msg, code
    client, msg, code = require("marketo.client").new(copts)
    if not client then return nil, msg, code end
    local shared
    shared, msg, code = budget.new({ clock = rt.now, sleep = rt.sleep, spawn = rt.spawn,
        url = opts.budget, instance = client.base_url:match("^%a+://([^/]+)"):lower(),
        limits = { calls = limits.calls, window = limits.window, in_flight = limits.in_flight,
            importing = limits.importing, queued = limits.queued } })
    if not shared then return nil, msg, code end
    quota.budget = shared
    front.limited = limiter.wrap(http, { budget = shared, quota = quota })
    return client, front.limited, nil, quota
end

local function scheduler_limits(opts)
    local out = {}
    for k, v in pairs(opts.limits or {}) do
        if scheduler.DEFAULTS[k] ~= nil then out[k] = v end
    end
    return out
end

local function announce(journal, on_event)
    local rows, done_rows, done_parts = 0, 0, 0
    for _, part in ipairs(journal:parts()) do
        rows = rows + part.plan.rows
        if part.stage == "fetched" then
            done_rows, done_parts = done_rows + part.plan.rows, done_parts + 1
        end
    end
    on_event({ ev = "planned", rows = rows, parts = journal.state.nparts,
        rows_done = done_rows, parts_done = done_parts })
end

--- send(prepared, opts) -> result | nil, msg, code: the parts through
-- Marketo, then the report. opts: client, transport, runtime, limits, retry,
-- log, on_event (as for run). The journal is closed at the end.
function M.send(prepared, opts)
    opts = opts or {}
    local journal, o = prepared.journal, prepared.o
    local run = journal.state.run
    local kind = objects.get(run.object)
    local result = { journal = o.journal, report_path = o.report }
    local rt = opts.runtime or (in_nginx() and require("marketo.resty.runtime").new())
        or require("marketo.pipeline.runtime").loop()
    local on_event, close = opts.on_event, nil
    if not on_event and progress.default then on_event, close = progress.default() end
    local client, limited, failed, quota = make_client(opts, rt, on_event)
    if not client then failed = failed == "BUDGET" and failed or "CONFIG" end
    if client then -- the day's count from the instance's, before the first part
        local seeded, smsg, scode = quota:seed(opts.usage)
        if not seeded then
            limited.budget:close()
            client, limited, failed = nil, smsg, scode
        end
    end
    if not client then
        journal:close()
        if close then close() end
        return nil, limited, failed
    end
    if on_event then announce(journal, on_event) end
    limited.budget.notify = on_event -- a pause for Redis said with the progress
    local sched = scheduler.new({ client = client, runtime = rt,
        journal = journal, parts = journal:parts(), work_dir = o.work_dir,
        job = { kind = kind, params = run.params, lenient = run.lenient },
        limits = scheduler_limits(opts), on_event = on_event, budget = limited.budget })
    local ok, msg, code = sched:run()
    limited.budget:close()
    local ended = "complete"
    if not ok then
        ended, result.message, result.code = "failed", msg, code
    elseif sched.stopped then
        ended = "stopped"
    end
    for _, part in ipairs(journal:parts()) do
        if part.stage ~= "fetched" and ended == "complete" then ended = "stopped" end
    end
    if run.changed then -- --changed-only: what was fetched, into the state
        local stated, smsg, scode = changed.finish(journal, o)
        if not stated and ended ~= "failed" then
            ended, result.message, result.code = "failed", smsg, scode
        end
    end
    local recorded
    recorded, msg, code = journal:record({ ev = "calls", counts = limited:counts() })
    if recorded then
        recorded, msg, code = journal:record({ ev = ended == "complete" and "done" or "stopped" })
    end
    if not recorded and ended ~= "failed" then
        ended, result.message, result.code = "failed", msg, code
    end
    if ended == "complete" then
        local plans = {}
        for k, part in ipairs(journal:parts()) do plans[k] = part.plan end
        remove_written(plans)
    end
    if on_event then on_event({ ev = "ended", ended = ended }) end
    if close then close() end
    local r = report_mod.from_journal(journal.state)
    local doc
    doc, msg, code = r:save(o.report, ended, { journal = o.journal, instance = run.instance })
    journal:close()
    if not doc then
        return nil, msg .. "; the journal is whole: make room and run `marketo-bulk status "
            .. o.journal .. "` for the report", code
    end
    result.ended, result.report, result.summary = ended, doc, r:summary(ended)
    result.exit = exit_status(ended, r, result.code)
    if result.exit == M.EXIT.failure then result.fix = M.FIX_FIRST[result.code] end
    return result
end

--- run(spec) -> result | nil, msg, code (see the header comment).
function M.run(spec)
    local prepared, msg, code = prepare(spec, 2)
    if not prepared then return nil, msg, code end
    if prepared.result then return prepared.result end
    return M.send(prepared, spec)
end

-- A journal's import, to send as it stands: its paths as the journal names
-- them, unless `spec` gives others (report, work_dir).
local function from_journal(journal, spec)
    local run, path = journal.state.run, journal.path
    local o = { journal = path, work_dir = spec.work_dir or run.work_dir or (path .. ".work"),
        report = spec.report or run.report or (path:gsub("%.journal$", "") .. ".report.json") }
    local ok, msg, code = check_report(o.report)
    if not ok then journal:close(); return nil, msg, code end
    if journal.state.ended == "done" then
        journal:close()
        return already_done(journal.state, o, "`marketo-bulk import ... --restart`")
    end
    return setmetatable({ journal = journal, o = o, kind = objects.get(run.object) }, Prepared)
end

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
        workers = again.workers, status_column = again.status_column,
        dedupe_fields = again.dedupe_fields,
        report = spec.report or run.report,
        work_dir = spec.work_dir or run.work_dir }
    for k, v in pairs(run.params) do s[k] = v end
    if again.checked then -- planned again with the checks it was planned with
        local schema, msg, code = spec.schema, nil, nil
        if type(schema) == "function" then schema, msg, code = schema(run.object, run.params) end
        if not schema then
            return nil, msg or (journal_mod.incomplete(path, state) .. "; its rows were checked "
                .. "against the schema of " .. tostring(run.instance) .. ", and a plan made "
                .. "again needs it too: pass spec.schema"), code or "PLAN_INCOMPLETE"
        end
        s.schema, s.instance = schema, run.instance
    end
    if run.changed then -- --changed-only: the same state, the same instance
        s.changed_only, s.full, s.state = true, run.changed[3] or nil, run.changed[1]
        s.instance = run.instance
    end
    return M.prepare(s)
end

--- reopen(journal_path, spec) -> prepared | nil, msg, code: an import taken
-- up from its journal alone, ready to send (the mapping already ran: its
-- parts are on disk; a plan a crash cut short is made again when the journal
-- holds all it needs). spec may give report and work_dir, and schema: the
-- instance's (a marketo.schema, or a function (object, params) -> schema | nil,
-- msg, code asked only then), which a plan made again needs if the first was
-- checked against one.
function M.reopen(path, spec)
    spec = spec or {}
    local journal, msg, code = journal_mod.open(path, { create = false })
    if not journal then return nil, msg, code end
    if not journal.state.plan_closed then
        local state = journal.state
        journal:close()
        return plan_again(path, state, spec)
    end
    return from_journal(journal, spec)
end

--- resume(journal_path, spec) -> result | nil, msg, code: reopen, then send.
-- spec may give client, limits, retry, on_event, report, work_dir, transport,
-- runtime, log.
function M.resume(path, spec)
    spec = spec or {}
    local prepared, msg, code = M.reopen(path, spec)
    if not prepared then return nil, msg, code end
    if prepared.result then return prepared.result end
    return M.send(prepared, spec)
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
    local r = report_mod.from_journal(state)
    return r:document(ended, { instance = state.run.instance }), r:summary(ended)
end

return M
