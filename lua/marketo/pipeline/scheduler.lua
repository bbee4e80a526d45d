--- marketo.pipeline.scheduler: keeps Marketo's import pipeline full without tripping
-- its limits. Each part goes planned -> sending -> uploaded -> finished ->
-- fetched, and every step is in the journal before the next one starts.
--
-- What it keeps true:
--   * at most `queued` of our jobs in Marketo's queue (Queued + Importing) and
--     at most `uploads` uploads at once, so uploading part k+1 overlaps with
--     Marketo processing part k;
--   * the queue is FIFO, so only the oldest `importing` unfinished jobs can
--     change state: only those are polled (quick at first, then adaptive to
--     their progress, never slower than `poll_max`), the rest wait silently;
--   * the call budget (calls per window, calls in flight) is the limiter's,
--     below the client: every call of the import goes through it;
--   * the queue and importing slots are also taken from the budget
--     (marketo.pipeline.budget), which other runners may share;
--   * a part `after` others starts only once they are finished;
--   * a stop request (SIGINT) stops new uploads and polls; what is in flight
--     finishes its journal line, and a resume picks up from there.
local core = require("marketo.core")
local results = require("marketo.results")
local json = require("marketo.json")
local formats = require("marketo.formats")
local poll = require("marketo.poll")
local options = require("marketo.options")
local journal_mod = require("marketo.pipeline.journal")
local budget_mod = require("marketo.pipeline.budget")

local M = {}

M.DEFAULTS = { importing = 2, queued = 10, uploads = 2, poll_first = 1, poll_max = 30,
    failed_retries = 2, wait_timeout = 7 * 24 * 3600 }

local COUNT, SECONDS = { "number", integer = true, min = 1 }, { "number", positive = true }
--- The limits new takes, as marketo.options rules.
M.LIMITS = { importing = COUNT, queued = COUNT, uploads = COUNT, poll_first = SECONDS,
    poll_max = SECONDS, failed_retries = { "number", integer = true, min = 0 },
    wait_timeout = SECONDS }

local Scheduler = {}
Scheduler.__index = Scheduler

--- new(o) -> scheduler. o: client, runtime, journal, parts (journal:parts()
-- entries: { plan, stage, batch, ... }), job ({ kind = a marketo.objects kind,
-- params = its parameters by our names }), limits (M.DEFAULTS keys),
-- work_dir, on_event(ev), budget (the limiter's; default: this process's).
function M.new(o)
    local limits = {}
    for k, v in pairs(M.DEFAULTS) do limits[k] = v end
    for k, v in pairs(options.check(o.limits, M.LIMITS, "scheduler.new", 2, 1, "limits")) do
        limits[k] = v
    end
    return setmetatable({
        client = o.client, rt = o.runtime, journal = o.journal, parts = o.parts,
        job = o.job, limits = limits, work_dir = o.work_dir,
        budget = o.budget or budget_mod.new({ clock = o.runtime.now, sleep = o.runtime.sleep,
            limits = { importing = limits.importing, queued = limits.queued } }),
        on_event = o.on_event or function() end,
        outstanding = {}, -- parts with a job in Marketo's queue, in upload order
        uploading = 0, error = nil, stopped = false,
    }, Scheduler)
end

function Scheduler:emit(ev)
    ev.t = self.rt.now()
    self.on_event(ev)
end

function Scheduler:should_stop()
    if self.error then return true end
    if not self.stopped and self.rt.stop_requested() then
        self.stopped = true
        self:emit({ ev = "stopping" })
    end
    return self.stopped
end

-- A fatal failure of one part stops the whole import (e.g. 607 quota).
function Scheduler:fail(p, msg, code)
    if not self.error then
        self.error = { part = p.plan.part, message = msg, code = code }
        self:emit({ ev = "error", part = p.plan.part, message = msg, code = code })
    end
end

function Scheduler:record(rec)
    local ok, msg, code = self.journal:record(rec)
    if not ok then
        -- A journal that cannot be written makes every later step unsafe.
        self.error = self.error or { message = msg, code = code }
        return nil
    end
    return true
end

-- Sleep in short slices so a stop request is seen quickly.
function Scheduler:pause(seconds)
    local until_t = self.rt.now() + seconds
    while not self:should_stop() do
        local left = until_t - self.rt.now()
        if left <= 0 then return true end
        self.rt.sleep(math.min(left, 0.25))
    end
    return false
end

local function create_options(self, plan)
    local o = { path = plan.path, offset = plan.offset, length = plan.length,
        prefix = plan.prefix, format = plan.format,
        filename = ("part-%04d.%s"):format(plan.part, formats.get(plan.format).extension) }
    for k, v in pairs(self.job.params or {}) do o[k] = v end
    -- a group of program members with a status per row (marketo.pipeline.statuses)
    if plan.status then o.program_member_status = plan.status end
    return o
end

-- An uploaded part's job, from its batch id: the kind's path parameters and
-- the format are all it needs.
local function attach(self, p)
    local o = { format = p.plan.format }
    for _, param in ipairs(self.job.kind.params) do
        if param.where == "path" then o[param.name] = self.job.params[param.name] end
    end
    return self.client:job(self.job.kind.name, p.batch, o)
end

-- The part's bytes must be those the journal planned: a source edited
-- between a crash and the resume would otherwise import different rows.
local function check_hash(plan)
    if not plan.hash then return true end
    local h, msg, code = core.hash_range(plan.path, plan.offset or 0, plan.length)
    if not h then return nil, msg, code end
    if h ~= plan.hash then
        return nil, ("SOURCE_CHANGED: %s changed since part %d was planned (bytes %d-%d); "
            .. "restore it, or start a new import with a new journal")
            :format(plan.path, plan.part, plan.offset or 0, (plan.offset or 0) + plan.length),
            "SOURCE_CHANGED"
    end
    return true
end

function Scheduler:upload(p, attempt)
    local plan = p.plan
    local ok, msg, code = check_hash(plan)
    if not ok then return self:fail(p, msg, code) end
    if not self:record({ ev = "sending", part = plan.part, attempt = attempt }) then return end
    self:emit({ ev = "sending", part = plan.part, rows = plan.rows })
    local job
    job, msg, code = self.client:import(self.job.kind.name, create_options(self, plan))
    if not job and code == "1025" and plan.status then return self:unknown_status(p, msg) end
    if not job then return self:fail(p, msg, code) end
    p.batch, p.importing_at = job.id, nil
    -- Marketo queues jobs in the order their uploads end: ours follow suit, so
    -- "the oldest unfinished jobs" (the ones worth polling) are Marketo's too.
    self:leave_queue(p)
    self.outstanding[#self.outstanding + 1] = p
    if not self:record({ ev = "uploaded", part = plan.part, batch = job.id }) then return end
    self:emit({ ev = "uploaded", part = plan.part, batch = job.id, rows = plan.rows,
        status = job.status })
    return job
end

-- Marketo refused a group's status (1025): strict, the import stops naming
-- it and its first line; lenient, the group's part ends Failed with Marketo's
-- reason (its rows count as failed) and the import goes on.
function Scheduler:unknown_status(p, msg)
    local plan = p.plan
    local why = ("STATUS: program status '%s' (%s:%d, the first row of part %d) is refused: "
        .. "%s"):format(plan.status, plan.source, plan.first_line, plan.part, tostring(msg))
    if not self.job.lenient then
        return self:fail(p, why .. "; fix the status column, or pass lenient mode to fail "
            .. "the rows of unknown statuses", "STATUS")
    end
    self:emit({ ev = "job_failed", part = plan.part, message = why })
    if self:record({ ev = "finished", part = plan.part, status = "Failed", message = why,
        processed = 0, failed = plan.rows, warned = 0 }) then
        self:record({ ev = "fetched", part = plan.part, failed = 0, warned = 0 })
    end
end

-- Our position among unfinished jobs: 1 is the oldest.
function Scheduler:position(p)
    for i, q in ipairs(self.outstanding) do
        if q == p then return i end
    end
    return math.huge
end

function Scheduler:leave_queue(p)
    for i, q in ipairs(self.outstanding) do
        if q == p then table.remove(self.outstanding, i); return end
    end
end

-- Waits for the budget's slot of `what` into p.permits: false when stopped or failed.
function Scheduler:take(p, what)
    p.permits = p.permits or {}
    while not p.permits[what] do
        local permit, msg, code = self.budget:try(what)
        if permit then
            p.permits[what] = permit
        elseif permit == nil then
            self:fail(p, msg, code)
            return false
        elseif not self:pause(0.05) then
            return false
        end
    end
    return true
end

function Scheduler:give(p, what)
    local permit = p.permits and p.permits[what]
    if permit then
        p.permits[what] = nil
        self.budget:release(what, permit)
    end
end

-- The part is out of Marketo's queue (or never got in): its slots go back.
function Scheduler:done_with(p)
    self:give(p, "importing")
    self:give(p, "queued")
    return self:leave_queue(p)
end

-- Polls until Complete or Failed (on marketo.poll's schedule, as job:wait); nil
-- when stopped or failed fatally. A job is first polled as soon as it reaches
-- the head of our queue: Marketo may well have finished it while it waited its
-- turn to be looked at.
function Scheduler:await(p, job)
    local L = self.limits
    local poller = poll.new{ first = L.poll_first, max = L.poll_max, timeout = L.wait_timeout,
        rows = p.plan.rows, now = self.rt.now() }
    while self:position(p) > L.importing do
        if not self:pause(0.05) then return nil end
    end
    if not self:take(p, "importing") then return nil end
    while true do
        local info, msg, code = job:refresh()
        if not info then return self:fail(p, msg, code) end
        self:emit({ ev = "status", part = p.plan.part, status = info.status,
            processed = info.processed, rows = p.plan.rows })
        -- when it was first seen importing: the report's timeline (queued, then importing)
        if info.status == "Importing" then p.importing_at = p.importing_at or journal_mod.now() end
        if info.status == "Complete" or info.status == "Failed" then return info end
        local delay = poller:next(info, self.rt.now())
        if not delay then
            return self:fail(p, ("TIMEOUT: part %d still %s"):format(p.plan.part, info.status),
                "TIMEOUT")
        end
        if not self:pause(delay) then return nil end
    end
end

local function rows_out(rows)
    local out = {}
    for i, r in ipairs(rows) do
        out[i] = { line = r.line, reason = r.reason, values = r.values,
            ambiguous = r.ambiguous or nil, unmatched = r.unmatched or nil }
    end
    return out
end

function Scheduler:fetch(p, job, info)
    local plan = p.plan
    local doc = { header = nil, failed = {}, warned = {} }
    if (info.failed or 0) > 0 or (info.warned or 0) > 0 then
        local part, msg, code = results.read_part(plan)
        if not part then return self:fail(p, msg, code) end
        doc.header = part.header
        for _, kind in ipairs({ { "failed", "failures" }, { "warned", "warnings" } }) do
            if (info[kind[1]] or 0) > 0 then
                local rows
                rows, msg, code = job[kind[2]](job, part)
                if not rows then return self:fail(p, msg, code) end
                doc[kind[1]] = rows_out(rows)
            end
        end
    end
    local path = ("%s/part-%04d.results.json"):format(self.work_dir, plan.part)
    -- written whole or not at all: "fetched" is journalled only after it is
    local ok, msg, code = core.write_file(path, json.encode(doc))
    if not ok then return self:fail(p, msg, code) end
    if not self:record({ ev = "fetched", part = plan.part, results = path,
        failed = #doc.failed, warned = #doc.warned }) then return end
    self:emit({ ev = "fetched", part = plan.part, failed = #doc.failed, warned = #doc.warned })
end

-- One part from wherever the journal left it to "fetched".
function Scheduler:run_part(p)
    local attempt = 0
    local job
    if p.stage == "uploaded" or (p.stage == "finished" and p.batch) then
        job = attach(self, p)
    end
    while true do
        if not job then
            attempt = attempt + 1
            if not p.upload_reserved then self.uploading = self.uploading + 1 end
            p.upload_reserved = nil
            job = self:upload(p, attempt)
            self.uploading = self.uploading - 1
            if not job then return self:done_with(p) end
        end
        local info
        if p.stage == "finished" and p.finished then
            info = { status = p.finished.status, failed = p.finished.failed,
                warned = p.finished.warned, processed = p.finished.processed }
        else
            info = self:await(p, job)
            self:give(p, "importing")
            if not info then return self:done_with(p) end
        end
        if info.status == "Failed" and attempt <= self.limits.failed_retries
            and p.stage ~= "finished" then
            self:emit({ ev = "job_failed", part = p.plan.part, message = info.message,
                retry = true })
            job = nil -- a Failed job imported nothing for sure: send the part again
        else
            self:done_with(p)
            if p.stage ~= "finished" then
                p.stage = "finished"
                if not self:record({ ev = "finished", part = p.plan.part, status = info.status,
                    message = info.message, processed = info.processed, failed = info.failed,
                    warned = info.warned, importing_at = p.importing_at }) then return end
                self:emit({ ev = "finished", part = p.plan.part, status = info.status,
                    processed = info.processed, failed = info.failed, warned = info.warned,
                    rows = p.plan.rows })
            end
            if info.status == "Complete" then return self:fetch(p, job, info) end
            return self:record({ ev = "fetched", part = p.plan.part, failed = 0, warned = 0 })
        end
    end
end

-- A part holding a later copy of a key waits until every part holding an
-- earlier copy is finished (plan.after, see marketo.pipeline.keys): no key
-- is ever in two jobs that can import at the same time.
function Scheduler:waits(p)
    for _, k in ipairs(p.plan.after or {}) do
        local stage = self.parts[k].stage
        if stage ~= "finished" and stage ~= "fetched" then return true end
    end
    return false
end

-- Spawns part tasks in order while the queue and upload limits allow.
function Scheduler:feed()
    local L = self.limits
    for _, p in ipairs(self.parts) do
        if p.stage ~= "fetched" then
            local queued = p.stage == "uploaded" or p.stage == "finished"
            while not queued and self:waits(p) do
                if not self:pause(0.05) then return end
            end
            while not queued and (#self.outstanding >= L.queued or self.uploading >= L.uploads) do
                if not self:pause(0.05) then return end
            end
            if p.stage ~= "finished" and not self:take(p, "queued") then return end
            if self:should_stop() then return self:give(p, "queued") end
            self.outstanding[#self.outstanding + 1] = p
            if not queued then
                self.uploading = self.uploading + 1 -- held for the task until it uploads
                p.upload_reserved = true
            end
            self.rt.spawn(function() self:run_part(p) end)
        end
    end
end

--- run() -> true | nil, msg, code: runs every part that is not fetched yet.
-- Ends when all are fetched, or stopped (self.stopped), or failed (self.error).
function Scheduler:run()
    self.rt.spawn(function() self:feed() end)
    self.rt.run()
    if self.error then return nil, self.error.message, self.error.code end
    return true
end

return M
