--- The child process spec/support/server.lua starts (Lua 5.4 only):
--   lua5.4 spec/support/serve.lua APP [key=value ...]
-- APP is a module name or a path to a .lua file returning a handler, or a
-- table { handler = fn, max_body = n, ... } (any Server.new option). The
-- key=value pairs override those options; `lifetime` (seconds, default 600)
-- is how long the child may live. The first stdout line is "PORT PID"; after
-- it nothing else is written to stdout (nobody reads it, and a full pipe would
-- block us). The child exits by itself when its parent process is gone.
local core = require("marketo.core")
local Server = require("marketo.sandbox.http")

local function load_app(name)
    if name:find("/", 1, true) or name:find("%.lua$") then return dofile(name) end
    return require(name)
end

-- The parent's pid as the kernel sees it now: it changes when the parent
-- dies and we are re-parented, which /proc/<ppid> alone could miss if the
-- pid were reused.
local function parent_pid()
    local f = io.open("/proc/self/stat", "r")
    if not f then return nil end
    local stat = f:read("a")
    f:close()
    return stat:match("^%d+ %b() %S+ (%d+)")
end

local function options(app, argv)
    local opts = type(app) == "table" and app or { handler = app }
    local merged = {}
    for k, v in pairs(opts) do merged[k] = v end
    merged.handler = opts.handler -- may be built lazily (__index), which pairs skips
    for i = 2, #argv do
        local k, v = argv[i]:match("^([%w_]+)=(.*)$")
        assert(k, "bad option " .. argv[i])
        merged[k] = tonumber(v) or v
    end
    merged.host, merged.port = "127.0.0.1", 0 -- never anything but loopback
    return merged
end

local function main(argv)
    local opts = options(load_app(assert(argv[1], "usage: serve.lua APP [key=value ...]")), argv)
    local lifetime = opts.lifetime or 600
    local server = assert(Server.new(opts))
    local ppid = parent_pid()
    io.stdout:write(server:port(), " ", core.getpid(), "\n")
    io.stdout:flush()
    local deadline, next_check = core.monotonic() + lifetime, 0
    while not server.stopped do
        server:step(0.5)
        local now = core.monotonic()
        if now >= next_check then
            if now >= deadline or parent_pid() ~= ppid then break end
            next_check = now + 0.5
        end
    end
    server:close()
end

main(arg)
