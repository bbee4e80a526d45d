--- marketo.sandbox.jobs: one import job - its file, its counters, its
-- failures and warnings - and the work of importing it a few rows at a time.
-- The queue (queue.lua) decides when a job starts and how many rows it may
-- import by now; this module does the rows.
local csv = require("marketo.sandbox.csv")
local source = require("marketo.sandbox.source")
local validate = require("marketo.sandbox.validate")

local M = {}
M.__index = M

M.FAILURE_COLUMN = "Import Failure Reason"
M.WARNING_COLUMN = "Import Warning Reason"

--- new(fields): fields has id, kind ("leads"|"co"|"pm"), format, delim, and per
-- kind lookup/list_id/partition, object, program_id/member_status; plus
-- source (M.open_source), header (its cells) and plan (validate.plan), all
-- made when the upload is answered.
function M.new(fields)
    local job = setmetatable(fields, M)
    job.status = "Queued"
    job.imported, job.failed, job.warned = 0, 0, 0
    job.rows = 0
    job.failures, job.warnings = {}, {}
    return job
end

--- Opens the rows of an upload (see source.lua); nil when it has no header.
function M.open_source(text, format, unbalanced_quote)
    return source.open(text, format, unbalanced_quote)
end

function M:start(now)
    self.status = "Importing"
    self.started = now
end

local function with_reason(cells, width, reason)
    local out = {}
    for i = 1, math.max(width, #cells) do out[i] = cells[i] or "" end
    out[#out + 1] = reason
    return out
end

-- Imports one validated row into the store.
function M:apply(outcome, store)
    if self.kind == "co" then
        store:upsert_object(self.object, outcome.key, outcome.record)
        return true
    elseif self.kind == "pm" then
        local lead, member = {}, {}
        for k, v in pairs(outcome.record) do
            if self.plan.member_fields and self.plan.member_fields[k] then member[k] = v
            else lead[k] = v end
        end
        store:upsert_member(self.program_id, outcome.key, lead, member, self.member_status)
        return true
    end
    local id, reason = store:upsert_lead(self.lookup, outcome.key, outcome.record)
    if not id then return nil, reason end
    if self.list_id then store:add_to_list(self.list_id, id) end
    return true
end

function M:record_row(cells, outcome, store)
    local delim = self.delim
    if outcome.ok then
        local ok, reason = self:apply(outcome, store)
        if not ok then outcome = { ok = false, reason = reason } end
    end
    if not outcome.ok then
        self.failed = self.failed + 1
        self.failures[#self.failures + 1] =
            csv.format_row(with_reason(cells, #self.header, outcome.reason), delim)
        return
    end
    self.imported = self.imported + 1
    if outcome.warning then
        self.warned = self.warned + 1
        self.warnings[#self.warnings + 1] =
            csv.format_row(with_reason(cells, #self.header, outcome.warning), delim)
    end
end

--- Imports up to `max_rows` more rows. Returns the number done and whether
-- the file is finished.
function M:work(max_rows, store)
    local src = self.source
    local n = 0
    while n < max_rows do
        local cells, err
        if self.ahead then
            cells, err = self.ahead[1], self.ahead[2]
            self.ahead = nil
        else
            cells, err = src:row()
        end
        if not cells then
            self.ended = true
            break
        end
        n = n + 1
        self.rows = self.rows + 1
        self:record_row(cells, validate.check(self.plan, cells, err), store)
    end
    -- One row read ahead: a job whose last row is done ends now, not once
    -- the time for one more row has passed.
    if not self.ended and n > 0 then
        local cells, err = src:row()
        if cells then self.ahead = { cells, err } else self.ended = true end
    end
    return n, self.ended == true
end

--- Ends the job; the upload itself is no longer needed.
function M:finish(now, status, message)
    self.status = status
    self.finished = now
    self.message = message
    self:close()
end

--- Lets go of the upload (a job dropped by a reset, or finished).
function M:close()
    if self.source then self.source:close() end
    self.source = nil
end

--- The `message` of a finished job, as the BI, BCOI and BPMI pages spell it ("1 records", and
-- "1 warning." with its period, are Marketo's own).
function M:summary()
    local n = self.imported
    local s
    if self.failed == 0 then
        s = ("Import succeeded, %d records imported (%d members)"):format(n, n)
    else
        s = ("Import completed with errors, %d records imported (%d members), %d failed")
            :format(n, n, self.failed)
    end
    if self.warned > 0 then s = s .. (", %d warning."):format(self.warned) end
    return s
end

--- The failures or warnings file: header + reason column, then the rows.
-- nil when there are none.
function M:file(which)
    local rows = which == "failures" and self.failures or self.warnings
    if #rows == 0 then return nil end
    local column = which == "failures" and M.FAILURE_COLUMN or M.WARNING_COLUMN
    local header = {}
    for i, h in ipairs(self.header) do header[i] = h end
    header[#header + 1] = column
    return csv.format_row(header, self.delim) .. table.concat(rows)
end

return M
