--- spec/support/ok_server.lua: starts spec/support/ok_server.py, a loopback
-- server answering "ok" to anything (over TLS with a certificate and key).
-- Loads on Lua 5.1/LuaJIT (the core specs run there).
--
--   local s = require("spec.support.ok_server").start()  -- or .start(cert, key)
--   s.port ... s:stop()
local M = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/support"

function M.start(cert, key)
    -- the system python3, not a version manager's shell-script shim
    local cmd = "exec /usr/bin/python3 '" .. HERE .. "/ok_server.py'"
    if cert then cmd = cmd .. " '" .. cert .. "' '" .. key .. "'" end
    local pipe = assert(io.popen(cmd, "r"))
    local port, pid = (pipe:read("*l") or ""):match("^(%d+) (%d+)$")
    assert(port, "the ok server did not start")
    local s = { port = port, pid = pid, pipe = pipe }
    function s.stop()
        os.execute("kill " .. pid)
        pipe:close()
    end
    return s
end

return M
