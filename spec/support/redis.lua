--- spec/support/redis.lua: a real redis-server for a spec (Lua 5.4, lua-socket).
--
--   local redis = require("spec.support.redis")
--   local r = redis.start()      -- raises if it does not answer in 10 s
--   finally(r.stop)              -- idempotent
--   r.port, r.url ("redis://127.0.0.1:PORT/0"), r.dir
--   r.halt(); r.resume()         -- Redis gone mid-run, then back on the same port
--
-- On 127.0.0.1, a free port, in a temp dir, with no persistence (no RDB, no
-- AOF). A watchdog shell stops it when this process goes away, so a crashed
-- busted leaves no redis-server behind.
local socket = require("socket")
local files = require("spec.support.files")

local M = {}

local free_port = require("spec.support.nginx").free_port

-- PING answered: the server is up (a bounded wait on the event itself).
local function answers(port)
    local c = socket.tcp()
    c:settimeout(1)
    local ok = c:connect("127.0.0.1", port)
    local line
    if ok then
        c:send("PING\r\n")
        line = c:receive("*l")
    end
    c:close()
    return line == "+PONG"
end

local function launch(dir, port)
    local parent = require("marketo.core").getpid()
    local cmd = ("(redis-server --bind 127.0.0.1 --port %d --dir %s --save '' "
        .. "--appendonly no --pidfile %s >%s 2>&1 & r=$!; "
        .. "while kill -0 %d 2>/dev/null && kill -0 $r 2>/dev/null; do sleep 1; done; "
        .. "kill -KILL $r) >/dev/null 2>&1 &")
        :format(port, files.q(dir), files.q(dir .. "/redis.pid"), files.q(dir .. "/redis.log"),
            parent)
    assert(os.execute(cmd))
end

--- start() -> r (see above).
function M.start()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. files.q(dir)))
    local r = { dir = dir }
    for _ = 1, 3 do -- the free port may be taken between probe and bind
        r.port = free_port()
        launch(dir, r.port)
        local deadline = socket.gettime() + 10
        while not r.up and socket.gettime() < deadline do
            r.up = answers(r.port)
            if not r.up then socket.select(nil, nil, 0.02) end
        end
        if r.up then break end
    end
    if not r.up then
        error("redis-server did not start:\n" .. (files.read(dir .. "/redis.log") or ""), 2)
    end
    r.url = ("redis://127.0.0.1:%d/0"):format(r.port)
    r.pid = tonumber(files.read(dir .. "/redis.pid") or "")
    local stopped = false
    -- SHUTDOWN NOSAVE, answered by the connection closing once it is gone
    local function shutdown()
        local c = socket.tcp()
        c:settimeout(1)
        if c:connect("127.0.0.1", r.port) then
            c:send("SHUTDOWN NOSAVE\r\n")
            c:receive("*l") -- the connection closes when it has gone
        elseif r.pid then
            os.execute("kill -KILL " .. r.pid .. " 2>/dev/null")
        end
        c:close()
    end
    function r.stop()
        if stopped then return end
        stopped = true
        shutdown()
        os.execute("rm -rf " .. files.q(dir))
    end
    --- halt(): the server gone (an empty one comes back with resume()).
    r.halt = shutdown
    --- resume(): a new server on the same port (raises if it does not answer in 10 s).
    function r.resume()
        launch(dir, r.port)
        local deadline = socket.gettime() + 10
        while not answers(r.port) do
            assert(socket.gettime() < deadline, "redis-server did not start again")
            socket.select(nil, nil, 0.02)
        end
        r.pid = tonumber(files.read(dir .. "/redis.pid") or "")
    end
    return r
end

return M
