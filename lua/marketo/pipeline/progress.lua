--- marketo.pipeline.progress: feedback while an import runs. On a terminal, one line
-- redrawn in place (rows uploaded, parts importing/finishing/queued/done, rows/s,
-- ETA), ended by the `ended` event import.send emits before the report, so the
-- summary starts on a line of its own; otherwise one JSON line per event, for logs.
-- A part is finishing once Marketo has ended its job and until its failures and
-- warnings are fetched.
--
--   local on_event = progress.new{ out = io.stderr, tty = true, rows = 20000, parts = 6 }
--   import.run{ ..., on_event = on_event }
--
-- progress.default, when set (the runner sets it for `marketo-bulk run`), makes the
-- on_event of an import that was given none: scripts get the display by default.
local json = require("marketo.json")

local M = {}

-- Events that say something a user must hear even without progress: the daily
-- quota's wait (pipeline/quota), a pause for Redis (pipeline/budget).
M.NOTICES = { waiting = true, quota_reset = true, notice = true, budget = true }

local function eta_text(seconds)
    if not seconds or seconds ~= seconds or seconds == math.huge then return "--:--" end
    seconds = math.floor(seconds + 0.5)
    if seconds >= 3600 then
        return ("%d:%02d:%02d"):format(math.floor(seconds / 3600),
            math.floor(seconds % 3600 / 60), seconds % 60)
    end
    return ("%02d:%02d"):format(math.floor(seconds / 60), seconds % 60)
end

local Tty = {}
Tty.__index = Tty

-- Marketo's job has ended (or the part is fetching its rows): no longer queued.
local FINISHING = { Complete = true, Failed = true, finishing = true }

function Tty:line()
    local s = self.state
    local importing, finishing, queued, done = 0, 0, 0, 0
    for _, st in pairs(s.parts) do
        if st == "Importing" then importing = importing + 1
        elseif st == "done" then done = done + 1
        elseif FINISHING[st] then finishing = finishing + 1
        elseif st ~= "sending" then queued = queued + 1 end
    end
    local elapsed = math.max(self.clock() - self.started, 1e-3)
    local processed = s.processed_done
    for _, n in pairs(s.processing) do processed = processed + n end
    local rate = processed / elapsed
    local eta = rate > 0 and (self.rows - processed) / rate or nil
    return ("%d/%d rows uploaded | parts: %d importing, %d finishing, %d queued, %d/%d done"
        .. " | %.0f rows/s | ETA %s"):format(s.uploaded, self.rows, importing, finishing, queued,
        done, self.parts, rate, eta_text(eta))
end

function Tty:draw(force)
    if self.closed then return end
    local now = self.clock()
    if not force and now - self.drawn < 0.1 then return end
    self.drawn = now
    self.out:write("\r\27[K", self:line())
    if self.out.flush then self.out:flush() end
end

function Tty:event(ev)
    local s = self.state
    if ev.ev == "planned" then
        self.rows, self.parts = ev.rows, ev.parts
        s.uploaded, s.processed_done = ev.rows_done or 0, ev.rows_done or 0
        for k = 1, ev.parts_done or 0 do s.parts[-k] = "done" end
    elseif ev.ev == "sending" then
        s.parts[ev.part] = "sending"
    elseif ev.ev == "uploaded" then
        s.uploaded = s.uploaded + (ev.rows or 0)
        s.parts[ev.part] = ev.status or "Queued"
    elseif ev.ev == "status" then
        s.parts[ev.part] = ev.status
        s.processing[ev.part] = ev.processed or 0
    elseif ev.ev == "finished" then
        -- a Complete job's failures and warnings are still to fetch
        s.parts[ev.part] = ev.status == "Complete" and "finishing" or "done"
        s.processing[ev.part] = nil
        s.processed_done = s.processed_done + (ev.rows or 0)
    elseif ev.ev == "fetched" then
        s.parts[ev.part] = "done"
    elseif ev.ev == "ended" then
        return self:close()
    elseif M.NOTICES[ev.ev] then
        self.out:write("\r\27[K", ev.message, "\n")
    elseif ev.ev == "error" or ev.ev == "stopping" then
        self.out:write("\r\27[K", ev.ev == "error" and ("error: " .. tostring(ev.message))
            or "stopping: finishing the journal; resume with the same command", "\n")
    end
    self:draw(ev.ev == "finished" or ev.ev == "fetched")
end

-- Once: the `ended` event and the caller's close() may both come.
function Tty:close()
    if self.closed then return end
    self.closed = true
    self:draw(true)
    self.out:write("\n")
end

--- new(o) -> on_event(ev), close(). o: out (a stream), tty (redraw a line, else
-- JSON lines), rows and parts (totals, for the line), clock; quiet (only the
-- NOTICES, a line each: an hours-long wait for the quota is not silent).
function M.new(o)
    local clock = o.clock or require("marketo.core").monotonic
    if o.quiet then
        return function(ev)
            if M.NOTICES[ev.ev] then o.out:write(ev.message, "\n") end
        end, function() end
    end
    if not o.tty then
        local function on_event(ev)
            o.out:write(json.encode(ev), "\n")
        end
        return on_event, function() end
    end
    local t = setmetatable({ out = o.out, rows = o.rows or 0, parts = o.parts or 0,
        clock = clock, started = clock(), drawn = -1,
        state = { uploaded = 0, parts = {}, processing = {}, processed_done = 0 } }, Tty)
    return function(ev) t:event(ev) end, function() t:close() end
end

return M
