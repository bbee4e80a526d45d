--- bench/upload.lua (run by bench/upload): the transport against `curl -F`.
--   1. the same 10 MB multipart body to a loopback discard server, with the
--      core and with curl, RUNS times each (interleaved): median ratio core/curl
--      of the transfer times both report (target <= 1.1);
--   2. the peak RSS of `marketo-bulk run SCRIPT` uploading a 200 MB file as 20
--      parts, byte ranges with the header in front, two in flight (target <= 40 MB).
-- Everything lives in a temp dir that is removed at the end, error or not.
local ROOT = assert(arg[1], "usage: lua5.4 bench/upload.lua REPO_ROOT")
package.cpath = ROOT .. "/build/lua5.4/?.so;" .. package.cpath
package.path = ROOT .. "/?.lua;" .. package.path
local core = require("marketo.core")
local ok_server = require("spec.support.ok_server")
local write_file = require("spec.support.files").write

local RUNS = tonumber(os.getenv("BENCH_RUNS")) or 9
local RATIO_TARGET, RSS_TARGET_MB = 1.1, 40
local HEADER = "email,firstName,lastName,company\n"

-- Uploads every part of FILE to URL, two in flight, then prints VmHWM (kB).
local RUNNER_SCRIPT = [[
local http = require("marketo.http")
local Loop = require("marketo.loop")
local url, path, parts, header = ...
header = header .. "\n"
parts = tonumber(parts)
local t = http.new{ timeout = 120 }
local f = assert(io.open(path, "rb"))
local size = f:seek("end")
local cuts = { [0] = #header }
for i = 1, parts - 1 do  -- cut after a newline so each part holds whole rows
    f:seek("set", math.floor(size * i / parts))
    cuts[i] = f:seek() + #(f:read("*l") or "") + 1
end
cuts[parts] = size
f:close()
local loop, next_part, sent = Loop.new(), 1, 0
local function worker()
    while next_part <= parts do
        local i = next_part
        next_part = i + 1
        local res = assert(t:request{ url = url, multipart = { file = {
            name = "file", filename = ("part-%04d.csv"):format(i), content_type = "text/csv",
            path = path, offset = cuts[i - 1], length = cuts[i] - cuts[i - 1],
            prefix = header } } })
        assert(res.status == 200, "status " .. res.status)
        sent = sent + res.uploaded
    end
end
loop:spawn(worker)
loop:spawn(worker)
loop:run()
local status = assert(io.open("/proc/self/status")):read("a")
print(status:match("VmHWM:%s*(%d+)"), sent)
]]

local function sh(cmd)
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    local ok, _, code = p:close()
    if not ok then error(("command failed (%s): %s"):format(tostring(code), cmd), 0) end
    return out
end

-- A CSV of about `mb` megabytes, written 1 MB at a time.
local function make_csv(path, mb)
    local rows, n = {}, 0
    while #table.concat(rows) < 1024 * 1024 do
        n = n + 1
        rows[#rows + 1] = ("user%07d@example.com,First%d,Last%d,Company %d\n")
            :format(n, n, n, n % 97)
    end
    local block = table.concat(rows)
    local f = assert(io.open(path, "wb"))
    f:write(HEADER)
    for _ = 1, math.ceil(mb * 1024 * 1024 / #block) do f:write(block) end
    f:close()
end

local function median(xs)
    table.sort(xs)
    local n = #xs
    return n % 2 == 1 and xs[(n + 1) / 2] or (xs[n / 2] + xs[n / 2 + 1]) / 2
end

-- "Connection: close": a new connection each time, as each curl process has.
local function core_upload(url, path)
    local req = core.request():set_url(url):set_timeouts(10, 60)
        :set_headers({ "Connection: close" })
        :add_file("file", "part.csv", "text/csv", path)
    local ok, msg = req:perform()
    assert(ok and req:status() == 200, msg or ("status " .. req:status()))
    local t = req:info().time
    req:close()
    return t
end

local function curl_upload(url, path)
    local out = sh(("curl -sS --max-time 60 -o /dev/null -H 'Expect:' "
        .. "-w '%%{http_code} %%{time_total}' -F 'file=@%s;filename=part.csv;type=text/csv' '%s'")
        :format(path, url))
    local code, t = out:match("^(%d+) ([%d.]+)$")
    assert(code == "200", "curl: " .. out)
    return tonumber(t)
end

local function bench_ratio(server, dir)
    local path = dir .. "/10mb.csv"
    make_csv(path, 10)
    core_upload(server.url, path) -- warm up both sides (page cache, server)
    curl_upload(server.url, path)
    local ours, theirs = {}, {}
    for i = 1, RUNS do
        ours[i] = core_upload(server.url, path)
        theirs[i] = curl_upload(server.url, path)
    end
    local a, b = median(ours), median(theirs)
    print(("10 MB multipart upload, %d runs each: core %.1f ms, curl -F %.1f ms (medians)")
        :format(RUNS, a * 1000, b * 1000))
    print(("  ratio core/curl %.2f (target <= %.1f) %s")
        :format(a / b, RATIO_TARGET, a / b <= RATIO_TARGET and "ok" or "MISSED"))
    return a / b <= RATIO_TARGET
end

local function bench_rss(server, dir)
    local runner = os.getenv("MARKETO_BULK_BIN") or (ROOT .. "/build/bin/marketo-bulk")
    local path, script = dir .. "/200mb.csv", dir .. "/upload_parts.lua"
    make_csv(path, 200)
    write_file(script, RUNNER_SCRIPT)
    local t0 = core.monotonic()
    local out = sh(("%s run %s '%s' %s 20 '%s'"):format(runner, script, server.url,
        path, HEADER:sub(1, -2)))
    local kb, sent = out:match("^(%d+)%s+(%d+)")
    local f = assert(io.open(path, "rb"))
    local size = f:seek("end")
    f:close()
    assert(tonumber(sent) > size, "the runner sent less than the file: " .. out)
    local mb = tonumber(kb) / 1024
    print(("runner uploading 200 MB as 20 parts: %.1f s, peak RSS %.1f MB (target <= %d MB) %s")
        :format(core.monotonic() - t0, mb, RSS_TARGET_MB, mb <= RSS_TARGET_MB and "ok" or "MISSED"))
    return mb <= RSS_TARGET_MB
end

local dir = sh("mktemp -d /tmp/marketo-bench-upload.XXXXXX"):gsub("%s+$", "")
-- spec/support/ok_server.py reads and drops the body, with threads, so curl
-- and the core are served the same way
local server = ok_server.start()
server.url = "http://127.0.0.1:" .. server.port .. "/upload"
local ok, met = pcall(function()
    local fast = bench_ratio(server, dir)
    return bench_rss(server, dir) and fast
end)
server.stop()
os.execute("rm -rf '" .. dir .. "'")
if not ok then error(met, 0) end
os.exit(met and 0 or 1)
