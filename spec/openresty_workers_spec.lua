-- The OpenResty example with four workers, each running an import into one
-- sandbox at once: the instance's limits hold when the workers share the
-- budget (a lua_shared_dict, or Redis), and every worker keeps answering
-- while its import runs. The same four imports on budgets of their own break
-- the limits: the spec can fail.
local socket = require("socket")
local sandbox = require("spec.support.sandbox")
local nginx = require("spec.support.nginx")
local files = require("spec.support.files")

local WORKERS = 4
local ROWS = 3200         -- rows per import
local PART_BYTES = 15000  -- about 400 rows a part: eight jobs per import, 32 in all
local SPEED = 2000        -- rows per second per job in the sandbox
local LATENCY = 0.2       -- seconds the sandbox holds every bulk answer
-- Marketo's 100 calls per 20 s, scaled down so that the imports (about 86
-- calls in all) wait for the call window within seconds: the sandbox refuses
-- the 41st call in 4 s (606) and the imports are given the same budget.
local CALLS, WINDOW = 40, 4
-- The longest any answer of the stream may take (measured: see the README).
-- A blocking wait for a slot or the call window would hold a worker for
-- seconds; what does run on the worker (planning, journal fsyncs) takes
-- milliseconds. Shorter blocking waits (a poll interval) meet the tripwires.
local BOUND = 1

-- The example's config with four workers, and tripwires: in a worker,
-- marketo.core's blocking calls (sleep, a libcurl request or loop, waiting
-- for a child) and LuaSocket raise and log, so a wait that does not yield
-- fails the import instead of passing unseen.
local function conf_text()
    local text = assert(files.read(nginx.ROOT .. "/examples/openresty/nginx.conf"))
    local n
    text, n = text:gsub("\nworker_processes 1;", "\nworker_processes " .. WORKERS .. ";")
    assert(n == 1, "no worker_processes line in the example's nginx.conf")
    text, n = text:gsub("\n    lua_shared_dict marketo_budget 1m;\n", [[%0
    init_worker_by_lua_block {
        local function trip(what)
            return function()
                local msg = "blocking " .. what .. " in an nginx worker"
                ngx.log(ngx.ERR, msg, ": ", debug.traceback())
                error(msg, 2)
            end
        end
        local core = require("marketo.core")
        for _, name in ipairs({ "sleep", "request", "loop", "wait" }) do
            core[name] = trip("core." .. name)
        end
        package.loaded.socket = setmetatable({}, { __index = function(_, k)
            return trip("LuaSocket (socket." .. k .. ")")
        end })
    }
]])
    assert(n == 1, "no lua_shared_dict marketo_budget in the example's nginx.conf")
    return text
end

local function write_leads(path, first)
    local f = assert(io.open(path, "wb"))
    f:write("email,firstName,lastName\n")
    for i = first, first + ROWS - 1 do
        f:write(("lead%d@example.com,First%d,Last%d\n"):format(i, i, i))
    end
    f:close()
end

-- Starts one import on worker k (ngx.worker.id()): connections land on the
-- workers by the kernel's hash (reuseport), so ask again until k answers.
local function start_on(n, k, file)
    for _ = 1, 500 do
        local status, body = n.request("POST", ("/imports?file=%s&lookup_field=email"
            .. "&part_bytes=%d&poll=0.2&calls=%d&window=%d&worker=%d")
            :format(file, PART_BYTES, CALLS, WINDOW, k), 10)
        if status == 202 then return sandbox.decode(body).id end
        assert(status == 421, ("POST /imports: %s %s"):format(tostring(status), tostring(body)))
    end
    error("worker " .. k .. " never took the POST")
end

-- GET /imports until every import has ended, each request on a new connection
-- (so spread over the workers). An answer counts for its worker while the
-- import that worker runs is still running in the same answer. enough(),
-- asked every 100 answers, true: every import is asked to stop.
local function stream_until_done(n, deadline, enough)
    local s = { answers = 0, worst = 0, by_worker = {}, failed = 0 }
    local stopping = false
    while true do
        local t0 = socket.gettime()
        local status, body = n.request("GET", "/imports", 10)
        local took = socket.gettime() - t0
        s.worst = math.max(s.worst, took) -- a request that timed out was slow too
        local decoded, doc = pcall(sandbox.decode, status == 200 and body or "")
        if not decoded then
            s.failed = s.failed + 1
        else
            s.answers = s.answers + 1
            local running = 0
            for _, p in ipairs(doc.imports) do
                local busy = p.state == "planning" or p.state == "running"
                    or p.state == "stopping"
                if busy then running = running + 1 end
                if busy and p.worker == doc.worker then
                    local w = s.by_worker[doc.worker] or { answers = 0, worst = 0 }
                    s.by_worker[doc.worker] = w
                    w.answers, w.worst = w.answers + 1, math.max(w.worst, took)
                end
            end
            if running == 0 then return s, doc.imports end
            if enough and not stopping and s.answers % 100 == 0 and enough() then
                stopping = true
                for _, p in ipairs(doc.imports) do
                    assert.equal(202, (n.request("POST", "/imports/" .. p.id .. "/stop", 10)))
                end
            end
        end
        assert(socket.gettime() < deadline, "the imports did not end in time")
    end
end

-- The sandbox's jobs replayed on its clock: the most importing, and the most
-- in its queue (Queued + Importing), at any moment.
local function replay(jobs)
    local events = {}
    for _, j in ipairs(jobs) do
        -- { when, change of importing, change of the queue }
        events[#events + 1] = { j.queuedAt, 0, 1 }
        if j.startedAt then events[#events + 1] = { j.startedAt, 1, 0 } end
        events[#events + 1] = { j.finishedAt or math.huge, j.startedAt and -1 or 0, -1 }
    end
    -- at one instant, ends before starts: a slot freed and taken again is one
    table.sort(events, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        return a[2] + a[3] < b[2] + b[3]
    end)
    local importing, queued, most_importing, most_queued = 0, 0, 0, 0
    for _, e in ipairs(events) do
        importing, queued = importing + e[2], queued + e[3]
        most_importing = math.max(most_importing, importing)
        most_queued = math.max(most_queued, queued)
    end
    return most_importing, most_queued
end

-- The sandbox's log: the calls, and the most in any one rate window.
local function busiest_window(log)
    local t = {}
    for _, e in ipairs(log) do t[#t + 1] = e.time / 1000 end
    table.sort(t)
    local most, first = 0, 1
    for i = 1, #t do
        while t[i] - t[first] >= WINDOW do first = first + 1 end
        most = math.max(most, i - first + 1)
    end
    return #t, most
end

local function stored(leads)
    local seen, n = {}, 0
    for _, lead in ipairs(leads) do
        if not seen[lead.email] then n = n + 1 end
        seen[lead.email] = true
    end
    return seen, n
end

describe("examples/openresty with four workers, each running an import", function()
    local sb, dir

    setup(function()
        assert(os.execute(("make -s -C '%s' LUA=luajit build/luajit/marketo/core.so")
            :format(nginx.ROOT)) == true, "could not build build/luajit/marketo/core.so")
        sb = sandbox.start{ speed = SPEED, latency = LATENCY, rate_limit = CALLS,
            rate_window = WINDOW }
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p '" .. dir .. "/work'"))
        for k = 1, WORKERS do write_leads(("%s/leads%d.csv"):format(dir, k), (k - 1) * ROWS + 1) end
    end)

    -- GET /__sandbox/WHAT, decoded
    local function inspect(what)
        local body, status = sb.get("/__sandbox/" .. what)
        assert(status == 200, ("GET /__sandbox/%s: %s %s"):format(what, tostring(status),
            tostring(body)))
        return sandbox.decode(body)
    end

    teardown(function()
        if sb then sb.stop() end
        if dir then os.execute("rm -rf '" .. dir .. "'") end
    end)

    -- Four imports, one per worker, on `budget` (MARKETO_BUDGET), while a stream
    -- of GET /imports is answered: what the sandbox and the stream saw. enough:
    -- as stream_until_done's.
    local function four_imports(budget, enough)
        sb.reset()
        local n = nginx.start{ conf_text = conf_text(), env = {
            MARKETO_BASE_URL = sb.base_url, MARKETO_CLIENT_ID = sb.client_id,
            MARKETO_CLIENT_SECRET = sb.client_secret, MARKETO_IMPORT_DIR = dir,
            MARKETO_WORK_DIR = dir .. "/work", MARKETO_BUDGET = budget,
        } }
        finally(function()
            n.stop()
            os.execute("rm -rf '" .. n.prefix .. "'")
        end)
        local started = socket.gettime()
        for k = 1, WORKERS do start_on(n, k - 1, ("leads%d.csv"):format(k)) end
        local s, imports = stream_until_done(n, started + 120, enough)
        local took = socket.gettime() - started
        local most_importing, most_queued = replay(inspect("jobs"))
        local c = inspect("counters")
        local calls, busiest = busiest_window(inspect("log"))
        local pids, per_worker = {}, {}
        for _, p in ipairs(imports) do
            pids[p.worker] = true
            local w = s.by_worker[p.worker] or { answers = 0, worst = 0 }
            per_worker[#per_worker + 1] = ("%d (%.3f s)"):format(w.answers, w.worst)
        end
        local npids = 0
        for _ in pairs(pids) do npids = npids + 1 end
        print(("openresty workers, budget %s: %d imports on %d workers in %.1f s; sandbox: "
            .. "at most %d importing, %d queued, %d calls (%d in the busiest %d s); 606: %d, "
            .. "615: %d, 1016: %d; GET /imports answered %d times, slowest %.3f s; per worker "
            .. "while its import ran: %s")
            :format(budget, #imports, npids, took, most_importing, most_queued, calls, busiest,
                WINDOW,
                c.answered_606, c.answered_615, c.answered_1016, s.answers, s.worst,
                table.concat(per_worker, ", ")))
        return { n = n, s = s, imports = imports, workers = npids, importing = most_importing,
            queued = most_queued, counters = c, calls = calls, busiest = busiest }
    end

    local function within_limits(budget)
        local r = four_imports(budget)
        for _, p in ipairs(r.imports) do
            assert.equal("done", p.state, p.error or r.n.log())
            assert.same({ rows = ROWS, processed = ROWS, failed = 0 },
                { rows = p.rows, processed = p.processed, failed = p.failed })
        end
        assert.equal(WORKERS, r.workers)
        assert.is_true(r.importing <= 2, r.importing .. " importing at once")
        assert.is_true(r.queued <= 10, r.queued .. " in the queue at once")
        assert.same({ 0, 0, 0 }, { r.counters.answered_606, r.counters.answered_615,
            r.counters.answered_1016 })
        assert.is_true(r.queued > 2, "the imports never queued together: no test")
        -- the window was full: the imports waited for the call budget
        assert.is_true(r.calls > CALLS and r.busiest >= CALLS - 2,
            ("%d calls, %d in the busiest window"):format(r.calls, r.busiest))
        local seen, count = stored(inspect("records/leads"))
        assert.equal(WORKERS * ROWS, count)
        for i = 1, WORKERS * ROWS do
            assert(seen[("lead%d@example.com"):format(i)], "lead" .. i .. " not stored")
        end
        -- the stream: no failed request, none slower than BOUND, and every worker
        -- answered while running its import
        assert.equal(0, r.s.failed)
        assert.is_true(r.s.worst < BOUND, ("an answer took %.3f s"):format(r.s.worst))
        for _, p in ipairs(r.imports) do
            local w = r.s.by_worker[p.worker]
            assert.is_true(w ~= nil and w.answers >= 20, ("worker %d answered %d times during "
                .. "its import"):format(p.worker, w and w.answers or 0))
        end
        assert.is_nil(r.n.log():find("%[error%]"), r.n.log())
    end

    it("keep the instance's limits through a lua_shared_dict, answering all along", function()
        within_limits("shdict:marketo_budget")
    end)

    it("keep the instance's limits through Redis, answering all along", function()
        local r = require("spec.support.redis").start()
        finally(r.stop)
        within_limits(r.url)
    end)

    -- Stopped at the first refusal, or run to the end without one.
    local function exceeded()
        local c = inspect("counters")
        return c.answered_606 + c.answered_615 + c.answered_1016 > 0
    end

    it("(each on a budget of its own, they would not)", function()
        local r = four_imports("local", exceeded)
        assert.equal(WORKERS, r.workers)
        local c = r.counters
        assert.is_true(c.answered_606 + c.answered_615 + c.answered_1016 > 0,
            "no limit exceeded")
    end)
end)
