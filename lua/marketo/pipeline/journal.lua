--- marketo.pipeline.journal: the import's append-only record of where every part is.
-- One JSON object per line, each fsync'd before the import moves on (see
-- src/journal.c), so after a crash the journal says, for every part, the last
-- thing that surely happened to it:
--
--   {"ev":"run", ...}                     the import: object, source, options
--   {"ev":"planned","part":k, ...}        byte range or work file, rows, lines, hash
--   {"ev":"plan_done","parts":n}          the plan is whole: n parts (without it, the
--                                         plan was cut short and nothing was sent)
--   {"ev":"sending","part":k}             an upload is about to go out
--   {"ev":"uploaded","part":k,"batch":n}  Marketo accepted it as batch n
--   {"ev":"finished","part":k, ...}       Complete or Failed, with counts
--   {"ev":"fetched","part":k, ...}        failures/warnings fetched and tied back
--   {"ev":"calls","counts":{...}}       API calls a run made, by kind
--   {"ev":"stopped"} / {"ev":"done"}
--
-- A part whose last record is "sending" has an unknown outcome (the crash
-- came between send and answer): it is sent again on resume. Marketo's bulk
-- import is an upsert by the dedupe key, so a second copy of the same rows
-- changes nothing; the report counts the part's rows once.
local core = require("marketo.core")
local json = require("marketo.json")

local M = { VERSION = 1 }

local Journal = {}
Journal.__index = Journal

-- The state a sequence of records leads to; shared by open() and read().
local function apply(state, rec)
    local ev = rec.ev
    if ev == "run" then
        -- a new plan: one cut short before it (no plan_done) had sent nothing
        state.run, state.parts, state.nparts, state.plan_done = rec, {}, 0, nil
    elseif ev == "plan_done" then
        if rec.parts ~= state.nparts then
            return nil, ("the plan counts %s parts but %d were planned"):format(
                tostring(rec.parts), state.nparts)
        end
        state.plan_done = true
    elseif ev == "planned" then
        state.parts[rec.part] = { plan = rec, stage = "planned" }
        state.nparts = math.max(state.nparts, rec.part)
    elseif ev == "sending" or ev == "uploaded" or ev == "finished" or ev == "fetched" then
        local part = state.parts[rec.part]
        if not part then return nil, ("record for part %s before its plan"):format(rec.part) end
        part.stage = ev
        part[ev] = rec
        if rec.batch then part.batch = rec.batch end
    elseif ev == "calls" then
        -- API calls a run made, by kind; a resumed import adds its own.
        for kind, n in pairs(rec.counts or {}) do
            state.calls[kind] = (state.calls[kind] or 0) + n
        end
        return true
    elseif ev == "stopped" or ev == "done" then
        state.ended = ev
    else
        return nil, ("unknown record '%s'"):format(tostring(ev))
    end
    if ev ~= "stopped" and ev ~= "done" and ev ~= "run" and ev ~= "plan_done" then
        state.ended = nil
    end
    return true
end

local function new_state()
    return { parts = {}, nparts = 0, calls = {} }
end

--- read(path) -> state | nil, msg, code. The state is
-- { run = rec, parts = { [k] = { plan, stage, batch, sending, uploaded, finished, fetched } },
--   nparts = n, ended = "done" | "stopped" | nil }.
-- A last line cut short (a torn write on power loss) is ignored; any other bad
-- line is an error naming it.
function M.read(path)
    local f, err = io.open(path, "rb")
    if not f then return nil, "JOURNAL_UNREADABLE: " .. err, "JOURNAL_UNREADABLE" end
    local state, lineno, pending = new_state(), 0, nil
    for line in f:lines() do
        lineno = lineno + 1
        if pending then
            f:close()
            return nil, pending, "JOURNAL_CORRUPT"
        end
        local rec = json.decode(line)
        if type(rec) ~= "table" then
            pending = ("JOURNAL_CORRUPT: %s:%d: not a journal record; the journal was edited "
                .. "or damaged, restore it or start a new import"):format(path, lineno)
        else
            local applied, why = apply(state, rec)
            if not applied then
                f:close()
                return nil, ("JOURNAL_CORRUPT: %s:%d: %s"):format(path, lineno, why),
                    "JOURNAL_CORRUPT"
            end
        end
    end
    f:close()
    if lineno > 0 and not state.run then
        return nil, ("JOURNAL_CORRUPT: %s: no run record"):format(path), "JOURNAL_CORRUPT"
    end
    state.torn = pending ~= nil
    return state
end

--- open(path) -> journal | nil, msg, code: replays what is there, then appends.
function M.open(path)
    if type(path) ~= "string" then
        error("bad argument #1 to 'journal.open' (string expected)", 2)
    end
    local state = new_state()
    local f = io.open(path, "rb")
    if f then
        f:close()
        local err, code
        state, err, code = M.read(path)
        if not state then return nil, err, code end
    end
    local fd, err, code = core.journal_open(path)
    if not fd then return nil, err, code end
    return setmetatable({ path = path, fd = fd, state = state }, Journal)
end

--- journal:record(rec) -> true | nil, msg, code. rec.ev names the record;
-- a time stamp is added. Returns only once the line is on disk.
function Journal:record(rec)
    local applied, why = apply(self.state, rec)
    if not applied then error("journal:record: " .. why, 2) end
    rec.t = os.time()
    return self.fd:append(json.encode(rec) .. "\n")
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
