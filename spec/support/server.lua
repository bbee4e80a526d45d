--- spec/support/server.lua: a loopback HTTP server in a child process, for
-- specs whose client blocks (libcurl), so the server cannot share the process.
-- Lua 5.1-compatible: the core specs load it under LuaJIT too.
--
--   local server = require("spec.support.server")
--   local s = server.start("spec.support.echo_app", { max_body = 1024 })
--   -- s.url == "http://127.0.0.1:PORT", s.port, s.pid
--   s.stop()                      -- idempotent; kills the child and reaps it
--
-- The app is a module name or a .lua path; it returns a handler function or a
-- table { handler = fn, max_body = n, ... } (options of marketo.sandbox.http).
-- opts may set max_body, timeout, max_connections and lifetime (seconds the
-- child may live; default 600) and stderr (a file for the child's stderr,
-- which otherwise is ours). The child runs spec/support/serve.lua under
-- lua5.4; it exits by itself when this process goes away.
--
-- One server for a whole spec file (or describe block):
--   local echo = server.fixture("spec.support.echo_app")
--   setup(echo.start)
--   teardown(echo.stop)
--   ... echo.url, echo.port inside the tests
local M = {}

-- The tree this file lives in, so the child finds lua/ and build/ whatever
-- the current directory is.
local function root_dir()
    local source = debug.getinfo(1, "S").source:gsub("^@", "")
    local dir = source:match("^(.*)/spec/support/[^/]*$") or "."
    if dir:sub(1, 1) ~= "/" then dir = (os.getenv("PWD") or ".") .. "/" .. dir end
    return dir
end

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function command(root, app, opts)
    local parts = {
        "exec env",
        "LUA_PATH=" .. shell_quote(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;"
            .. root .. "/?.lua;;"),
        "LUA_CPATH=" .. shell_quote(root .. "/build/lua5.4/?.so;;"),
        "lua5.4", shell_quote(root .. "/spec/support/serve.lua"), shell_quote(app),
    }
    local keys = {}
    for k in pairs(opts) do if k ~= "stderr" then keys[#keys + 1] = k end end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = shell_quote(k .. "=" .. tostring(opts[k])) end
    if opts.stderr then parts[#parts + 1] = "2>" .. shell_quote(opts.stderr) end
    return table.concat(parts, " ")
end

--- start(app, opts) -> { url, port, pid, stop }; raises if the child fails to start.
function M.start(app, opts)
    if type(app) ~= "string" then
        error("bad argument #1 to 'start' (string expected, got " .. type(app) .. ")", 2)
    end
    -- `exec` makes the child our direct child, so it sees us as its parent.
    local pipe = assert(io.popen(command(root_dir(), app, opts or {}), "r"))
    local line = pipe:read("*l")
    local port, pid = (line or ""):match("^(%d+) (%d+)$")
    if not port then
        pipe:close()
        error("test server for " .. app .. " did not start (its stderr says why): "
            .. tostring(line), 2)
    end
    local s = { port = tonumber(port), pid = tonumber(pid), url = "http://127.0.0.1:" .. port }
    function s.stop()
        if not pipe then return end
        os.execute("kill -TERM " .. pid .. " 2>/dev/null")
        pipe:close() -- waits for the child to exit: no zombie, port released
        pipe = nil
    end
    return s
end

--- fixture(app, opts): a table whose start/stop (plain functions, for setup and
-- teardown) fill in and clear url, port and pid.
function M.fixture(app, opts)
    local f = {}
    function f.start()
        local s = M.start(app, opts)
        f.url, f.port, f.pid, f.running = s.url, s.port, s.pid, s
    end
    function f.stop()
        if f.running then f.running.stop() end
        f.url, f.port, f.pid, f.running = nil, nil, nil, nil
    end
    return f
end

return M
