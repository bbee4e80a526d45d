--- marketo-bulk import: a whole import from the command line, no script.
local core = require("marketo.core")
local import = require("marketo.import")
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")
local paths = require("marketo.commands.paths")
local progress = require("marketo.pipeline.progress")

local M = {
    summary = "import a file of leads, custom objects or program members",
}

M.usage = [[
usage: marketo-bulk import leads FILE... [flags]
       marketo-bulk import customobject API_NAME FILE... [flags]
       marketo-bulk import programmembers PROGRAM_ID FILE... --status STATUS [flags]

Reads, maps and validates every row first (nothing is sent if a row is bad,
unless --lenient), splits the files into parts under Marketo's 10 MB, keeps
Marketo's import queue full within its limits, journals every step, and writes
a report that accounts for every row.

Marketo parameters:
  --lookup-field FIELD   leads: the dedupe field (default email; id = update only)
  --list-id N            leads: also add the leads to this static list
  --partition NAME       leads: the lead partition
  --status STATUS        program members: programMemberStatus (required)
  --format csv|tsv|ssv   the files' format (default: from the name, else csv)
Mapping (without any, columns go as they are):
  --map FIELD=COLUMN     send source COLUMN as Marketo FIELD (repeatable)
  --set FIELD=VALUE      send a constant (repeatable)
Run:
  --journal FILE         the journal (default FILE.journal); rerunning resumes it
  --report FILE          the JSON report (default: next to the journal)
  --work-dir DIR         where mapped parts are written (default JOURNAL.work)
  --lenient              bad rows go to the report as rejected; the rest is imported
  --dry-run              read, map and validate every row, print the parts, send nothing
  --part-bytes N         bytes per part, header included (default 9900000, at
                         most 10485760: Marketo's limit for one file)
Limits (lower them on an instance other integrations share):
  --importing N --queued N --uploads N     jobs importing (2), in the queue (10), uploads (2)
  --calls N --window S --in-flight N       API calls per window (100 per 20 s), at once (10)
Output:
  --json                 one JSON line per event on stderr, even on a terminal
  --quiet                no progress, only the summary

Exit status: 0 every row imported (warnings allowed), 3 some rows failed or were
rejected (see the report), 4 the import could not finish (resume it: run the same
command again, or `marketo-bulk resume JOURNAL`), 1 other failure, 2 usage.

Examples:
  marketo-bulk import leads contacts.csv
  marketo-bulk import leads crm.csv --map email="E-mail" --map firstName=First \
      --set leadSource="CRM export" --lenient
  marketo-bulk import customobject car_c cars.tsv --dry-run
  marketo-bulk import programmembers 1001 members.csv --status "On List"
]]

-- Marketo refuses a file over 10 MiB; a part (header included) must fit.
M.MAX_PART_BYTES = 10485760

-- The limit flags, shared with `resume`.
M.LIMIT_FLAGS = { importing = "count", queued = "count", uploads = "count", calls = "count",
    window = "seconds", in_flight = "count" }

local FLAGS = {
    lookup_field = "string", list_id = "count", partition = "string", status = "string",
    format = "string", map = "list", set = "list", journal = "string", report = "string",
    work_dir = "string", lenient = "boolean", dry_run = "boolean",
    part_bytes = args.bytes(M.MAX_PART_BYTES), json = "boolean", quiet = "boolean",
    help = "boolean",
}
for k, kind in pairs(M.LIMIT_FLAGS) do FLAGS[k] = kind end

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

-- Every file the import reads or writes, before anything starts: a wrong
-- path is then one line naming it, and nothing has been sent.
local function check_paths(spec)
    for _, file in ipairs(spec.source) do
        local ok, msg = paths.input(file, "the file")
        if not ok then return nil, msg end
    end
    local ok, msg = paths.output(spec.journal or spec.source[1] .. ".journal", "the journal")
    if ok and spec.report then ok, msg = paths.output(spec.report, "the report") end
    return ok, msg
end

local function spec_of(flags, object, files)
    local mapping, msg = mapping_of(flags)
    if msg then return nil, msg end
    local spec = { object = object.object, api_name = object.api_name,
        program_id = object.program_id, source = files, format = flags.format,
        mapping = mapping, lenient = flags.lenient, journal = flags.journal,
        report = flags.report, work_dir = flags.work_dir, dry_run = flags.dry_run,
        part_bytes = flags.part_bytes }
    if object.object == "leads" then
        spec.lookup_field, spec.list_id = flags.lookup_field, flags.list_id
        spec.partition_name = flags.partition
    elseif flags.lookup_field or flags.list_id or flags.partition then
        return nil, "--lookup-field, --list-id and --partition are for leads"
    end
    if object.object == "program_members" then
        if not flags.status then return nil, "programmembers needs --status STATUS" end
        spec.program_member_status = flags.status
    elseif flags.status then
        return nil, "--status is for programmembers"
    end
    spec.limits = M.limits_of(flags)
    return spec
end

--- Runs an import spec the way every command does: progress on stderr, the
-- summary on stdout, the report on disk. Shared with `resume`.
function M.execute(run, spec, flags, out, err)
    local close = function() end
    if not flags.quiet then
        spec.on_event, close = progress.new({ out = err,
            tty = not flags.json and core.isatty(2) })
    end
    local result, msg, code = run(spec)
    close()
    if not result then
        err:write("marketo-bulk: ", msg, "\n")
        return import.EXIT.unfinished, code
    end
    out:write(result.summary)
    if result.message then out:write("error: ", result.message, "\n") end
    if result.report_path then out:write("report: ", result.report_path, "\n") end
    if result.ended == "stopped" or result.ended == "failed" then
        out:write(("not finished: run the same command again, or `marketo-bulk resume %s`\n")
            :format(result.journal))
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
    if spec.dry_run then
        local result, dmsg = import.run(spec)
        if not result then
            err:write("marketo-bulk: ", dmsg, "\n")
            return import.EXIT.unfinished
        end
        out:write(result.summary)
        return result.exit
    end
    local client, stop = target.marketo(err)
    if not client then err:write("marketo-bulk: ", stop, "\n"); return 1 end
    spec.client = client
    core.catch_signals()
    local ok, status = pcall(M.execute, import.run, spec, flags, out, err)
    stop()
    if not ok then error(status, 0) end
    return status
end

return M
