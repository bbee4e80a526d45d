--- marketo.commands.paths: the files a command is given, checked before it
-- starts anything, so that a wrong path is a one-line error naming it, not a
-- failure halfway (or a traceback) after the import has begun.
-- Each check returns true | nil, message.
local core = require("marketo.core")

local M = {}

local function folder_of(path)
    local dir = path:match("^(.*)/[^/]*$")
    if dir == nil then return "." end
    if dir == "" then return "/" end
    return dir
end

--- A file to read: it exists, is not a folder, and can be opened.
function M.input(path, what)
    local f, msg = io.open(path, "rb")
    if not f then return nil, ("cannot read %s %s"):format(what, msg) end
    local _, rmsg, code = f:read(0)
    f:close()
    if code then
        return nil, ("cannot read %s %s: %s"):format(what, path, core.is_folder(path)
            and "it is a folder, not a file" or rmsg)
    end
    return true
end

--- A file to write (or to append to): not a folder, in a folder that exists.
function M.output(path, what)
    if core.is_folder(path) then
        return nil, ("%s %s is a folder: give a file name"):format(what, path)
    end
    local dir = folder_of(path)
    if not core.is_folder(dir) then
        return nil, ("%s %s: the folder %s does not exist"):format(what, path, dir)
    end
    return true
end

return M
