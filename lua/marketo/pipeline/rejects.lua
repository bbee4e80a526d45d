--- marketo.pipeline.rejects: the rows lenient mode sets aside, kept on disk as
-- they are found (one JSON line each in the work folder), never in memory: half
-- a million of them cost the planner nothing. The report and its
-- REPORT.rejected.csv read them back from there.
--
--   local w = assert(rejects.writer(work_dir .. "/rejects.jsonl"))
--   w:add{ source = path, line = 12, column = 3, code = "CSV_FIELD_COUNT",
--          reason = "...", raw = "the row as it was in the file" }
--   assert(w:close()); w.groups:list()
--   rejects.each(path, function(rej) ... end) -> true | nil, why
--
-- Groups (rejects.groups()) count rows by reason and keep the first lines of
-- each, in bounded memory, for the summary and the HTML report.
local json = require("marketo.json")

local M = {}

M.FIRST_LINES = 5  -- lines kept per reason
M.MAX_GROUPS = 20  -- reasons told apart; the rest are counted together

local Groups = {}
Groups.__index = Groups

--- bare(reason): "path:12:3: row has 4 fields, ..." -> "row has 4 fields, ...": the
-- place is in the reject's own fields. The advice after a semicolon stays.
local function bare(reason)
    reason = tostring(reason or "")
    return reason:match("^[^\n]-:%d+:%d*:? ?(.*)$") or reason
end

M.bare = bare

--- groups([first_lines]) -> g. g:add(code, reason, line[, rows]) (rows: 1, or
-- how many rows share that reason and line, e.g. a whole failed job's);
-- g:list() -> { { reason, code, count, lines = { the first few } } }, the
-- largest first. A group keeps first_lines lines (M.FIRST_LINES).
function M.groups(first_lines)
    return setmetatable({ by = {}, list_ = {}, other = nil,
        first_lines = first_lines or M.FIRST_LINES }, Groups)
end

function Groups:add(code, reason, line, rows)
    reason = bare(reason)
    -- the reader's codes name a kind of damage whose wording varies with the
    -- row (how many fields); anything else is told apart by what it says
    local key = (code and code:match("^CSV_")) and code or (tostring(code) .. "\0" .. reason)
    local g = self.by[key]
    if not g then
        if #self.list_ >= M.MAX_GROUPS then
            self.other = self.other or { reason = "other reasons", count = 0, lines = {} }
            g = self.other
        else
            g = { reason = reason, code = code, count = 0, lines = {} }
            self.by[key] = g
            self.list_[#self.list_ + 1] = g
        end
    end
    g.count = g.count + (rows or 1)
    if line and #g.lines < self.first_lines then g.lines[#g.lines + 1] = line end
end

function Groups:list()
    local out = {}
    for i, g in ipairs(self.list_) do out[i] = g end
    table.sort(out, function(a, b) return a.count > b.count end)
    if self.other then out[#out + 1] = self.other end
    return out
end

--- Summary lines: "  WHAT: N rows: REASON (lines a, b, ...)".
function Groups:lines(what)
    local out = {}
    for _, g in ipairs(self:list()) do
        local lines = {}
        for i = 1, math.min(#g.lines, M.FIRST_LINES) do lines[i] = tostring(g.lines[i]) end
        out[#out + 1] = ("  %s: %d row%s: %s%s"):format(what, g.count, g.count == 1 and "" or "s",
            g.reason, #lines > 0 and (" (line" .. (#lines > 1 and "s " or " ")
            .. table.concat(lines, ", ") .. (g.count > #lines and ", ..." or "") .. ")") or "")
    end
    return out
end

local Writer = {}
Writer.__index = Writer

--- writer(path) -> w | nil, msg, code: a new file (0600, as every file with
-- people's data), one JSON line per reject.
function M.writer(path)
    local ok, msg, code = require("marketo.core").write_file(path, "")
    if not ok then return nil, msg, code end
    local f
    f, msg = io.open(path, "wb")
    if not f then return nil, "IO_ERROR: " .. tostring(msg), "IO_ERROR" end
    return setmetatable({ f = f, path = path, groups = M.groups(), count = 0 }, Writer)
end

function Writer:add(rej)
    self.count = self.count + 1
    self.groups:add(rej.code, rej.reason, rej.line)
    if self.failed then return end
    local ok, msg = self.f:write(json.encode({ source = rej.source, line = rej.line,
        column = rej.column, code = rej.code, reason = rej.reason, raw = rej.raw }), "\n")
    if not ok then self.failed = msg end
end

--- close() -> true | nil, msg, code: whole, or an error naming the file.
function Writer:close()
    local ok, msg = true, self.failed
    if not msg then ok, msg = self.f:flush() end
    self.f:close()
    if not ok or self.failed then
        return nil, ("IO_ERROR: %s: %s"):format(self.path, tostring(msg)), "IO_ERROR"
    end
    return true
end

--- each(path, fn) -> true | nil, why: every reject of the file, in order. A
-- journal written before the rejects were streamed names a JSON array
-- (rejects.json); both are read.
function M.each(path, fn)
    if path:match("%.json$") then
        local doc, err = json.decode_file(path, "the JSON the import wrote")
        if not doc then return nil, err end
        for _, rej in ipairs(doc) do fn(rej) end
        return true
    end
    local f, err = io.open(path, "rb")
    if not f then return nil, err end
    for line in f:lines() do
        local rej = json.decode(line)
        if type(rej) ~= "table" then
            f:close()
            return nil, path .. ": not the JSON lines the import wrote"
        end
        fn(rej)
    end
    f:close()
    return true
end

return M
