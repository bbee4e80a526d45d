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
-- The rows are read in C, with no Lua call per row: the parts' keys hashed
-- on every core and put in the keyset in file order (src/csv_keys_parallel.c),
-- the parts with holes written again (src/csv_keys_rows.c); only the rows
-- whose key is blank or seen before come to Lua. Status groups whose rows
-- interleave are merged in file order in Lua. M.REFERENCE = true reads
-- every row in Lua as the first version did: the reference the specs
-- compare the fast path with.
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
local core = require("marketo.core")
local csv = require("marketo.csv")
local rows = require("marketo.pipeline.rows")

local M = {}

M.EXAMPLES, M.EXAMPLE_LINES = 10, 5
M.REFERENCE = false
M.THREADS = 8 -- at most: hashing keys is as fast as reading the part

-- A part's reader, and for a mapped part its lines file and the byte offset
-- of its first row's line there.
local function open_part(st, part)
    if not part.mapped then
        local it, msg, code = rows.open(part, st.o.format)
        if not it then return nil, msg, code end
        return it.reader
    end
    local reader, msg, code = csv.open(part.path, { format = st.o.format })
    if not reader then return nil, msg, code end
    return reader, part.lines.file, st.line_at[part]
end

-- Where each mapped part's lines start in its lines file (parts share one,
-- each after the rows of those before it): one read of each file.
local function line_offsets(acc)
    local by_file, at = {}, {}
    for _, part in ipairs(acc.parts) do
        if part.mapped then
            local f = part.lines.file
            by_file[f] = by_file[f] or {}
            table.insert(by_file[f], part)
        end
    end
    for file, parts in pairs(by_file) do
        table.sort(parts, function(a, b) return a.lines.skip < b.lines.skip end)
        local skips = {}
        for i, part in ipairs(parts) do skips[i] = part.lines.skip end
        local offsets, msg, code = core.csv_line_offsets(file, skips)
        if not offsets then return nil, msg, code end
        for i, part in ipairs(parts) do at[part] = offsets[i] end
    end
    return at
end

local function fail(code, msg)
    return nil, code .. ": " .. msg, code
end

-- The parts of each source as chains whose rows come in file order: one per
-- source, or one per status group (marketo.pipeline.statuses), whose rows
-- interleave with the other groups'.
local function chains_of(acc, o)
    local by_source, chains = {}, {}
    for k, part in ipairs(acc.parts) do
        local name = part.source .. "\0" .. (part.status or "")
        local chain = chains[name]
        if not chain then
            chain = { parts = {} }
            chains[name] = chain
            by_source[part.source] = by_source[part.source] or {}
            table.insert(by_source[part.source], chain)
        end
        chain.parts[#chain.parts + 1] = k
    end
    local out = {}
    for i, source in ipairs(o.sources) do out[i] = by_source[source] or {} end
    return out
end

-- A chain's next row: its current part's, else the next part's first.
local function advance(chain, acc, o)
    while true do
        if chain.it then
            local l, msg, code = chain.it:next()
            if l == nil then return nil, msg, code end
            if l then return true end
            chain.it:close()
            chain.it = nil
        end
        chain.i = (chain.i or 0) + 1
        local k = chain.parts[chain.i]
        if not k then chain.done = true; return true end
        local part = acc.parts[k]
        local header, msg, code = rows.header(part, o.format)
        if not header then return nil, msg, code end
        chain.k, chain.header = k, header
        chain.cols = rows.columns(header, o.key.fields)
        chain.it, msg, code = rows.open(part, o.format)
        if not chain.it then return nil, msg, code end
    end
end

-- Calls fn(k, row, line, chain) for every row of a source's chains in file
-- order (the chain with the lowest line next).
local function each_in_order(chains, acc, o, fn)
    local ok, msg, code = true, nil, nil
    for _, chain in ipairs(chains) do
        ok, msg, code = advance(chain, acc, o)
        if not ok then break end
    end
    while ok do
        local best
        for _, chain in ipairs(chains) do
            if not chain.done and (not best or chain.it.line < best.it.line) then
                best = chain
            end
        end
        if not best then break end
        ok, msg, code = fn(best.k, best.it.row, best.it.line, best)
        if ok then ok, msg, code = advance(best, acc, o) end
    end
    for _, chain in ipairs(chains) do
        if chain.it then chain.it:close() end
    end
    if not ok then return nil, msg, code end
    return true
end

-- A row of part k left out of it: true (a bad row) or the trailing stream
-- it moves to.
local function hole(st, k, line, to)
    st.holes[k] = st.holes[k] or {}
    st.holes[k][line] = to
end

-- Event n of the keyset: a row of part k whose key is blank (a bad row) or
-- was seen before (it stays in its part, or moves to a trailing one).
local function on_event(acc, o, st, k, chain, n, blank_line)
    local line, blank, code, first, again, example = blank_line, true, nil, nil, nil, nil
    if not blank_line then line, blank, code, first, again, example = st.ks:event(n) end
    local part = acc.parts[k]
    if blank then
        local reason = ("the key column '%s' is blank"):format(st.field)
        if #o.key.fields > 1 then
            reason = ("a key column (%s) is blank"):format(st.field)
        end
        if not o.lenient then
            return fail("INVALID_ROW", ("%s:%d:%s: %s; fill it in, or pass lenient mode to "
                .. "reject the row"):format(part.source, line, st.field, reason))
        end
        hole(st, k, line, true)
        acc.rows.rejected = acc.rows.rejected + 1
        rows.reject(acc, { source = part.source, line = line,
            column = st.field, code = "INVALID_ROW", reason = reason })
        return true
    end
    if not again then st.keys.repeated = st.keys.repeated + 1 end
    if example > 0 then
        local ex = st.keys.examples[example]
        if not ex then
            ex = { lines = { first } }
            st.keys.examples[example] = ex
            st.example_at[example] = { part = part, cols = chain.cols, line = line }
        end
        if #ex.lines < M.EXAMPLE_LINES then ex.lines[#ex.lines + 1] = line end
    end
    if code == k then return true end -- a copy in the same part stays
    local gen = code > 0 and 1 or st.mv_gen[-code] + 1
    local w, msg, ecode = st:stream(part, gen, chain.header)
    if not w then return nil, msg, ecode end
    local i = #st.mv_gen + 1
    st.mv_gen[i], st.mv_prev[i], st.mv_stream[i], st.mv_line[i] = gen, code, w, line
    st.ks:mark(n, -i)
    hole(st, k, line, w)
    return true
end

-- A row seen from Lua (a written part, or groups merged in file order).
local function see(acc, o, st, k, row, line, chain)
    if not chain.cols then return true end -- Marketo fails every row: nothing to order
    local values = st.values
    for i, col in ipairs(chain.cols) do values[i] = row[col] or "" end
    local n = st.ks:see(values, k, line)
    if n == 0 then return true end
    -- (see() answers -1 for a blank key, not its event's number)
    return on_event(acc, o, st, k, chain, n, n == -1 and line or nil)
end

-- A byte range of a source: its rows through the keyset in C, then the
-- few events in Lua.
local function scan_range(acc, o, st, k, chain)
    local it, msg, code = rows.open(acc.parts[k], o.format)
    if not it then return nil, msg, code end
    local events
    events, msg, code = it.reader:scan_keys(st.ks, chain.cols, k)
    it:close()
    if not events then return nil, msg, code end
    for n = 1, events do
        local ok, emsg, ecode = on_event(acc, o, st, k, chain, n)
        if not ok then return nil, emsg, ecode end
    end
    return true
end

-- One part on its own: in C when it is a byte range of its source.
local function scan_part(acc, o, st, k)
    local part = acc.parts[k]
    local header, msg, code = rows.header(part, o.format)
    if not header then return nil, msg, code end
    local chain = { header = header }
    chain.cols = rows.columns(chain.header, o.key.fields)
    if not chain.cols then return true end -- Marketo fails every row: nothing to order
    if not part.mapped then return scan_range(acc, o, st, k, chain) end
    return rows.each(part, o.format, function(row, line)
        return see(acc, o, st, k, row, line, chain)
    end)
end

-- Part k queued on the job: its reader, which the job reads until taken;
-- false when the part has no key column (Marketo fails every row).
local function queue_part(acc, o, st, k)
    local header, msg, code = rows.header(acc.parts[k], o.format)
    if not header then return nil, msg, code end
    local chain = { header = header, cols = rows.columns(header, o.key.fields) }
    if not chain.cols then return false end
    local reader, lines, at = open_part(st, acc.parts[k])
    if not reader then return nil, lines, at end
    st.readers[reader] = true
    reader:queue_keys(st.job, chain.cols, k, lines, at, acc.parts[k].rows)
    return { k = k, chain = chain, reader = reader }
end

-- A chain's parts, their keys hashed ahead on other threads while the
-- events of the part before are seen to here.
local function scan_chain(acc, o, st, list)
    local queue, head, tail, at = {}, 1, 0, 1
    while true do
        while at <= #list and st.job:room() > 0 do
            local q, msg, code = queue_part(acc, o, st, list[at])
            if q == nil then return nil, msg, code end
            at = at + 1
            if q then tail = tail + 1; queue[tail] = q end
        end
        local q = queue[head]
        if not q then return true end
        queue[head], head = nil, head + 1
        local events, msg, code = st.job:take()
        q.reader:close()
        st.readers[q.reader] = nil
        if not events then return nil, msg, code end
        for n = 1, events do
            local ok, emsg, ecode = on_event(acc, o, st, q.k, q.chain, n)
            if not ok then return nil, emsg, ecode end
        end
    end
end

-- The first pass: which rows move and which are bad (holes), and where.
local function scan(acc, o, st)
    for _, chains in ipairs(chains_of(acc, o)) do
        local ok, msg, code = true, nil, nil
        if #chains > 1 then -- groups whose rows interleave: merged in file order
            ok, msg, code = each_in_order(chains, acc, o, function(k, row, line, chain)
                return see(acc, o, st, k, row, line, chain)
            end)
        elseif chains[1] and not M.REFERENCE then
            ok, msg, code = scan_chain(acc, o, st, chains[1].parts)
        end
        for _, k in ipairs(#chains == 1 and M.REFERENCE and chains[1].parts or {}) do
            ok, msg, code = scan_part(acc, o, st, k)
            if not ok then break end
        end
        if not ok then return nil, msg, code end
    end
    return true
end

local function key_text(o, cols, row)
    local values = {}
    for j, col in ipairs(cols) do values[j] = o.key.normalize(row[col] or "") end
    return table.concat(values, ", ")
end

-- The key of each example, read from its row.
local function example_keys(o, st)
    for i, at in ipairs(st.example_at) do
        local row, found, msg, code
        if M.REFERENCE then
            local it
            it, msg, code = rows.open(at.part, o.format)
            if not it then return nil, msg, code end
            repeat
                found, msg, code = it:next()
            until not found or found == at.line
            row = it.row
            if found then st.keys.examples[i].key = key_text(o, at.cols, row) end
            it:close()
        else
            local reader, lines, offset = open_part(st, at.part)
            if not reader then return nil, lines, offset end
            found, msg, code = reader:row_at(at.line, lines, offset)
            if found then st.keys.examples[i].key = key_text(o, at.cols, reader:row()) end
            reader:close()
        end
        if found == nil then return nil, msg, code end
    end
    return true
end

-- A part with holes, written again without them; its rows that move go to
-- their trailing streams (parts are filled in order, so each stream gets
-- its rows in file order).
local function fill_holes(st, part, o, holes, path)
    local header, msg, code = rows.header(part, o.format)
    if not header then return nil, msg, code end
    local lines = path .. ".lines"
    local w
    w, msg, code = csv.writer(path, { format = o.format, header = header, lines = lines })
    if not w then return nil, msg, code end
    local ok
    if M.REFERENCE then
        local width = #header
        ok, msg, code = rows.each(part, o.format, function(row, line)
            local to = holes[line]
            if to == true then return true end
            return (to and to.writer or w):write(rows.fields(row, width), line)
        end)
    else
        local reader, lfile, at = open_part(st, part)
        ok, msg, code = reader, lfile, at
        if reader then
            ok, msg, code = reader:fill_holes(w, holes, lfile, at)
            reader:close()
        end
    end
    local closed, cmsg, ccode = w:close()
    if not ok then return nil, msg, code end
    if not closed then return nil, cmsg, ccode end
    local out = w:parts()[1]
    out.path = path
    local filled = rows.part(part.source, o.format, out, lines)
    filled.status = part.status
    return filled
end

local State = {}
State.__index = State

-- The writer of the trailing rows of a source and generation.
function State:stream(part, gen, header)
    local name = ("s%02d-g%02d%s"):format(self.source_index[part.source], gen,
        part.status and ("-" .. self:status_index(part.status)) or "")
    local s = self.streams[name]
    if s then return s end
    local pattern = ("%s/%s-part-%%04d.%s"):format(self.o.work_dir, name,
        rows.extension(self.o.format))
    local lines = ("%s/%s.lines"):format(self.o.work_dir, name)
    local w, msg, code = csv.writer(pattern, { format = self.o.format, header = header,
        max_bytes = self.o.max_bytes, lines = lines })
    if not w then return nil, msg, code end
    s = { writer = w, source = part.source, gen = gen, lines = lines, name = name,
        status = part.status }
    self.streams[name] = s
    self.order[#self.order + 1] = s
    return s
end

-- A status's number in file names (a status is any text).
function State:status_index(status)
    local i = self.statuses[status]
    if not i then
        self.nstatuses = self.nstatuses + 1
        i = self.nstatuses
        self.statuses[status] = i
    end
    return i
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
        if a.source ~= b.source then
            return st.source_index[a.source] < st.source_index[b.source]
        end
        return st:status_index(a.status or "") < st:status_index(b.status or "")
    end)
    for _, s in ipairs(st.order) do
        local ok, msg, code = s.writer:close()
        if not ok then return nil, msg, code end
        s.parts = {}
        local skip = 0
        for _, w in ipairs(s.writer:parts()) do
            local part = rows.part(s.source, st.o.format, w, s.lines, skip)
            part.status = s.status
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

-- Rows planned: room for as many keys, so the set never grows (growing
-- holds the old table and one twice its size at once).
local function rows_of(acc)
    local n = 0
    for _, part in ipairs(acc.parts) do n = n + part.rows end
    return n
end

--- spread(acc, o): see the header comment.
function M.spread(acc, o)
    local field = table.concat(o.key.fields, ", ")
    local st = setmetatable({ o = o, field = field, values = {}, holes = {}, streams = {},
        order = {},
        source_index = {}, example_at = {}, mv_gen = {}, mv_prev = {}, mv_stream = {},
        mv_line = {}, statuses = {}, nstatuses = 0, ks = csv.keyset(M.EXAMPLES, rows_of(acc)),
        keys = { field = field, repeated = 0, moved = 0, examples = {} } }, State)
    for i, source in ipairs(o.sources) do st.source_index[source] = i end
    local line_at, msg, code = line_offsets(acc)
    local ok = line_at ~= nil
    if ok then
        st.line_at = line_at
        st.readers = {}
        st.job = core.csv_keys_job(st.ks, math.max(1, math.min(core.cpus(), M.THREADS)))
        ok, msg, code = scan(acc, o, st)
        st.job:close() -- its threads stopped before the readers they read close
        for reader in pairs(st.readers) do reader:close() end
    end
    st.ks:close() -- its memory is the plan's largest: gone before the parts are written
    if ok then ok, msg, code = example_keys(o, st) end
    -- parts with holes, written again in order; the files they replace removed
    local replaced, with_holes = {}, {}
    for k in pairs(ok and st.holes or {}) do with_holes[#with_holes + 1] = k end
    table.sort(with_holes)
    for _, k in ipairs(with_holes) do
        local part = acc.parts[k]
        local path = ("%s/k%04d-holes.%s"):format(o.work_dir, k, rows.extension(o.format))
        local filled
        filled, msg, code = fill_holes(st, part, o, st.holes[k], path)
        if not filled then ok = nil; break end
        if part.mapped then
            os.remove(part.path)
            replaced[part.lines.file] = true
        end
        acc.parts[k] = filled
    end
    if not ok then
        for _, s in ipairs(st.order) do s.writer:close() end
        return nil, msg, code
    end
    st.keys.moved = #st.mv_gen
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
