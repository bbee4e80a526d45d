--- marketo.loop: coroutine tasks, timers and transfers in flight, in one thread.
--
--   local Loop = require("marketo.loop")
--   local loop = Loop.new()          -- opts: clock, sleep (fakes for specs)
--   local task = loop:spawn(fn, ...) -- runs fn(...) as a task at the next run
--   loop:run()                       -- until every task ended; re-raises a task's error
--   Loop.sleep(s)                    -- in a task: yields to the loop; outside: blocks
--                                    -- (in nginx: ngx.sleep, which yields, where allowed)
--   Loop.current()                   -- the loop running this coroutine, or nil
--
-- Transfers: inside a task, loop:perform(request) starts a marketo.core request
-- on the loop's libcurl multi handle and yields until it is done, so the
-- transfers of several tasks run at once (marketo.http does this for you).
local core = require("marketo.core")
local options = require("marketo.options")

local M = { _VERSION = "0.1.0" }

local Loop = {}
Loop.__index = Loop

local Task = {}
Task.__index = Task

local unpack = rawget(table, "unpack") or rawget(_G, "unpack")

-- Tells the loop's own yields from anything else a task might yield.
local YIELD = setmetatable({}, { __tostring = function() return "marketo.loop.YIELD" end })

-- Longest single wait with transfers in flight and no timer: wait() returns
-- as soon as a transfer ends anyway, this only bounds a lost wake-up.
local MAX_WAIT = 5

-- The task each coroutine runs (weak: a finished task is forgotten).
local task_of = setmetatable({}, { __mode = "k" })

local function pack(...)
    return { n = select("#", ...), ... }
end


--- new(opts) -> loop. opts.clock() (seconds, default core.monotonic) and
-- opts.sleep(s) (default core.sleep) are used for timers when no transfer is
-- in flight, so specs can fake time.
function M.new(opts)
    opts = options.check(opts, { clock = "function", sleep = "function" }, "new", 2)
    return setmetatable({
        clock = opts.clock or core.monotonic,
        sleep = opts.sleep or core.sleep,
        ready = {},    -- array of { task, packed values to resume it with }
        timers = {},   -- array of { at = seconds, task = task, seq = n }
        seq = 0,
        waiting = {},  -- request userdata -> the task waiting for it
        live = 0,      -- tasks not yet ended
        transfers = nil, -- the core loop, made at the first transfer
    }, Loop)
end

--- current() -> the loop whose task is running now, or nil.
function M.current()
    local task = task_of[coroutine.running() or false]
    return task and task.loop or nil
end

--- spawn(fn, ...) -> task; fn(...) starts at the loop's next turn.
function Loop:spawn(fn, ...)
    if type(fn) ~= "function" then
        error(("bad argument #1 to 'spawn' (function expected, got %s)"):format(type(fn)), 2)
    end
    local task = setmetatable({ co = coroutine.create(fn), loop = self, done = false }, Task)
    task_of[task.co] = task
    self.live = self.live + 1
    self.ready[#self.ready + 1] = { task, pack(...) }
    return task
end

--- task:result() -> what the task's function returned (nil before it ended).
function Task:result()
    if not self.values then return nil end
    return unpack(self.values, 1, self.values.n)
end

local function add_timer(self, task, seconds)
    self.seq = self.seq + 1
    self.timers[#self.timers + 1] = { at = self.clock() + seconds, task = task, seq = self.seq }
end

-- Runs a task until it yields or ends; a task's error is raised from here.
local function resume(self, task, values)
    local r = pack(coroutine.resume(task.co, unpack(values, 1, values.n)))
    if not r[1] then
        error(r[2], 0)
    elseif coroutine.status(task.co) == "dead" then
        task.done, task.values = true, pack(unpack(r, 2, r.n))
        self.live = self.live - 1
    elseif r[2] ~= YIELD then
        error("marketo.loop: a task yielded a value the loop does not know: " .. tostring(r[2]), 0)
    elseif r[3] == "sleep" then
        add_timer(self, task, r[4])
    end -- "transfer": the task is in self.waiting until its request is done
end

local function resume_ready(self)
    while #self.ready > 0 do
        local ready = self.ready
        self.ready = {}
        for _, entry in ipairs(ready) do resume(self, entry[1], entry[2]) end
    end
end

local function next_timer(self)
    local first
    for _, t in ipairs(self.timers) do
        if not first or t.at < first.at or (t.at == first.at and t.seq < first.seq) then
            first = t
        end
    end
    return first
end

local function fire_timers(self)
    local now, due, keep = self.clock(), {}, {}
    for _, t in ipairs(self.timers) do
        if t.at <= now then due[#due + 1] = t else keep[#keep + 1] = t end
    end
    table.sort(due, function(a, b)
        if a.at ~= b.at then return a.at < b.at end
        return a.seq < b.seq
    end)
    self.timers = keep
    for _, t in ipairs(due) do self.ready[#self.ready + 1] = { t.task, pack(true) } end
end

local function wait_transfers(self, timeout)
    for _, req in ipairs(self.transfers:wait(timeout)) do
        local task = self.waiting[req]
        self.waiting[req] = nil
        self.ready[#self.ready + 1] = { task, pack(req:result()) }
    end
end

-- Blocks until a transfer ends or the first timer is due.
local function wait_events(self)
    local timer = next_timer(self)
    local timeout = timer and math.max(0, timer.at - self.clock())
    if self.transfers and self.transfers:count() > 0 then
        wait_transfers(self, math.min(timeout or MAX_WAIT, MAX_WAIT))
    elseif timer then
        if timeout > 0 then self.sleep(timeout) end
    else
        error("marketo.loop: tasks are waiting on nothing", 0)
    end
    fire_timers(self)
end

local function run_tasks(self)
    resume_ready(self)
    while self.live > 0 do
        wait_events(self)
        resume_ready(self)
    end
end

-- After a task failed: abandon what the others had in flight.
local function reset(self)
    if self.transfers then self.transfers:close() end
    self.transfers, self.ready, self.timers, self.waiting, self.live = nil, {}, {}, {}, 0
end

--- run(): runs every task until all ended. A task's error (or a transfer
-- callback's) is raised from here, after the other tasks are abandoned.
function Loop:run()
    if self.running then error("marketo.loop: run() is already running", 2) end
    self.running = true
    local ok, err = pcall(run_tasks, self)
    self.running = false
    if not ok then
        reset(self)
        error(err, 0)
    end
    return true
end

--- perform(request) -> true | nil, msg, code: in a task of this loop, starts
-- a marketo.core request and yields until it is done.
function Loop:perform(req)
    local task = task_of[coroutine.running() or false]
    if not task or task.loop ~= self then
        error("marketo.loop: perform() outside a task of this loop", 2)
    end
    self.transfers = self.transfers or core.loop()
    local ok, msg, code = self.transfers:add(req)
    if not ok then return nil, msg, code end
    self.waiting[req] = task
    return coroutine.yield(YIELD, "transfer")
end

-- Outside any loop: in nginx, ngx.sleep yields the light thread (the default
-- sleep of a client, a budget or a limiter made without the runtime's must not
-- hold the worker); in nginx's phases that cannot yield, and elsewhere, core.sleep.
local function idle_sleep(s)
    local ngx = rawget(_G, "ngx")
    if ngx and ngx.sleep and pcall(ngx.sleep, s) then return end
    return core.sleep(s)
end

--- sleep(s): in a task, lets the other tasks run for s seconds (monotonic);
-- outside any loop, blocks with core.sleep (in nginx: ngx.sleep where it may).
function M.sleep(s)
    if type(s) ~= "number" or s < 0 then
        error(("bad argument #1 to 'sleep' (non-negative number expected, got %s)")
            :format(tostring(s)), 2)
    end
    if not M.current() then return idle_sleep(s) end
    return coroutine.yield(YIELD, "sleep", s)
end

return M
