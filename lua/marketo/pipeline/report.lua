--- marketo.pipeline.report: accounts for every input row of an import.
-- The pipeline feeds it as it goes; at the end it must reconcile:
--   read = imported + warned + failed + filtered + rejected + unsent + unchanged
-- (warned rows were imported too, with a warning; unsent rows belong to parts
-- that never finished, e.g. after a stop). It writes the JSON report, a
-- human summary, and files of failed and warned rows that a user can fix and
-- import again as they are (the columns that were uploaded, no extra column;
-- the reasons and source lines go in the JSON report and a reasons file beside
-- each: REPORT.failed.reasons.csv, line and reason, row for row). Rejected rows
-- are read from the file the planner streamed them to (marketo.pipeline.rejects),
-- never all held here: the JSON lists the first LISTED_REJECTS and groups them
-- all by reason; REPORT.rejected.csv has each with its line, reason and row.
-- Failed and warned rows are the same: the JSON lists the first LISTED_ROWS
-- and groups them all by reason; the files are written from the parts' result
-- files, one part in memory at a time, so that an import whose every row
-- failed needs no more memory than one whose every row went in.
-- Rows in jobs Marketo holds when the import stops are "pending": uploaded,
-- their outcome unknown until a resume fetches it; "unsent" never counts them.
local json = require("marketo.json")
local formats = require("marketo.formats")
local rejects_mod = require("marketo.pipeline.rejects")

local M = {}

local Report = {}
Report.__index = Report

local OUTCOMES = { "imported", "warned", "failed", "filtered", "rejected", "unsent", "pending" }
M.OUTCOMES = OUTCOMES

-- Rejected rows the JSON report lists one by one (all are in REPORT.rejected.csv).
M.LISTED_REJECTS = 1000
-- Failed and warned rows it lists one by one (all are in REPORT.failed.csv...),
-- and the lines kept for each reason (the HTML report shows them).
M.LISTED_ROWS, M.REASON_LINES = 1000, 200

--- new(info) -> report. info: { object = "leads", source = {paths}, ... },
-- copied into the JSON as is (it must hold no secret: the pipeline passes
-- the import's description, never the client's options).
function M.new(info)
    local rows = { read = 0 }
    for _, k in ipairs(OUTCOMES) do rows[k] = 0 end
    return setmetatable({
        info = info or {}, rows = rows, parts = {},
        failures = {}, warnings = {}, rejects = {}, api_calls = {}, problems = {},
        reject_groups = rejects_mod.groups(), failed_groups = rejects_mod.groups(M.REASON_LINES),
        warned_groups = rejects_mod.groups(M.REASON_LINES), results = {}, started = os.time(),
    }, Report)
end

function Report:count(outcome, n)
    if self.rows[outcome] == nil then
        error(("report:count: unknown outcome '%s'"):format(tostring(outcome)), 2)
    end
    self.rows[outcome] = self.rows[outcome] + (n or 1)
end

-- A failed or warned row into its groups, and into the list while it is short.
local function add_row(list, groups, line, reason, values, rows)
    groups:add(nil, reason, line, rows)
    if #list < M.LISTED_ROWS then
        list[#list + 1] = { line = line, reason = reason, values = values }
    end
end

--- A row that failed (or was warned): its source line, reason and values;
-- rows: how many rows it stands for (a whole failed job's), 1 by default.
function Report:failed(line, reason, values, rows)
    add_row(self.failures, self.failed_groups, line, reason, values, rows)
end

function Report:warned(line, reason, values)
    add_row(self.warnings, self.warned_groups, line, reason, values)
end

function Report:rejected(line, reason, source, code)
    self.reject_groups:add(code, reason, line)
    if #self.rejects < M.LISTED_REJECTS then
        self.rejects[#self.rejects + 1] = { line = line, reason = reason, source = source,
            code = code }
    end
end

function Report:part(summary)
    self.parts[#self.parts + 1] = summary
end

--- reconcile() -> true | nil, msg: do the outcomes add up to the rows read?
function Report:reconcile()
    local sum = 0
    for _, k in ipairs(OUTCOMES) do sum = sum + self.rows[k] end
    sum = sum + (self.rows.unchanged or 0) -- only with --changed-only (marketo.pipeline.changed)
    if sum ~= self.rows.read then
        return nil, ("%d rows read but %d accounted for"):format(self.rows.read, sum)
    end
    return true
end

--- The JSON document (a table); `ended` is "complete" | "stopped" | "failed".
function Report:document(ended, extra)
    local ok, why = self:reconcile()
    local doc = {
        marketo_bulk = require("marketo")._VERSION,
        ended = ended,
        reconciled = ok == true,
        reconcile_error = why,
        started = os.date("!%Y-%m-%dT%H:%M:%SZ", self.started),
        finished = os.date("!%Y-%m-%dT%H:%M:%SZ"),
        rows = self.rows,
        parts = self.parts,
        failures = self.failures,
        warnings = self.warnings,
        failed_reasons = self.failed_groups:list(),
        warned_reasons = self.warned_groups:list(),
        rejects = self.rejects,
        rejected_reasons = self.reject_groups:list(),
        api_calls = self.api_calls,
        problems = self.problems[1] and self.problems or nil,
    }
    for k, v in pairs(self.info) do doc[k] = v end
    for k, v in pairs(extra or {}) do doc[k] = v end
    return doc
end

function Report:write_json(path, ended, extra)
    local ok, msg, code = require("marketo.core").write_file(path,
        json.encode(self:document(ended, extra)) .. "\n")
    if not ok then return nil, "REPORT_UNWRITABLE: " .. msg, code end
    return true
end

--- A few lines for people.
function Report:summary(ended)
    local r = self.rows
    local lines = {}
    local ok, why = self:reconcile()
    if not ok then
        lines[1] = ("NOT RECONCILED: %s: this report cannot vouch for every row; keep the "
            .. "journal and the report, and report it"):format(why)
    end
    for _, problem in ipairs(self.problems) do lines[#lines + 1] = "WARNING: " .. problem end
    lines[#lines + 1] =
        ("%s: %d rows read: %d imported, %d imported with warnings, %d failed, "
            .. "%d filtered out, %d rejected (malformed or invalid), %d not sent%s")
            :format(ended, r.read, r.imported, r.warned, r.failed, r.filtered, r.rejected,
                r.unsent, r.pending > 0 and (", %d uploaded, outcome pending (resume to learn "
                .. "it)"):format(r.pending) or "")
            .. ((r.unchanged or 0) > 0 and (", %d unchanged (not sent: --changed-only)"):format(
                r.unchanged) or "")
    if self.info.statuses then
        local names = {}
        for name in pairs(self.info.statuses) do names[#names + 1] = name end
        table.sort(names)
        for i, name in ipairs(names) do
            local c = self.info.statuses[name]
            names[i] = ("%s %d (%d imported, %d warned, %d failed, %d not sent%s)"):format(
                name, c.rows, c.imported, c.warned, c.failed, c.unsent,
                c.pending > 0 and (", %d pending"):format(c.pending) or "")
        end
        lines[#lines + 1] = "statuses: " .. table.concat(names, "; ")
    end
    local keys = self.info.keys
    if keys and keys.repeated > 0 then
        local ex = keys.examples[1]
        lines[#lines + 1] = ("keys: %d %s values seen more than once (e.g. %s, lines %s); "
            .. "%d rows waited for an earlier copy's job"):format(keys.repeated, keys.field,
            ex.key, table.concat(ex.lines, ", "), keys.moved)
    end
    local calls, total = {}, 0
    for kind, n in pairs(self.api_calls) do
        calls[#calls + 1] = ("%s %d"):format(kind, n)
        total = total + n
    end
    table.sort(calls)
    lines[#lines + 1] = ("API calls: %d (%s)"):format(total, table.concat(calls, ", "))
    for _, kind in ipairs({ { "failed", self.failed_groups },
        { "warned", self.warned_groups }, { "rejected", self.reject_groups } }) do
        for _, line in ipairs(kind[2]:lines(kind[1])) do lines[#lines + 1] = line end
    end
    return table.concat(lines, "\n") .. "\n"
end

-- A JSON file the pipeline wrote (rejects, a part's results), or nil and why.
local function read_json(path)
    return json.decode_file(path, "the JSON the import wrote")
end

-- When a journal record was written: with milliseconds, or in whole seconds
-- in a journal older than those.
local function at(rec)
    return rec and (rec.at or rec.t)
end

-- A finished part's counts and rows, into the report.
local function add_part(r, k, part)
    local plan, fin = part.plan, part.finished
    local summary = { part = k, rows = plan.rows, first_line = plan.first_line,
        last_line = plan.last_line, source = plan.source, batch = part.batch,
        stage = part.stage, status = fin and fin.status or nil, member_status = plan.status,
        processed = fin and fin.processed, failed = fin and fin.failed,
        warned = fin and fin.warned, sent_at = at(part.sending),
        uploaded_at = at(part.uploaded), importing_at = fin and fin.importing_at,
        finished_at = at(fin), fetched_at = at(part.fetched) }
    if fin and fin.status == "Complete" then
        local warned = fin.warned or 0
        r:count("imported", (fin.processed or 0) - warned)
        r:count("warned", warned)
        r:count("failed", fin.failed or 0)
        if part.fetched and part.fetched.results then
            local res, why = read_json(part.fetched.results)
            if not res then
                r.problems[#r.problems + 1] = ("part %d: its failed and warned rows are "
                    .. "unknown (%s)"):format(k, why)
                res = {}
            end
            for _, row in ipairs(res.failed or {}) do r:failed(row.line, row.reason, row.values) end
            for _, row in ipairs(res.warned or {}) do r:warned(row.line, row.reason, row.values) end
            summary.header = res.header
            if res.header then r.results[#r.results + 1] = part.fetched.results end
        end
    elseif fin then
        r:count("failed", plan.rows)
        -- A Failed job may have imported some rows before it failed: say what
        -- Marketo counted, never that nothing changed.
        r:failed(nil, ("the job failed: %s (lines %d-%d; Marketo had processed %s of its "
            .. "%d rows before it failed: import them again)"):format(tostring(fin.message),
            plan.first_line, plan.last_line, tostring(fin.processed or "an unknown number"),
            plan.rows), nil, plan.rows)
    elseif part.batch and part.stage == "uploaded" then
        r:count("pending", plan.rows) -- Marketo holds them: a resume learns their outcome
    else
        r:count("unsent", plan.rows)
    end
    r:part(summary)
end

-- Program members with a status per row: each status's rows and what
-- became of them, from its parts (nil without a status column).
local function by_status(parts)
    local out
    for _, p in ipairs(parts) do
        if p.member_status then
            out = out or {}
            local c = out[p.member_status] or { rows = 0, imported = 0, warned = 0, failed = 0,
                pending = 0, unsent = 0 }
            out[p.member_status] = c
            c.rows = c.rows + p.rows
            if p.status == "Complete" then
                c.warned = c.warned + (p.warned or 0)
                c.failed = c.failed + (p.failed or 0)
                c.imported = c.imported + (p.processed or 0) - (p.warned or 0)
            elseif p.status then
                c.failed = c.failed + p.rows
            elseif p.batch and p.stage == "uploaded" then
                c.pending = c.pending + p.rows
            else
                c.unsent = c.unsent + p.rows
            end
        end
    end
    return out
end

--- from_journal(state) -> report: the report of an import from its journal
-- alone (marketo.pipeline.journal's state), so that `status`, a resumed run
-- and the run itself tell the same story. Only what the journal vouches for
-- is counted: a plan cut short counts its rows as unsent, never as imported.
function M.from_journal(state)
    local run = state.run
    local r = M.new({ object = run.object, params = run.params, source = run.sources,
        format = run.format, keys = run.keys })
    r:count("read", run.rows.read)
    r:count("filtered", run.rows.filtered)
    r:count("rejected", run.rows.rejected)
    r.rows.unchanged = run.rows.unchanged
    if run.rejects then
        local ok, why = rejects_mod.each(run.rejects, function(rej)
            r:rejected(rej.line, rej.reason, rej.source, rej.code)
        end)
        if not ok then
            r.problems[#r.problems + 1] = "the rejected rows' lines are unknown (" .. why .. ")"
        end
        r.rejects_file = ok and run.rejects or nil
    end
    for k = 1, state.nparts do add_part(r, k, state.parts[k]) end
    if not state.plan_closed and run.rows.read > 0 then
        -- the plan was cut short: what it did not list was never sent
        local listed = 0
        for k = 1, state.nparts do listed = listed + state.parts[k].plan.rows end
        local left = run.rows.read - run.rows.filtered - run.rows.rejected
            - (run.rows.unchanged or 0) - listed
        if left > 0 then r:count("unsent", left) end
        r.problems[#r.problems + 1] = "the plan was cut short: run the import again"
    end
    r.api_calls = state.calls
    r.info.statuses = by_status(r.parts)
    return r
end

-- A file of `header` with the rows `each` hands to its callback (a list of
-- fields each); nil when there was none.
local function write_csv(path, header, format, each)
    local w, msg, code = require("marketo.csv").writer(path, { format = format,
        header = header })
    if not w then return nil, msg, code end
    local n, failed = 0, nil
    each(function(fields)
        if failed then return end
        local ok, wmsg, wcode = w:write(fields)
        if ok then n = n + 1 else failed = { wmsg, wcode } end
    end)
    local ok, cmsg, ccode = w:close()
    if failed then return nil, failed[1], failed[2] end
    if not ok then return nil, cmsg, ccode end
    if n == 0 then os.remove(path); return nil end
    return path
end

-- The failed (or warned: kind) rows as a file to fix and import again, and
-- their lines and reasons beside it, row for row: read back from the parts'
-- result files, one at a time.
local function write_rows(base, header, results, kind, format)
    if not header then return nil end
    local csv = require("marketo.csv")
    local path, reasons = base .. "." .. format.extension, base .. ".reasons.csv"
    local rows, msg, code = csv.writer(path, { format = format.name, header = header })
    if not rows then return nil, msg, code end
    local why
    why, msg, code = csv.writer(reasons, { format = "csv", header = { "line", "reason" } })
    if not why then rows:close(); return nil, msg, code end
    local n = 0
    for _, file in ipairs(results) do
        local res = read_json(file) or {} -- unreadable: a problem from_journal told
        for _, row in ipairs(res[kind] or {}) do
            if row.values and not msg then
                local ok, wmsg, wcode = rows:write(row.values)
                if ok then ok, wmsg, wcode = why:write({ row.line or "", row.reason }) end
                if ok then n = n + 1 else msg, code = wmsg, wcode end
            end
        end
    end
    local ok1, msg1, code1 = rows:close()
    local ok2, msg2, code2 = why:close()
    if msg then return nil, msg, code end
    if not ok1 then return nil, msg1, code1 end
    if not ok2 then return nil, msg2, code2 end
    if n == 0 then os.remove(path); os.remove(reasons); return nil end
    return path, nil, nil, reasons
end

-- Every rejected row, from the planner's file: its line, why, and the row as
-- it was in the file (when the reader kept it).
local function write_rejects(path, from)
    local failed
    local out, msg, code = write_csv(path, { "line", "reason", "source", "column", "row" },
        "csv", function(put)
            local ok, why = rejects_mod.each(from, function(rej)
                put({ rej.line, rejects_mod.bare(rej.reason), rej.source, rej.column or "",
                    rej.raw and (rej.raw:gsub("\r?\n$", "")) or "" })
            end)
            if not ok then failed = why end
        end)
    if failed then return nil, "REPORT_UNWRITABLE: " .. failed, "IO_ERROR" end
    return out, msg, code
end

--- report:save(path, ended, extra) -> document | nil, msg, code: the JSON
-- report at `path` and, beside it (PATH without the .json): the failed and
-- warned rows as files in the import's format (.failed.csv, .warned.csv) with
-- their reasons (.failed.reasons.csv, ...), the rejected rows (.rejected.csv)
-- and the page for people (.html, marketo.pipeline.html).
function Report:save(path, ended, extra)
    local format = formats.get(self.info.format) or formats.get(formats.DEFAULT)
    local base = path:gsub("%.json$", "")
    local header
    for _, p in ipairs(self.parts) do header = header or p.header end
    extra = extra or {}
    extra.files = {}
    for _, kind in ipairs({ "failed", "warned" }) do
        local file, msg, code, reasons = write_rows(("%s.%s"):format(base, kind), header,
            self.results, kind, format)
        if msg then return nil, msg, code end
        extra.files[kind], extra.files[kind .. "_reasons"] = file, reasons
    end
    if self.rejects_file and self.rows.rejected > 0 then
        local file, msg, code = write_rejects(base .. ".rejected.csv", self.rejects_file)
        if msg then return nil, msg, code end
        extra.files.rejected = file
    end
    extra.files.html = base .. ".html"
    local ok, msg, code = self:write_json(path, ended, extra)
    if not ok then return nil, msg, code end
    local doc = self:document(ended, extra)
    ok, msg, code = require("marketo.core").write_file(extra.files.html,
        require("marketo.pipeline.html").render(doc))
    if not ok then return nil, "REPORT_UNWRITABLE: " .. msg, code end
    return doc
end

return M
