--- marketo.pipeline.report: accounts for every input row of an import.
-- The pipeline feeds it as it goes; at the end it must reconcile:
--   read = imported + warned + failed + filtered + rejected + unsent
-- (warned rows were imported too, with a warning; unsent rows belong to parts
-- that never finished, e.g. after a stop). It writes the JSON report, a
-- human summary, and files of failed and warned rows that a user can fix and
-- import again as they are (the columns that were uploaded, no extra column;
-- the reasons and source lines go in the JSON report and a reasons file).
local json = require("marketo.json")

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
        failures = {}, warnings = {}, rejects = {}, api_calls = {},
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
    }
    for k, v in pairs(self.info) do doc[k] = v end
    for k, v in pairs(extra or {}) do doc[k] = v end
    return doc
end

function Report:write_json(path, ended, extra)
    local f, err = io.open(path, "wb")
    if not f then return nil, "REPORT_UNWRITABLE: " .. err, "REPORT_UNWRITABLE" end
    f:write(json.encode(self:document(ended, extra)), "\n")
    f:close()
    return true
end

--- A few lines for people.
function Report:summary(ended)
    local r = self.rows
    local lines = {
        ("%s: %d rows read: %d imported, %d imported with warnings, %d failed, "
            .. "%d filtered out, %d rejected as malformed, %d not sent")
            :format(ended, r.read, r.imported, r.warned, r.failed, r.filtered, r.rejected,
                r.unsent),
    }
    local ok, why = self:reconcile()
    if not ok then lines[#lines + 1] = "RECONCILIATION ERROR: " .. why end
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

return M
