-- bench/pipeline's shared-budget section (issue 15): three runners sharing a
-- Redis budget import the same total rows as one runner, at once, into one
-- sandbox: their wall time against the ideal Marketo's limits allow (the
-- instance's two importing slots kept busy across runners). Then the cost of
-- one acquire/release round trip of a slot against Redis and against the
-- local backend, and what a Redis that answers slowly costs the event loop
-- with our client and with a blocking LuaSocket one (lua-redis's way).
--
-- dofile'd by bench/pipeline.lua, which passes what it measured (ideal and
-- the single runner's wall time); run alone (bench/pipeline_shared), it
-- measures its own single runner side by side first.
local spawn = require("marketo.sandbox.spawn")
local json = require("marketo.json")
local core = require("marketo.core")
local socket = require("socket")

local function median(list)
    table.sort(list)
    local n = #list
    if n % 2 == 1 then return list[(n + 1) / 2] end
    return (list[n / 2] + list[n / 2 + 1]) / 2
end

local function free_port()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return port
end

-- A redis-server of the bench's own: loopback, a free port, no persistence.
local function start_redis(kit, dir)
    local port = free_port()
    kit.sh(("redis-server --bind 127.0.0.1 --port %d --dir %s --save '' --appendonly no "
        .. "--enable-debug-command local --daemonize yes --pidfile %s/redis.pid "
        .. "--logfile %s/redis.log"):format(port, dir, dir, dir))
    local url = ("redis://127.0.0.1:%d/0"):format(port)
    for _ = 1, 500 do
        local conn = require("marketo.redis").connect(url, { sleep = core.sleep })
        if conn and conn:call("PING") == "PONG" then conn:close(); return url, port end
        core.sleep(0.02)
    end
    error("redis-server did not start: " .. kit.sh("cat " .. dir .. "/redis.log"))
end

-- The wall time of a shell command line (which runs the importers).
local function wall_of(kit, line)
    local t0 = core.monotonic()
    local out = kit.sh(line .. "; echo EXIT $?")
    local wall = core.monotonic() - t0
    return wall, out
end

-- One slot taken and given back, n times, in a loop task as the runner does:
-- the median and the 90th percentile of one round trip, in ms.
local function round_trips(url, n)
    local b = assert(require("marketo.pipeline.budget").new({ url = url,
        instance = "bench-" .. core.getpid() }))
    local loop = require("marketo.loop").new()
    local times = {}
    loop:spawn(function()
        for i = 1, n do
            local t0 = core.monotonic()
            local p = assert(b:try("queued"))
            b:release("queued", p)
            times[i] = (core.monotonic() - t0) * 1000
        end
    end)
    loop:run()
    b:close()
    local p90 = (function()
        local copy = { table.unpack(times) }
        table.sort(copy)
        return copy[math.ceil(#copy * 0.9)]
    end)()
    return median(times), p90
end

-- While Redis takes `slow` seconds over one answer (DEBUG SLEEP from another
-- connection), how many 10 ms ticks another task of the loop gets: with our
-- client (it waits on the loop's sleep) and with a blocking LuaSocket
-- socket, which is how lua-redis talks to Redis.
local function stall(port, slow)
    local loop = require("marketo.loop")
    local function ticks_during(ask)
        local l = loop.new()
        local ticks, done = 0, false
        l:spawn(function()
            local sleeper = socket.tcp()
            sleeper:settimeout(5)
            assert(sleeper:connect("127.0.0.1", port))
            sleeper:send(("DEBUG SLEEP %g\r\n"):format(slow))
            loop.sleep(0.01) -- the server is asleep now
            ask()
            done = true
            sleeper:receive("*l")
            sleeper:close()
        end)
        l:spawn(function()
            while not done do loop.sleep(0.01); ticks = ticks + 1 end
        end)
        l:run()
        return ticks
    end
    local ours = ticks_during(function()
        local conn = assert(require("marketo.redis").connect(
            ("redis://127.0.0.1:%d/0"):format(port)))
        assert(conn:call("PING") == "PONG")
        conn:close()
    end)
    local blocking = ticks_during(function()
        local s = socket.tcp()
        s:settimeout(5) -- lua-redis: LuaSocket's blocking calls, a timeout at most
        assert(s:connect("127.0.0.1", port))
        s:send("PING\r\n")
        assert(s:receive("*l") == "+PONG")
        s:close()
    end)
    return ours, blocking
end

local function measure(ctx)
    local kit, rows, speed, bin = ctx.kit, ctx.rows, ctx.speed, ctx.bin
    local dir = kit.sh("mktemp -d"):gsub("%s+$", "")
    local url, port = start_redis(kit, dir)
    local per = math.floor(rows / 3)
    local files = {}
    for i, who in ipairs({ "ann", "bob", "cy" }) do
        files[i] = ("%s/%s.csv"):format(dir, who)
        kit.leads(files[i], i == 3 and rows - 2 * per or per, who)
    end
    local sb = spawn.spawn({ bin = bin, config = { speed = speed }, max_lifetime = 3600 })
    local function stored()
        return json.decode(sb.get("/__sandbox/records")).leads
    end

    local ideal, single = ctx.ideal, ctx.single
    if not ideal then -- alone: one runner on the rows of the three files, first
        local all = dir .. "/all.csv"
        kit.leads(all, rows)
        local events = dir .. "/single.events"
        single = wall_of(kit, ("cd %s && env %s %s import leads all.csv --json 2>%s")
            :format(dir, kit.env_of(sb), bin, events))
        local first_sending, first_uploaded
        for line in io.lines(events) do
            local ev = line:sub(1, 1) == "{" and json.decode(line)
            if ev and ev.ev == "sending" and not first_sending then first_sending = ev.t end
            if ev and ev.ev == "uploaded" and not first_uploaded then first_uploaded = ev.t end
        end
        assert(stored() == rows, "the single runner did not store every row")
        ideal = rows / (2 * speed) + (first_uploaded - first_sending)
        sb.reset()
    end

    local line = {}
    for i, f in ipairs(files) do
        line[i] = ("(cd %s && env %s %s import leads %s --budget %s --quiet >%s.out 2>&1; "
            .. "echo $? >%s.status) &"):format(dir, kit.env_of(sb), bin, f, url, f, f)
    end
    local wall = wall_of(kit, table.concat(line, " ") .. " wait")
    for _, f in ipairs(files) do
        local status = kit.sh("cat " .. f .. ".status"):gsub("%s+$", "")
        assert(status == "0", "a runner failed: " .. kit.sh("cat " .. f .. ".out"))
    end
    assert(stored() == rows, "the three runners did not store every row")
    local counters = json.decode(sb.get("/__sandbox/counters"))
    sb.stop()

    local redis_ms, redis_p90 = round_trips(url, 5000)
    local local_ms, local_p90 = round_trips("local", 5000)
    local ours, blocking = stall(port, 0.2)
    kit.sh(("redis-cli -p %d shutdown nosave >/dev/null 2>&1; rm -rf '%s'"):format(port, dir))

    print()
    print(("three runners sharing a Redis budget, %d rows in all (%d + %d + %d), same sandbox")
        :format(rows, per, per, rows - 2 * per))
    print(("%-34s %9s %9s"):format("", "seconds", "ratio"))
    print(("%-34s %9.2f %9s"):format("ideal (rows/(2*speed) + 1st upload)", ideal, "1.00"))
    if single then
        print(("%-34s %9.2f %9.3f"):format("one runner, all the rows", single, single / ideal))
    end
    print(("%-34s %9.2f %9.3f  (target <= 1.10)"):format("three runners, one Redis budget",
        wall, wall / ideal))
    print(("  sandbox: at most %d importing, %d in the queue; 606: %d, 615: %d, 1016: %d")
        :format(counters.max_importing, counters.max_queue_depth, counters.answered_606,
            counters.answered_615, counters.answered_1016))
    print(("one slot taken and given back (median of 5000; 90th percentile): "
        .. "Redis %.3f ms (%.3f), local %.4f ms (%.4f)"):format(redis_ms, redis_p90, local_ms,
        local_p90))
    print(("a Redis answering 0.2 s late: another task of the loop ticks (every 10 ms) "
        .. "%d times with our client, %d with a blocking LuaSocket client"):format(ours, blocking))
end

-- run alone (bench/pipeline_shared): arg[1] is the project's root
if arg and arg[0] and arg[0]:find("pipeline_shared%.lua$") then
    local root = arg[1] or "."
    measure({ kit = dofile(root .. "/bench/runner_kit.lua"),
        bin = root .. "/build/bin/marketo-bulk", rows = tonumber(os.getenv("ROWS")) or 2000000,
        speed = tonumber(os.getenv("SPEED")) or 12000 })
    return 0
end
return measure
