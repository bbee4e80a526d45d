--- spec/support/nginx.lua: nginx with the example config, for a spec (Lua 5.4,
-- lua-socket).
--
--   local nginx = require("spec.support.nginx")
--   local n = nginx.start{ env = { MARKETO_BASE_URL = ... } }  -- raises if it fails
--   finally(n.stop)                 -- idempotent: QUIT, then KILL (workers too) after 10 s
--   n.port, n.ports, n.prefix, n.pid, n.url
--   n.request("GET", "/ping")       -- status, body (nil, err on a socket error)
--   n.log()                         -- the error log so far
--
-- nginx runs `-p <tmp> -c <tmp>/nginx.conf -g 'daemon off;'` with one worker on
-- 127.0.0.1 and a free port; its logs, pid and temp files stay in <tmp>. Run
-- by root, the worker stays root too (`user root;`): nginx would otherwise
-- switch it to nobody, who may not read a checkout under a private home. A
-- watchdog shell sends QUIT when this process goes away, so a crashed busted
-- leaves no nginx behind.
local socket = require("socket")

local M = {}

local function root_dir()
    local source = debug.getinfo(1, "S").source:gsub("^@", "")
    local dir = source:match("^(.*)/spec/support/[^/]*$") or "."
    if dir:sub(1, 1) == "/" then return dir end
    local cwd = os.getenv("PWD") or "."
    if dir == "." then return cwd end
    return cwd .. "/" .. dir:gsub("^%./", "")
end

M.ROOT = root_dir()

local shell_quote, read = require("spec.support.files").q, require("spec.support.files").read

local function free_port()
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    return tonumber(port)
end
M.free_port = free_port -- spec.support.redis's too

local function scratch_dir()
    local p = os.tmpname()
    os.remove(p)
    assert(os.execute("mkdir -p " .. shell_quote(p .. "/tmp")))
    return p
end

--- render(template, values) -> the config text, every @NAME@ replaced.
function M.render(template, values)
    return (template:gsub("@(%u+)@", function(name)
        return assert(values[name], "no value for @" .. name .. "@")
    end))
end

local function alive(pid)
    return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- One request on a fresh connection: status, body | nil, err.
function M.request(port, method, path, timeout)
    local c = socket.tcp()
    c:settimeout(timeout or 30)
    local ok, err = c:connect("127.0.0.1", port)
    if not ok then c:close(); return nil, err end
    c:send(("%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0"
        .. "\r\n\r\n"):format(method, path))
    local text, rerr, partial = c:receive("*a")
    c:close()
    text = text or partial
    local status = text and tonumber(text:match("^HTTP/1%.%d (%d%d%d)"))
    if not status then return nil, rerr or "no status line" end
    return status, text:match("\r\n\r\n(.*)$")
end

local function wait_up(n, deadline)
    while socket.gettime() < deadline do
        local pid = tonumber(read(n.prefix .. "/nginx.pid") or "")
        if pid and M.request(n.port, "GET", "/ping", 1) == 200 then return pid end
        if (read(n.prefix .. "/stderr.log") or ""):find("[emerg]", 1, true) then return nil end
        socket.sleep(0.05)
    end
end

local write = require("spec.support.files").write

local function is_root()
    local p = assert(io.popen("id -u"))
    local uid = p:read("*l")
    p:close()
    return uid == "0"
end

local function launch(opts, prefix, ports)
    local template = opts.conf_text
        or assert(read(opts.conf or (M.ROOT .. "/examples/openresty/nginx.conf")))
    write(prefix .. "/nginx.conf",
        M.render(template, setmetatable({ ROOT = M.ROOT, PREFIX = prefix }, { __index = ports })))
    for name, text in pairs(opts.files or {}) do write(prefix .. "/" .. name, text) end
    local env = {}
    for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. shell_quote(v) end
    local parent = require("marketo.core").getpid()
    local globals = is_root() and "daemon off; user root;" or "daemon off;"
    -- The watchdog: nginx in the background (env execs it: $n is the master);
    -- once our process is gone, QUIT, and 10 s later KILL for the workers and it.
    local cmd = ("(env %s nginx -p %s -c %s -g '%s' >%s 2>&1 & n=$!; "
        .. "while kill -0 %d 2>/dev/null && kill -0 $n 2>/dev/null; do sleep 1; done; "
        .. "kill -QUIT $n 2>/dev/null; i=0; "
        .. "while kill -0 $n 2>/dev/null && [ $i -lt 10 ]; do sleep 1; i=$((i+1)); done; "
        .. "pkill -KILL -P $n; kill -KILL $n) >/dev/null 2>&1 &")
        :format(table.concat(env, " "), shell_quote(prefix), shell_quote(prefix .. "/nginx.conf"),
            globals, shell_quote(prefix .. "/stderr.log"), parent)
    assert(os.execute(cmd))
end

--- start(opts) -> n; opts: env (for the workers: the config lists them with
-- `env`), conf (the template's path; default the example's) or conf_text (the
-- template itself), files ({ name = text } written into the prefix), ports
-- (names of more placeholders to fill with free ports: n.ports[name]). The
-- config must serve GET /ping on @PORT@. Raises if it does not answer in 10 s.
function M.start(opts)
    opts = opts or {}
    local n = { prefix = scratch_dir() }
    for _ = 1, 3 do -- the free port may be taken between probe and bind
        n.ports = { PORT = tostring(free_port()) }
        for _, name in ipairs(opts.ports or {}) do n.ports[name] = tostring(free_port()) end
        n.port = tonumber(n.ports.PORT)
        launch(opts, n.prefix, n.ports)
        n.pid = wait_up(n, socket.gettime() + 10)
        if n.pid then break end
    end
    if not n.pid then
        error("nginx did not start:\n" .. (read(n.prefix .. "/stderr.log") or "")
            .. (read(n.prefix .. "/error.log") or ""), 2)
    end
    n.url = "http://127.0.0.1:" .. n.port
    function n.request(method, path, timeout) return M.request(n.port, method, path, timeout) end
    function n.log() return read(n.prefix .. "/error.log") or "" end
    local stopped = false
    function n.stop()
        if stopped then return end
        stopped = true
        os.execute("kill -QUIT " .. n.pid .. " 2>/dev/null")
        local deadline = socket.gettime() + 10
        while alive(n.pid) and socket.gettime() < deadline do socket.sleep(0.05) end
        if alive(n.pid) then
            -- Workers first: killed alone, the master would leave them orphaned,
            -- still running whatever held them up.
            os.execute("pkill -KILL -P " .. n.pid .. " 2>/dev/null")
            os.execute("kill -KILL " .. n.pid .. " 2>/dev/null")
        end
    end
    return n
end

return M
