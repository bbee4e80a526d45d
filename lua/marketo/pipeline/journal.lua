--- marketo.pipeline.journal: the import's append-only record of where every part is.
-- One JSON object per line, each fsync'd before the import moves on (see
-- src/journal.c), so after a crash the journal says, for every part, the last
-- thing that surely happened to it:
--
--   {"ev":"run", ...}                     the import: object, source, options
--   {"ev":"planned","part":k, ...}        byte range or work file, rows, lines, hash
--   {"ev":"plan_done","parts":n}          the plan is whole: n parts, 1..n
--   {"ev":"sending","part":k}             an upload is about to go out
--   {"ev":"uploaded","part":k,"batch":n}  Marketo accepted it as batch n
--   {"ev":"finished","part":k, ...}       Complete or Failed, with counts
--   {"ev":"fetched","part":k, ...}        failures/warnings fetched and tied back
--   {"ev":"calls","counts":{...}}       API calls a run made, by kind
--   {"ev":"state","parts":[k...]}      --changed-only: these parts' rows are in the state
--   {"ev":"stopped"} / {"ev":"done"}
--
-- Nothing is sent before plan_done, so a journal without it (a crash while
-- planning) holds a plan cut short, never one to run from: a new run record
-- supersedes it (its parts are forgotten). After plan_done a run record, a
-- part planned or a count that does not match is corruption.
--
-- A part whose last record is "sending" has an unknown outcome (the crash
-- came between send and answer): it is sent again on resume. Marketo's bulk
-- import is an upsert by the dedupe key, so a second copy of the same rows
-- changes nothing; the report counts the part's rows once.
--
-- A journal opened to append is locked for one run (journal.c), and a last
-- line cut short by a power loss is cut off before anything is appended.
local core = require("marketo.core")
local json = require("marketo.json")

-- MAX_LINE: no record comes near it. The longest, the run record, holds the
-- sources' paths, the parameters and the mapping: a few KiB for any real
-- import, so 1 MiB leaves room for thousands of source files, while a damaged
-- or foreign file (a stretch of zeros, a binary) is refused after at most
-- that much of one line is held in memory.
local M = { VERSION = 2, MAX_LINE = 1024 * 1024 }

local Journal = {}
Journal.__index = Journal

local PART_EVENTS = { sending = true, uploaded = true, finished = true, fetched = true }
local KNOWN = { run = true, planned = true, plan_done = true, calls = true, stopped = true,
    done = true, state = true }
for ev in pairs(PART_EVENTS) do KNOWN[ev] = true end

-- The plan's records: a new run supersedes a plan cut short; the parts come
-- in order; plan_done counts them.
local function apply_plan(state, rec)
    local ev = rec.ev
    if state.plan_closed then
        return nil, ("a '%s' record after the plan closed"):format(ev)
    elseif ev == "run" then
        state.run, state.parts, state.nparts = rec, {}, 0
    elseif not state.run then
        return nil, ("a '%s' record before the run record"):format(ev)
    elseif ev == "planned" then
        if rec.part ~= state.nparts + 1 then
            return nil, ("part %s planned after part %d"):format(tostring(rec.part), state.nparts)
        end
        state.parts[rec.part] = { plan = rec, stage = "planned" }
        state.nparts = rec.part
    elseif rec.parts ~= state.nparts then
        return nil, ("the plan closed with %s parts, but %d were planned")
            :format(tostring(rec.parts), state.nparts)
    else
        state.plan_closed = true
    end
    return true
end

-- The state a sequence of records leads to; shared by open() and read().
local function apply(state, rec)
    local ev = rec.ev
    if not KNOWN[ev] then return nil, ("unknown record '%s'"):format(tostring(ev)) end
    if ev == "run" or ev == "planned" or ev == "plan_done" then return apply_plan(state, rec) end
    if not state.plan_closed then
        return nil, ("a '%s' record before the plan closed"):format(ev)
    end
    if PART_EVENTS[ev] then
        local part = state.parts[rec.part]
        if not part then return nil, ("record for part %s before its plan"):format(rec.part) end
        part.stage = ev
        part[ev] = rec
        if rec.batch then part.batch = rec.batch end
        state.ended = nil
    elseif ev == "state" then -- --changed-only: these parts' rows are in the state file
        for _, k in ipairs(rec.parts or {}) do
            if state.parts[k] then state.parts[k].stated = true end
        end
    elseif ev == "calls" then
        -- API calls a run made, by kind; a resumed import adds its own.
        for kind, n in pairs(rec.counts or {}) do
            state.calls[kind] = (state.calls[kind] or 0) + n
        end
    else
        state.ended = ev
    end
    return true
end

local function new_state()
    return { parts = {}, nparts = 0, calls = {}, plan_closed = false }
end

local function corrupt(path, lineno, why)
    return nil, ("JOURNAL_CORRUPT: %s:%d: %s"):format(path, lineno, why), "JOURNAL_CORRUPT"
end

-- Calls on_line(line, lineno) for each whole line of the file, reading it in
-- chunks so that no more than MAX_LINE of one line is ever held. Returns the
-- size of the whole lines (where a torn tail starts) and whether there is one.
local function each_line(fd, path, on_line)
    local held, held_bytes, offset, lineno = {}, 0, 0, 0
    local function too_long()
        return corrupt(path, lineno + 1, ("a line longer than %d bytes, which no journal "
            .. "record is; the file is damaged or is not a journal"):format(M.MAX_LINE))
    end
    while true do
        local chunk, msg, code = fd:read(offset)
        if not chunk then return nil, msg, code end
        if chunk == "" then break end
        local start = 1
        while true do
            local nl = chunk:find("\n", start, true)
            if not nl then break end
            if held_bytes + nl - start > M.MAX_LINE then return too_long() end
            held[#held + 1] = chunk:sub(start, nl - 1)
            lineno = lineno + 1
            local ok, why, code2 = on_line(table.concat(held), lineno)
            if not ok then return nil, why, code2 end
            held, held_bytes, start = {}, 0, nl + 1
        end
        if start <= #chunk then
            held[#held + 1] = chunk:sub(start)
            held_bytes = held_bytes + #chunk - start + 1
            if held_bytes > M.MAX_LINE then return too_long() end
        end
        offset = offset + #chunk
    end
    return offset - held_bytes, held_bytes > 0
end

-- The state of the journal open as fd; also the size of its whole lines.
local function replay(fd, path)
    local state = new_state()
    local whole, torn, code = each_line(fd, path, function(line, lineno)
        local rec = json.decode(line)
        if type(rec) ~= "table" then
            return corrupt(path, lineno, "not a journal record; the journal was edited or "
                .. "damaged, restore it or start a new import")
        end
        local applied, why = apply(state, rec)
        if not applied then return corrupt(path, lineno, why) end
        return true
    end)
    if not whole then return nil, torn, code end
    state.torn = torn
    return state, whole
end

--- read(path) -> state | nil, msg, code, without the lock (what `status`
-- does while a run holds it). The state is
-- { run = rec, parts = { [k] = { plan, stage, batch, sending, uploaded, finished, fetched } },
--   nparts = n, plan_closed = true once plan_done was read,
--   ended = "done" | "stopped" | nil, torn = a last line cut short (ignored) }.
-- Any other bad line is an error naming it.
function M.read(path)
    local fd, msg, code = core.journal_open(path, "r")
    if not fd then return nil, msg, code end
    local state
    state, msg, code = replay(fd, path)
    fd:close()
    if not state then return nil, msg, code end
    return state
end

--- open(path [, { create = false }]) -> journal | nil, msg, code: locks the
-- journal for this run (JOURNAL_BUSY names the pid holding it), replays what
-- is there and cuts off a torn last line, then appends. With create = false a
-- missing journal is an error (JOURNAL_MISSING) rather than a new one.
function M.open(path, opts)
    if type(path) ~= "string" then
        error("bad argument #1 to 'journal.open' (string expected)", 2)
    end
    local fd, msg, code = core.journal_open(path, (opts and opts.create == false) and "w" or "a")
    if not fd then return nil, msg, code end
    local state, whole, rcode = replay(fd, path)
    if not state then fd:close(); return nil, whole, rcode end
    if state.torn then
        local ok
        ok, msg, code = fd:truncate(whole)
        if not ok then fd:close(); return nil, msg, code end
        state.torn = false
    end
    return setmetatable({ path = path, fd = fd, state = state }, Journal)
end

--- Why a journal holds no plan to run from, or nil: its plan never closed
-- (being written, or cut short by a crash), so nothing was sent.
function M.incomplete(path, state)
    if state.plan_closed then return nil end
    return ("PLAN_INCOMPLETE: %s: the plan is incomplete (%d parts journaled, no closing "
        .. "record): it is being written, or a crash cut it short; nothing was sent, no row "
        .. "is imported"):format(path, state.nparts)
end

-- The wall clock to the millisecond: os.time() at load, then the monotonic
-- clock's progress (Lua's own clock has whole seconds only).
local WALL0, MONO0 = os.time(), core.monotonic()

--- now() -> seconds since the epoch, with fractions (the `at` of records).
function M.now()
    return math.floor((WALL0 + core.monotonic() - MONO0) * 1000 + 0.5) / 1000
end

--- journal:record(rec) -> true | nil, msg, code. rec.ev names the record;
-- time stamps are added: t in whole seconds, at with milliseconds (the HTML
-- report's timeline; journals written before it have t only). Returns only
-- once the line is on disk.
function Journal:record(rec)
    local applied, why = apply(self.state, rec)
    if not applied then error("journal:record: " .. why, 2) end
    rec.t, rec.at = os.time(), M.now()
    local line = json.encode(rec) .. "\n"
    if #line > M.MAX_LINE then
        return nil, ("JOURNAL_WRITE: %s: a '%s' record of %d bytes, over the %d a journal "
            .. "line may hold"):format(self.path, rec.ev, #line, M.MAX_LINE), "JOURNAL_WRITE"
    end
    return self.fd:append(line)
end

function Journal:close()
    return self.fd:close()
end

--- The parts in order, with their stage, for the scheduler and `status`.
function Journal:parts()
    local out = {}
    for k = 1, self.state.nparts do out[k] = self.state.parts[k] end
    return out
end

return M
