--- marketo.sandbox.queue: the one FIFO all three import types share (the BI page:
-- at most max_importing jobs Importing, at most max_queue Queued + Importing,
-- 1016 beyond), driven by the clock: tick(now) moves jobs on by what the
-- elapsed time allows at `speed` rows per second (0 = as fast as the sandbox
-- can, a slice of rows per tick so answers keep flowing).
local hazard = require("marketo.sandbox.hazard")

local M = {}
M.__index = M

local SLICE = 4000       -- rows per job per tick when speed is 0
local DAY = 86400

--- new{ conf, clock, faults, store, stats }
function M.new(opts)
    local self = setmetatable({ conf = opts.conf, faults = opts.faults, store = opts.store,
        stats = opts.stats }, M)
    self:reset()
    return self
end

function M:reset()
    for _, job in pairs(self.jobs or {}) do job:close() end
    self.jobs = {}          -- id -> job, every job still within batch_days
    self.waiting = {}       -- FIFO of Queued jobs
    self.importing = {}     -- jobs Importing, in start order
    self.next_id = 1000
end

function M:depth()
    return #self.waiting + #self.importing
end

function M:next_batch_id()
    self.next_id = self.next_id + 1
    return self.next_id
end

--- Adds a Queued job; false when the queue is full (the caller answers 1016).
function M:add(job, now)
    if self:depth() >= self.conf.max_queue then return false end
    job.created = now
    job.will_fail, job.identity = self.faults:job(job.upload_identity or tostring(job.id))
    self.jobs[job.id] = job
    self.waiting[#self.waiting + 1] = job
    local depth = self:depth()
    if depth > self.stats.max_queue_depth then self.stats.max_queue_depth = depth end
    return true
end

--- The job with this id, if it exists and has not outlived batch_days.
function M:get(id, now)
    local job = self.jobs[id]
    if job and now - job.created > self.conf.batch_days * DAY then
        self.jobs[id] = nil
        return nil
    end
    return job
end

-- Rows a job may have imported by `now`.
function M:allowance(job, now)
    local speed = self.conf.speed
    if speed <= 0 then return job.rows + SLICE end
    return math.floor((now - job.started) * speed)
end

function M:start_waiting(now)
    while #self.importing < self.conf.max_importing and #self.waiting > 0 do
        local job = table.remove(self.waiting, 1)
        job:start(now)
        self.importing[#self.importing + 1] = job
        if #self.importing > self.stats.max_importing then
            self.stats.max_importing = #self.importing
        end
    end
end

-- Ends a job drawn to fail: at once with failed_imports = none, else once
-- it has done half its rows (job.fail_after), which stay imported.
function M:fail_now(job)
    return self.conf.failed_imports == "none" or job.ended == true
        or job.rows >= (job.fail_after or 0)
end

-- Works one importing job; returns true when it finished.
function M:advance(job, now)
    local want = self:allowance(job, now) - job.rows
    if job.will_fail and self.conf.failed_imports ~= "none" then
        want = math.min(want, (job.fail_after or 0) - job.rows)
    end
    local done = job.ended == true
    if want > 0 and not (job.will_fail and self:fail_now(job)) then
        local _
        _, done = job:work(want, hazard.store_for(self, job))
    end
    if job.will_fail then
        if not self:fail_now(job) then return false end
        job:finish(now, "Failed", self.conf.failed_message)
        self.stats.jobs_failed = self.stats.jobs_failed + 1
        return true
    end
    if done then
        job:finish(now, "Complete", nil)
        job.message = job:summary()
        self.stats.jobs_complete = self.stats.jobs_complete + 1
    end
    return done
end

--- Moves every job on to `now`. Returns true while there is work left.
function M:tick(now)
    self:start_waiting(now)
    local i = 1
    while i <= #self.importing do
        if self:advance(self.importing[i], now) then
            table.remove(self.importing, i)
            -- A freed slot goes to the next job at once, as Marketo's FIFO would.
            self:start_waiting(now)
        else
            i = i + 1
        end
    end
    return #self.importing > 0 or #self.waiting > 0
end

function M:list()
    local out = {}
    for _, job in pairs(self.jobs) do out[#out + 1] = job end
    table.sort(out, function(a, b) return a.id < b.id end)
    return out
end

return M
