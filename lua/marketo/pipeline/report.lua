--- marketo.pipeline.report: accounts for every input row of an import.
-- The pipeline feeds it as it goes; at the end it must reconcile:
--   read = imported + warned + failed + filtered + rejected + unsent
-- (warned rows were imported too, with a warning; unsent rows belong to parts
-- that never finished, e.g. after a stop). It writes the JSON report, a
-- human summary, and files of failed and warned rows that a user can fix and
-- import again as they are (the columns that were uploaded, no extra column;
-- the reasons and source lines go in the JSON report and a reasons file).
local json = require("marketo.json")
local formats = require("marketo.formats")

local M = {}

local Report = {}
Report.__index = Report

local OUTCOMES = { "imported", "warned", "failed", "filtered", "rejected", "unsent" }
M.OUTCOMES = OUTCOMES

--- new(info) -> report. info: { object = "leads", source = {paths}, ... },
-- copied into the JSON as is (it must hold no secret: the pipeline passes
-- the import's description, never the client's options).
function M.new(info)
    local rows = { read = 0 }
    for _, k in ipairs(OUTCOMES) do rows[k] = 0 end
    return setmetatable({
        info = info or {}, rows = rows, parts = {},
        failures = {}, warnings = {}, rejects = {}, api_calls = {}, problems = {},
        started = os.time(),
    }, Report)
end

function Report:count(outcome, n)
    if self.rows[outcome] == nil then
        error(("report:count: unknown outcome '%s'"):format(tostring(outcome)), 2)
    end
    self.rows[outcome] = self.rows[outcome] + (n or 1)
end

--- A row that failed (or was warned): its source line, reason and values.
function Report:failed(line, reason, values)
    self.failures[#self.failures + 1] = { line = line, reason = reason, values = values }
end

function Report:warned(line, reason, values)
    self.warnings[#self.warnings + 1] = { line = line, reason = reason, values = values }
end

function Report:rejected(line, reason)
    self.rejects[#self.rejects + 1] = { line = line, reason = reason }
end

function Report:part(summary)
    self.parts[#self.parts + 1] = summary
end

--- reconcile() -> true | nil, msg: do the outcomes add up to the rows read?
function Report:reconcile()
    local sum = 0
    for _, k in ipairs(OUTCOMES) do sum = sum + self.rows[k] end
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
        rejects = self.rejects,
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
            .. "%d filtered out, %d rejected as malformed, %d not sent")
            :format(ended, r.read, r.imported, r.warned, r.failed, r.filtered, r.rejected,
                r.unsent)
    if self.info.statuses then
        local names = {}
        for name in pairs(self.info.statuses) do names[#names + 1] = name end
        table.sort(names)
        for i, name in ipairs(names) do
            local c = self.info.statuses[name]
            names[i] = ("%s %d (%d imported, %d warned, %d failed, %d not sent)"):format(name,
                c.rows, c.imported, c.warned, c.failed, c.unsent)
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
    local shown = math.min(#self.failures, 5)
    for i = 1, shown do
        local f = self.failures[i]
        lines[#lines + 1] = ("  failed: line %s: %s"):format(tostring(f.line), f.reason)
    end
    if #self.failures > shown then
        lines[#lines + 1] = ("  ... and %d more failed rows"):format(#self.failures - shown)
    end
    return table.concat(lines, "\n") .. "\n"
end

-- A JSON file the pipeline wrote (rejects, a part's results), or nil and why.
local function read_json(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    local text = f:read("*a")
    f:close()
    local doc = text and json.decode(text)
    if type(doc) ~= "table" then return nil, path .. ": not the JSON the import wrote" end
    return doc
end

-- A finished part's counts and rows, into the report.
local function add_part(r, k, part)
    local plan, fin = part.plan, part.finished
    local summary = { part = k, rows = plan.rows, first_line = plan.first_line,
        last_line = plan.last_line, source = plan.source, batch = part.batch,
        stage = part.stage, status = fin and fin.status or nil, member_status = plan.status,
        processed = fin and fin.processed, failed = fin and fin.failed,
        warned = fin and fin.warned }
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
        end
    elseif fin then
        r:count("failed", plan.rows)
        r:failed(nil, ("the job failed: %s (lines %d-%d)")
            :format(tostring(fin.message), plan.first_line, plan.last_line))
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
                unsent = 0 }
            out[p.member_status] = c
            c.rows = c.rows + p.rows
            if p.status == "Complete" then
                c.warned = c.warned + (p.warned or 0)
                c.failed = c.failed + (p.failed or 0)
                c.imported = c.imported + (p.processed or 0) - (p.warned or 0)
            elseif p.status then
                c.failed = c.failed + p.rows
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
    if run.rejects then
        local rejects, why = read_json(run.rejects)
        if not rejects then
            r.problems[#r.problems + 1] = "the rejected rows' lines are unknown (" .. why .. ")"
        end
        for _, rej in ipairs(rejects or {}) do r:rejected(rej.line, rej.reason, rej.source) end
    end
    for k = 1, state.nparts do add_part(r, k, state.parts[k]) end
    if not state.plan_closed and run.rows.read > 0 then
        -- the plan was cut short: what it did not list was never sent
        local listed = 0
        for k = 1, state.nparts do listed = listed + state.parts[k].plan.rows end
        local left = run.rows.read - run.rows.filtered - run.rows.rejected - listed
        if left > 0 then r:count("unsent", left) end
        r.problems[#r.problems + 1] = "the plan was cut short: run the import again"
    end
    r.api_calls = state.calls
    r.info.statuses = by_status(r.parts)
    return r
end

-- The failed (or warned) rows as a file to fix and import again.
local function write_rows(path, header, rows, format)
    if #rows == 0 or not header then return nil end
    local w, msg, code = require("marketo.csv").writer(path, { format = format,
        header = header })
    if not w then return nil, msg, code end
    for _, row in ipairs(rows) do
        if row.values then
            local ok
            ok, msg, code = w:write(row.values)
            if not ok then w:close(); return nil, msg, code end
        end
    end
    local ok
    ok, msg, code = w:close()
    if not ok then return nil, msg, code end
    return path
end

--- report:save(path, ended, extra) -> document | nil, msg, code: the JSON
-- report at `path` and, beside it, the failed and warned rows as files in the
-- import's format (PATH.failed.csv, PATH.warned.csv, without the .json).
function Report:save(path, ended, extra)
    local format = formats.get(self.info.format) or formats.get(formats.DEFAULT)
    local base = path:gsub("%.json$", "")
    local header
    for _, p in ipairs(self.parts) do header = header or p.header end
    extra = extra or {}
    extra.files = {}
    for _, kind in ipairs({ { "failed", self.failures }, { "warned", self.warnings } }) do
        local file, msg, code = write_rows(("%s.%s.%s"):format(base, kind[1], format.extension),
            header, kind[2], format.name)
        if msg then return nil, msg, code end
        extra.files[kind[1]] = file
    end
    local ok, msg, code = self:write_json(path, ended, extra)
    if not ok then return nil, msg, code end
    return self:document(ended, extra)
end

return M
