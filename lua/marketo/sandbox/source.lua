--- marketo.sandbox.source: the rows of an uploaded file, one at a time, from
-- the C CSV engine (marketo.csv) when it is there and takes the file, else
-- from the small Lua reader of sandbox/csv.lua (a duplicate header name, for
-- one, is refused by the engine but is no reason for Marketo to refuse).
--
--   local src = source.open(text, "csv", "rest")  -- or "line", see below
--   src.header             -- the header cells
--   src:row()              -- cells, reason (reason when malformed) | nil at the end
--   src:close()
--
-- A quote that does not close on its line takes the lines up to the next
-- quote, or the rest of the file, into one malformed record ("rest": what
-- an RFC 4180 reader does, and the harder case: the rows it swallows are
-- counted nowhere); with "line" that record ends at its first line end and
-- the lines after it are read as rows again.
local lua_csv = require("marketo.sandbox.csv")
local formats = require("marketo.formats")

local has_engine, engine = pcall(require, "marketo.csv")
if not has_engine then engine = nil end

local M = {}

local Engine = {}
Engine.__index = Engine

-- A rejected row as cells for the failure file: the raw text split the
-- simple way (the engine already said why it is malformed).
local function reject_cells(raw, delim)
    raw = (raw or ""):gsub("\r?\n$", "")
    local cells = lua_csv.reader(raw, delim):row()
    return cells or { raw }
end

local function reason_of(rej)
    if rej.code == "CSV_FIELD_COUNT" then
        local got, want = rej.message:match("row has (%d+) fields, the header has (%d+)")
        if got then return ("%s fields for %s columns"):format(got, want) end
    end
    return (rej.code:gsub("^CSV_", ""):lower():gsub("_", " "))
end

-- Opens `text` with the engine through a temporary file that is unlinked at
-- once (the reader keeps its descriptor), so nothing is left behind.
local function open_engine(text, format, delim)
    if not engine then return nil end
    local path = os.tmpname()
    local f = io.open(path, "wb")
    if not f then return nil end
    f:write(text)
    f:close()
    local pending = {}
    local reader = engine.open(path, { format = format, lenient = true, on_reject = function(rej)
        pending[#pending + 1] = { reject_cells(rej.raw, delim), reason_of(rej), rej.raw }
    end })
    os.remove(path)
    if not reader then return nil end
    return setmetatable({ reader = reader, header = reader:header(), pending = pending,
                          finished = false }, Engine)
end

--- cells, reason, raw | nil at the end. Rows the engine rejected come back
-- in file order, with the reason and their text; they come before the good
-- row read after them.
function Engine:row()
    local pending = self.pending
    if #pending > 0 then
        local p = table.remove(pending, 1)
        return p[1], p[2], p[3]
    end
    if self.finished then return nil end
    local cells = self.reader:read()
    if not cells then
        self.finished = true
        return self:row()
    end
    if #pending > 0 then
        pending[#pending + 1] = { cells, nil }
        return self:row()
    end
    return cells, nil
end

function Engine:close()
    if self.reader then self.reader:close() end
    self.reader, self.finished = nil, true
end

local Plain = {}
Plain.__index = Plain

function Plain:row()
    return self.reader:row()
end

function Plain.close() end

-- unbalanced_quote = "line": rows come from `inner` until a record is
-- malformed by a quote; its first line fails alone and the rest of its text
-- is read again by a Lua reader (which may meet another such quote), then
-- `inner` goes on after it.
local Lines = {}
Lines.__index = Lines

function Lines:row()
    local cells, reason, raw
    if self.tail then
        cells, reason, raw = self.tail:row()
        if not cells then self.tail = nil end
    end
    if not cells then cells, reason, raw = self.inner:row() end
    if not (reason and raw and reason:find("quote", 1, true)) then return cells, reason end
    raw = raw:gsub("^\r?\n", "")
    local nl = raw:find("\n", 1, true)
    if not nl then return cells, reason end
    local first = raw:sub(1, nl - 1):gsub("\r$", "")
    self.tail = lua_csv.reader(raw:sub(nl + 1), self.delim)
    return lua_csv.reader(first, self.delim):row() or { first }, reason
end

function Lines:close()
    self.inner:close()
end

--- open(text, format, unbalanced_quote) -> source, or nil when the file has
-- no header line.
function M.open(text, format, unbalanced_quote)
    local delim = formats.get(format).delimiter
    local src = open_engine(text, format, delim)
    if not src then
        local reader = lua_csv.reader(text, delim)
        local header = reader:row()
        if not header then return nil end
        src = setmetatable({ reader = reader, header = header }, Plain)
    end
    if unbalanced_quote ~= "line" then return src end
    return setmetatable({ inner = src, header = src.header, delim = delim }, Lines)
end

--- Which reader does the work: "marketo.csv" or "lua".
function M.engine()
    return engine and "marketo.csv" or "lua"
end

return M
