--- marketo.sandbox.spawn: start a sandbox as a child process and talk to it.
-- Plain Lua 5.1 through io.popen/os.execute (and curl for control calls), so
-- specs on LuaJIT and the runner's embedded default can both use it.
--
--   local child = require("marketo.sandbox.spawn").spawn{
--       bin = "/path/marketo-bulk",         -- default: the runner itself, else
--                                           -- $MARKETO_BULK_BIN
--       config = { speed = 0, token_ttl = 5 }, max_lifetime = 900, quiet = true }
--   child.base_url, child.client_id, child.client_secret, child.pid
--   child.control{ token_ttl = 2 }          -- POST /__sandbox/config
--   child.get("/__sandbox/counters")        -- body, status
--   child.set_clock{ advance = 5, freeze = true } -- POST /__sandbox/clock
--   child.stop()
local M = {}

local function shell_quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The pid of this Lua process: the parent of the shell popen starts.
local function own_pid()
    local ok, core = pcall(require, "marketo.core")
    if ok and type(core) == "table" and core.getpid then return core.getpid() end
    local p = assert(io.popen("echo $PPID"))
    local pid = p:read("*l")
    p:close()
    return tonumber(pid)
end

local function runner_path()
    local ok, core = pcall(require, "marketo.core")
    if ok and type(core) == "table" and core.self_exe then
        local exe = core.self_exe()
        if exe and exe:match("marketo%-bulk$") then return exe end
    end
    return os.getenv("MARKETO_BULK_BIN")
end

local function json_value(v)
    local t = type(v)
    if t == "table" then
        local items = {}
        for i = 1, #v do items[i] = json_value(v[i]) end
        return "[" .. table.concat(items, ",") .. "]"
    elseif t == "string" then
        return '"' .. v:gsub('[%c"\\]', function(c)
            return ("\\u%04x"):format(c:byte())
        end) .. '"'
    end
    return tostring(v)
end

--- A flat table as a JSON object (values: strings, numbers, booleans, lists).
function M.encode(t)
    local items = {}
    for k, v in pairs(t) do items[#items + 1] = json_value(tostring(k)) .. ":" .. json_value(v) end
    table.sort(items)
    return "{" .. table.concat(items, ",") .. "}"
end

local function flag_value(v)
    if type(v) == "table" then return table.concat(v, ",") end
    return tostring(v)
end

-- curl, so that a caller on plain Lua needs no socket library.
local function curl(url, method, body)
    local args = { "curl", "-s", "-o", "-", "-w", shell_quote("\n%{http_code}"),
                   "-X", method }
    local tmp
    if body then
        tmp = os.tmpname()
        local f = assert(io.open(tmp, "wb"))
        f:write(body)
        f:close()
        args[#args + 1] = "-H 'Content-Type: application/json' --data-binary @" .. shell_quote(tmp)
    end
    args[#args + 1] = shell_quote(url)
    local p = assert(io.popen(table.concat(args, " ")))
    local out = p:read("*a")
    p:close()
    if tmp then os.remove(tmp) end
    local text, status = out:match("^(.*)\n(%d+)$")
    return text, tonumber(status)
end

-- The shell line that runs the sandbox in place of the shell (exec), so the
-- pid the shell prints first is the sandbox's.
local function command_line(bin, opts)
    local args = { "exec", shell_quote(bin), "sandbox", "--port", "0",
                   "--parent-pid", tostring(own_pid()),
                   "--max-lifetime", tostring(opts.max_lifetime or 900) }
    if opts.quiet ~= false then args[#args + 1] = "--quiet" end
    local keys = {}
    for k in pairs(opts.config or {}) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do
        args[#args + 1] = "--" .. k:gsub("_", "-") .. "=" .. shell_quote(flag_value(opts.config[k]))
    end
    return "echo $$; " .. table.concat(args, " ")
end

-- Starts it: the pipe, its pid and the MARKETO_* lines it prints once it
-- accepts (nil when it did not come up).
local function start(line)
    local pipe = assert(io.popen(line))
    local pid = tonumber(pipe:read("*l"))
    local seen = {}
    for _ = 1, 3 do
        local l = pipe:read("*l")
        if not l then break end
        local k, v = l:match("^(MARKETO_[%u_]+)=(.*)$")
        if k then seen[k] = v end
    end
    if not (pid and seen.MARKETO_BASE_URL) then
        pipe:close()
        return nil
    end
    return pipe, pid, seen
end

-- The running sandbox as a table of calls to it.
local function handle(pipe, pid, seen)
    local child = { pid = pid, base_url = seen.MARKETO_BASE_URL,
                    client_id = seen.MARKETO_CLIENT_ID,
                    client_secret = seen.MARKETO_CLIENT_SECRET }
    local stopped = false
    function child.stop()
        if stopped then return true end
        stopped = true
        os.execute("kill -TERM " .. pid .. " 2>/dev/null")
        pipe:close() -- waits for the child to exit
        return true
    end
    function child.get(path)
        return curl(child.base_url .. path, "GET")
    end
    function child.post(path, body)
        return curl(child.base_url .. path, "POST", body or "")
    end
    -- A control call that must succeed: its answer, or a raise naming `what`.
    local function control(path, body, what)
        local text, status = child.post(path, body)
        if status ~= 200 then
            error(("marketo.sandbox: %s: %s"):format(what, tostring(text)), 3)
        end
        return text
    end
    function child.control(config)
        return control("/__sandbox/config", M.encode(config), "config refused")
    end
    function child.set_clock(change)
        return control("/__sandbox/clock", M.encode(change or {}), "clock refused")
    end
    function child.reset()
        control("/__sandbox/reset", "{}", "reset failed")
        return true
    end
    return child
end

--- spawn(opts) -> child table; raises when the sandbox does not come up.
function M.spawn(opts)
    opts = opts or {}
    local bin = opts.bin or runner_path()
    if not bin then error("marketo.sandbox.spawn: no runner (set MARKETO_BULK_BIN)", 2) end
    local pipe, pid, seen = start(command_line(bin, opts))
    if not pipe then
        error("marketo.sandbox.spawn: the sandbox did not start (" .. tostring(bin) .. ")", 2)
    end
    return handle(pipe, pid, seen)
end

return M
