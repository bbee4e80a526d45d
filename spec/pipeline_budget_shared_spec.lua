-- Runners sharing one instance's budget through a real redis-server, as
-- real processes (build/bin/marketo-bulk) against the real sandbox: Redis
-- gone mid-run and back, three runners at once, one killed with -9.
-- Every wait is on an event: the sandbox's jobs, the runner's output, the
-- keys in Redis, the sandbox's clock held still.
local cli = require("spec.support.cli")
local server = require("spec.support.redis")
local redis = require("marketo.redis")
local core = require("marketo.core")

-- n leads whose emails start with `who`, so that files never share a key.
local function leads(path, n, who)
    local out = { "email,firstName,lastName,company,leadScore" }
    for i = 1, n do
        out[#out + 1] = ("%s%d@example.com,First%d,Last%d,Acme,%d"):format(who, i, i, i, i % 100)
    end
    cli.write(path, table.concat(out, "\n") .. "\n")
end

-- The instance's keys in Redis: the sandbox's host.
local function prefix_of(sb)
    return "marketo-bulk:{" .. cli.env_of(sb).MARKETO_BASE_URL:match("^%a+://([^/]+)") .. "}:"
end

local function import_argv(src, budget)
    local argv = { "import", "leads", src, "--part-bytes", "30000", "--json" }
    if budget then argv[#argv + 1] = "--budget"; argv[#argv + 1] = budget end
    return argv
end

local function count(text, plain)
    local n, at = 0, 1
    while true do
        local s, e = text:find(plain, at, true)
        if not s then return n end
        n, at = n + 1, e + 1
    end
end

local function stored(sb)
    return cli.inspect(sb, "records/leads/count").count
end

-- The members of a set in Redis, sorted: which permits are held.
local function members(url, key)
    local conn = assert(redis.connect(url))
    local list = assert(conn:call("ZRANGE", key, 0, -1))
    conn:close()
    table.sort(list)
    return list
end

-- one redis-server for the runners of the file (a test that stops one has its own)
local r
setup(function() r = server.start() end)
teardown(function() r.stop() end)

describe("an import whose Redis goes away mid-run", function()
    -- jobs import at `speed` rows per second on the sandbox's clock: held
    -- still, the import stays mid-run for as long as the spec needs
    local ctx = cli.sandboxed({ speed = 1000 })
    local gone -- a redis-server of each test's own, stopped and started again
    before_each(function() gone = server.start() end)
    after_each(function() gone.stop() end)

    -- An import started with the clock held, once it holds both importing slots.
    local function mid_run(n, options)
        local sb, dir = ctx.sb, ctx.dir
        local src = dir .. "/leads.csv"
        leads(src, n, "gone")
        sb.freeze()
        local job = cli.start(import_argv(src, gone.url .. options), { env = cli.env_of(sb) })
        local key = prefix_of(sb) .. "importing"
        local held = cli.await(function()
            local list = members(gone.url, key)
            return #list == 2 and list
        end, "both importing slots taken")
        return job, src, held, key
    end

    it("pauses, says so once, and goes on when Redis is back on its port", function()
        local sb = ctx.sb
        local job, _, held, key = mid_run(3000, "?wait=120")
        gone.halt()
        local paused = ("budget: Redis at 127.0.0.1:%d unreachable, paused since ")
            :format(gone.port)
        cli.await(function() return job.stderr():find(paused, 1, true) end,
            "the pause said")
        local calls = #cli.inspect(sb, "log")
        gone.resume() -- an empty Redis: what the runner held, it holds again
        cli.await(function() return job.stderr():find("answers again", 1, true) end,
            "Redis found again")
        assert.same(held, members(gone.url, key))
        sb.thaw()
        local res = job:wait(120)
        assert.equal(0, res.status, res.err)
        assert.equal(1, count(res.err, paused), res.err)
        assert.equal(1, count(res.err, "answers again after"), res.err)
        assert.equal(3000, stored(sb))
        assert.is_true(#cli.inspect(sb, "log") > calls)
        local counters = cli.inspect(sb, "counters")
        for _, c in ipairs({ "606", "615", "1016" }) do
            assert.equal(0, counters["answered_" .. c], c)
        end
    end)

    it("stops cleanly at the URL's wait=, and the same command finishes later", function()
        local sb = ctx.sb
        local job, src = mid_run(3000, "?wait=1")
        gone.halt()
        local res = job:wait(120)
        assert.equal(4, res.status, res.err)
        assert.matches(("budget: Redis at 127.0.0.1:%d unreachable, paused since ")
            :format(gone.port), res.err, 1, true)
        -- from the scheduler's take or a call's (then the call is named first)
        assert.matches(("error: [^\n]-BUDGET:? Redis at 127%%.0%%.0%%.1:%d unreachable since "
            .. "[^\n]- UTC: stopped after waiting 1 s"):format(gone.port), res.out)
        assert.matches("not finished: run the same command again", res.out, 1, true)
        local journal = cli.read(src .. ".journal")
        assert.matches('"ev":"stopped"', journal, 1, true)
        gone.resume()
        sb.thaw()
        local again = cli.run(import_argv(src, gone.url), { env = cli.env_of(sb) })
        assert.equal(0, again.status, again.err)
        assert.equal(3000, stored(sb))
    end)
end)

describe("three runners importing into one instance at once", function()
    -- Each file is 8 parts: three runners on budgets of their own would put
    -- 24 jobs in a queue of 10. The sandbox keeps Marketo's limits (2
    -- importing, 10 queued, then 1016) unless a test lets its queue grow, so
    -- that its timeline shows what the runners asked for.
    local ctx = cli.sandboxed({ speed = 2000 })

    -- The most jobs importing and queued (Queued + Importing) at any moment,
    -- from the sandbox's timeline (its own clock): ends before starts at one
    -- instant, as the sandbox frees a slot before the next job takes it.
    local function timeline(sb)
        local events = {}
        for _, j in ipairs(cli.inspect(sb, "jobs")) do
            events[#events + 1] = { t = j.queuedAt, queued = 1, importing = 0 }
            if j.startedAt then
                events[#events + 1] = { t = j.startedAt, queued = 0, importing = 1 }
            end
            if j.finishedAt then
                events[#events + 1] = { t = j.finishedAt, queued = -1,
                    importing = j.startedAt and -1 or 0 }
            end
        end
        table.sort(events, function(a, b)
            if a.t ~= b.t then return a.t < b.t end
            return a.queued + a.importing < b.queued + b.importing
        end)
        local most, now = { queued = 0, importing = 0 }, { queued = 0, importing = 0 }
        for _, e in ipairs(events) do
            for _, k in ipairs({ "queued", "importing" }) do
                now[k] = now[k] + e[k]
                most[k] = math.max(most[k], now[k])
            end
        end
        return most
    end

    local function three(budget, max_queue)
        local sb, dir = ctx.sb, ctx.dir
        sb.control({ max_queue = max_queue or 10 })
        local jobs = {}
        for i, who in ipairs({ "ann", "bob", "cy" }) do
            local src = ("%s/%s.csv"):format(dir, who)
            leads(src, 4000, who)
            jobs[i] = cli.start(import_argv(src, budget), { env = cli.env_of(sb) })
        end
        local statuses = {}
        for i, job in ipairs(jobs) do statuses[i] = job:wait(300).status end
        local counters = cli.inspect(sb, "counters")
        local most = timeline(sb)
        print(("%s budgets, queue of %d: at most %d importing, %d queued; 606: %d, 615: %d, "
            .. "1016: %d; %d stored"):format(budget and "shared" or "local", max_queue or 10,
            most.importing, most.queued, counters.answered_606, counters.answered_615,
            counters.answered_1016, stored(sb)))
        return most, counters, statuses
    end

    it("sharing a Redis budget keep the instance's limits at every moment", function()
        local most, counters, statuses = three(r.url)
        assert.same({ 0, 0, 0 }, statuses)
        assert.is_true(most.importing <= 2, "importing at once: " .. most.importing)
        assert.is_true(most.queued <= 10, "queued at once: " .. most.queued)
        for _, c in ipairs({ "606", "615", "1016" }) do
            assert.equal(0, counters["answered_" .. c], c)
        end
        assert.equal(12000, stored(ctx.sb))
    end)

    it("(on budgets of their own they are refused with 1016)", function()
        local _, counters = three(nil)
        assert.is_true(counters.answered_1016 > 0, "1016 answers: " .. counters.answered_1016)
    end)

    it("(on budgets of their own they queue more than 10 where the queue lets them)", function()
        local most = three(nil, 30)
        assert.is_true(most.queued > 10, "queued at once: " .. most.queued)
    end)
end)

describe("a runner killed with -9 while it holds an importing slot", function()
    local ctx = cli.sandboxed({ speed = 1000 })

    it("frees it within its lease, and its import resumes from the journal", function()
        local sb, dir = ctx.sb, ctx.dir
        local lease, margin = 2, 5
        local budget = r.url .. "?lease=" .. lease
        local key = prefix_of(sb) .. "importing"
        local first, second = dir .. "/first.csv", dir .. "/second.csv"
        leads(first, 2000, "first")
        leads(second, 2000, "second")
        sb.freeze() -- the jobs stay in Marketo's queue: the slots stay taken
        local killed = cli.start(import_argv(first, budget), { env = cli.env_of(sb) })
        local held = cli.await(function()
            local list = members(r.url, key)
            return #list == 2 and list
        end, "the first runner holding both importing slots")
        local parts = #cli.inspect(sb, "jobs")
        local other = cli.start(import_argv(second, budget), { env = cli.env_of(sb) })
        -- the second runner's jobs are in the queue, waiting for a slot
        cli.await(function() return #cli.inspect(sb, "jobs") > parts end, "the second's uploads")
        assert.same(held, members(r.url, key))
        killed:signal("KILL")
        local t0 = core.monotonic()
        assert.equal(137, killed:wait(60).status)
        cli.await(function()
            for _, id in ipairs(members(r.url, key)) do
                if id ~= held[1] and id ~= held[2] then return true end
            end
        end, "the second runner taking a slot")
        local waited = core.monotonic() - t0
        print(("an importing slot of a runner killed with -9 taken by another after %.2f s "
            .. "(lease %d s)"):format(waited, lease))
        assert.is_true(waited <= lease + margin, ("%.2f s"):format(waited))
        sb.thaw()
        local res = other:wait(120)
        assert.equal(0, res.status, res.err)
        -- the killed import, from its journal: the same command
        local again = cli.run(import_argv(first, budget), { env = cli.env_of(sb) })
        assert.equal(0, again.status, again.err)
        assert.equal(4000, stored(sb))
        assert.equal(0, cli.inspect(sb, "counters").answered_1016)
    end)
end)
