--- marketo.csv: the Lua face of the CSV engine. marketo.core's csv_* functions
-- are private; this is the API.
--
-- Formats: "csv" (comma), "tsv" (tab), "ssv" (semicolon). RFC 4180 quoting:
-- a field in double quotes may hold the delimiter, line ends and doubled
-- quotes. LF or CRLF line ends; a file whose first line ends in a bare CR (an
-- old Mac export) is refused with CSV_CR_LINE_ENDINGS, and how to convert it,
-- rather than read as one line. A UTF-8 BOM is stripped (and reported). Blank
-- lines are skipped (counted in stats().blank); a lone CR is data. Line
-- numbers are physical lines (a quoted newline advances them); a row's line is
-- the line where it starts. Offsets are bytes from the start of the file.
--
-- Failures return nil, "CODE: path:line:column: what and what to do", "CODE".
-- Codes: CSV_UNBALANCED_QUOTE, CSV_STRAY_QUOTE, CSV_FIELD_COUNT,
-- CSV_INVALID_UTF8, CSV_NUL_BYTE, CSV_ROW_TOO_LARGE, CSV_NO_HEADER,
-- CSV_DUPLICATE_HEADER, CSV_CR_LINE_ENDINGS, CSV_HEADER_NAME (plan),
-- CSV_UNKNOWN_COLUMN (map), and errno names (ENOENT, EACCES, ...). Misuse
-- raises.
--
-- csv.open(path [, opts]) -> reader | nil, msg, code
--   opts: format = "csv", header = true, lenient = false,
--         on_reject = function(rej) (lenient only; default: keep them in a list),
--         max_rejects = 1000 (kept in that list; all are counted),
--         max_row = csv.MAX_ROW (bytes of one row, line end included),
--         share = one of csv.shares(path, n): read only that share's rows (the
--         header still comes from the top; lines and offsets stay the file's)
--   Strict (default): a bad row is a failure, and stays one on later reads.
--   Lenient: a bad row goes to on_reject(rej) and reading goes on;
--   rej = { code, message, line, column, offset, raw } (raw is nil for a row
--   over max_row). The header row is always strict; names must be unique.
--   reader:header() -> { "email", "firstName", ... }
--   reader:read([t [, named]]) -> t, line, offset | nil (end) | nil, msg, code
--       fills t (or a new table) with the fields as strings, by position or,
--       if named, by header name; reusing t saves a table per row.
--   reader:next() -> line, offset | nil (end) | nil, msg, code: the next row,
--       its fields left for reader:row() to hand out
--   reader:row([strict]) -> one read-only table for all rows: the fields of
--       the row next() (or read()) found, by header name or column number,
--       each made a string only when read; pairs() walks them in header order
--       (Lua 5.2+). An unknown name is nil, or raises if strict. Mapping
--       functions that read a few columns of a wide file run much faster so.
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
--         max_bytes = csv.PART_BYTES (header + rows of one part),
--         threads (scans at once; default: the online CPUs, at most 8),
--         segment_bytes = 32 MiB (the least a thread's share may be: a
--         smaller file is planned by one thread), any_names = false (see below),
--         types = { kinds, lengths, failure } (the values' checks, as
--         marketo.pipeline.checks makes them; see below)
--   plan = { header = "email,name\n" (as in the file, no BOM), header_offset,
--            bom, rows, rejected, blank, rejects,
--            parts = { { offset, length, bytes, rows, first_line, last_line,
--                        rejected } } }
--   A plan is sent as it is, header and all, so a header name Marketo could
--   not match (empty, or with spaces around it) is CSV_HEADER_NAME, naming
--   the column, in both modes: lenient mode rejects rows, and with such a
--   header every row would fail. any_names = true skips that check (a file
--   that is mapped before it is sent). In lenient mode rejected rows do not
--   end a part: a part may have holes where rows were rejected between two
--   of its own (part.rejected counts them, bytes leaves them out), and is
--   then sent as csv.copy makes it, so there are as many parts as the clean
--   bytes need. Rejects between two parts are in neither. A row that cannot
--   fit a part with the header is CSV_ROW_TOO_LARGE in both modes. With
--   threads the plan is the same, byte for byte, rejects (and on_reject
--   calls) in the same order; only the main thread calls Lua.
--   With types, every row's values are checked as it is scanned (in C, on
--   every thread): kinds[i] and lengths[i] are column i's checks (see
--   core.csv_check_types). A row with a value that fails is INVALID_ROW,
--   "path:line:col: <failure(column, value)>; ..." (strict), or rejected
--   with code INVALID_ROW and that reason (lenient). plan.emails =
--   { count, line, column, value } counts the values of "email" columns of
--   the rows planned that do not look like one (the first named).
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
--         on_filter = function(line, row) (filtered rows are counted),
--         lines (see writer), workers = 1 (see below)
--   result = { rows, rejected, filtered, blank, fast, rejects,
--              parts = writer:parts() }
--   workers = n > 1 maps a file with Lua functions (fn or filter) on n cores:
--   the file is cut into n shares (csv.shares) and each is mapped by a forked
--   copy of this process (marketo.pipeline.workers). The output is what one process
--   writes, byte for byte: the same file, or the same rows in numbered parts
--   (a part never spans two shares, so there may be up to n - 1 more of
--   them), the same lines file, rejects and counts, and the first failure in
--   file order. fn and filter run in the copies: what they keep between rows
--   (a set of emails seen, say) is seen only by rows of the same share. A
--   file under n * csv.SHARE_BYTES, a mapping without Lua functions (C alone
--   is faster) and on_reject/on_filter (they must see every event here) keep
--   the run in this process. Not in OpenResty (nginx workers must not fork).
--
-- csv.copy(src, dst, range [, opts]) -> part | nil, msg, code
--   The header and the rows of range = { offset, length, line } of src (a
--   part of a lenient csv.plan, say: offset, length, first_line) to dst,
--   byte for byte as they are in src, line ends and all, leaving out the
--   rows a lenient reader rejects: a part with holes made whole. opts:
--   format, max_row as for open; lines (see writer); types (as for plan:
--   the rows with a value that fails are left out too, counted as rejected).
--   part = { path, bytes, rows, first_line, last_line, rejected }
--
-- csv.shares(path, n [, opts]) -> { { offset, length, line } } | nil, msg, code
--   Cuts a file's rows into up to n shares of about equal size, each starting
--   a row and together covering everything after the header (the first has
--   no line: it starts where the header ends). opts: format, max_row.
--
-- csv.keyset(examples, expect) -> keys: the keys an import has seen (room made
--   for `expect` of them), as 64-bit hashes
--   of their normalized values (src/csv_keys.c has the methods); with
--   reader:scan_keys(keys, column, code) the rows left in a reader go
--   through keys:see in C, with no Lua call per row; reader:sift(state,
--   columns, writer, ordinal) the same through a --changed-only state
--   (src/state.c: the rows it holds as they are left out, the others written);
--   reader:record(state, columns, skip, ordinal) puts a sent part's rows in it.
--   reader:queue_keys(job, columns, code, lines, at, rows), reader:fill_holes(writer,
--   holes, lines, at) and reader:row_at(line, lines, at) are
--   marketo.pipeline.keys's (src/csv_keys_parallel.c, src/csv_keys_rows.c).
--
-- csv.file_size(path) -> bytes | nil, msg
local core = require("marketo.core")
local workers = require("marketo.pipeline.workers")
local formats = require("marketo.formats")
local options = require("marketo.options")

local M = { _VERSION = "0.1.0" }

--- Bytes of one part (header + rows) by default. Marketo wants the upload
-- under 10 MB and has not said if that is 10^7 or 10 MiB, or if it counts
-- the file or the whole body: 9,900,000 leaves 100,000 bytes for multipart
-- framing and form fields under the smallest reading (10^7, whole body).
M.PART_BYTES = 9900000
--- Largest row by default (1 MiB): bounds memory, and catches a runaway
-- quote early.
M.MAX_ROW = 1048576
--- Smallest share of a file worth a worker of its own (16 MiB): below it,
-- starting processes costs more than it saves.
M.SHARE_BYTES = 16777216

local function arg_error(n, fname, msg)
    options.fail(fname, msg, 3, n)
end

-- Checks opts against allowed (marketo.options rules); unknown keys raise.
local function check_opts(fname, n, opts, allowed)
    local checked = options.check(opts, allowed, fname, 3, n) -- no tail call: levels count
    return checked
end

local FORMAT = { "string", valid = formats.get, expected = formats.NAMES }
local BYTES = { "number", integer = true, min = 1 }

local function delim_of(format)
    return formats.get(format or formats.DEFAULT).delimiter
end

local READ_OPTS = {
    format = FORMAT, header = "boolean", lenient = "boolean", on_reject = "function",
    max_rejects = "number", max_row = "number", share = "table",
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
    local delim = delim_of(opts.format)
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

-- Narrows a fresh reader to one share of its file (from csv.shares). Blank
-- lines above the header count in the first share only: the others return
-- how many were seen, to take them off.
local function enter_share(r, share)
    local at = r:stats()
    local ok, msg, code = r:range(share.offset, share.length, share.line or at.line)
    if not ok then return nil, msg, code end
    return share.line and at.blank or 0
end

local Reader = {}
Reader.__index = Reader

function Reader:header() return self._r:header() end
function Reader:read(t, named) return self._r:read(t, named) end
function Reader:next() return self._r:next() end
function Reader:row(strict) return self._r:row(strict) end
function Reader:stats() return self._r:stats() end
function Reader:rejects() return self._rejects end
function Reader:close() return self._r:close() end
function Reader:scan_keys(keys, column, code) return keys:scan(self._r, column, code) end
-- marketo.pipeline.keys's rows in C (src/csv_keys_parallel.c, csv_keys_rows.c)
function Reader:queue_keys(job, columns, code, lines, at, rows)
    return job:add(self._r, columns, code, lines, at, rows)
end
function Reader:fill_holes(writer, holes, lines, at)
    return core.csv_fill_holes(self._r, writer, holes, lines, at)
end
function Reader:row_at(line, lines, at) return core.csv_row_at(self._r, line, lines, at) end
function Reader:sift(state, columns, writer, ordinal)
    return state:sift(self._r, columns, writer, ordinal)
end
function Reader:record(state, columns, skip, ordinal)
    return state:record(self._r, columns, skip, ordinal)
end
Reader.__tostring = function(self) return tostring(self._r) end
Reader.__close = function(self) self._r:close() end -- 5.4 <close>; the C reader has __gc

--- check_types(kinds, lengths, max) -> rows, failures | nil, msg, code: the
-- rest of the file's values against column checks, in C (marketo.pipeline.checks).
function Reader:check_types(kinds, lengths, max)
    return core.csv_check_types(self._r, kinds, lengths, max)
end

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
    if opts.share and not header then arg_error(2, "open", "a share needs the header") end
    local r, kept, code = open_core("open", path, opts, header)
    if not r then return nil, kept, code end
    if opts.share then
        local ok, msg
        ok, msg, code = enter_share(r, opts.share)
        if not ok then r:close(); return nil, msg, code end
    end
    return setmetatable({ _r = r, _rejects = kept }, Reader)
end

-- The first header name Marketo could not match, sent as is (an unmapped
-- file): empty, or with spaces around it. Every row would fail.
local function bad_header_name(path, names)
    for i, name in ipairs(names) do
        local trimmed = name:match("^%s*(.-)%s*$")
        if name == "" then
            return ('CSV_HEADER_NAME: %s: column %d of the header has no name (""); Marketo '
                .. "matches columns by name, so every row would fail: name the column or "
                .. "remove it"):format(path, i)
        elseif trimmed ~= name then
            return ('CSV_HEADER_NAME: %s: column %d of the header, "%s", has spaces around '
                .. "the name; Marketo matches names exactly, so every row would fail: rename "
                .. 'it "%s" in the file'):format(path, i, name, trimmed)
        end
    end
end

-- The name in the header that is `want` with spaces around it, if any.
local function spaced_name(names, want)
    for _, name in ipairs(names) do
        if name ~= want and name:match("^%s*(.-)%s*$") == want then return name end
    end
end

local PLAN_OPTS = {
    format = FORMAT, lenient = "boolean", on_reject = "function",
    max_rejects = "number", max_row = "number", max_bytes = BYTES,
    threads = { "number", integer = true, min = 1, max = 64 }, segment_bytes = BYTES,
    any_names = "boolean", types = "table",
}

--- Plans the parts of a file; see the header comment.
function M.plan(path, opts)
    opts = check_opts("plan", 2, opts, PLAN_OPTS)
    local max_bytes = opts.max_bytes or M.PART_BYTES
    local threads, segment = opts.threads, opts.segment_bytes
    local r, kept, code = open_core("plan", path, opts, true)
    if not r then return nil, kept, code end
    local plan, msg
    -- a plan is sent as it is, header and all (csv.shares only cuts a file
    -- for mapping, where an unused column's name does not matter)
    msg = not opts.any_names and bad_header_name(path, r:header())
    if msg then r:close(); return nil, msg, "CSV_HEADER_NAME" end
    plan, msg, code = core.csv_plan(r, max_bytes, threads, segment, opts.types)
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

local WRITE_OPTS = { format = FORMAT, header = "table", crlf = "boolean", max_bytes = "number",
    lines = "string" }

local function new_writer(fname, path, opts)
    local delim = delim_of(opts.format)
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
    format = FORMAT, lenient = "boolean", on_reject = "function", max_rejects = "number",
    max_row = "number", out_format = FORMAT, crlf = "boolean", max_bytes = "number",
    filter = "function", on_filter = "function", lines = "string",
    workers = { "number", integer = true, min = 1 },
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
            local spaced = spaced_name(header, c.from)
            return nil, ("CSV_UNKNOWN_COLUMN: mapping entry %d: the file has no column '%s'%s")
                :format(i, tostring(c.from), spaced and ("; it has '%s', with spaces around "
                    .. "the name: trim them in the file, or map from '%s'"):format(spaced, spaced)
                    or ""), "CSV_UNKNOWN_COLUMN"
        end
        seen[c.to] = true
        names[i] = c.to
        fast = fast and c.fn == nil
        cols[i] = { from = c.from, index = index[c.from], value = c.value, fn = c.fn }
        if c.value ~= nil then cols[i].value = tostring(c.value) end
    end
    return names, cols, fast
end

-- One reader and one writer over src, or over one share of it (a worker's):
-- then only its rows are read, and `bare` leaves the header out of a single
-- output file (the first share's output has it).
local function map_share(src, dst, mapping, opts, share, bare)
    local r, kept, code = open_core("map", src, opts, true)
    if not r then return nil, kept, code end
    local names, cols, fast = compile(mapping, r:header())
    if not names then r:close(); return nil, cols, fast end
    fast = fast and opts.filter == nil
    local blank_before, msg = 0
    if share then
        blank_before, msg, code = enter_share(r, share)
        if not blank_before then r:close(); return nil, msg, code end
    end
    local w
    w, msg, code = new_writer("map", dst, { format = opts.out_format or opts.format,
        header = not bare and names or nil, crlf = opts.crlf, max_bytes = opts.max_bytes,
        lines = opts.lines })
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
    result.rejected, result.blank = stats.rejected, stats.blank - blank_before
    result.parts = w:parts()
    return result
end

local COPY_OPTS = { format = FORMAT, max_row = "number", lines = "string", types = "table" }

--- Copies the clean rows of a range of a file; see the header comment.
function M.copy(src, dst, range, opts)
    opts = check_opts("copy", 4, opts, COPY_OPTS)
    if type(dst) ~= "string" then arg_error(2, "copy", "path expected") end
    if type(range) ~= "table" then arg_error(3, "copy", "{ offset, length, line } expected") end
    local r, msg, code = open_core("copy", src, { format = opts.format, lenient = true,
        max_rejects = 0, max_row = opts.max_row }, true)
    if not r then return nil, msg, code end
    local ok, w, rows
    ok, msg, code = r:range(range.offset, range.length, range.line)
    if ok then
        w, msg, code = core.csv_writer(dst, -1, "", delim_of(opts.format), false, 0,
            nil, opts.lines)
    end
    local failed = 0
    if w and opts.types then
        rows, failed, code = core.csv_copy_checked(r, w, opts.types.kinds, opts.types.lengths)
        if not rows then msg = failed end
    elseif w then
        rows, msg, code = core.csv_copy(r, w)
    end
    local rejected = r:stats().rejected + (rows and failed or 0)
    r:close()
    if not w then return nil, msg, code end
    local closed, cmsg, ccode = w:close()
    if not rows then return nil, msg, code end
    if not closed then return nil, cmsg, ccode end
    local part = w:parts()[1]
    part.rejected = rejected
    return part
end

--- The keys an import has seen; see the header comment.
function M.keyset(examples, expect) return core.csv_keyset(examples, expect) end

--- file_size(path) -> bytes | nil, msg: what a file holds now.
function M.file_size(path)
    local f, msg = io.open(path, "rb")
    if not f then return nil, msg end
    local size = f:seek("end")
    f:close()
    return size
end
local file_size = M.file_size

--- Cuts a file's rows into shares for workers; see the header comment.
function M.shares(path, n, opts)
    if type(n) ~= "number" or n < 1 then arg_error(2, "shares", "a positive count expected") end
    opts = opts or {}
    local size = file_size(path) or 0
    local max_row = opts.max_row or M.MAX_ROW
    -- one pass of the planner finds row starts; lenient, since every share's
    -- reader meets the bad rows again and reports them where they are. Four
    -- parts a share put each cut near its mark; a row too large for such a
    -- part (a small file of big rows) asks for parts that fit any row.
    local function plan(max_bytes)
        return M.plan(path, { format = opts.format, lenient = true, max_row = max_row,
            max_rejects = 0, max_bytes = max_bytes, any_names = true })
    end
    local p, msg, code = plan(math.ceil(size / (4 * n)) + 1)
    if not p and code == "CSV_ROW_TOO_LARGE" then
        p, msg, code = plan(math.ceil(size / (4 * n)) + 2 * max_row)
    end
    if not p then return nil, msg, code end
    local start = p.header_offset + #p.header
    -- each share starts at the part start nearest its even cut
    local shares, i = { { offset = start } }, 1
    for k = 2, n do
        local cut, best = start + (size - start) * (k - 1) / n, nil
        while p.parts[i] and p.parts[i].offset <= shares[#shares].offset do i = i + 1 end
        while p.parts[i] and p.parts[i].offset < cut do best = i; i = i + 1 end
        if p.parts[i] and (not best or p.parts[i].offset - cut < cut - p.parts[best].offset) then
            best = i
        end
        if not best then break end
        shares[#shares + 1] = { offset = p.parts[best].offset, line = p.parts[best].first_line }
        i = best + 1
    end
    for k, sh in ipairs(shares) do
        sh.length = (shares[k + 1] and shares[k + 1].offset or size) - sh.offset
    end
    return shares
end

-- Appends the files `from` to `to`, and removes them.
local function append_files(to, from)
    local out, msg, code = io.open(to, "ab")
    if not out then return nil, msg, code end
    for _, path in ipairs(from) do
        local f
        f, msg, code = io.open(path, "rb")
        if not f then out:close(); return nil, msg, code end
        while true do
            local block = f:read(1048576)
            if not block then break end
            local ok
            ok, msg, code = out:write(block)
            if not ok then f:close(); out:close(); return nil, msg, code end
        end
        f:close()
        os.remove(path)
    end
    return out:close()
end

local function tagged(path, k) return k > 1 and path and path .. ".w" .. k or path end

-- After a failure: the later shares' files were only ever temporary.
local function remove_share_files(dst, opts, n)
    for k = 2, n do
        if opts.lines then os.remove(tagged(opts.lines, k)) end
        if opts.max_bytes then
            local i = 1
            while os.remove(tagged(dst, k):format(i)) do i = i + 1 end
        else
            os.remove(tagged(dst, k))
        end
    end
end

-- The shares' counts, rejects and parts as one result; the later shares'
-- parts take the next numbers.
local function merge_results(results, dst, opts)
    local out = { rows = 0, rejected = 0, filtered = 0, blank = 0, fast = false, rejects = {},
        parts = {} }
    local max_rejects = opts.max_rejects or 1000
    for k, res in ipairs(results) do
        res = res.result
        for _, key in ipairs({ "rows", "rejected", "filtered", "blank" }) do
            out[key] = out[key] + res[key]
        end
        for _, rej in ipairs(res.rejects) do
            if #out.rejects < max_rejects then out.rejects[#out.rejects + 1] = rej end
        end
        for _, part in ipairs(res.parts) do
            if opts.max_bytes and k > 1 then
                local final = dst:format(#out.parts + 1)
                local ok, rmsg, rcode = os.rename(part.path, final)
                if not ok then return nil, rmsg, rcode end
                part.path = final
            end
            out.parts[#out.parts + 1] = part
        end
    end
    return out
end

-- One output file: its lines run from the first share that wrote a row to
-- the last.
local function as_one_part(out, dst)
    local one = out.parts[1]
    one.bytes, one.rows = file_size(dst), out.rows
    for i = 2, #out.parts do
        local part = out.parts[i]
        if part.rows > 0 then
            if one.first_line == 0 then one.first_line = part.first_line end
            one.last_line = part.last_line
        end
        out.parts[i] = nil
    end
end

-- Each share mapped by a worker into its own files, then put together in
-- share order: the same rows and files as one process would write, in the
-- same order, except that a part never spans two shares.
local function map_parallel(src, dst, mapping, opts, shares)
    local n = #shares
    -- a worker's raise comes back as a value too, so that the first failure
    -- in file order wins whatever its kind, as in one process
    local results, msg, code = workers.run(n, function(k)
        local sub = {}
        for key, v in pairs(opts) do sub[key] = v end
        sub.lines = tagged(opts.lines, k)
        local done, res, emsg, ecode = pcall(map_share, src, tagged(dst, k), mapping, sub,
            shares[k], k > 1 and not opts.max_bytes)
        if not done then return { raised = tostring(res) } end
        return res and { result = res } or { msg = emsg, code = ecode }
    end)
    local failed = not results and { msg = msg, code = code } or nil
    for _, res in ipairs(results or {}) do
        if not res.result then failed = res; break end
    end
    if failed then
        remove_share_files(dst, opts, n)
        if failed.raised then error(failed.raised, 0) end
        return nil, failed.msg, failed.code
    end
    local out
    out, msg, code = merge_results(results, dst, opts)
    if not out then return nil, msg, code end
    local function gather(path)
        local from = {}
        for k = 2, n do from[#from + 1] = tagged(path, k) end
        return append_files(path, from)
    end
    if not opts.max_bytes then
        local ok, amsg, acode = gather(dst)
        if not ok then return nil, amsg, acode end
        as_one_part(out, dst)
    end
    if opts.lines then
        local ok, lmsg, lcode = gather(opts.lines)
        if not ok then return nil, lmsg, lcode end
    end
    return out
end

--- Maps src to dst; see the header comment.
function M.map(src, dst, mapping, opts)
    opts = check_opts("map", 4, opts, MAP_OPTS)
    local n = opts.workers or 1
    -- C alone is fast enough for a mapping without Lua functions; callbacks
    -- must see every event in this process
    local lua_fns = opts.filter ~= nil
    for _, c in ipairs(type(mapping) == "table" and mapping or {}) do
        lua_fns = lua_fns or (type(c) == "table" and c.fn ~= nil)
    end
    if n > 1 and lua_fns and not opts.on_reject and not opts.on_filter
        and (file_size(src) or 0) >= n * M.SHARE_BYTES then
        local shares, msg, code = M.shares(src, n, opts)
        if not shares then return nil, msg, code end
        if #shares > 1 then return map_parallel(src, dst, mapping, opts, shares) end
    end
    return map_share(src, dst, mapping, opts)
end

return M
