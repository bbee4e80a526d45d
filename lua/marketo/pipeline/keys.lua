--- marketo.pipeline.keys: no key in two jobs that can import at the same time.
-- Marketo warns that near-simultaneous upserts of one key can create two
-- records, and an import keeps two jobs importing at once. So, after the
-- parts are cut, every row's key (marketo.objects.key: the field and how
-- Marketo compares it) is looked at, in file order:
--
--   * a key's first copy stays where it is, and so does every later copy in
--     the same part (Marketo imports a part's rows in order);
--   * a later copy whose earlier copy is in another part moves out of its
--     part (which is rewritten without it: a part with holes) to a trailing
--     part of generation g + 1, where g is the generation of the copy before
--     it (0: the parts as cut). A generation holds at most one copy of a key
--     outside the parts as cut, so its rows can be cut into parts anywhere;
--   * each trailing part is `after` the parts that hold the earlier copies of
--     its keys: the scheduler starts it only once they are finished. Each of
--     those waited for the copies before it, so a key is never in two jobs
--     that can import together, and the last copy in the file is imported
--     last: the final state is the file's, top to bottom.
--
-- A blank key is a bad row (strict: the plan stops naming the line; lenient:
-- the row is rejected and left out as a hole). A file without the key's
-- column is left as it is: Marketo fails every one of its rows.
--
--   keys.spread(acc, o) -> true | nil, msg, code
--   acc: plan.build's accumulator (parts, rows, rejects); o: plan.build's
--   options, with o.key = marketo.objects.key(...). acc.keys gets
--   { field, repeated = keys seen more than once, moved = rows moved,
--     examples = { { key, lines = { ... } } } (the first few) }.
local csv = require("marketo.csv")

local M = {}

M.EXAMPLES, M.EXAMPLE_LINES = 10, 5

local EXT = { csv = "csv", tsv = "tsv", ssv = "csv" }

local function fail(code, msg)
    return nil, code .. ": " .. msg, code
end

-- The key's column in a header, matched as Marketo matches header names.
local function column_of(header, field)
    local want = field:lower()
    for i, name in ipairs(header) do
        if name:match("^%s*(.-)%s*$"):lower() == want then return i end
    end
end

-- Opens a part's rows: a byte range of its source read as a share of it, or
-- a written part with its lines file (the source line of each row).
local function open_part(part, format)
    if not part.mapped then
        return csv.open(part.source, { format = format, share = { offset = part.offset,
            length = part.length, line = part.first_line } })
    end
    local reader, msg, code = csv.open(part.path, { format = format })
    if not reader then return nil, msg, code end
    local f
    f, msg = io.open(part.lines.file, "rb")
    if not f then reader:close(); return fail("READ_ERROR", msg) end
    for _ = 1, part.lines.skip do f:read("l") end
    return reader, f
end

-- Calls fn(row, line) for each row of a part (row: the reader's lazy row,
-- by column number; line: the source line). fn returning nil, msg, code
-- stops the walk with that failure.
local function each_row(part, format, fn)
    local reader, lines, code = open_part(part, format)
    if not reader then return nil, lines, code end
    local row = reader:row()
    local ok, msg = true, nil
    while true do
        local l, offset, ecode = reader:next()
        if not l then
            if offset then ok, msg, code = nil, offset, ecode end
            break
        end
        if lines then l = tonumber(lines:read("l")) end
        if not l then
            ok, msg, code = fail("READ_ERROR", part.lines.file .. " has fewer lines than "
                .. part.path .. " has rows")
            break
        end
        ok, msg, code = fn(row, l)
        if not ok then break end
    end
    reader:close()
    if lines then lines:close() end
    if not ok then return nil, msg, code end
    return true
end

local function fields_of(row, width)
    local out = {}
    for i = 1, width do out[i] = row[i] end
    return out
end

-- The header of a part: the names it is sent with.
local function header_of(part, format)
    local reader, msg, code = csv.open(part.mapped and part.path or part.source,
        { format = format })
    if not reader then return nil, msg, code end
    local h = reader:header()
    reader:close()
    return h
end

local function new_part(source, format, w, lines_file, skip)
    return { source = source, format = format, path = w.path, offset = 0, length = w.bytes,
        rows = w.rows,
        bytes = w.bytes, first_line = w.first_line, last_line = w.last_line, mapped = true,
        lines = { file = lines_file, skip = skip or 0 } }
end

-- The first pass: which rows move (holes), which are bad, and the trailing
-- rows written out per source and generation.
local function scan(acc, o, st)
    local normalize = o.key.normalize
    local seen, first = {}, {}          -- key -> where its last copy is; its first line
    local mv_gen, mv_prev = st.mv_gen, st.mv_prev
    for k, part in ipairs(acc.parts) do
        local header, msg, code = header_of(part, o.format)
        if not header then return nil, msg, code end
        local col = column_of(header, st.field)
        if col then
            local width, holes = #header, nil
            local ok
            ok, msg, code = each_row(part, o.format, function(row, line)
                local key = normalize(row[col] or "")
                if key == "" then
                    local reason = ("the key column '%s' is blank"):format(st.field)
                    if not o.lenient then
                        return fail("INVALID_ROW", ("%s:%d:%s: %s; fill it in, or pass "
                            .. "lenient mode to reject the row"):format(part.source, line,
                            st.field, reason))
                    end
                    holes = holes or {}
                    holes[line] = true
                    acc.rows.rejected = acc.rows.rejected + 1
                    acc.rejects[#acc.rejects + 1] = { source = part.source, line = line,
                        column = st.field, code = "INVALID_ROW", reason = reason }
                    return true
                end
                local at = seen[key]
                if at == nil then
                    seen[key], first[key] = k, line
                    return true
                end
                st:repeated(key, first[key], line)
                if at == k then return true end -- a copy in the same part stays
                local gen = at > 0 and 1 or mv_gen[-at] + 1
                local w, wmsg, wcode = st:stream(part, gen, header)
                if not w then return nil, wmsg, wcode end
                local written
                written, wmsg, wcode = w.writer:write(fields_of(row, width), line)
                if not written then return nil, wmsg, wcode end
                local i = #mv_gen + 1
                mv_gen[i], mv_prev[i], st.mv_stream[i], st.mv_line[i] = gen, at, w, line
                seen[key] = -i
                holes = holes or {}
                holes[line] = true
                return true
            end)
            if not ok then return nil, msg, code end
            st.holes[k] = holes
        end
    end
    return true
end

-- A part with holes, written again without them (the first pass read it).
local function fill_holes(part, o, holes, path)
    local header, msg, code = header_of(part, o.format)
    if not header then return nil, msg, code end
    local lines = path .. ".lines"
    local w
    w, msg, code = csv.writer(path, { format = o.format, header = header, lines = lines })
    if not w then return nil, msg, code end
    local width = #header
    local ok
    ok, msg, code = each_row(part, o.format, function(row, line)
        if holes[line] then return true end
        return w:write(fields_of(row, width), line)
    end)
    local closed, cmsg, ccode = w:close()
    if not ok then return nil, msg, code end
    if not closed then return nil, cmsg, ccode end
    local out = w:parts()[1]
    out.path = path
    return new_part(part.source, o.format, out, lines)
end

local State = {}
State.__index = State

-- Notes a key seen again, and the first few such keys with their lines.
function State:repeated(key, first_line, line)
    local ex = self.example[key]
    if not self.counted[key] then
        self.counted[key] = true
        self.keys.repeated = self.keys.repeated + 1
        if #self.keys.examples < M.EXAMPLES then
            ex = { key = key, lines = { first_line } }
            self.keys.examples[#self.keys.examples + 1] = ex
            self.example[key] = ex
        end
    end
    if ex and #ex.lines < M.EXAMPLE_LINES then ex.lines[#ex.lines + 1] = line end
end

-- The writer of the trailing rows of a source and generation.
function State:stream(part, gen, header)
    local name = ("s%02d-g%02d"):format(self.source_index[part.source], gen)
    local s = self.streams[name]
    if s then return s end
    local pattern = ("%s/%s-part-%%04d.%s"):format(self.o.work_dir, name, EXT[self.o.format])
    local lines = ("%s/%s.lines"):format(self.o.work_dir, name)
    local w, msg, code = csv.writer(pattern, { format = self.o.format, header = header,
        max_bytes = self.o.max_bytes, lines = lines })
    if not w then return nil, msg, code end
    s = { writer = w, source = part.source, gen = gen, lines = lines, name = name }
    self.streams[name] = s
    self.order[#self.order + 1] = s
    return s
end

-- The part (its number in acc.parts) a trailing row landed in: rows of a
-- stream are in file order, so its parts' line ranges are in order too.
local function part_of(s, line)
    local lo, hi = 1, #s.parts
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if s.parts[mid].last_line < line then lo = mid + 1 else hi = mid end
    end
    return s.parts[lo].number
end

-- The trailing parts after the others, generation by generation, each
-- with the parts it must wait for.
local function add_trailing(acc, st)
    table.sort(st.order, function(a, b)
        if a.gen ~= b.gen then return a.gen < b.gen end
        return st.source_index[a.source] < st.source_index[b.source]
    end)
    for _, s in ipairs(st.order) do
        local ok, msg, code = s.writer:close()
        if not ok then return nil, msg, code end
        s.parts = {}
        local skip = 0
        for _, w in ipairs(s.writer:parts()) do
            local part = new_part(s.source, st.o.format, w, s.lines, skip)
            skip = skip + w.rows
            acc.parts[#acc.parts + 1] = part
            part.number = #acc.parts
            part.after_set = {}
            s.parts[#s.parts + 1] = { last_line = w.last_line, number = part.number }
        end
    end
    for i, gen in ipairs(st.mv_gen) do
        local s = st.mv_stream[i]
        local mine = acc.parts[part_of(s, st.mv_line[i])]
        local prev = st.mv_prev[i]
        local dep = prev > 0 and prev or part_of(st.mv_stream[-prev], st.mv_line[-prev])
        assert(gen >= 1 and dep < mine.number)
        mine.after_set[dep] = true
    end
    -- a part left with no rows (all moved or rejected) is no part; it holds
    -- no copy, so no part waits for it
    local kept, number = {}, {}
    for k, part in ipairs(acc.parts) do
        if part.rows > 0 then
            kept[#kept + 1] = part
            number[k] = #kept
        elseif part.mapped then
            os.remove(part.path)
            os.remove(part.lines.file)
        end
    end
    for _, part in ipairs(kept) do
        if part.after_set then
            local after = {}
            for dep in pairs(part.after_set) do after[#after + 1] = number[dep] end
            table.sort(after)
            part.after, part.after_set, part.number = after, nil, nil
        end
    end
    acc.parts = kept
    return true
end

--- spread(acc, o): see the header comment.
function M.spread(acc, o)
    local field = o.key.fields[1]
    local st = setmetatable({ o = o, field = field, holes = {}, streams = {}, order = {},
        source_index = {}, counted = {}, example = {}, mv_gen = {}, mv_prev = {},
        mv_stream = {}, mv_line = {},
        keys = { field = field, repeated = 0, moved = 0, examples = {} } }, State)
    for i, source in ipairs(o.sources) do st.source_index[source] = i end
    local ok, msg, code = scan(acc, o, st)
    if not ok then
        for _, s in ipairs(st.order) do s.writer:close() end
        return nil, msg, code
    end
    st.keys.moved = #st.mv_gen
    -- parts with holes, written again; the files they replace removed
    local replaced = {}
    for k, holes in pairs(st.holes) do
        local part = acc.parts[k]
        local path = ("%s/k%04d-holes.%s"):format(o.work_dir, k, EXT[o.format])
        local filled
        filled, msg, code = fill_holes(part, o, holes, path)
        if not filled then return nil, msg, code end
        if part.mapped then
            os.remove(part.path)
            replaced[part.lines.file] = true
        end
        acc.parts[k] = filled
    end
    for _, part in ipairs(acc.parts) do
        if part.lines then replaced[part.lines.file] = nil end
    end
    for file in pairs(replaced) do os.remove(file) end
    ok, msg, code = add_trailing(acc, st)
    if not ok then return nil, msg, code end
    acc.keys = st.keys
    return true
end

return M
