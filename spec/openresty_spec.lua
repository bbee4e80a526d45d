-- The OpenResty example end to end: nginx (one worker) runs the admin app of
-- examples/openresty, which imports a file into a sandbox on cosockets, while
-- this spec keeps firing requests at /ping on the same worker.
local socket = require("socket")
local sandbox = require("spec.support.sandbox")
local nginx = require("spec.support.nginx")

local ROWS = 3000
local SPEED = 1000        -- rows per second per job: the import takes a few seconds
local PART_BYTES = 30000  -- about 800 rows a part: four jobs, two at a time
-- Seconds the sandbox holds every bulk answer: each HTTP call of the import is
-- in flight at least that long, and a worker blocked by its transport could
-- answer nothing then.
local LATENCY = 0.3

local function build_luajit_core()
    local ok = os.execute(("make -s -C '%s' LUA=luajit build/luajit/marketo/core.so")
        :format(nginx.ROOT))
    assert(ok == true, "could not build build/luajit/marketo/core.so")
end

local function write_leads(dir)
    local f = assert(io.open(dir .. "/leads.csv", "wb"))
    f:write("email,firstName,lastName\n")
    for i = 1, ROWS do f:write(("lead%d@example.com,First%d,Last%d\n"):format(i, i, i)) end
    f:close()
end

local function progress(n, id)
    -- A worker that the import blocks does not answer this either.
    local status, body = n.request("GET", "/imports/" .. id, 10)
    assert(status == 200, ("GET /imports/%s: %s %s"):format(id, tostring(status), body))
    return sandbox.decode(body)
end

-- Pings until the import ends; a ping counts as answered during the import
-- when a progress request sent after its answer still shows the import going.
-- counts.sent: { when sent, seconds to the answer } of every request.
local function ping_while_importing(n, id, deadline)
    local counts = { during = 0, failed = 0, polls = 0, times = {}, worst = 0, sent = {} }
    local pending = {}
    local function timed(fn, ...)
        local t0 = socket.gettime()
        local a, b = fn(...)
        counts.worst = math.max(counts.worst, socket.gettime() - t0)
        counts.sent[#counts.sent + 1] = { t0, socket.gettime() - t0 }
        return a, b
    end
    while true do
        local status = timed(n.request, "GET", "/ping", 10)
        if status == 200 then
            pending[#pending + 1] = socket.gettime()
        else
            counts.failed = counts.failed + 1
        end
        local p = timed(progress, n, id)
        counts.polls = counts.polls + 1
        if p.state ~= "planning" and p.state ~= "running" then return counts, p end
        for _, t in ipairs(pending) do counts.times[#counts.times + 1] = t end
        counts.during, pending = counts.during + #pending, {}
        assert(socket.gettime() < deadline, "the import did not end in time")
    end
end

-- Pings answered while one of the import's bulk calls sat in the sandbox: the
-- log stamps each call (ms) when its request has arrived whole, and the answer
-- leaves LATENCY s later. A margin keeps clock skew out of it.
local function pings_inside_calls(times, sb)
    local body, status = sb.get("/__sandbox/log")
    assert.equal(200, status)
    local windows = {}
    for _, e in ipairs(sandbox.decode(body)) do
        if e.path:find("^/bulk/") then
            windows[#windows + 1] = { e.time / 1000 + 0.05, e.time / 1000 + LATENCY - 0.05 }
        end
    end
    local inside = 0
    for _, t in ipairs(times) do
        for _, w in ipairs(windows) do
            if t > w[1] and t < w[2] then inside = inside + 1; break end
        end
    end
    return inside, #windows
end

local function stored_emails(sb)
    local body, status = sb.get("/__sandbox/records/leads")
    assert.equal(200, status)
    local seen = {}
    for _, lead in ipairs(sandbox.decode(body)) do seen[lead.email] = true end
    return seen
end

describe("examples/openresty in nginx", function()
    local sb, dir

    setup(function()
        build_luajit_core()
        sb = sandbox.start{ speed = SPEED, latency = LATENCY }
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p '" .. dir .. "/work'"))
        write_leads(dir)
    end)

    teardown(function()
        if sb then sb.stop() end
        if dir then os.execute("rm -rf '" .. dir .. "'") end
    end)

    -- nginx with the example app, pointed at the sandbox; stopped when the test ends.
    local function start_app()
        local n = nginx.start{ env = {
            MARKETO_BASE_URL = sb.base_url, MARKETO_CLIENT_ID = sb.client_id,
            MARKETO_CLIENT_SECRET = sb.client_secret, MARKETO_IMPORT_DIR = dir,
            MARKETO_WORK_DIR = dir .. "/work",
        } }
        finally(function()
            n.stop()
            os.execute("rm -rf '" .. n.prefix .. "'")
        end)
        return n
    end

    it("imports a file in the background while the worker keeps answering", function()
        local n = start_app()
        local started = socket.gettime()
        local status, body = n.request("POST", ("/imports?file=leads.csv&lookup_field=email"
            .. "&part_bytes=%d&poll=0.2"):format(PART_BYTES))
        assert.equal(202, status, body)
        local id = sandbox.decode(body).id

        local counts, p = ping_while_importing(n, id, started + 60)
        local took = socket.gettime() - started
        local inside, calls = pings_inside_calls(counts.times, sb)
        print(("openresty: %d /ping answered during the %.1f s import (%d progress polls), "
            .. "%d of them while one of its %d bulk calls was in flight; %d failed; "
            .. "%d rows in %d parts"):format(counts.during, took, counts.polls, inside, calls,
            counts.failed, p.processed, p.parts))

        assert.equal("done", p.state, p.error or n.log())
        assert.equal(0, counts.failed)
        -- A worker blocked by the import answers none until it ends (or one
        -- between blocking calls); a free one answers hundreds a second.
        assert.is_true(counts.during >= 100, "only " .. counts.during .. " answered")
        -- A blocking transport would leave the worker free only between calls.
        assert.is_true(inside >= 20, "only " .. inside .. " answered while a call was in flight")
        assert.is_true(took >= 1, "no import window: " .. took .. " s")
        assert.is_true(p.parts >= 3, p.parts .. " parts")
        assert.same({ parts_done = p.parts, rows = ROWS, processed = ROWS, failed = 0 },
            { parts_done = p.parts_done, rows = p.rows, processed = p.processed,
              failed = p.failed })

        local seen = stored_emails(sb)
        local missing = {}
        for i = 1, ROWS do
            local email = ("lead%d@example.com"):format(i)
            if not seen[email] then missing[#missing + 1] = email end
        end
        assert.same({}, missing)
        assert.is_nil(n.log():find("%[error%]"), n.log())
    end)

    it("waits for the call budget without holding the worker", function()
        local n = start_app()
        local started = socket.gettime()
        -- one part, and a budget of 2 calls a second: the limiter waits between calls
        local status, body = n.request("POST", "/imports?file=leads.csv&lookup_field=email"
            .. "&part_bytes=10000000&poll=0.2&calls=2&window=1")
        assert.equal(202, status, body)
        local counts, p = ping_while_importing(n, sandbox.decode(body).id, started + 60)
        assert.equal("done", p.state, p.error or n.log())
        -- The budget made calls wait: 2 a second and the margin, so the third of any
        -- three consecutive calls went at least 1.25 s after the first.
        local log, got = sb.get("/__sandbox/log")
        assert.equal(200, got)
        local calls = {}
        for _, e in ipairs(sandbox.decode(log)) do
            if e.time / 1000 >= started then calls[#calls + 1] = e.time / 1000 end
        end
        table.sort(calls)
        assert.is_true(#calls >= 3 and calls[3] - calls[1] >= 1.2, "no budget wait")
        -- The worker answered all along: a blocking wait leaves a gap as long as itself.
        local gap = 0
        for i = 2, #counts.times do
            gap = math.max(gap, counts.times[i] - counts.times[i - 1])
        end
        -- the slowest request sent while the import waited for the budget: between
        -- two calls 0.3 s apart or more (a call leaves within milliseconds otherwise)
        local waiting = 0
        for _, ping in ipairs(counts.sent) do
            for i = 2, #calls do
                if calls[i] - calls[i - 1] >= 0.3 and ping[1] > calls[i - 1] + 0.05
                    and ping[1] < calls[i] - 0.05 then
                    waiting = math.max(waiting, ping[2])
                end
            end
        end
        print(("openresty: %d calls in %.2f s under a budget of 2 a second; /ping answered "
            .. "%d times meanwhile, at most %.3f s apart; the slowest answer %.3f s (%.3f s "
            .. "while the import waited for the budget)"):format(#calls, calls[#calls] - calls[1],
            counts.during, gap, counts.worst, waiting))
        assert.is_true(gap < 0.3, ("/ping went unanswered for %.2f s"):format(gap))
        assert.is_true(waiting > 0 and waiting < 0.3, ("an answer took %.3f s"):format(waiting))
    end)

    it("refuses a symbolic link out of the import folder, and a repeated parameter", function()
        local outside = os.tmpname()
        finally(function()
            os.remove(outside)
            os.remove(dir .. "/outside.csv")
        end)
        local f = assert(io.open(outside, "wb"))
        f:write("email\nsecret@example.com\n")
        f:close()
        assert(os.execute(("ln -s '%s' '%s/outside.csv'"):format(outside, dir)))
        local n = start_app()
        local status, body = n.request("POST", "/imports?file=outside.csv")
        assert.equal(403, status, body)
        assert.matches("'outside.csv' is a symbolic link out of MARKETO_IMPORT_DIR",
            sandbox.decode(body).error, 1, true)
        status, body = n.request("POST", "/imports?file=leads.csv&file=other.csv")
        assert.equal(400, status, body)
        assert.equal("file: given 2 times; give it once", sandbox.decode(body).error)
        status, body = n.request("POST", "/imports?file=leads.csv&lookup_field=a&lookup_field=b")
        assert.equal(400, status, body)
        status, body = n.request("POST", "/imports?file")
        assert.equal(400, status, body)
        for _, k in ipairs({ "first", "1", "-1", "0.5" }) do -- one worker: 0
            status, body = n.request("POST", "/imports?file=leads.csv&worker=" .. k)
            assert.equal(400, status, body)
            assert.equal("worker: a number from 0 to 0", sandbox.decode(body).error)
        end
        status, body = n.request("POST", "/imports?file=missing.csv")
        assert.equal(400, status, body)
        assert.equal("file: no file 'missing.csv' in MARKETO_IMPORT_DIR",
            sandbox.decode(body).error)
        assert.equal(404, (n.request("GET", "/imports/1"))) -- nothing was started
        assert.is_nil(n.log():find("%[error%]"), n.log())
    end)

    it("stops an import on request, unfinished and resumable", function()
        local n = start_app()
        local status, body = n.request("POST", ("/imports?file=leads.csv&part_bytes=%d&poll=0.2")
            :format(PART_BYTES))
        assert.equal(202, status, body)
        local id = sandbox.decode(body).id
        assert.equal(202, (n.request("POST", "/imports/" .. id .. "/stop")))
        local deadline, p = socket.gettime() + 30
        repeat
            p = progress(n, id)
            assert(socket.gettime() < deadline, "the import did not stop")
        until p.state ~= "planning" and p.state ~= "running" and p.state ~= "stopping"
        assert.equal("stopped", p.state, p.error)
        assert.equal(4, p.exit) -- marketo.import's "unfinished"
        assert.is_true(p.parts_done < p.parts)
        assert.equal(404, (n.request("GET", "/imports/" .. (id + 1))))

        -- The journal the worker wrote is the runner's to resume.
        local report = dir .. "/resumed.json"
        local cmd = ("env MARKETO_BASE_URL='%s' MARKETO_CLIENT_ID='%s' MARKETO_CLIENT_SECRET='%s' "
            .. "'%s' resume '%s' --report '%s' --quiet >/dev/null")
            :format(sb.base_url, sb.client_id, sb.client_secret, os.getenv("MARKETO_BULK_BIN"),
                p.journal, report)
        assert.is_true(os.execute(cmd) == true, "resume failed")
        local f = assert(io.open(report, "rb"))
        local doc = sandbox.decode(f:read("a"))
        f:close()
        assert.equal("complete", doc.ended)
        assert.equal(ROWS, doc.rows.imported)
    end)
end)

-- The transport and the runtime, each case run inside nginx by a driver
-- (T_DRIVER, written into the prefix) against locations of the same server.
local T_CONF = [[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1;
thread_pool marketo threads=2;
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log info;
worker_shutdown_timeout 5s;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path @PREFIX@/tmp/body;
    proxy_temp_path @PREFIX@/tmp/proxy;
    fastcgi_temp_path @PREFIX@/tmp/fastcgi;
    uwsgi_temp_path @PREFIX@/tmp/uwsgi;
    scgi_temp_path @PREFIX@/tmp/scgi;
    lua_package_path "@ROOT@/lua/?.lua;@ROOT@/lua/?/init.lua;@PREFIX@/?.lua;;";
    lua_package_cpath "@ROOT@/build/luajit/?.so;;";
    lua_shared_dict marketo_budget 1m;
    server {
        listen 127.0.0.1:@PORT@;
        client_max_body_size 20m;
        client_body_buffer_size 20m;
        location = /ping { content_by_lua_block { ngx.say("pong") } }
        location = /echo {
            content_by_lua_block {
                ngx.req.read_body()
                local body = ngx.req.get_body_data() or ""
                ngx.header["X-Got-Length"] = ngx.var.http_content_length
                ngx.header["X-Got-Type"] = ngx.var.http_content_type
                ngx.header["Content-Length"] = #body
                ngx.print(body)
            }
        }
        location = /chunked {
            content_by_lua_block {
                for i = 1, 50 do
                    ngx.print(("%04d:"):format(i), ("x"):rep(2000), "\n")
                    ngx.flush(true)
                end
            }
        }
        location = /conn { content_by_lua_block { ngx.say(ngx.var.connection) } }
        location = /short {
            keepalive_timeout 200ms;
            content_by_lua_block { ngx.say(ngx.var.connection) }
        }
        location = /slow { content_by_lua_block { ngx.sleep(2); ngx.say("late") } }
        location = /t { content_by_lua_block { require("driver").run() } }
    }
    lua_ssl_trusted_certificate @PREFIX@/cert.pem;
    server {
        listen 127.0.0.1:@TLSPORT@ ssl;
        ssl_certificate @PREFIX@/cert.pem;
        ssl_certificate_key @PREFIX@/key.pem;
        location = /conn { content_by_lua_block { ngx.say(ngx.var.connection) } }
    }
    server {
        listen 127.0.0.1:@UNTRUSTED@ ssl;
        ssl_certificate @PREFIX@/untrusted.pem;
        ssl_certificate_key @PREFIX@/untrusted-key.pem;
        location = /conn { content_by_lua_block { ngx.say(ngx.var.connection) } }
    }
}
]]

local T_DRIVER = [==[
local cjson = require("cjson")
local transport = require("marketo.resty.transport")
local runtime = require("marketo.resty.runtime")

-- Set per request by run(): the module itself is loaded once per worker.
local base, args
local cases = {}

local function call(t, opts)
    local res, msg, code = t:request(opts)
    return { res = res, msg = msg, code = code }
end

function cases.multipart()
    local calls = 0
    return call(transport.new(), { url = base .. "/echo", multipart = {
        fields = { { "format", "csv" } },
        file = { name = "file", filename = 'a"b.csv', content_type = "text/csv",
                 path = args.path, offset = tonumber(args.offset),
                 length = tonumber(args.length), prefix = args.prefix } },
        on_progress = function() calls = calls + 1 end,
    }), calls
end

function cases.chunked()
    local out = args.out
    return call(transport.new(), { url = base .. "/chunked" }),
        call(transport.new(), { url = base .. "/chunked", output = out })
end

function cases.keepalive()
    local t = transport.new()
    return call(t, { url = base .. "/conn" }), call(t, { url = base .. "/conn" })
end

function cases.stale()
    local t = transport.new()
    local first = call(t, { url = base .. "/short" })
    ngx.sleep(0.5) -- the server closes the pooled connection meanwhile
    return first, call(t, { url = base .. "/short" })
end

function cases.timeout()
    ngx.update_time()
    local t0 = ngx.now()
    local r = call(transport.new(), { url = base .. "/slow", timeout = 0.3 })
    ngx.update_time()
    return r, ngx.now() - t0
end

function cases.failures()
    local t = transport.new()
    return call(t, { url = "http://127.0.0.1:" .. args.closed .. "/" }),
        call(t, { url = base .. "/echo", multipart = { file = { name = "f",
            path = args.path .. ".missing" } } }),
        call(t, { url = base .. "/echo", multipart = { file = { name = "f",
            path = args.path, offset = 10, length = 1e9 } } }),
        call(t, { url = "ftp://127.0.0.1/" })
end

function cases.tls()
    local t = transport.new() -- verify on: the test's certificate is the trusted one
    local url = "https://127.0.0.1:" .. args.tls .. "/conn"
    local other = "https://127.0.0.1:" .. args.untrusted .. "/conn"
    local ok, no_off_switch = pcall(transport.new, { verify = false })
    return call(t, { url = url }), call(t, { url = url }), call(t, { url = other }),
        { msg = not ok and tostring(no_off_switch) or "no error" }
end

function cases.thread()
    local t = require("marketo.resty.thread").new{ http = { timeout = 10 } }
    return call(t, { url = base .. "/echo", body = "hello" }),
        call(t, { url = "http://127.0.0.1:" .. args.closed .. "/" })
end

function cases.misuse()
    local t = transport.new()
    local function message(fn)
        local ok, err = pcall(fn)
        return not ok and tostring(err) or "no error"
    end
    return message(function() t:request{ url = base, bogus = 1 } end),
        message(function() t:request{ url = base, body = "x", multipart = {} } end),
        message(function() t:request{ url = base, multipart = { file = { name = "f" } } } end),
        message(function() transport.new{ timeot = 1 } end)
end

function cases.runtime()
    local rt = runtime.new()
    local order = {}
    rt.spawn(function()
        rt.spawn(function() rt.sleep(0.2); order[#order + 1] = "grandchild" end)
        rt.sleep(0.1)
        order[#order + 1] = "child"
    end)
    rt.spawn(function() order[#order + 1] = "quick" end)
    rt.run()
    local bad = runtime.new()
    bad.spawn(function() bad.sleep(0.05); error("boom") end)
    bad.spawn(function() bad.sleep(5); order[#order + 1] = "not killed" end)
    local ok, err = pcall(bad.run)
    local stop = runtime.new()
    local before = stop.stop_requested()
    stop.stop()
    return order, ok, tostring(err):match("boom") ~= nil, before, stop.stop_requested()
end

function cases.budget()
    local budget = require("marketo.pipeline.budget")
    local rt = runtime.new()
    local function new(url, lease)
        return budget.new({ url = url, instance = "nginx", clock = rt.now, sleep = rt.sleep,
            limits = { importing = 2, queued = 1, calls = 1000 }, lease = lease })
    end
    local a, b = assert(new(args.url)), assert(new(args.url))
    local p1, p2 = a:try("importing"), b:try("importing")
    local third = b:try("importing")
    a:release("importing", p1)
    local again = b:try("importing") and true
    -- light threads sharing one connection take turns on it
    local done = 0
    for _ = 1, 5 do
        rt.spawn(function()
            for _ = 1, 20 do
                local p = assert(a:try("in_flight"))
                assert(a:try("call"))
                a:release("in_flight", p)
                done = done + 1
            end
        end)
    end
    rt.run()
    -- a holder that never renews: its slot is free once its lease is over
    assert(assert(new(args.url, 0.2)):try("queued"))
    local t0 = rt.now()
    assert(assert(new(args.url, 0.2)):acquire("queued"))
    local waited = rt.now() - t0
    local none, msg, code = new(args.bad)
    return p1 and p2 and true, third, again, done, waited, none == nil, msg, code
end

-- marketo.import.run given neither runtime nor transport nor a sleep: the
-- defaults in nginx must yield too. Marketo is a closed port: each retry of
-- the first call waits (the client's default sleep) before it fails.
function cases.defaults()
    ngx.update_time()
    local t0 = ngx.now()
    require("marketo.loop").sleep(0.6) -- the default sleep, outside any loop
    local result, msg, code = require("marketo.import").run{
        object = "leads", source = args.path, journal = args.path .. ".journal",
        lookup_field = "email",
        client = { base_url = "http://127.0.0.1:" .. args.closed, client_id = "id",
            client_secret = "secret" },
        retry = function(_, attempt) return attempt <= 3 and 0.6 or nil end,
    }
    ngx.update_time()
    return result and result.code or code or msg, ngx.now() - t0
end

local M = {}
function M.run()
    base, args = "http://127.0.0.1:" .. ngx.var.server_port, ngx.req.get_uri_args()
    ngx.say(cjson.encode({ cases[args.case]() }))
end
return M
]==]

-- A certificate for 127.0.0.1 (nginx trusts it as a CA too): cert, key.
local function self_signed()
    local tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute(("mkdir -p '%s' && openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
        .. "-keyout '%s/key.pem' -out '%s/cert.pem' -subj /CN=127.0.0.1 "
        .. "-addext subjectAltName=IP:127.0.0.1,DNS:127.0.0.1 2>/dev/null"):format(tmp, tmp, tmp)))
    local function slurp(name)
        local f = assert(io.open(tmp .. "/" .. name, "rb"))
        local text = f:read("a")
        f:close()
        return text
    end
    local cert, key = slurp("cert.pem"), slurp("key.pem")
    os.execute("rm -rf '" .. tmp .. "'")
    return cert, key
end

describe("marketo.resty in nginx", function()
    local n, dir

    setup(function()
        build_luajit_core() -- for marketo.resty.thread
        local cert, key = self_signed()
        local other, other_key = self_signed()
        n = nginx.start{ conf_text = T_CONF, ports = { "TLSPORT", "UNTRUSTED" },
            files = { ["driver.lua"] = T_DRIVER, ["cert.pem"] = cert, ["key.pem"] = key,
                      ["untrusted.pem"] = other, ["untrusted-key.pem"] = other_key } }
        dir = n.prefix
    end)

    teardown(function()
        if n then
            n.stop()
            os.execute("rm -rf '" .. n.prefix .. "'")
        end
    end)

    local function run(case, query)
        local q = { "case=" .. case }
        for k, v in pairs(query or {}) do
            q[#q + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._/]", function(c)
                return ("%%%02X"):format(c:byte())
            end)
        end
        local status, body = n.request("GET", "/t?" .. table.concat(q, "&"))
        assert.equal(200, status, tostring(body) .. n.log())
        return rawget(table, "unpack")(sandbox.decode(body))
    end

    -- run(case, query) while GET /ping goes to the same worker, one after the
    -- other until the case answers: its results, then the slowest ping and the
    -- pings answered meanwhile.
    local function run_pinging(case, query)
        local q = { "case=" .. case }
        for k, v in pairs(query) do q[#q + 1] = k .. "=" .. tostring(v) end
        local c = socket.tcp()
        c:settimeout(30)
        assert(c:connect("127.0.0.1", n.port))
        assert(c:send(("GET /t?%s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            :format(table.concat(q, "&"))))
        local worst, pings = 0, 0
        while #socket.select({ c }, nil, 0) == 0 do
            local t0 = socket.gettime()
            assert.equal(200, (n.request("GET", "/ping", 30)))
            worst, pings = math.max(worst, socket.gettime() - t0), pings + 1
        end
        local text = c:receive("*a")
        c:close()
        assert.matches("^HTTP/1%.%d 200", text, nil, false, text .. n.log())
        local out = sandbox.decode(text:match("\r\n\r\n(.*)$"))
        out[#out + 1], out[#out + 2] = worst, pings
        return rawget(table, "unpack")(out)
    end

    local function write_file(name, size)
        local path = dir .. "/" .. name
        local f = assert(io.open(path, "wb"))
        local chunk = {}
        for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
        chunk = table.concat(chunk)
        f:write(chunk:rep(math.floor(size / 256) + 1):sub(1, size))
        f:close()
        local r = assert(io.open(path, "rb"))
        local data = r:read("a")
        r:close()
        return path, data
    end

    it("streams a multipart file part byte-exact, with an exact Content-Length", function()
        local path, data = write_file("range.bin", 700000)
        local offset, length, prefix = 12345, 600000, "email,firstName\n"
        local r, progress_calls = run("multipart", { path = path, offset = offset,
            length = length, prefix = prefix })
        assert.is_nil(r.msg)
        local res = r.res
        assert.equal(200, res.status)
        local body = res.body
        assert.equal(tostring(#body), res.headers["x-got-length"])
        assert.equal(#body, res.uploaded)
        local boundary = res.headers["x-got-type"]:match("^multipart/form%-data; boundary=(.+)$")
        assert.truthy(boundary)
        local expected = "--" .. boundary .. "\r\n"
            .. 'Content-Disposition: form-data; name="format"\r\n\r\ncsv\r\n'
            .. "--" .. boundary .. "\r\n"
            .. 'Content-Disposition: form-data; name="file"; filename="a%22b.csv"\r\n'
            .. "Content-Type: text/csv\r\n\r\n"
            .. prefix .. data:sub(offset + 1, offset + length) .. "\r\n"
            .. "--" .. boundary .. "--\r\n"
        assert.is_true(body == expected, "the echoed body differs from the expected one")
        -- Sent in 64 KiB pieces, never as one string.
        assert.is_true(progress_calls >= math.floor(length / 65536), progress_calls .. " pieces")
    end)

    it("reads chunked bodies, into memory and into a file", function()
        local out = dir .. "/chunked.out"
        local mem, file = run("chunked", { out = out })
        assert.equal(200, mem.res.status)
        assert.equal("chunked", mem.res.headers["transfer-encoding"])
        assert.equal(50 * 2006, #mem.res.body)
        assert.equal("0001:", mem.res.body:sub(1, 5))
        assert.equal("0050:", mem.res.body:sub(-2006, -2002))
        assert.is_nil(file.res.body)
        local f = assert(io.open(out, "rb"))
        assert.equal(mem.res.body, f:read("a"))
        f:close()
    end)

    it("keeps the connection alive between requests", function()
        local first, second = run("keepalive")
        assert.equal(200, first.res.status)
        assert.equal(0, second.res.connects)
        assert.equal(first.res.body, second.res.body) -- the same nginx connection number
    end)

    it("sends again on a fresh connection when the pooled one was closed", function()
        local first, second = run("stale")
        assert.equal(200, first.res.status)
        assert.is_nil(second.msg)
        assert.equal(200, second.res.status)
        assert.equal(1, second.res.connects)
        assert.are_not.equal(first.res.body, second.res.body)
    end)

    it("gives up at the request's timeout", function()
        local r, took = run("timeout")
        assert.is_nil(r.res)
        assert.equal("OPERATION_TIMEDOUT", r.code)
        assert.is_true(took < 1.5, took .. " s")
    end)

    it("fails with curl's code names", function()
        local path = write_file("small.bin", 100)
        -- A port bound but not listening: connections to it are refused.
        local holder = socket.tcp()
        assert(holder:bind("127.0.0.1", 0))
        finally(function() holder:close() end)
        local _, closed = holder:getsockname()
        local refused, missing, past, scheme = run("failures", { path = path, closed = closed })
        assert.equal("COULDNT_CONNECT", refused.code)
        assert.equal("ENOENT", missing.code)
        assert.equal("READ_ERROR", past.code)
        assert.equal("UNSUPPORTED_PROTOCOL", scheme.code)
        assert.matches("^COULDNT_CONNECT: ", refused.msg)
    end)

    it("speaks TLS, verifies the server, and keeps that connection alive", function()
        local first, second, refused, unverified = run("tls",
            { tls = n.ports.TLSPORT, untrusted = n.ports.UNTRUSTED })
        assert.is_nil(first.msg)
        assert.equal(200, first.res.status)
        assert.equal(0, second.res.connects)
        assert.equal(first.res.body, second.res.body)
        assert.equal("PEER_FAILED_VERIFICATION", refused.code, refused.msg)
        assert.matches("verification is always on", unverified.msg) -- no off switch
    end)

    it("runs libcurl requests in a thread pool (marketo.resty.thread)", function()
        local holder = socket.tcp()
        assert(holder:bind("127.0.0.1", 0))
        finally(function() holder:close() end)
        local _, closed = holder:getsockname()
        local echo, refused = run("thread", { closed = closed })
        assert.is_nil(echo.msg)
        assert.equal(200, echo.res.status)
        assert.equal("hello", echo.res.body)
        assert.equal("5", echo.res.headers["x-got-length"])
        assert.equal("COULDNT_CONNECT", refused.code)
    end)

    -- One budget's slots, calls from threads taking turns, a lease running out, and
    -- the failure to reach the backend: the message.
    local function shares(url, bad)
        local both, third, again, done, waited, refused, msg, code = run("budget",
            { url = url, bad = bad })
        assert.is_true(both)
        assert.is_false(third)
        assert.is_true(again)
        assert.equal(100, done)
        assert.is_true(waited > 0.1 and waited < 2, tostring(waited))
        assert.is_true(refused)
        assert.equal("BUDGET", code)
        return msg
    end

    it("shares a budget through Redis with lua-resty-redis, threads taking turns", function()
        local r = require("spec.support.redis").start()
        finally(r.stop)
        local closed = nginx.free_port()
        local msg = shares(r.url, ("redis://127.0.0.1:%d/0"):format(closed))
        assert.matches("^BUDGET: Redis at 127%.0%.0%.1:" .. closed .. " is unreachable", msg)
    end)

    it("shares a budget between workers through a lua_shared_dict", function()
        local msg = shares("shdict:marketo_budget", "shdict:nowhere")
        assert.equal("BUDGET: no lua_shared_dict nowhere in nginx.conf", msg)
    end)

    it("raises on misuse, pointing at the caller's line", function()
        local unknown, both, nopath, new = run("misuse")
        assert.matches("/driver%.lua:%d+: bad argument #1 to 'request' %(unknown option 'bogus'",
            unknown)
        assert.matches("/driver%.lua:%d+: .*body and multipart exclude each other", both)
        assert.matches("/driver%.lua:%d+: .*multipart.file needs name and path", nopath)
        assert.matches("/driver%.lua:%d+: bad argument #1 to 'new' %(unknown option 'timeot'",
            new)
    end)

    it("imports with nginx's runtime, transport and sleep when given none", function()
        local path = dir .. "/defaults.csv"
        require("spec.support.files").write(path, "email\nlead1@example.com\n")
        local holder = socket.tcp()
        assert(holder:bind("127.0.0.1", 0))
        finally(function() holder:close() end)
        local _, closed = holder:getsockname()
        local code, took, worst, pings = run_pinging("defaults",
            { path = path, closed = closed })
        print(("openresty: an import on the defaults waited %.2f s (a sleep, then three "
            .. "retries); /ping answered %d times meanwhile, the slowest in %.3f s")
            :format(took, pings, worst))
        assert.equal("COULDNT_CONNECT", code)
        assert.is_true(took >= 2.4, took .. " s")
        -- libcurl's perform or core.sleep would hold /ping for a whole wait (0.6 s)
        assert.is_true(pings >= 20, pings .. " pings")
        assert.is_true(worst < 0.4, ("a ping took %.3f s"):format(worst))
    end)

    it("runs spawned functions, their own spawns included, and re-raises an error", function()
        local order, ok, boom, before, after = run("runtime")
        assert.same({ "quick", "child", "grandchild" }, order)
        assert.is_false(ok)
        assert.is_true(boom)
        assert.is_false(before)
        assert.is_true(after)
    end)
end)
