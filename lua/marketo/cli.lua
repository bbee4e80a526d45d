--- marketo.cli: the runner's command line. main(argv, out, err) -> exit status
-- (0 ok, 1 runtime failure, 2 usage error); library code never calls os.exit.
local marketo = require("marketo")

local core = marketo.core

local M = {}

local USAGE = [[
usage: marketo-bulk COMMAND [ARGS...]

commands:
  run SCRIPT [ARGS...]   run an import script written in Lua (ARGS in `arg`)
  --version              print the versions of marketo-bulk, Lua and libcurl
  --help                 print this help

With no MARKETO_* credentials in the environment, commands that talk to
Marketo use the embedded sandbox and say so on stderr.
]]

M.EXIT_OK, M.EXIT_FAILURE, M.EXIT_USAGE = 0, 1, 2

local function writer(stream)
    return { write = function(_, ...) stream:write(...) end }
end

local function version_text()
    local v = core.versions()
    return ("marketo-bulk %s\n%s\nlibcurl %s (%s)\n"):format(v.marketo, _VERSION, v.curl, v.ssl)
end

local commands = {}

--- run SCRIPT [ARGS...]: the script sees `arg` as a standalone Lua would
-- (arg[0] the script, arg[1..] its arguments) and gets them as `...` too.
-- A number it returns becomes the exit status.
function commands.run(argv, out, err)
    local script = argv[2]
    if not script or script == "--help" then
        (script and out or err):write("usage: marketo-bulk run SCRIPT [ARGS...]\n")
        return script and M.EXIT_OK or M.EXIT_USAGE
    end
    local chunk, msg = loadfile(script)
    if not chunk then
        err:write("marketo-bulk: ", msg, "\n")
        return M.EXIT_FAILURE
    end
    local script_arg = { [0] = script }
    for i = 3, #argv do script_arg[i - 2] = argv[i] end
    local saved_arg = rawget(_G, "arg")
    rawset(_G, "arg", script_arg)
    core.catch_signals()
    local ok, result = xpcall(chunk, debug.traceback, table.unpack(script_arg, 1, #script_arg))
    rawset(_G, "arg", saved_arg)
    if not ok then
        err:write("marketo-bulk: ", tostring(result), "\n")
        return M.EXIT_FAILURE
    end
    if math.type(result) == "integer" then return result end
    return M.EXIT_OK
end

--- main(argv, out, err): argv[1] is the command; out and err have :write.
function M.main(argv, out, err)
    out = out or writer(io.stdout)
    err = err or writer(io.stderr)
    local name = argv[1]
    if name == "--version" then
        out:write(version_text())
        return M.EXIT_OK
    elseif name == "--help" or name == "-h" or name == "help" then
        out:write(USAGE)
        return M.EXIT_OK
    elseif name == nil then
        err:write(USAGE)
        return M.EXIT_USAGE
    end
    local command = commands[name]
    if not command then
        err:write(("marketo-bulk: unknown command '%s'\n\n"):format(name), USAGE)
        return M.EXIT_USAGE
    end
    return command(argv, out, err)
end

M.commands = commands
return M
