--- marketo-bulk import: a whole import from the command line, no script.
local core = require("marketo.core")
local csv = require("marketo.csv")
local import = require("marketo.import")
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")
local paths = require("marketo.commands.paths")
local input = require("marketo.commands.input")
local progress = require("marketo.pipeline.progress")
local objects = require("marketo.objects")
local formats = require("marketo.formats")
local instance = require("marketo.commands.instance")

local M = {
    summary = "import a file of leads, custom objects or program members",
}

-- The kinds' own flags (their query parameters), from the registry.
local function kind_flags()
    local lines = {}
    for _, kind in ipairs(objects.LIST) do
        for _, p in ipairs(kind.params) do
            if p.flag then
                lines[#lines + 1] = ("  %-22s %s: %s"):format(("--%s %s"):format(p.flag,
                    p.placeholder), kind.name, p.help)
            end
        end
    end
    return table.concat(lines, "\n")
end

M.usage = ([[
usage: marketo-bulk import leads FILE... [flags]
       marketo-bulk import custom_objects API_NAME FILE... [flags]
       marketo-bulk import program_members PROGRAM_ID FILE... --status STATUS [flags]
       marketo-bulk import program_members PROGRAM_ID FILE... --status-column COLUMN [flags]

Reads, maps and validates every row first (nothing is sent if a row is bad,
unless --lenient), splits the files into parts under Marketo's 10 MB, keeps
Marketo's import queue full within its limits, journals every step, and writes
a report that accounts for every row.

Marketo parameters:
%s
  --format FORMAT        the files' format: %s (default: from the names, else csv)
  --encoding ENCODING    the files' text encoding, converted to UTF-8 first:
                         %s (default: UTF-8)
  --status-column COLUMN program_members: each row's status from this column (not
                         sent); instead of --status
  --dedupe-fields F,...  custom_objects: the object's dedupe fields, so that no
                         record is in two jobs that import at once
Files: a gzip file is read as its contents (known by its bytes, whatever its
name); `-` reads standard input (spooled to JOURNAL.input/, the journal
stdin.journal unless --journal).
Mapping (without any, columns go as they are):
  --map FIELD=COLUMN     send source COLUMN as Marketo FIELD (repeatable); with
                         --map or --set, only the fields they name are sent: a
                         column not mapped is left out (a warning names them)
  --set FIELD=VALUE      send a constant (repeatable)
  --keep-unmapped        also send every column not mapped, under its own name
Run:
  --journal FILE         the journal (default FILE.journal); rerunning resumes it,
                         and a finished one sends nothing and says so
  --restart              import anew: the journal set aside as JOURNAL.1 (.2, ...)
  --report FILE          the JSON report (default: next to the journal)
  --work-dir DIR         where mapped parts are written (default JOURNAL.work)
Send only what changed (a state of what earlier imports sent, per instance,
object and key field; records changed in Marketo by other means are not seen):
  --changed-only         send only new keys and rows that changed since the last
                         --changed-only import; the rest are counted unchanged
  --full                 send every row and write the state anew
  --state FILE           the state (default: $XDG_STATE_HOME/marketo-bulk/...)
  --lenient              bad rows go to the report as rejected; the rest is imported
  --dry-run              read, map and validate every row, print the parts, send nothing
Checks against the instance (its fields, types, lookup/dedupe fields, statuses):
  --refresh-schema       ask the instance again (its describe is cached a day)
  --no-schema            check nothing against the instance (an offline rehearsal)
Quota (a dry run prints the calls and the time an import will take):
  --daily-quota N        the instance's daily API calls (default 50000): an import that
                         may spend more than today leaves is refused before it starts
  --ignore-quota         send anyway (the calls are still counted: see below)
  --wait-for-quota       once the day's quota is spent, wait for its reset (midnight US
                         Central) and go on, instead of stopping with exit status 4
  --quota-check S        while waiting, ask the instance's usage every S seconds (60)
  --part-bytes N         bytes per part, header included (default 9900000, at
                         most 10485760: Marketo's limit for one file)
Limits (lower them on an instance other integrations share):
  --importing N --queued N --uploads N     jobs importing (2), in the queue (10), uploads (2)
  --calls N --window S --in-flight N       API calls per window (100 per 20 s), at once (10)
  --budget URL           take them from redis://HOST:PORT/DB (or MARKETO_BUDGET), shared
                         with every runner there on this instance (default: this run's own);
                         ?lease=S (30) frees a killed run's slots after S s, ?wait=S (600)
                         is how long the import pauses for a Redis gone, then stops (4)
%s
Output:
  --json                 one JSON line per event on stderr, even on a terminal
  --quiet                no progress: the summary, and a wait for the quota or Redis

Exit status: 0 every row imported (warnings allowed), 3 some rows failed or were
rejected (see the report), 4 the import could not finish (resume it: run the same
command again, or `marketo-bulk resume JOURNAL`), among them the day's API quota
spent (the message says when it resets), 1 other failure, 2 usage.

Examples:
  marketo-bulk import leads contacts.csv
  marketo-bulk import leads crm.csv --map email="E-mail" --map firstName=First \
      --set leadSource="CRM export" --lenient
  marketo-bulk import custom_objects car_c cars.tsv --dry-run
  gunzip -c export.csv.gz | marketo-bulk import leads - --journal export.journal
  marketo-bulk import leads legacy-export.csv --encoding cp1252
  marketo-bulk import program_members 1001 members.csv --status "On List"
]]):format(kind_flags(), formats.NAMES, input.ENCODING_NAMES, target.FLAGS_HELP)

-- Marketo refuses a file over 10 MiB; a part (header included) must fit.
M.MAX_PART_BYTES = 10485760

-- The limit flags, shared with `resume`.
M.LIMIT_FLAGS = { importing = "count", queued = "count", uploads = "count", calls = "count",
    window = "seconds", in_flight = "count" }

local FLAGS = {
    format = "string", map = "list", set = "list", journal = "string", report = "string",
    work_dir = "string", lenient = "boolean", dry_run = "boolean", restart = "boolean",
    keep_unmapped = "boolean", encoding = "string",
    part_bytes = args.bytes(M.MAX_PART_BYTES), json = "boolean", quiet = "boolean",
    help = "boolean", no_schema = "boolean", refresh_schema = "boolean",
    daily_quota = "count", ignore_quota = "boolean", status_column = "string",
    wait_for_quota = "boolean", quota_check = "seconds",
    dedupe_fields = "string", budget = "string", changed_only = "boolean", full = "boolean",
    state = "string",
}
for k, kind in pairs(M.LIMIT_FLAGS) do FLAGS[k] = kind end
for k, kind in pairs(target.FLAGS) do FLAGS[k] = kind end
M.FLAGS = FLAGS -- for the shell's completion
for _, kind in ipairs(objects.LIST) do
    for _, p in ipairs(kind.params) do
        if p.flag then FLAGS[p.flag:gsub("-", "_")] = "string" end
    end
end

local function usage_error(err, msg)
    return args.usage_error(err, "import", msg)
end

-- --map/--set pairs into a mapping list (in the order given).
local function mapping_of(flags)
    if not flags.map and not flags.set then return nil end
    local list = {}
    for _, pair in ipairs(flags.map or {}) do
        local field, column = pair:match("^([^=]+)=(.+)$")
        if not field then return nil, ("--map wants FIELD=COLUMN, got '%s'"):format(pair) end
        list[#list + 1] = { field, column }
    end
    for _, pair in ipairs(flags.set or {}) do
        local field, value = pair:match("^([^=]+)=(.*)$")
        if not field then return nil, ("--set wants FIELD=VALUE, got '%s'"):format(pair) end
        list[#list + 1] = { field, { value = value } }
    end
    return list
end

-- The columns of the first file that a --map/--set mapping leaves out: sent
-- too with --keep-unmapped (under their own names), else named in a warning,
-- since Marketo then never sees them (a dedupe field among them would fail
-- every row with no hint why). A header that cannot be read is left to
-- prepare, which names what is wrong.
local function unmapped(spec, keep, err)
    if not spec.mapping then return end
    local format = formats.choose(spec.format, spec.source[1])
    local reader = format and csv.open(spec.source[1], { format = format.name })
    if not reader then return end
    local header = reader:header()
    reader:close()
    local used = {}
    for _, pair in ipairs(spec.mapping) do
        used[pair[1]] = true
        if type(pair[2]) == "string" then used[pair[2]] = true end
    end
    local left = {}
    for _, name in ipairs(header) do
        if not used[name] and name ~= "" then left[#left + 1] = name end
    end
    if #left == 0 then return end
    if keep then
        for _, name in ipairs(left) do spec.mapping[#spec.mapping + 1] = { name, name } end
        return
    end
    err:write(("marketo-bulk: warning: %d column%s not mapped, so not sent: %s (--keep-unmapped "
        .. "sends them too)\n"):format(#left, #left == 1 and " is" or "s are",
        table.concat(left, ", ")))
end

-- The CSV engine's words for a file that is not UTF-8, in the CLI's: the
-- flag that reads it (the engine's own names iconv, for a library user).
local function explained(msg, code)
    msg = msg:gsub("pass lenient mode", "pass --lenient")
    if code ~= "CSV_INVALID_UTF8" then return msg end
    return (msg:gsub("; convert the file to UTF%-8.*$", "")) .. "; the file is not UTF-8: "
        .. "if it is Latin-1 or Windows-1252 text, --encoding cp1252 (or latin1) reads it; "
        .. "--lenient rejects such rows instead"
end

--- The limits the flags lower, or nil.
function M.limits_of(flags)
    local limits
    for k in pairs(M.LIMIT_FLAGS) do
        if flags[k] then
            limits = limits or {}
            limits[k] = flags[k]
        end
    end
    return limits
end

-- Every file the import reads, before anything starts: a wrong path is then
-- one line naming it. (What it writes is checked by import.prepare, and the
-- journal by journal.open, before any row is read.)
local function check_paths(spec)
    for _, file in ipairs(spec.source) do
        local ok, msg = true, nil
        if file ~= "-" then ok, msg = paths.input(file, "the file") end
        if not ok then return nil, msg end
    end
    return true
end

-- The kind's parameters: its words (object.values) and its flags; a flag of
-- another kind is a usage error.
local function params_of(flags, object, spec)
    for _, kind in ipairs(objects.LIST) do
        for _, p in ipairs(kind.params) do
            local v = p.flag and flags[p.flag:gsub("-", "_")]
            if v and kind ~= object.kind then
                return nil, ("--%s is for %s"):format(p.flag, kind.name)
            end
            if v then
                local ok, checked = objects.valid(p, v)
                if not ok then
                    return nil, ("--%s must be %s, got '%s'"):format(p.flag, checked, v)
                end
                spec[p.name] = checked
            end
        end
    end
    for name, v in pairs(object.values) do spec[name] = v end
    if flags.dedupe_fields then
        if object.kind.name ~= "custom_objects" then
            return nil, "--dedupe-fields is for custom_objects"
        end
        spec.dedupe_fields = {}
        for f in flags.dedupe_fields:gmatch("[^,]+") do
            f = f:match("^%s*(.-)%s*$")
            if f ~= "" then spec.dedupe_fields[#spec.dedupe_fields + 1] = f end
        end
        if not spec.dedupe_fields[1] then return nil, "--dedupe-fields needs a field" end
    end
    if flags.status_column then
        if object.kind.name ~= "program_members" then
            return nil, "--status-column is for program_members"
        elseif spec.program_member_status then
            return nil, "--status and --status-column: one or the other (a status for all "
                .. "rows, or a column with each row's)"
        end
        spec.status_column = flags.status_column
    end
    for _, p in ipairs(object.kind.params) do
        if p.required and spec[p.name] == nil
            and not (spec.status_column and p.name == "program_member_status") then
            return nil, ("%s needs --%s %s"):format(object.kind.name, p.flag, p.placeholder)
        end
    end
    return spec
end

local function spec_of(flags, object, files)
    local mapping, msg = mapping_of(flags)
    if msg then return nil, msg end
    if flags.encoding and not input.ENCODINGS[flags.encoding] then
        return nil, ("--encoding must be %s, got '%s'"):format(input.ENCODING_NAMES,
            flags.encoding)
    end
    local stdin = 0
    for _, file in ipairs(files) do stdin = stdin + (file == "-" and 1 or 0) end
    if stdin > 1 then return nil, "'-' (standard input) can be given once" end
    if flags.format and not formats.get(flags.format) then
        return nil, ("--format must be %s, got '%s'"):format(formats.NAMES, flags.format)
    end
    local spec = { object = object.object, source = files, format = flags.format,
        mapping = mapping, lenient = flags.lenient, journal = flags.journal,
        report = flags.report, work_dir = flags.work_dir, dry_run = flags.dry_run,
        part_bytes = flags.part_bytes, restart = flags.restart,
        changed_only = flags.changed_only, full = flags.full, state = flags.state }
    if flags.state and not (flags.changed_only or flags.full) then
        return nil, "--state goes with --changed-only or --full"
    end
    local ok
    ok, msg = params_of(flags, object, spec)
    if not ok then return nil, msg end
    spec.limits = M.limits_of(flags)
    M.quota_of(flags, spec)
    spec.budget, msg = M.budget_of(flags)
    if msg then return nil, msg end
    return spec
end

--- The daily quota's flags into spec (shared with `resume`).
function M.quota_of(flags, spec)
    spec.daily_quota, spec.wait_for_quota = flags.daily_quota, flags.wait_for_quota
    spec.quota_check = flags.quota_check
end

--- The shared budget of --budget or MARKETO_BUDGET: the URL | nil, message.
function M.budget_of(flags)
    local url = flags.budget or os.getenv("MARKETO_BUDGET")
    if url == nil or url == "" or url == "local" then return nil end
    local _, msg = require("marketo.redis").parse(url)
    if msg then
        return nil, (flags.budget and "--budget: " or "MARKETO_BUDGET: ") .. msg
    end
    return url
end

--- Runs an import spec the way every command does: progress on stderr, the
-- summary on stdout, the report on disk. Shared with `resume`.
function M.execute(run, spec, flags, out, err)
    local close
    spec.on_event, close = progress.new({ out = err, quiet = flags.quiet,
        tty = not flags.json and core.isatty(2) })
    local result, msg, code = run(spec)
    close()
    if not result then
        err:write("marketo-bulk: ", msg, "\n")
        return import.exit_for(code, true), code
    end
    out:write(result.summary)
    if result.message then out:write("error: ", result.message, "\n") end
    if result.report_path then
        local html = result.report and result.report.files and result.report.files.html
        out:write("report: ", result.report_path, html and ("; for people: " .. html) or "",
            "\n")
    end
    -- "run it again" only where a rerun can succeed; otherwise the fix first
    if result.exit == import.EXIT.unfinished then
        out:write(("not finished: run the same command again, or `marketo-bulk resume %s`\n")
            :format(result.journal))
    elseif result.fix then
        out:write(("not finished: %s, then run the same command again (the journal %s "
            .. "keeps what was done)\n"):format(result.fix, result.journal))
    end
    return result.exit
end

function M.main(argv, out, err)
    local flags, positional = args.parse(argv, 2, FLAGS)
    if not flags then return usage_error(err, positional) end
    if flags.help then out:write(M.usage); return 0 end
    local object, next_i = target.object(positional, 1)
    if not object then return usage_error(err, next_i) end
    local files = {}
    for i = next_i, #positional do files[#files + 1] = positional[i] end
    if #files == 0 then return usage_error(err, "no FILE to import") end
    local spec, msg = spec_of(flags, object, files)
    if not spec then return usage_error(err, msg) end
    local checked, why = check_paths(spec)
    if not checked then err:write("marketo-bulk import: ", why, "\n"); return 1 end
    local settings, bad = target.instance(flags)
    if not settings then return usage_error(err, bad) end
    if flags.keep_unmapped and not spec.mapping then
        return usage_error(err, "--keep-unmapped goes with --map or --set")
    end
    local inputs
    inputs, why = input.prepare(spec, flags.encoding)
    if not inputs then err:write("marketo-bulk: ", why, "\n"); return 1 end
    unmapped(spec, flags.keep_unmapped, err)
    if not spec.dry_run then
        checked, why = target.check(settings)
        if checked == nil then err:write("marketo-bulk: ", why, "\n"); return 1 end
    end
    local code
    checked, msg, code = instance.attach(spec, object, flags)
    if not checked then err:write("marketo-bulk: ", msg, "\n"); return import.exit_for(code) end
    -- every row read and the plan journalled before any server starts: a bad
    -- file ends here, with nothing sent and no journal left behind
    local prepared
    prepared, msg, code = import.prepare(spec)
    local refused = prepared and not prepared.result and instance.quota(prepared, spec, flags)
    if refused then prepared:close(); err:write("marketo-bulk: ", refused, "\n"); return 1 end
    if spec.dry_run then inputs:cleanup() end
    return M.send(prepared, msg, code, spec, flags, out, err)
end

--- send(prepared, msg, code, spec, flags, out, err) -> exit status: what
-- import.prepare (or import.reopen) gave, sent through Marketo (or the
-- embedded sandbox, started only now). Shared with `resume`.
function M.send(prepared, msg, code, spec, flags, out, err)
    if not prepared then
        err:write("marketo-bulk: ", explained(msg, code), "\n")
        return import.exit_for(code)
    end
    -- a finished import says so first, loudly: nothing was sent this time
    local already = prepared.result and prepared.result.already
    if already then
        err:write("marketo-bulk: ", already, "\n")
    else
        err:write(instance.announce(spec, flags))
    end
    for _, warning in ipairs(prepared.o.warnings or {}) do
        err:write("marketo-bulk: warning: ", warning, "\n")
    end
    if prepared.result then
        out:write(prepared.result.summary,
            prepared.result.ended == "dry_run" and instance.cost_text(prepared) or "")
        return prepared.result.exit
    end
    if prepared.kept then
        err:write(("marketo-bulk: the old journal is kept as %s\n"):format(prepared.kept))
    end
    -- the flags were checked (target.instance) before anything was prepared
    local client, stop = target.marketo(err, { instance = target.instance(flags) })
    if not client then
        prepared:close()
        err:write("marketo-bulk: ", stop, "\n")
        return 1
    end
    spec.client = client
    core.catch_signals()
    local ok, status = pcall(M.execute, function(s) return import.send(prepared, s) end, spec,
        flags, out, err)
    stop()
    if not ok then error(status, 0) end
    return status
end

return M
