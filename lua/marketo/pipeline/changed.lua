--- marketo.pipeline.changed: --changed-only. After the parts are cut (and
-- grouped by status), each part's rows go through the state of earlier
-- imports (src/state.c: per key, a hash of the row as it was sent): a row
-- whose key is held with the same bytes is left out and counted unchanged.
-- The rows left of a source (of one status) are written again into as few
-- parts as the byte limit allows: a 1% change is a part or two, not a sliver
-- of every part, each a job of its own (one part of SPLIT_ROWS rows or more
-- is cut in two: Marketo imports two jobs at once). They keep the file's order, so
-- marketo.pipeline.keys, which runs next, still puts a later copy of a key
-- after the earlier one. The rows are hashed as they will be sent (a mapped
-- part's rows as written, a byte range's as they are in the source, line
-- ends aside) with what is sent beside them: the job's parameters but the
-- key field (a list id, a partition, the members' status). A state is of one
-- instance, one object (a custom object's API name, a program's id) and one
-- key field.
--
--   changed.sift(acc, o) -> true | nil, msg, code
--   acc: plan.build's accumulator; o: plan.build's options, with o.key
--   (marketo.objects.key) and o.state (a loaded state). acc.rows.unchanged
--   gets the count.
--
-- The state learns only from a part's fetched results, through the journal:
-- after the scheduler, every fetched part not yet in it has its rows put
-- (its failed rows left out: they are sent again next time; a warned row is
-- held), the file is saved whole, and only then a `state` record names the
-- parts. A crash before that record makes the next run (or resume) put them
-- again, which changes nothing; no unsent row is ever put.
--
--   changed.path(instance, object, key_field [, getenv]) -> the default file
--       (object: e.g. "leads", "program_members/1001"):
--       $XDG_STATE_HOME/marketo-bulk (else ~/.local/state/marketo-bulk)
--       /INSTANCE-OBJECT-KEY.state
--   changed.open(path, instance, object, key_field, full) -> state | nil, msg, code
--       (none yet: an empty one; another import's: STATE_MISMATCH; damaged:
--       STATE_CORRUPT, to be fixed with --full, which starts it anew)
--   changed.record(journal, o) -> parts recorded | nil, msg, code: o.state,
--       o.state_path, o.key, o.format
--   changed.remember(state, object, params): what its rows are sent with
--       (the import's parameters; attach and finish call it)
--   changed.attach(o, spec, key) -> true | nil, msg, code: for import.prepare,
--       with spec.changed_only or spec.full (o.state_file: --state, absolute):
--       o.state (loaded), o.state_path,
--       and o.description.changed = { path, key fields, full } for the run record
--   changed.finish(journal, o) -> true | nil, msg, code: after the scheduler,
--       the fetched parts into the state (loaded again from the run record
--       when the import is resumed)
local core = require("marketo.core")
local csv = require("marketo.csv")
local json = require("marketo.json")
local rows = require("marketo.pipeline.rows")

local M = {}

-- The source lines of a written part's rows, from its lines file.
local function source_lines(part)
    local f, msg = io.open(part.lines.file, "rb")
    if not f then return nil, "READ_ERROR: " .. msg, "READ_ERROR" end
    for _ = 1, part.lines.skip do f:read("l") end
    local lines = {}
    for i = 1, part.rows do lines[i] = tonumber(f:read("l")) end
    f:close()
    if #lines < part.rows then
        return nil, "READ_ERROR: " .. part.lines.file .. " has fewer lines than "
            .. part.path .. " has rows", "READ_ERROR"
    end
    return lines
end

-- What is sent with a part's rows besides their bytes, mixed into each row's
-- hash (state:salt): the job's query parameters but the key field (a list
-- id, a partition, the members' status, a status column's group's status).
-- nil when there are none: a lead's row hash is its bytes' alone.
local SALTS = setmetatable({}, { __mode = "k" }) -- state -> { kind, params }

local function salt_of(st, part)
    local t = SALTS[st]
    if not t then return nil end
    local out = {}
    for _, p in ipairs(t.kind.params) do
        local v = t.params[p.name]
        if p.name == "program_member_status" then v = part.status or v end
        if p.where == "query" and p.name ~= t.kind.dedupe.param and v ~= nil then
            out[#out + 1] = p.name .. "=" .. tostring(v)
        end
    end
    return out[1] and table.concat(out, "\n") or nil
end

-- The parts the kept rows of one source (and one status) go to: as few as
-- the byte limit allows, wherever in the source the rows were.
local function group_of(o, n, part, header)
    local path = ("%s/c%04d-changed"):format(o.work_dir, n)
    local lines = path .. ".lines"
    local w, msg, code = csv.writer(path .. "-%04d." .. rows.extension(o.format), {
        format = o.format, header = header, max_bytes = o.max_bytes, lines = lines })
    if not w then return nil, msg, code end
    return { writer = w, lines = lines, base = path, source = part.source, status = part.status,
        header = table.concat(header, "\0") }
end

-- A group left in one part of at least this many rows is cut in two: Marketo
-- imports two jobs at once, and one job would leave the other slot idle.
M.SPLIT_ROWS = 2000

-- The group's one part as two of about equal size (each row's bytes and
-- source line as they were), after `out`; false: it stays whole.
local function halves(g, o, part, out)
    local shares, msg, code = csv.shares(part.path, 2, { format = o.format })
    if not shares then return nil, msg, code end
    if #shares < 2 then return false end
    local header
    header, msg, code = rows.header(part, o.format)
    if not header then return nil, msg, code end
    local lines
    lines, msg, code = source_lines(part)
    if not lines then return nil, msg, code end
    local copy = core.state_new("-", "-", "-") -- holds no key: sift copies every row
    local done, halved = 0, {}
    for i, share in ipairs(shares) do
        local path = ("%s-%d.%s"):format(g.base, i, rows.extension(o.format))
        local w
        w, msg, code = csv.writer(path, { format = o.format, header = header,
            lines = path .. ".lines" })
        if not w then return nil, msg, code end
        local r
        r, msg, code = csv.open(part.path, { format = o.format, share = share })
        local kept
        if r then
            local rest = {}
            for n = done + 1, #lines do rest[n - done] = lines[n] end
            kept, msg, code = r:sift(copy, 1, w, rest)
            r:close()
        end
        local closed, cmsg, ccode = w:close()
        if not kept then return nil, msg, code end
        if not closed then return nil, cmsg, ccode end
        done = done + kept
        local written = w:parts()[1]
        written.path = path
        halved[i] = rows.part(g.source, o.format, written, path .. ".lines")
        halved[i].status = g.status
    end
    copy:close()
    for _, half in ipairs(halved) do out[#out + 1] = half end
    os.remove(part.path)
    os.remove(part.lines.file)
    return true
end

-- The group's parts after `out`.
local function close_group(g, o, out)
    local ok, msg, code = g.writer:close()
    if not ok then return nil, msg, code end
    local parts, skip = {}, 0
    for _, written in ipairs(g.writer:parts()) do
        if written.rows > 0 then
            local part = rows.part(g.source, o.format, written, g.lines, skip)
            part.status = g.status
            parts[#parts + 1] = part
            skip = skip + written.rows
        end
    end
    if skip == 0 then os.remove(g.lines) end
    if #parts == 1 and parts[1].rows >= M.SPLIT_ROWS then
        local cut
        cut, msg, code = halves(g, o, parts[1], out)
        if cut == nil then return nil, msg, code end
        if cut then return true end
    end
    for _, part in ipairs(parts) do out[#out + 1] = part end
    return true
end

-- Part k's rows through the state into group g: false when it has no key
-- column (Marketo fails every row: it is sent as it is).
local function sift_part(acc, o, part, g)
    local header, msg, code = rows.header(part, o.format)
    if not header then return nil, msg, code end
    local cols = rows.columns(header, o.key.fields)
    if not cols then return false end
    local lines = false -- a byte range's rows: the reader knows their lines
    if part.mapped then
        lines, msg, code = source_lines(part)
        if not lines then return nil, msg, code end
    end
    o.state:salt(salt_of(o.state, part))
    local it
    it, msg, code = rows.open(part, o.format)
    if not it then return nil, msg, code end
    local kept, unchanged
    kept, unchanged, code = it.reader:sift(o.state, cols, g.writer, lines)
    it:close()
    if not kept then return nil, unchanged, code end
    acc.rows.unchanged = acc.rows.unchanged + unchanged
    return true
end

--- sift(acc, o): see the header comment.
function M.sift(acc, o)
    acc.rows.unchanged = 0
    if o.state:count() == 0 then return true end -- nothing held: every row goes
    local out, g, n = {}, nil, 0
    local function flush()
        if not g then return true end
        local ok, msg, code = close_group(g, o, out)
        g = nil
        return ok, msg, code
    end
    for _, part in ipairs(acc.parts) do
        local header, msg, code = rows.header(part, o.format)
        if not header then return nil, msg, code end
        local ok
        if not g or g.source ~= part.source or g.status ~= part.status
            or g.header ~= table.concat(header, "\0") then
            ok, msg, code = flush()
            if not ok then return nil, msg, code end
            n = n + 1
            g, msg, code = group_of(o, n, part, header)
            if not g then return nil, msg, code end
        end
        ok, msg, code = sift_part(acc, o, part, g)
        if ok == nil then g.writer:close(); return nil, msg, code end
        if ok == false then -- sent as it is, in its place among the groups
            ok, msg, code = flush()
            if not ok then return nil, msg, code end
            out[#out + 1] = part
        end
    end
    local ok, msg, code = flush()
    if not ok then return nil, msg, code end
    o.state:salt(nil)
    rows.replace(acc, out) -- the parts as cut have served: only the groups' are sent
    return true
end

--- The default state file; see the header comment.
function M.path(instance, object, key_field, getenv)
    local config = require("marketo.config")
    local dir, name = config.dir("state", getenv), config.file_name
    if not dir then return nil end
    return ("%s/%s-%s-%s.state"):format(dir, name(instance), name(object), name(key_field))
end

local function identity(instance, object, key_field)
    return ("instance %s, object %s, key field %s"):format(instance, object, key_field)
end

--- A state to import with; see the header comment.
function M.open(path, instance, object, key_field, full)
    local st, msg, code = core.state_load(path)
    if not st and (code == "ENOENT" or (full and code == "STATE_CORRUPT")) then
        return core.state_new(instance, object, key_field)
    end
    if not st and code == "STATE_CORRUPT" then
        return nil, msg .. "; run with --full to send every row and write it anew", code
    end
    if not st then return nil, msg, code end
    local i, ob, k = st:identity()
    if i ~= instance or ob ~= object or k ~= key_field then
        st:close()
        return nil, ("STATE_MISMATCH: %s holds the state of %s; this import is of %s: pass "
            .. "--state with another file"):format(path, identity(i, ob, k),
            identity(instance, object, key_field)), "STATE_MISMATCH"
    end
    return st
end

-- The lines (or, for a written part, the row numbers) of a part's failed
-- rows; nil when one could not be tied back (then no row of it is put).
local function failed_rows(part, fetched)
    local skip = {}
    if (fetched.failed or 0) == 0 then return skip end
    local f = io.open(fetched.results or "", "rb")
    if not f then return nil end
    local doc = json.decode(f:read("*a") or "")
    f:close()
    if type(doc) ~= "table" or type(doc.failed) ~= "table" then return nil end
    for _, r in ipairs(doc.failed) do
        -- one of identical rows, or none: which is not known, so none is put
        if r.unmatched or r.ambiguous or not r.line then return nil end
        skip[r.line] = true
    end
    if not part.mapped then return skip end
    local lines = source_lines(part)
    if not lines then return nil end
    local by_number = {}
    for n, l in ipairs(lines) do by_number[n] = skip[l] end
    return by_number
end

-- A fetched part's rows into the state: nothing when its job failed.
local function record_part(o, part, stage)
    local fetched, finished = stage.fetched, stage.finished
    if not finished or finished.status ~= "Complete" then return true end
    local skip = failed_rows(part, fetched)
    if not skip then return true end
    local header, msg, code = rows.header(part, o.format)
    if not header then return nil, msg, code end
    local cols = rows.columns(header, o.key.fields)
    if not cols then return true end
    local it
    it, msg, code = rows.open(part, o.format)
    if not it then return nil, msg, code end
    o.state:salt(salt_of(o.state, part))
    local put
    put, msg, code = it.reader:record(o.state, cols, skip, part.mapped)
    o.state:salt(nil)
    it:close()
    if not put then return nil, msg, code end
    return true
end

local function fail(code, msg) return nil, code .. ": " .. msg, code end

-- The object a state is of: the kind, and the path parameters that name its
-- target (a custom object's API name, a program's id): the members of one
-- program are not those of another.
local function target_of(object, params)
    local objects = require("marketo.objects")
    local kind = objects.get(object)
    local out = { object }
    for _, p in ipairs(kind and kind.params or {}) do
        if p.where == "path" and params and params[p.name] ~= nil then
            out[#out + 1] = tostring(params[p.name])
        end
    end
    return table.concat(out, "/")
end

--- remember(state, object, params): what the state's rows are sent with (the
-- kind's and the import's parameters; see salt_of).
function M.remember(st, object, params)
    local kind = require("marketo.objects").get(object)
    SALTS[st] = kind and { kind = kind, params = params or {} } or nil
end

-- A state to import with, and what its rows are sent with.
local function open_for(path, instance, object, params, field, full)
    local st, msg, code = M.open(path, instance, (target_of(object, params)), field, full)
    if not st then return nil, msg, code end
    M.remember(st, object, params)
    return st
end

--- attach(o, spec, key): see the header comment.
function M.attach(o, spec, key)
    if not spec.changed_only and not spec.full then return true end
    local d = o.description
    if not key then
        return fail("CHANGED_ONLY", ("%s have no key field to tell rows apart: import them "
            .. "without --changed-only"):format(d.object))
    end
    if not d.instance then
        return fail("CHANGED_ONLY", "a state is per instance: name it (instance = ...)")
    end
    local field = table.concat(key.fields, ",")
    local path = o.state_file or M.path(d.instance, (target_of(d.object, d.params)), field)
    if not path then
        return fail("CHANGED_ONLY", "no folder for the state: set XDG_STATE_HOME or HOME, "
            .. "or pass --state FILE")
    end
    if not o.state_file then -- the default folder, private
        local dir = path:match("^(.*)/[^/]*$")
        core.mkdir(dir:match("^(.*)/[^/]*$"))
        local ok, msg = core.mkdir(dir)
        if not ok and not io.open(dir .. "/.", "rb") then
            return fail("CHANGED_ONLY", ("cannot create the state folder %s (%s); pass "
                .. "--state FILE"):format(dir, (tostring(msg):gsub("^[%u_]+: ", ""))))
        end
    end
    local st, msg, code = open_for(path, d.instance, d.object, d.params, field, spec.full)
    if not st then return nil, msg, code end
    o.state, o.state_path, o.key = st, path, key
    -- a list: the journal's check compares it encoded, and a table's keys come in any order
    d.changed = { path, key.fields, spec.full or false }
    return true
end

--- finish(journal, o): see the header comment.
function M.finish(journal, o)
    local run = journal.state.run
    local path, fields, full = run.changed[1], run.changed[2], run.changed[3]
    if not o.state then
        local st, msg, code = open_for(path, run.instance, run.object, run.params,
            table.concat(fields, ","), full)
        if not st then return nil, msg, code end
        o.state, o.state_path = st, path
    end
    local rec = { state = o.state, state_path = path, format = run.format,
        key = { fields = fields } }
    local n, msg, code = M.record(journal, rec)
    o.state:close()
    o.state = nil
    if not n then return nil, msg, code end
    return true
end

--- record(journal, o): see the header comment.
function M.record(journal, o)
    local done = {}
    for k = 1, journal.state.nparts do
        local stage = journal.state.parts[k]
        if stage.fetched and not stage.stated then
            local ok, msg, code = record_part(o, stage.plan, stage)
            if not ok then return nil, msg, code end
            done[#done + 1] = k
        end
    end
    if #done == 0 then return 0 end
    o.state:note(("last import: %s, %s"):format(os.date("!%Y-%m-%d %H:%M UTC"),
        table.concat(journal.state.run.sources or {}, ", ")))
    local ok, msg, code = o.state:save(o.state_path)
    if not ok then return nil, msg, code end
    ok, msg, code = journal:record({ ev = "state", parts = done })
    if not ok then return nil, msg, code end
    return #done
end

return M
