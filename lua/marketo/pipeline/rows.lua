--- marketo.pipeline.rows: the rows of a planned part, read again after the
-- parts are cut (marketo.pipeline.keys, marketo.pipeline.statuses), and the
-- parts those passes write.
--
--   rows.open(part, format) -> it | nil, msg, code
--   it:next() -> line | false (end) | nil, msg, code; it.row is the reader's
--       lazy row (by column number), it.line the row's source line
--   it:close()
--   rows.each(part, format, fn) -> true | nil, msg, code: fn(row, line) for each
--       row, stopping at the first nil, msg, code it returns
--   rows.header(part, format) -> the names a part is sent with
--   rows.column(header, name) -> its index, matched as Marketo matches headers
--   rows.columns(header, fields) -> the indexes of a key's fields | nil (one missing)
--   rows.fields(row, width) -> the row as a list of strings
--   rows.part(source, format, written, lines_file, skip) -> a mapped part
--   rows.reject(acc, rej): a rejected row, to the plan's on_reject or its list
--   rows.extension(format) -> the extension of a part written in that format
--   rows.replace(acc, out): the plan's parts are now `out`; the parts written
--       before that it no longer holds are removed, with their lines files
local csv = require("marketo.csv")
local formats = require("marketo.formats")

local M = {}

function M.extension(format)
    return formats.get(format).extension
end

function M.replace(acc, out)
    local kept, used = {}, {} -- used: the lines files kept parts read
    for _, part in ipairs(out) do
        kept[part] = true
        if part.lines then used[part.lines.file] = true end
    end
    for _, part in ipairs(acc.parts) do
        if part.mapped and not kept[part] then
            os.remove(part.path)
            if not used[part.lines.file] then os.remove(part.lines.file) end
        end
    end
    acc.parts = out
end

local function fail(code, msg)
    return nil, code .. ": " .. msg, code
end

local Rows = {}
Rows.__index = Rows

--- A part's rows: a byte range of its source read as a share of it, or a
-- written part with its lines file (the source line of each row).
function M.open(part, format)
    local reader, msg, code
    if not part.mapped then
        reader, msg, code = csv.open(part.source, { format = format, share = {
            offset = part.offset, length = part.length, line = part.first_line } })
        if not reader then return nil, msg, code end
        return setmetatable({ reader = reader, row = reader:row(), part = part }, Rows)
    end
    reader, msg, code = csv.open(part.path, { format = format })
    if not reader then return nil, msg, code end
    local f
    f, msg = io.open(part.lines.file, "rb")
    if not f then reader:close(); return fail("READ_ERROR", msg) end
    for _ = 1, part.lines.skip do f:read("l") end
    return setmetatable({ reader = reader, row = reader:row(), part = part, lines = f }, Rows)
end

function Rows:next()
    local l, offset, code = self.reader:next()
    if not l then
        if offset then return nil, offset, code end
        return false
    end
    if self.lines then
        l = tonumber(self.lines:read("l"))
        if not l then
            return fail("READ_ERROR", self.part.lines.file .. " has fewer lines than "
                .. self.part.path .. " has rows")
        end
    end
    self.line = l
    return l
end

function Rows:close()
    self.reader:close()
    if self.lines then self.lines:close() end
end

--- fn(row, line) for each row of a part; see the header comment.
function M.each(part, format, fn)
    local it, msg, code = M.open(part, format)
    if not it then return nil, msg, code end
    local ok
    while true do
        ok, msg, code = it:next()
        if not ok then break end
        ok, msg, code = fn(it.row, it.line)
        if not ok then break end
    end
    it:close()
    if ok == nil then return nil, msg, code end
    return true
end

--- The names a part is sent with.
function M.header(part, format)
    local reader, msg, code = csv.open(part.mapped and part.path or part.source,
        { format = format })
    if not reader then return nil, msg, code end
    local h = reader:header()
    reader:close()
    return h
end

--- A column's index, matched as Marketo matches header names (trimmed, any case).
function M.column(header, name)
    local want = name:match("^%s*(.-)%s*$"):lower()
    for i, h in ipairs(header) do
        if h:match("^%s*(.-)%s*$"):lower() == want then return i end
    end
end

--- The columns of a key's fields in a header, or nil when one is missing.
function M.columns(header, fields)
    local cols = {}
    for i, f in ipairs(fields) do
        cols[i] = M.column(header, f)
        if not cols[i] then return nil end
    end
    return cols
end

function M.fields(row, width, skip)
    local out = {}
    for i = 1, width do
        if i ~= skip then out[#out + 1] = row[i] end
    end
    return out
end

--- A rejected row, to the plan's on_reject (the rejects streamed to a file)
-- or its list.
function M.reject(acc, rej)
    if acc.on_reject then acc.on_reject(rej) else acc.rejects[#acc.rejects + 1] = rej end
end

--- A part written by the pipeline (one of writer:parts()).
function M.part(source, format, w, lines_file, skip)
    return { source = source, format = format, path = w.path, offset = 0, length = w.bytes,
        rows = w.rows, bytes = w.bytes, first_line = w.first_line, last_line = w.last_line,
        mapped = true, lines = { file = lines_file, skip = skip or 0 } }
end

return M
