--- How the nginx worker answers /ping while uploads are in flight, for each
-- transport: cosocket (marketo.resty.transport), thread (libcurl through
-- ngx.run_worker_thread, marketo.resty.thread) and blocking (marketo.http's
-- libcurl perform in the worker: the baseline). Run from the checkout, after
-- `make build` and `make LUA=luajit build/luajit/marketo/core.so`:
--
--   MARKETO_BULK_BIN=$PWD/build/bin/marketo-bulk lua5.4 examples/openresty/bench/run.lua \
--       [uploads=4] [latency=0.5] [rows=20000] [chunk=65536]
--
-- Each upload is one bulk job creation of a ~9 MB CSV; the sandbox adds
-- `latency` seconds to every bulk answer (a far-away Marketo). The pinger is
-- one client, one request at a time on a fresh connection, so pings/s is
-- bounded by it too; the idle line is that bound. chunk: bytes per sock:send
-- of the cosocket transport's file part (marketo.resty.multipart.CHUNK).
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "build/lua5.4/?.so;" .. package.cpath
local socket = require("socket")
local sandbox = require("spec.support.sandbox")
local nginx = require("spec.support.nginx")

local opts = { uploads = 4, latency = 0.5, rows = 20000, chunk = 65536 }
for _, a in ipairs(arg) do
    local k, v = a:match("^(%w+)=(.+)$")
    if k then opts[k] = tonumber(v) end
end

local path -- the CSV uploaded, in a scratch directory

local function conf_text()
    local f = assert(io.open(nginx.ROOT .. "/examples/openresty/nginx.conf", "rb"))
    local text = f:read("a")
    f:close()
    text = text:gsub('lua_package_path "',
        'lua_package_path "@ROOT@/examples/openresty/bench/?.lua;')
    return (text:gsub("        location = /ping {", "        location /bench/ {\n"
        .. "            client_max_body_size 20m;\n"
        .. '            content_by_lua_block { require("driver").handle() }\n        }\n\n%0'))
end

local function write_csv()
    local f = assert(io.open(path, "wb"))
    f:write("email,firstName,lastName\n")
    local filler = ("x"):rep(400)
    for i = 1, opts.rows do f:write(("lead%d@example.com,%s,Last%d\n"):format(i, filler, i)) end
    f:close()
end

local function result(n)
    local status, body = n.request("GET", "/bench/result", 120)
    assert(status == 200, "result: " .. tostring(body))
    return sandbox.decode(body)
end

-- Pings until the bench says done: answers, the longest wait for one, seconds.
local function ping_until_done(n)
    local answered, worst, t0 = 0, 0, socket.gettime()
    while true do
        local t = socket.gettime()
        assert(n.request("GET", "/ping", 120) == 200, "a ping failed")
        worst = math.max(worst, socket.gettime() - t)
        answered = answered + 1
        local r = result(n)
        if r.done then return answered, worst, socket.gettime() - t0, r end
    end
end

local function measure(n, kind, raw)
    local status = n.request("POST", ("/bench/start?transport=%s&n=%d&path=%s&chunk=%d%s")
        :format(kind, opts.uploads, path, opts.chunk, raw and "&raw=1" or ""))
    assert(status == 200)
    local answered, worst, took, r = ping_until_done(n)
    assert(not r.error, r.error)
    print(("%-9s %s %.2f s (%.3f s each) | %5d pings answered, %6.0f/s, "
        .. "longest wait %.3f s"):format(kind, raw and "to nginx " or "to sandbox", r.elapsed,
        r.elapsed / opts.uploads, answered, answered / took, worst))
end

local function idle_rate(n)
    local t0, count = socket.gettime(), 0
    while socket.gettime() - t0 < 1 do
        n.request("GET", "/ping")
        count = count + 1
    end
    return count / (socket.gettime() - t0)
end

local sb = sandbox.start{ latency = opts.latency, max_file_bytes = 10485760 }
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir))
path = dir .. "/big.csv"
write_csv()
local n = nginx.start{ conf_text = conf_text(), env = { MARKETO_BASE_URL = sb.base_url,
    MARKETO_CLIENT_ID = sb.client_id, MARKETO_CLIENT_SECRET = sb.client_secret } }
local ok, err = pcall(function()
    local size = assert(io.open(path, "rb")):seek("end")
    print(("%d uploads of %.1f MB each, sandbox latency %.2f s per bulk answer")
        :format(opts.uploads, size / 1e6, opts.latency))
    print(("idle: %.0f pings/s"):format(idle_rate(n)))
    for _, kind in ipairs({ "cosocket", "thread", "blocking" }) do
        sb.reset()
        measure(n, kind, false)
    end
    for _, kind in ipairs({ "cosocket", "thread" }) do measure(n, kind, true) end
end)
n.stop()
sb.stop()
os.execute("rm -rf " .. dir .. " " .. n.prefix)
if not ok then error(err, 0) end
