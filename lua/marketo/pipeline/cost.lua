--- marketo.pipeline.cost: what an import will spend of Marketo's API calls
-- and how long it will take, from its plan, before anything is sent.
--
--   local c = cost.estimate({ 40000, 40000, 1200 })   -- data rows of each part
--   c.creates, c.files (at most), c.polls = { low, high }, c.calls = { low, high },
--   c.seconds = { low, high }, c.speed = { low, high } (rows per second per job)
--   cost.text(c) -> "cost: ..." lines for people
--
-- Marketo does not publish how fast it imports; the range is a stated
-- assumption (M.SPEED). The jobs run `importing` at a time (Marketo: 2); the
-- status calls follow the pipeline's own schedule (marketo.poll), so the
-- estimate spends what the scheduler will.
local poll = require("marketo.poll")

local M = {}

--- Rows per second one job imports: the fast and the slow end of the range
-- the estimate states (UNCONFIRMED: an assumption, see doc/internals.md).
M.SPEED = { 2000, 200 }
M.IMPORTING = 2

-- Status calls one job takes, queued from 0 until `start`, importing `rows`
-- until `finish`, polled on marketo.poll's schedule.
local function polls_of(rows, start, finish, speed)
    local p = poll.new({ rows = rows, now = 0 })
    local t, info, n = 0, nil, 0
    while true do
        local delay = p:next(info, t)
        if not delay then return n end
        t = t + delay
        n = n + 1
        if t >= finish then return n end
        if t < start then
            info = { status = "Queued" }
        else
            info = { status = "Importing", processed = math.floor((t - start) * speed) }
        end
    end
end

-- One speed: the calls and the time of the whole plan.
local function run_at(rows_of_parts, speed, importing)
    local free, polls, last = {}, 0, 0
    for i = 1, importing do free[i] = 0 end
    for _, rows in ipairs(rows_of_parts) do
        local slot = 1
        for i = 2, importing do if free[i] < free[slot] then slot = i end end
        local start = free[slot]
        local finish = start + math.max(rows, 1) / speed
        free[slot] = finish
        if finish > last then last = finish end
        polls = polls + polls_of(rows, start, finish, speed)
    end
    return polls, last
end

--- estimate(rows_of_parts, opts) -> the cost (see the header). opts: speed
-- ({ fast, slow } rows/s per job), importing (jobs at once).
function M.estimate(rows_of_parts, opts)
    opts = opts or {}
    local speed = opts.speed or M.SPEED
    local importing = opts.importing or M.IMPORTING
    local n = #rows_of_parts
    local fast_polls, fast_s = run_at(rows_of_parts, speed[1], importing)
    local slow_polls, slow_s = run_at(rows_of_parts, speed[2], importing)
    -- a token lives an hour: one identity call per hour begun
    local tokens_low, tokens_high = math.ceil(fast_s / 3600) + 1, math.ceil(slow_s / 3600) + 1
    return { parts = n, creates = n, files = 2 * n, polls = { fast_polls, slow_polls },
        calls = { n + fast_polls + tokens_low, n + slow_polls + 2 * n + tokens_high },
        seconds = { fast_s, slow_s }, speed = speed }
end

local function duration(s)
    if s < 90 then return ("%d s"):format(math.ceil(s)) end
    if s < 5400 then return ("%d min"):format(math.ceil(s / 60)) end
    return ("%.1f h"):format(s / 3600)
end

local function count(n)
    local s = tostring(math.floor(n))
    local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
    return (out:gsub("^,", ""))
end

--- The estimate for people: two lines.
function M.text(c)
    return ("cost: %s to %s API calls (%s creates, %s to %s status polls, up to %s result "
        .. "files, tokens)\ntime: %s to %s, at %s to %s rows/s per job, %d jobs at once\n")
        :format(count(c.calls[1]), count(c.calls[2]), count(c.creates), count(c.polls[1]),
            count(c.polls[2]), count(c.files), duration(c.seconds[1]), duration(c.seconds[2]),
            count(c.speed[2]), count(c.speed[1]), M.IMPORTING)
end

--- quota(c, used, daily) -> nil | message: the refusal when the most this
-- import may spend is more than what is left of today's quota.
function M.quota(c, used, daily)
    local left = daily - used
    if c.calls[2] <= left then return nil end
    return ("QUOTA: this import may spend up to %s API calls, and the instance has %s left "
        .. "today (%s of %s used; --daily-quota); run it after Marketo's day ends (midnight "
        .. "US Central), or pass --ignore-quota"):format(count(c.calls[2]),
        count(math.max(left, 0)), count(used), count(daily))
end

return M
