--- marketo.pipeline.changed: --changed-only. After the parts are cut, each
-- part's rows go through the state of earlier imports (src/state.c: per key,
-- a hash of the row as it was sent): a row whose key is held with the same
-- bytes is left out of its part (a part with holes, as marketo.pipeline.keys
-- writes them) and counted unchanged; a part left with no row is no part.
-- The rows are hashed as they will be sent: a mapped part's rows as written,
-- a byte range's as they are in the source (line ends aside).
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
--   changed.path(instance, object, key_field [, getenv]) -> the default file:
--       $XDG_STATE_HOME/marketo-bulk (else ~/.local/state/marketo-bulk)
--       /INSTANCE-OBJECT-KEY.state
--   changed.open(path, instance, object, key_field, full) -> state | nil, msg, code
--       (none yet: an empty one; another import's: STATE_MISMATCH; damaged:
--       STATE_CORRUPT, to be fixed with --full, which starts it anew)
--   changed.record(journal, o) -> parts recorded | nil, msg, code: o.state,
--       o.state_path, o.key, o.format
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

-- A sifted mapped part's lines file holds each kept row's number in the
-- part: made its source line.
local function relines(part, out, lines_file)
    local src, msg, code = source_lines(part)
    if not src then return nil, msg, code end
    local f
    f, msg = io.open(lines_file, "rb")
    if not f then return nil, "READ_ERROR: " .. msg, "READ_ERROR" end
    local got = {}
    for l in f:lines() do got[#got + 1] = src[tonumber(l)] end
    f:close()
    local ok, wmsg, wcode = core.write_file(lines_file, table.concat(got, "\n") .. "\n")
    if not ok then return nil, wmsg, wcode end
    out.first_line, out.last_line = got[1], got[#got]
    return true
end

-- Part k without its unchanged rows: the part to send instead (nil: none
-- left), or the part itself when every row changed.
local function sift_part(acc, o, k)
    local part = acc.parts[k]
    local header, msg, code = rows.header(part, o.format)
    if not header then return nil, msg, code end
    local cols = rows.columns(header, o.key.fields)
    if not cols then return part end -- Marketo fails every row: send them all
    local path = ("%s/c%04d-changed.%s"):format(o.work_dir, k, rows.EXT[o.format])
    local lines = path .. ".lines"
    local w
    w, msg, code = csv.writer(path, { format = o.format, header = header, lines = lines })
    if not w then return nil, msg, code end
    local it
    it, msg, code = rows.open(part, o.format)
    local kept, unchanged
    if it then
        kept, unchanged, code = it.reader:sift(o.state, cols, w, part.mapped)
        it:close()
    end
    local closed, cmsg, ccode = w:close()
    if not it then return nil, msg, code end
    if not kept then return nil, unchanged, code end
    if not closed then return nil, cmsg, ccode end
    acc.rows.unchanged = acc.rows.unchanged + unchanged
    if unchanged == 0 or kept == 0 then
        os.remove(path)
        os.remove(lines)
        return unchanged == 0 and part or false
    end
    local out = w:parts()[1]
    out.path = path
    if part.mapped then
        local ok, rmsg, rcode = relines(part, out, lines)
        if not ok then return nil, rmsg, rcode end
    end
    local sifted = rows.part(part.source, o.format, out, lines)
    sifted.status = part.status
    return sifted
end

--- sift(acc, o): see the header comment.
function M.sift(acc, o)
    acc.rows.unchanged = 0
    local kept, replaced = {}, {}
    for k, part in ipairs(acc.parts) do
        local sifted, msg, code = sift_part(acc, o, k)
        if sifted == nil then return nil, msg, code end
        if sifted ~= part and part.mapped then
            os.remove(part.path)
            replaced[part.lines.file] = true
        end
        if sifted then kept[#kept + 1] = sifted end
    end
    for _, part in ipairs(kept) do
        if part.lines then replaced[part.lines.file] = nil end
    end
    for file in pairs(replaced) do os.remove(file) end
    acc.parts = kept
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
    local put
    put, msg, code = it.reader:record(o.state, cols, skip, part.mapped)
    it:close()
    if not put then return nil, msg, code end
    return true
end

local function fail(code, msg) return nil, code .. ": " .. msg, code end

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
    local path = o.state_file or M.path(d.instance, d.object, field)
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
    local st, msg, code = M.open(path, d.instance, d.object, field, spec.full)
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
        local st, msg, code = M.open(path, run.instance, run.object,
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
