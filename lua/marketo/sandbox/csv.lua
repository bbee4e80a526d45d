--- marketo.sandbox.csv: an incremental RFC-4180 reader and a row writer for
-- the three delimiters of the Bulk Import API (marketo.formats lists them).
-- Incremental because a job imports a few rows per tick: parsing a 10 MB
-- upload in one go would stall every other answer of the sandbox.
local M = {}

local Reader = {}
Reader.__index = Reader

--- Reader.new(text, delim): skips a UTF-8 BOM.
function M.reader(text, delim)
    local pos = 1
    if text:sub(1, 3) == "\239\187\191" then pos = 4 end
    return setmetatable({ text = text, delim = delim, pos = pos, line = 0 }, Reader)
end

local function split_plain(line, delim)
    local cells, start = {}, 1
    while true do
        local at = line:find(delim, start, true)
        if not at then
            cells[#cells + 1] = line:sub(start)
            return cells
        end
        cells[#cells + 1] = line:sub(start, at - 1)
        start = at + 1
    end
end

-- Slow path for a record with quotes: a small state machine from self.pos.
-- Returns cells and nil, or cells and a reason when the record is malformed
-- (the rest of the record up to the line end is then skipped).
function Reader:quoted_record()
    local text, delim, i, n = self.text, self.delim, self.pos, #self.text
    local cells, buf, err = {}, {}, nil
    local lines = 1
    local function finish_at(stop)
        self.pos = stop
        self.line = self.line + lines
    end
    while true do
        local c = text:sub(i, i)
        if c == '"' and #buf == 0 then
            -- A quoted field: runs to the closing quote, "" is one quote.
            local start = i + 1
            local parts = {}
            while true do
                local q = text:find('"', start, true)
                if not q then
                    parts[#parts + 1] = text:sub(start)
                    cells[#cells + 1] = table.concat(parts)
                    finish_at(n + 1)
                    return cells, "unbalanced quote", text:sub(self.record_start)
                end
                local chunk = text:sub(start, q - 1)
                local _, nl = chunk:gsub("\n", "")
                lines = lines + nl
                parts[#parts + 1] = chunk
                if text:sub(q + 1, q + 1) == '"' then
                    parts[#parts + 1] = '"'
                    start = q + 2
                else
                    i = q + 1
                    break
                end
            end
            buf = { table.concat(parts) }
            c = text:sub(i, i)
            if c ~= delim and c ~= "\n" and c ~= "\r" and c ~= "" then
                err = "stray quote"
            end
        end
        if c == delim then
            cells[#cells + 1] = table.concat(buf)
            buf = {}
            i = i + 1
        elseif c == "\n" or c == "" or (c == "\r" and text:sub(i + 1, i + 1) == "\n") then
            cells[#cells + 1] = table.concat(buf)
            if c == "\r" then i = i + 1 end
            finish_at(c == "" and n + 1 or i + 1)
            return cells, err, err and text:sub(self.record_start, i)
        elseif err then
            -- Skip the rest of a malformed field up to the next delimiter or line end.
            buf[#buf + 1] = c
            i = i + 1
        else
            buf[#buf + 1] = c
            i = i + 1
        end
    end
end

--- The next record: cells, reason (nil when well formed); nil at the end.
-- Blank lines are skipped. self.line is the line the record ended on. A
-- quote that never closes takes the rest of the text (as RFC 4180 reads
-- it): reason "unbalanced quote", and that raw text as a third value.
function Reader:row()
    local text, n = self.text, #self.text
    while self.pos <= n do
        local pos = self.pos
        local nl = text:find("\n", pos, true)
        local stop = nl and nl - 1 or n
        local line = text:sub(pos, stop)
        if line:sub(-1) == "\r" then line = line:sub(1, -2) end
        if line == "" then
            self.pos = stop + 2
            self.line = self.line + 1
        elseif not line:find('"', 1, true) then
            self.pos = stop + 2
            self.line = self.line + 1
            return split_plain(line, self.delim), nil
        else
            self.record_start = pos
            return self:quoted_record()
        end
    end
    return nil
end

--- True when no record is left.
function Reader:done()
    return not self.text:find("[^\r\n]", self.pos)
end

local function quote(cell, delim)
    if cell:find('["\r\n]') or cell:find(delim, 1, true) then
        return '"' .. cell:gsub('"', '""') .. '"'
    end
    return cell
end

--- One record as text with its line end (LF).
function M.format_row(cells, delim)
    local out = {}
    for i, cell in ipairs(cells) do out[i] = quote(tostring(cell), delim) end
    return table.concat(out, delim) .. "\n"
end

--- Whether `text` has a record after its header line (cheap; no parse).
function M.has_data_rows(text)
    local nl = text:find("\n", 1, true)
    if not nl then return false end
    -- A newline inside a quoted header is rare enough to ignore here: the
    -- import itself parses properly.
    return text:find("[^\r\n]", nl + 1) ~= nil
end

return M
