--- marketo.csv: the Lua face of the CSV engine. marketo.core's csv_* functions
-- are private; this is the API.
--
-- Formats: "csv" (comma), "tsv" (tab), "ssv" (semicolon). RFC 4180 quoting:
-- a field in double quotes may hold the delimiter, line ends and doubled
-- quotes. LF or CRLF line ends. A UTF-8 BOM is stripped (and reported). Blank
-- lines are skipped (counted in stats().blank); a lone CR is data. Line
-- numbers are physical lines (a quoted newline advances them); a row's line is
-- the line where it starts. Offsets are bytes from the start of the file.
--
-- Failures return nil, "CODE: path:line:column: what and what to do", "CODE".
-- Codes: CSV_UNBALANCED_QUOTE, CSV_STRAY_QUOTE, CSV_FIELD_COUNT,
-- CSV_INVALID_UTF8, CSV_NUL_BYTE, CSV_ROW_TOO_LARGE, CSV_NO_HEADER,
-- CSV_DUPLICATE_HEADER, CSV_UNKNOWN_COLUMN (map), and errno names (ENOENT,
-- EACCES, ...). Misuse raises.
--
-- csv.open(path [, opts]) -> reader | nil, msg, code
--   opts: format = "csv", header = true, lenient = false,
--         on_reject = function(rej) (lenient only; default: keep them in a list),
--         max_rejects = 1000 (kept in that list; all are counted),
--         max_row = csv.MAX_ROW (bytes of one row, line end included)
--   Strict (default): a bad row is a failure, and stays one on later reads.
--   Lenient: a bad row goes to on_reject(rej) and reading goes on;
--   rej = { code, message, line, column, offset, raw } (raw is nil for a row
--   over max_row). The header row is always strict; names must be unique.
--   reader:header() -> { "email", "firstName", ... }
--   reader:read([t [, named]]) -> t, line, offset | nil (end) | nil, msg, code
--       fills t (or a new table) with the fields as strings, by position or,
--       if named, by header name; reusing t saves a table per row.
--   reader:rows([{ named = false, reuse = false }]) -> iterator of row, line,
--       offset (raises on a failure; use read() to get it as values)
--   reader:rejects() -> the kept rejects (lenient, no on_reject)
--   reader:stats() -> { rows, rejected, blank, line, offset, bom, crlf }; line,
--       offset and blank are where the scan is, which may be ahead of the last
--       row handed out (clean rows are found in batches)
--   reader:close() -> true
--
-- csv.plan(path [, opts]) -> plan | nil, msg, code
--   Parts of the file under a byte limit, cut between rows. Copies nothing:
--   each part is the header followed by the byte range [offset, offset+length).
--   opts: format, lenient, on_reject, max_rejects, max_row as for open;
--         max_bytes = csv.PART_BYTES (header + rows of one part)
--   plan = { header = "email,name\n" (as in the file, no BOM), header_offset,
--            bom, rows, rejected, blank, rejects,
--            parts = { { offset, length, bytes, rows, first_line, last_line } } }
--   In lenient mode a rejected row ends the part before it, so no part
--   carries a bad row. A row that cannot fit a part with the header is
--   CSV_ROW_TOO_LARGE in both modes.
--
-- csv.writer(path [, opts]) -> writer | nil, msg, code
--   opts: format = "csv", header = { names }, crlf = false,
--         max_bytes (parts mode: path holds one %d or %0Nd for the part number,
--         from 1; each part starts with the header and stays <= max_bytes),
--         lines (a file that gets the source line of every row written, one a
--         line, in order: how a written part's rows are tied back to the source)
--   writer:write(row [, line]) -> true | nil, msg, code; fields are strings or
--       numbers (nil writes an empty field); line is the source line, kept
--       per part. A value with the delimiter, a quote, CR or LF is quoted
--       (quotes doubled), and so is one starting with U+FEFF (a BOM).
--   writer:close() -> true | nil, msg, code
--   writer:parts() -> { { path, bytes, rows, first_line, last_line } }
--
-- csv.map(src, dst, mapping [, opts]) -> result | nil, msg, code
--   mapping: an array, one entry per output column, in order:
--     { to = "email", from = "Email Address" }   rename / reorder
--     { to = "leadSource", value = "Webinar" }   constant
--     { to = "email", from = "Email", fn = function(value, row) return v end }
--   Source columns not named are dropped. Without fn or filter the whole run
--   is C from reader to writer, no Lua call per row (a pure rename copies the
--   checked rows as they are, with the writer's line end). fn gets the source
--   value (nil without from) and the source row, and returns a string, a
--   number or nil (empty); row.name reads a field on demand (one read-only
--   table for all rows; an unknown name raises). An error raised by fn or
--   filter is raised again by map, once both files are closed.
--   opts: format, lenient, on_reject, max_rejects, max_row as for open;
--         out_format (default: format), crlf, max_bytes (parts mode, see
--         writer), filter = function(row, line) -> keep? (row as for fn),
--         on_filter = function(line, row) (filtered rows are counted)
--   result = { rows, rejected, filtered, blank, fast, rejects,
--              parts = writer:parts() }
local core = require("marketo.core")

local M = { _VERSION = "0.1.0" }

--- Bytes of one part (header + rows) by default. Marketo wants the upload
-- under 10 MB and has not said if that is 10^7 or 10 MiB, or if it counts
-- the file or the whole body: 9,900,000 leaves 100,000 bytes for multipart
-- framing and form fields under the smallest reading (10^7, whole body).
M.PART_BYTES = 9900000
--- Largest row by default (1 MiB): bounds memory, and catches a runaway
-- quote early.
M.MAX_ROW = 1048576

local DELIMS = { csv = ",", tsv = "\t", ssv = ";" }

local function arg_error(n, fname, msg)
    error(("bad argument #%d to '%s' (%s)"):format(n, fname, msg), 3)
end

-- Checks opts against allowed = { key = "type" }; unknown keys raise.
local function check_opts(fname, n, opts, allowed)
    if opts == nil then return {} end
    if type(opts) ~= "table" then arg_error(n, fname, "table expected, got " .. type(opts)) end
    for k, v in pairs(opts) do
        local want = allowed[k]
        if want == nil then
            arg_error(n, fname, "unknown option '" .. tostring(k) .. "'")
        elseif type(v) ~= want then
            arg_error(n, fname, ("option '%s': %s expected, got %s"):format(k, want, type(v)))
        end
    end
    return opts
end

local function delim_of(fname, n, format)
    local d = DELIMS[format or "csv"]
    if not d then arg_error(n, fname, "format must be csv, tsv or ssv") end
    return d
end

local READ_OPTS = {
    format = "string", header = "boolean", lenient = "boolean", on_reject = "function",
    max_rejects = "number", max_row = "number",
}

-- A sink that keeps the first max rejects and counts them all (in C).
local function reject_sink(opts, kept)
    if opts.on_reject then
        local fn = opts.on_reject
        return function(code, message, line, column, offset, raw)
            fn({ code = code, message = message, line = line, column = column,
                 offset = offset, raw = raw })
        end
    end
    local max = opts.max_rejects or 1000
    return function(code, message, line, column, offset, raw)
        if #kept < max then
            kept[#kept + 1] = { code = code, message = message, line = line,
                                column = column, offset = offset, raw = raw }
        end
    end
end

local function open_core(fname, path, opts, header)
    if type(path) ~= "string" then arg_error(1, fname, "path expected") end
    local delim = delim_of(fname, 2, opts.format)
    if opts.on_reject and not opts.lenient then
        arg_error(2, fname, "on_reject needs lenient = true")
    end
    local kept = {}
    local sink = opts.lenient and reject_sink(opts, kept) or nil
    local r, msg, code = core.csv_reader(path, delim, opts.lenient or false,
        opts.max_row or M.MAX_ROW, header, sink)
    if not r then return nil, msg, code end
    return r, kept
end

local Reader = {}
Reader.__index = Reader

function Reader:header() return self._r:header() end
function Reader:read(t, named) return self._r:read(t, named) end
function Reader:stats() return self._r:stats() end
function Reader:rejects() return self._rejects end
function Reader:close() return self._r:close() end
Reader.__tostring = function(self) return tostring(self._r) end
Reader.__close = function(self) self._r:close() end -- 5.4 <close>; the C reader has __gc

function Reader:rows(opts)
    opts = check_opts("rows", 1, opts, { named = "boolean", reuse = "boolean" })
    local r, named, t = self._r, opts.named or false, opts.reuse and {} or nil
    return function()
        local row, line, offset = r:read(t, named)
        if row == nil and line ~= nil then error(line, 2) end
        return row, line, offset
    end
end

--- Opens a file for reading; see the header comment.
function M.open(path, opts)
    opts = check_opts("open", 2, opts, READ_OPTS)
    local header = opts.header
    if header == nil then header = true end
    local r, kept, code = open_core("open", path, opts, header)
    if not r then return nil, kept, code end
    return setmetatable({ _r = r, _rejects = kept }, Reader)
end

local PLAN_OPTS = {
    format = "string", lenient = "boolean", on_reject = "function",
    max_rejects = "number", max_row = "number", max_bytes = "number",
}

--- Plans the parts of a file; see the header comment.
function M.plan(path, opts)
    opts = check_opts("plan", 2, opts, PLAN_OPTS)
    local max_bytes = opts.max_bytes or M.PART_BYTES
    if max_bytes < 1 then arg_error(2, "plan", "max_bytes must be positive") end
    local r, kept, code = open_core("plan", path, opts, true)
    if not r then return nil, kept, code end
    local plan, msg
    plan, msg, code = core.csv_plan(r, max_bytes)
    r:close()
    if not plan then return nil, msg, code end
    plan.rejects = kept
    return plan
end

-- "work/part-%04d.csv" -> "work/part-", 4, ".csv"; nil when no placeholder.
local function split_pattern(path)
    local a, b, width = path:find("%%0?(%d?)d")
    if not a or select(2, path:gsub("%%", "")) ~= 1 then return nil end
    return path:sub(1, a - 1), tonumber(width) or 0, path:sub(b + 1)
end

local WRITE_OPTS = { format = "string", header = "table", crlf = "boolean", max_bytes = "number",
    lines = "string" }

local function new_writer(fname, path, opts)
    local delim = delim_of(fname, 2, opts.format)
    if type(path) ~= "string" then arg_error(1, fname, "path expected") end
    local prefix, width, suffix = path, -1, ""
    if opts.max_bytes then
        prefix, width, suffix = split_pattern(path)
        if not prefix then
            arg_error(1, fname, "with max_bytes the path needs one %d or %0Nd for the part number")
        end
        if not opts.header then arg_error(2, fname, "parts need a header") end
    end
    return core.csv_writer(prefix, width, suffix, delim, opts.crlf or false,
        opts.max_bytes or 0, opts.header, opts.lines)
end

--- Opens a writer; see the header comment.
function M.writer(path, opts)
    opts = check_opts("writer", 2, opts, WRITE_OPTS)
    return new_writer("writer", path, opts)
end

local MAP_OPTS = {
    format = "string", lenient = "boolean", on_reject = "function", max_rejects = "number",
    max_row = "number", out_format = "string", crlf = "boolean", max_bytes = "number",
    filter = "function", on_filter = "function", lines = "string",
}

-- Checks the mapping against the header: output names, and for each column
-- its source index, constant and function.
local function compile(mapping, header)
    if type(mapping) ~= "table" or #mapping == 0 then
        arg_error(3, "map", "mapping must be a non-empty array")
    end
    local index, names, cols, seen, fast = {}, {}, {}, {}, true
    for i, name in ipairs(header) do index[name] = i end
    for i, c in ipairs(mapping) do
        if type(c) ~= "table" or type(c.to) ~= "string" then
            arg_error(3, "map", ("entry %d needs a string 'to'"):format(i))
        end
        for k in pairs(c) do
            if k ~= "to" and k ~= "from" and k ~= "value" and k ~= "fn" then
                arg_error(3, "map", ("entry %d: unknown key '%s'"):format(i, tostring(k)))
            end
        end
        if seen[c.to] then arg_error(3, "map", ("entry %d repeats '%s'"):format(i, c.to)) end
        if c.from ~= nil and c.value ~= nil then
            arg_error(3, "map", ("entry %d has both 'from' and 'value'"):format(i))
        end
        if c.fn == nil and c.from == nil and c.value == nil then
            arg_error(3, "map", ("entry %d needs 'from', 'value' or 'fn'"):format(i))
        end
        if c.fn ~= nil and type(c.fn) ~= "function" then
            arg_error(3, "map", ("entry %d: 'fn' must be a function"):format(i))
        end
        if c.from ~= nil and not index[c.from] then
            return nil, ("CSV_UNKNOWN_COLUMN: mapping entry %d: the file has no column '%s'")
                :format(i, tostring(c.from)), "CSV_UNKNOWN_COLUMN"
        end
        seen[c.to] = true
        names[i] = c.to
        fast = fast and c.fn == nil
        cols[i] = { from = c.from, index = index[c.from], value = c.value, fn = c.fn }
        if c.value ~= nil then cols[i].value = tostring(c.value) end
    end
    return names, cols, fast
end

--- Maps src to dst; see the header comment.
function M.map(src, dst, mapping, opts)
    opts = check_opts("map", 4, opts, MAP_OPTS)
    local r, kept, code = open_core("map", src, opts, true)
    if not r then return nil, kept, code end
    local names, cols, fast = compile(mapping, r:header())
    if not names then r:close(); return nil, cols, fast end
    fast = fast and opts.filter == nil
    local w, msg
    w, msg, code = new_writer("map", dst, { format = opts.out_format or opts.format,
        header = names, crlf = opts.crlf, max_bytes = opts.max_bytes, lines = opts.lines })
    if not w then r:close(); return nil, msg, code end
    local result = { filtered = 0, fast = fast, rejects = kept }
    local spec, fns = {}, {}
    for i, c in ipairs(cols) do spec[i], fns[i] = c.index or c.value or 0, c.fn end
    -- a mapping function may raise: close both files before passing it on
    local done, ok, filtered
    if fast then
        done, ok, msg, code = pcall(core.csv_map, r, w, spec)
    else
        done, ok, filtered, code = pcall(core.csv_map_lua, r, w, spec, fns, opts.filter,
            opts.on_filter)
        if ok then result.filtered = filtered else msg = filtered end
    end
    if not done then
        w:close()
        r:close()
        error(ok, 0)
    end
    local closed, cmsg, ccode = w:close()
    local stats = r:stats()
    r:close()
    if not ok then return nil, msg, code end
    if not closed then return nil, cmsg, ccode end
    result.rows = stats.rows - result.filtered
    result.rejected, result.blank, result.parts = stats.rejected, stats.blank, w:parts()
    return result
end

return M
