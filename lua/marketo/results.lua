--- marketo.results: failure and warning files, parsed and tied back to source lines.
--
-- Marketo's failure (warning) file is the uploaded header plus a reason column
-- ("Import Failure Reason" / "Import Warning Reason"), one record per affected row, in
-- no promised order and with no row number. `parse` turns it into rows; `tie` finds
-- each row's line in the source, by matching its values against the rows of the part
-- that was uploaded.
--
-- A parsed row: { values = { "a@x.org", "Ann" }, fields = { email = "a@x.org", ... },
--   reason = "...", record = n (its place in the file) }
-- After `tie`: line (the source line of the row, nil if no match), ambiguous = true
-- when identical rows of the part could each be the one Marketo meant, candidates (all
-- their lines), unmatched = true when no row of the part has these values.
local M = {}

local formats = require("marketo.formats")

-- The delimiter of a format's name (default csv); an unknown one is misuse.
local function delimiter_of(name)
    local f = formats.get(name or formats.DEFAULT)
    if not f then error(("unknown format '%s' (%s)"):format(tostring(name), formats.NAMES), 3) end
    return f.delimiter
end

--- Splits delimited text (RFC 4180 quoting; CRLF or LF; a UTF-8 BOM dropped) into
-- records { line = physical line where it starts, fields = {...} }. `first_line` is the
-- line number of the text's first line (default 1).
function M.records(text, delimiter, first_line)
    local out = {}
    local i, n, line = 1, #text, first_line or 1
    if text:sub(1, 3) == "\239\187\191" then i = 4 end
    local dq = ('"'):byte()
    while i <= n do
        local fields, start_line = {}, line
        while true do
            local field
            if text:byte(i) == dq then
                local buf, j = {}, i + 1
                while true do
                    local q = text:find('"', j, true)
                    if not q then -- unterminated quote: the rest is the field
                        buf[#buf + 1] = text:sub(j); j = n + 1; break
                    end
                    buf[#buf + 1] = text:sub(j, q - 1)
                    if text:byte(q + 1) == dq then
                        buf[#buf + 1] = '"'; j = q + 2
                    else
                        j = q + 1; break
                    end
                end
                field = table.concat(buf)
                local _, nl = field:gsub("\n", "")
                line = line + nl
                -- Stray characters after a closing quote are kept, as most readers do.
                local stop = text:find("[" .. delimiter .. "\r\n]", j) or n + 1
                field = field .. text:sub(j, stop - 1)
                i = stop
            else
                local stop = text:find("[" .. delimiter .. "\r\n]", i) or n + 1
                field = text:sub(i, stop - 1)
                i = stop
            end
            fields[#fields + 1] = field
            local c = text:sub(i, i)
            if c == delimiter then
                i = i + 1
            else
                if c == "\r" then i = i + 1 end
                if text:sub(i, i) == "\n" then i = i + 1 end
                line = line + 1
                break
            end
        end
        -- A blank line is no record.
        if not (#fields == 1 and fields[1] == "") then
            out[#out + 1] = { line = start_line, fields = fields }
        end
    end
    return out
end

--- An empty result (no file): a list with a header of nothing.
function M.empty(reason)
    return { header = {}, reason_column = reason, none = true }
end

--- parse(text, { format = "csv", reason = "Import Failure Reason" }) -> rows.
-- rows.header is the uploaded header (the reason column taken off); rows.reason_column
-- the name of that column. A file with the reason column missing is taken to have it
-- last, whatever its name.
function M.parse(text, options)
    options = options or {}
    local delimiter = delimiter_of(options.format)
    local recs = M.records(text, delimiter)
    local rows = { header = {}, reason_column = options.reason }
    if #recs == 0 then rows.none = true; return rows end
    local head = recs[1].fields
    local reason_at = #head
    for k, name in ipairs(head) do
        if name == options.reason then reason_at = k end
    end
    rows.reason_column = head[reason_at]
    for k, name in ipairs(head) do
        if k ~= reason_at then rows.header[#rows.header + 1] = name end
    end
    for r = 2, #recs do
        local f = recs[r].fields
        local row = { values = {}, fields = {}, reason = f[reason_at], record = r - 1 }
        local c = 0
        for k = 1, math.max(#head, #f) do
            if k ~= reason_at then
                c = c + 1
                local name = head[k]
                row.values[c] = f[k]
                if name then row.fields[name] = f[k] end
            end
        end
        rows[#rows + 1] = row
    end
    return rows
end

-- The source line of each of a written part's rows, in order: a lines file
-- holds one a line for all the parts of a source, the part's from `skip` on.
local function lines_of(lines, rows)
    local f, msg = io.open(lines.file, "rb")
    if not f then return nil, "READ_ERROR: " .. msg, "READ_ERROR" end
    local out, n = {}, 0
    for l in f:lines() do
        n = n + 1
        if n > lines.skip + rows then break end
        if n > lines.skip then out[#out + 1] = tonumber(l) end
    end
    f:close()
    if #out ~= rows then
        return nil, ("READ_ERROR: %s has %d lines for %d rows"):format(lines.file, #out, rows),
            "READ_ERROR"
    end
    return out
end

-- The part's rows through the C CSV engine: a byte range of a source is read
-- as a share of it (its header from the file's top, its lines the file's own,
-- nothing before the range read); a written part whole. Rows the engine
-- rejects were never uploaded.
local function read_with_engine(csv, o)
    local share = (o.offset or o.length) and not o.lines
        and { offset = o.offset or 0, length = o.length, line = o.first_line } or nil
    if share and not share.length then
        local size, msg = csv.file_size(o.path)
        if not size then return nil, msg, "READ_ERROR" end
        share.length = size - share.offset
    end
    local reader, msg, code = csv.open(o.path, { format = o.format or "csv", lenient = true,
        share = share })
    if not reader then return nil, msg, code end
    local part = { header = reader:header(), rows = {} }
    while true do
        local row, line, third = reader:read()
        if row == nil then
            reader:close()
            if line ~= nil then return nil, line, third end
            break
        end
        part.rows[#part.rows + 1] = { line = line, values = row }
    end
    if o.prefix then
        local head = M.records(o.prefix, delimiter_of(o.format))
        if head[1] then part.header = head[1].fields end
    end
    return part
end

local function read_with_lua(o)
    local f, msg = io.open(o.path, "rb")
    if not f then return nil, msg, "READ_ERROR" end
    f:seek("set", o.offset or 0)
    local data = o.length and f:read(o.length) or f:read("*a")
    f:close()
    data = data or ""
    local delimiter = delimiter_of(o.format)
    local part = { rows = {} }
    local recs = M.records(data, delimiter, o.first_line or 1)
    local first = 1
    if o.prefix then
        local head = M.records(o.prefix, delimiter)
        part.header = head[1] and head[1].fields or {}
    else
        part.header = recs[1] and recs[1].fields or {}
        first = 2
    end
    for k = first, #recs do
        part.rows[#part.rows + 1] = { line = recs[k].line, values = recs[k].fields }
    end
    return part
end

-- A part the pipeline wrote has its own line numbers; its lines file puts
-- the source's back.
local function renumber(part, lines)
    if not lines then return part end
    local list, msg, code = lines
    if lines.file then
        list, msg, code = lines_of(lines, #part.rows)
        if not list then return nil, msg, code end
    end
    for k, r in ipairs(part.rows) do r.line = list[k] end
    return part
end

--- The rows of an uploaded part, from a file: { header = {...}, rows = { { line,
-- values } } }. options (the fields of a planned part, as the journal keeps
-- them): path; offset, length, first_line (a byte range of a source: read as a
-- share of it, from its first row's line; default the whole file); prefix (the
-- header line sent before the range); format; lines (for a part the pipeline
-- wrote: { file, skip }, a lines file with the source line of every row, or a
-- list of those lines). With marketo.csv (the C engine) the line numbers are
-- the file's own; without it (`engine = false`) the range is parsed here and
-- `first_line` gives the line of its first byte.
function M.read_part(options)
    local part, msg, code
    if options.engine ~= false then
        local ok, csv = pcall(require, "marketo.csv")
        if ok then
            part, msg, code = read_with_engine(csv, options)
            if not part and (code == "ENOENT" or code == "EACCES") then code = "READ_ERROR" end
        end
    end
    if not part and not msg then part, msg, code = read_with_lua(options) end
    if not part then return nil, msg, code end
    return renumber(part, options.lines)
end

local SEP = "\0"

-- The matching key of a failed row and of a part row, over the failed file's columns
-- that the part has. Marketo has been seen dropping an empty column from the failure
-- file, so only the columns it echoes are compared.
local function columns(rows_header, part_header)
    local where = {}
    for k, name in ipairs(part_header) do
        if where[name] == nil then where[name] = k end
    end
    local cols = {}
    for k, name in ipairs(rows_header) do
        if where[name] then cols[#cols + 1] = { failed = k, part = where[name] } end
    end
    return cols
end

local function key(values, cols, side, loose)
    local out = {}
    for k, c in ipairs(cols) do
        local v = values[c[side]] or ""
        if loose then v = v:gsub("^%s+", ""):gsub("%s+$", ""):lower() end
        out[k] = v
    end
    return table.concat(out, SEP)
end

local function index(part, cols, loose, used)
    local idx = {}
    for _, r in ipairs(part.rows) do
        if not used[r] then
            local k = key(r.values, cols, "part", loose)
            local list = idx[k]
            if not list then list = { next = 1 }; idx[k] = list end
            list[#list + 1] = r
        end
    end
    return idx
end

-- How many failed rows share each key (to tell exact from ambiguous assignments).
local function demand(rows, cols, loose)
    local count = {}
    for _, row in ipairs(rows) do
        local k = key(row.values, cols, "failed", loose)
        count[k] = (count[k] or 0) + 1
    end
    return count
end

local function assign(row, list, wanted, used)
    local r = list[list.next]
    list.next = list.next + 1
    used[r] = true
    row.line = r.line
    if #list > 1 then
        local lines = {}
        for k = 1, #list do lines[k] = list[k].line end
        row.candidates = lines
        -- Identical rows all affected: each line is right, whichever is which.
        row.ambiguous = wanted < #list
    end
end

--- tie(rows, part) -> rows, each given its source line (see the header comment).
-- part = { header = {...}, rows = { { line = n, values = {...} }, ... } }, e.g. from
-- read_part or from the rows the pipeline wrote. Rows are matched by exact values
-- first, then ignoring case and surrounding blanks (Marketo may normalise a value).
-- Identical rows in a part are handed out in source order: the k-th failed copy gets
-- the k-th line; when fewer copies failed than exist, they are marked ambiguous.
function M.tie(rows, part)
    local cols = columns(rows.header, part.header)
    if #cols == 0 then
        -- Nothing in common to match on: claiming lines would be guessing.
        for _, row in ipairs(rows) do row.unmatched = true end
        return rows
    end
    local passes = { false, true }
    local pending, used = {}, {}
    for k, row in ipairs(rows) do pending[k] = row end
    for _, loose in ipairs(passes) do
        local idx, wanted = index(part, cols, loose, used), demand(pending, cols, loose)
        local left = {}
        for _, row in ipairs(pending) do
            local k = key(row.values, cols, "failed", loose)
            local list = idx[k]
            if list and list.next <= #list then
                assign(row, list, wanted[k], used)
            else
                left[#left + 1] = row
            end
        end
        pending = left
    end
    for _, row in ipairs(pending) do row.unmatched = true end
    return rows
end

return M
