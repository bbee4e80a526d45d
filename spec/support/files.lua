--- spec/support/files.lua: the file and folder chores every spec has. Loads
-- on Lua 5.1/LuaJIT too (the core specs run there).
local M = {}

--- The shell's quoting of s, for a command line.
function M.q(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function M.write(path, text)
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
end

--- The whole file, or nil if it cannot be opened.
function M.read(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("*a")
    f:close()
    return s
end

--- A new temporary file holding data; its path.
function M.temp_file(data)
    local path = os.tmpname()
    M.write(path, data)
    return path
end

--- A fresh temporary folder.
function M.tmpdir()
    local p = io.popen("mktemp -d")
    local d = p:read("*l")
    p:close()
    return d
end

--- A temporary file name for each test of the enclosing describe block (or
-- spec file), removed after the test; `set` gets it before the test:
--   local path
--   files.temp_each(function(p) path = p end)
function M.temp_each(set)
    local b = require("busted") -- its functions, which a spec file sees as globals
    local path
    b.before_each(function()
        path = os.tmpname()
        set(path)
    end)
    b.after_each(function() os.remove(path) end)
end

function M.rmdir(d)
    if d and d:match("^/tmp/") then os.execute("rm -rf " .. M.q(d)) end
end

return M
