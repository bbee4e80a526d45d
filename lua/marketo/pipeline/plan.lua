--- marketo.pipeline.plan: the pre-pass of an import. Every row of every source is read,
-- mapped and validated before anything is sent, so a malformed row at line
-- 2,000,000 never leaves a file half-imported; then the rows are cut into
-- parts under Marketo's size limit.
--
--   plan.build{ sources = { "a.csv" }, format = "csv", mapping = m, filter = f,
--               validate = v, lenient = false, max_bytes = n, work_dir = "w/",
--               workers = 1, on_reject = function(rej), key = marketo.objects.key(...),
--               status_column = nil, warnings = { ... }, state = nil (--changed-only:
--               see marketo.pipeline.changed; needs key),
--               types = { [source] = the values' checks an unmapped source's plan runs
--               (marketo.pipeline.checks.for_plan) } }
--   -> { parts = { part... }, rows = { read, filtered, rejected, unchanged (with state) },
--        rejects = { ... },
--        keys = (with o.key) see marketo.pipeline.keys }
--   rej = { source, line, column, code, reason, raw }: each rejected row goes to
--   on_reject as it is found, in file order (plan.rejects stays empty), or else
--   is kept in plan.rejects (up to max_rejects of the reader's). Rows a status
--   or a key makes bad are found after the rest (a pass over the parts).
--   part = { source, path, offset, length, prefix, format, rows, first_line, last_line,
--            bytes, mapped, lines = { file, skip }, after = { part numbers } | nil,
--            status = the members' status (with status_column) }
--
-- An unmapped source is not copied: its parts are byte ranges streamed with
-- the header in front; only a part with rows rejected among its own (lenient
-- mode) is copied without them, and is a mapped part from then on.
-- A mapping that only renames, reorders, drops or sets
-- constants runs in C (csv.map); one with Lua functions, a filter or a
-- validation runs here, row by row: with workers > 1, in that many processes
-- at once, each over its own share of the file (see marketo.pipeline.workers: the
-- functions then run in copies of this process, so what one of them keeps
-- between rows is seen only by the rows of its share). Either way the writer
-- also keeps the source line of every row it writes in a lines file, so that
-- failures can be tied back to the source. o.warnings is the list the
-- validation adds its warnings to: a worker's come back in its result.
local csv = require("marketo.csv")
local mapping_mod = require("marketo.mapping")
local workers = require("marketo.pipeline.workers")
local rejects_mod = require("marketo.pipeline.rejects")
local rows = require("marketo.pipeline.rows")
local keys = require("marketo.pipeline.keys")
local statuses = require("marketo.pipeline.statuses")
local changed = require("marketo.pipeline.changed")

local M = {}

-- A row read lazily (reader:row()) must still work with pairs(), which
-- honours __pairs on Lua 5.2+ but not on LuaJIT's default build: there each
-- row stays a plain table filled with every field.
local LAZY_ROWS = false
pairs(setmetatable({}, { __pairs = function(t) LAZY_ROWS = true; return next, t, nil end }))

local EXT = { csv = "csv", tsv = "tsv", ssv = "csv" }

local function fail(code, msg)
    return nil, code .. ": " .. msg, code
end

local reject = rows.reject

local function reject_of(r, source)
    return { source = source, line = r.line, column = r.column, code = r.code,
        reason = r.message, raw = r.raw }
end

local function add_rejects(acc, rejects, source)
    for _, r in ipairs(rejects or {}) do reject(acc, reject_of(r, source)) end
end

-- The reader's option: each reject to on_reject as it comes, when there is one.
local function reader_sink(acc, source)
    return acc.on_reject and function(r) reject(acc, reject_of(r, source)) end or nil
end

-- Parts of even size, and an even number of them: Marketo imports two at a
-- time, so parts of 9.9, 9.9 and 0.3 MB would leave one slot idle while the
-- last big part runs alone. Rows are not all the same length, so a little
-- slack keeps the count from creeping up by one; never over the limit.
local function balanced_bytes(source, max_bytes)
    local size = csv.file_size(source)
    if not size then return max_bytes end
    local n = math.ceil(size / max_bytes)
    if n <= 1 then return max_bytes end
    if n % 2 == 1 then n = n + 1 end
    return math.min(max_bytes, math.ceil(size / n * 1.03))
end

local copy_clean -- defined with the work folder's names, below

-- An unmapped source: plan byte ranges, copy only the parts with holes.
local function plan_source(o, source, index, acc)
    local types = o.types and o.types[source] -- the values' checks (pipeline.checks)
    local p, msg, code = csv.plan(source, { format = o.format, lenient = o.lenient,
        max_bytes = balanced_bytes(source, o.max_bytes), types = types,
        max_rejects = o.max_rejects, on_reject = o.lenient and reader_sink(acc, source) or nil })
    if not p then return nil, msg, code end
    if p.emails then types.warn(p.emails) end
    acc.rows.read = acc.rows.read + p.rows + p.rejected
    acc.rows.rejected = acc.rows.rejected + p.rejected
    add_rejects(acc, p.rejects, source)
    for k, part in ipairs(p.parts) do
        if part.rejected > 0 then
            local ok, cmsg, ccode = copy_clean(o, source, index, k, part, acc)
            if not ok then return nil, cmsg, ccode end
        else
            acc.parts[#acc.parts + 1] = {
                source = source, path = source, offset = part.offset, length = part.length,
                prefix = p.header, format = o.format, rows = part.rows, bytes = part.bytes,
                first_line = part.first_line, last_line = part.last_line, mapped = false,
            }
        end
    end
    return true
end

-- A source's part files; share k > 1 of a parallel mapping has its own.
local function work_pattern(o, index, k)
    return ("%s/s%02d%s-part-%%04d.%s"):format(o.work_dir, index,
        (k or 1) > 1 and ("-w" .. k) or "", EXT[o.format])
end

local function add_written(acc, source, parts, format, lines_file)
    local skip = 0
    for _, part in ipairs(parts) do
        acc.parts[#acc.parts + 1] = {
            source = source, path = part.path, offset = 0, length = part.bytes,
            format = format, rows = part.rows, bytes = part.bytes,
            first_line = part.first_line, last_line = part.last_line, mapped = true,
            lines = lines_file and { file = lines_file, skip = skip } or nil,
        }
        skip = skip + part.rows
    end
end

-- A part of an unmapped source with rows rejected among its own is copied
-- without them to the work folder (the header and its clean rows, as they
-- are): from there on it is a mapped part, with a lines file to tie rows back.
function copy_clean(o, source, index, k, part, acc)
    local path = work_pattern(o, index):format(k)
    local lines = path .. ".lines"
    local c, msg, code = csv.copy(source, path, { offset = part.offset, length = part.length,
        line = part.first_line }, { format = o.format, lines = lines,
        types = o.types and o.types[source] })
    if not c then return nil, msg, code end
    if c.rows ~= part.rows then
        return fail("IO_ERROR", source .. ": the file changed while it was planned")
    end
    add_written(acc, source, { c }, o.format, lines)
    return true
end

local function lines_path(o, index, k)
    return ("%s/s%02d%s.lines"):format(o.work_dir, index, (k or 1) > 1 and ("-w" .. k) or "")
end

-- A mapping C can run alone: renames, reorders, drops, constants.
local function map_fast(o, source, index, acc, m)
    local r, msg, code = csv.map(source, work_pattern(o, index), m:fast_spec(), {
        format = o.format, lenient = o.lenient, max_bytes = o.max_bytes,
        max_rejects = o.max_rejects, lines = lines_path(o, index),
        on_reject = o.lenient and reader_sink(acc, source) or nil })
    if not r and code == "CSV_UNKNOWN_COLUMN" then -- said as the Lua path says it
        local reader = csv.open(source, { format = o.format })
        local _, why = m:bind(reader and reader:header() or {}, source)
        if reader then reader:close() end
        if why then return fail(code, why) end
    end
    if not r then return nil, msg, code end
    acc.rows.read = acc.rows.read + r.rows + r.rejected
    acc.rows.rejected = acc.rows.rejected + r.rejected
    add_rejects(acc, r.rejects, source)
    add_written(acc, source, r.parts, o.format, lines_path(o, index))
    return true
end

-- Everything else, a row at a time in Lua: all of the source, or share k.
local function map_rows(o, source, index, acc, m, share, k)
    local reader, msg, code = csv.open(source, { format = o.format, lenient = o.lenient,
        max_rejects = o.max_rejects, share = share,
        on_reject = o.lenient and reader_sink(acc, source) or nil })
    if not reader then return nil, msg, code end
    local ok, err = m:bind(reader:header(), source)
    if not ok then reader:close(); return fail("MAPPING", err) end
    local writer
    writer, msg, code = csv.writer(work_pattern(o, index, k), { format = o.format,
        header = m:names(), max_bytes = o.max_bytes, lines = lines_path(o, index, k) })
    if not writer then reader:close(); return nil, msg, code end
    -- the reader's row hands out only the fields the functions read
    local lazy = LAZY_ROWS and reader:row()
    local row, named, out = lazy or {}, lazy or {}, {}
    local result, rmsg, rcode = true, nil, nil
    while true do
        local got, line, third
        if lazy then
            -- next() answers line, offset | nil | nil, msg, code: as read() would
            -- with the row in front
            local l, offset, ecode = reader:next()
            got, line, third = l and lazy, l or offset, ecode
        else
            got, line, third = reader:read(row)
        end
        if got == nil then
            if line ~= nil then result, rmsg, rcode = nil, line, third end
            break
        end
        acc.rows.read = acc.rows.read + 1
        local keep, reason, column, fix = m:apply(row, line, named, out)
        if keep == "filtered" then
            acc.rows.filtered = acc.rows.filtered + 1
        elseif keep == "invalid" and o.lenient then
            acc.rows.rejected = acc.rows.rejected + 1
            reject(acc, { source = source, line = line, column = column,
                code = "INVALID_ROW", reason = reason })
        elseif keep == "invalid" then
            result, rmsg, rcode = fail(fix == "script" and "SCRIPT_ERROR" or "INVALID_ROW",
                ("%s:%d:%s %s; %s"):format(source, line, column and (column .. ":") or "",
                    reason, fix == "script" and "fix the script"
                    or "fix the row, or pass --lenient to reject it as invalid"))
            break
        else
            local w, wmsg, wcode = writer:write(out, line)
            if not w then result, rmsg, rcode = nil, wmsg, wcode; break end
        end
    end
    local stats_rejected = reader:stats().rejected
    acc.rows.read = acc.rows.read + stats_rejected
    acc.rows.rejected = acc.rows.rejected + stats_rejected
    add_rejects(acc, reader:rejects(), source)
    reader:close()
    local closed, cmsg, ccode = writer:close()
    if result and not closed then result, rmsg, rcode = nil, cmsg, ccode end
    if not result then return nil, rmsg, rcode end
    add_written(acc, source, writer:parts(), o.format, lines_path(o, index, k))
    return true
end

-- The same, each share of the file in a worker of its own; the first failure
-- in file order is the one reported, as it would be by one process.
-- Worker k's share, mapped in the worker. When the rejects are streamed, the
-- worker streams its own to a file of the work folder (a copy of this process
-- must not write to this one's files), named in its result.
local function map_share(o, source, index, m, share, k, streamed)
    local mine = { parts = {}, rows = { read = 0, filtered = 0, rejected = 0 },
        rejects = {} }
    local w, wmsg, wcode
    if streamed then
        w, wmsg, wcode = rejects_mod.writer(("%s/rejects-s%02d-w%d.jsonl"):format(o.work_dir,
            index, k))
        if not w then return { msg = wmsg, code = wcode } end
        mine.on_reject = function(rej) w:add(rej) end
    end
    local warned = o.warnings and #o.warnings
    local done, ok, emsg, ecode = pcall(map_rows, o, source, index, mine, m, share, k)
    mine.on_reject = nil -- a result holds no function
    mine.warnings = {}
    for i = (warned or 0) + 1, o.warnings and #o.warnings or 0 do
        mine.warnings[#mine.warnings + 1] = o.warnings[i]
    end
    if w then
        local closed, cmsg, ccode = w:close()
        if done and ok and not closed then ok, emsg, ecode = nil, cmsg, ccode end
    end
    if not done then return { raised = tostring(ok), rejects = w and w.path } end
    return ok and { acc = mine, rejects = w and w.path }
        or { msg = emsg, code = ecode, rejects = w and w.path }
end

local function map_rows_parallel(o, source, index, acc, m, shares)
    local streamed = acc.on_reject ~= nil
    local results, msg, code = workers.run(#shares, function(k)
        return map_share(o, source, index, m, shares[k], k, streamed)
    end)
    if not results then return nil, msg, code end
    local failed
    for _, res in ipairs(results) do -- the first failure in file order, of either kind
        failed = failed or ((res.raised or not res.acc) and res)
    end
    -- the workers' rejects to on_reject here, in file order
    for _, res in ipairs(results) do
        if not failed and res.rejects then
            local ok, why = rejects_mod.each(res.rejects, function(rej) reject(acc, rej) end)
            if not ok then failed = { msg = "IO_ERROR: " .. tostring(why), code = "IO_ERROR" } end
        elseif not failed then
            for _, rej in ipairs(res.acc.rejects) do reject(acc, rej) end
        end
        if res.rejects then os.remove(res.rejects) end
    end
    if failed and failed.raised then error(failed.raised, 0) end
    if failed then return nil, failed.msg, failed.code end
    for _, res in ipairs(results) do
        for key, n in pairs(res.acc.rows) do acc.rows[key] = acc.rows[key] + n end
        for _, w in ipairs(o.warnings and res.acc.warnings or {}) do
            o.warnings[#o.warnings + 1] = w
        end
        for _, part in ipairs(res.acc.parts) do acc.parts[#acc.parts + 1] = part end
    end
    return true
end

-- Shares for the workers, or nil when one process is the better choice.
local function shares_of(o, source)
    local n = o.workers or 1
    if n < 2 then return nil end
    if (csv.file_size(source) or 0) < n * csv.SHARE_BYTES then return nil end
    local shares, msg, code = csv.shares(source, n, { format = o.format })
    if not shares then return nil, msg, code end
    return #shares > 1 and shares or nil
end

--- build(o) -> plan | nil, msg, code (see the header comment).
function M.build(o)
    local acc = { parts = {}, rows = { read = 0, filtered = 0, rejected = 0 }, rejects = {},
        on_reject = o.on_reject }
    -- every path cuts parts: without a limit a mapped file would be one part,
    -- and Marketo refuses anything over 10 MB
    o.max_bytes = o.max_bytes or csv.PART_BYTES
    if (o.workers or 1) > 1 and rawget(_G, "ngx") then
        error("bad plan: workers > 1 would fork an nginx worker; use 1 in OpenResty", 2)
    end
    local m = o.mapping and mapping_mod.new(o.mapping, o.filter, o.validate) or nil
    if not m and (o.filter or o.validate) then
        m = mapping_mod.identity(o.filter, o.validate)
    end
    for index, source in ipairs(o.sources) do
        local ok, msg, code
        if not m then
            ok, msg, code = plan_source(o, source, index, acc)
        elseif m:is_fast() then
            ok, msg, code = map_fast(o, source, index, acc, m)
        else
            local shares
            shares, msg, code = shares_of(o, source)
            if shares then
                ok, msg, code = map_rows_parallel(o, source, index, acc, m, shares)
            elseif not msg then
                ok, msg, code = map_rows(o, source, index, acc, m)
            end
        end
        if not ok then return nil, msg, code end
    end
    if o.status_column then -- one programMemberStatus per job: a group per status
        local ok, msg, code = statuses.group(acc, o)
        if not ok then return nil, msg, code end
    end
    if o.state then -- --changed-only: the rows the instance holds as they are left out (with
        -- their status: after the groups)
        local ok, msg, code = changed.sift(acc, o)
        if not ok then return nil, msg, code end
    end
    if o.key then -- no key in two parts that can import at once
        local ok, msg, code = keys.spread(acc, o)
        if not ok then return nil, msg, code end
    end
    for k, part in ipairs(acc.parts) do part.part = k end
    return acc
end

return M
