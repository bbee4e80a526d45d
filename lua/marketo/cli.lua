--- marketo.cli: the runner's command line. main(argv, out, err) -> exit status
-- (0 ok, 1 runtime failure, 2 usage error); library code never calls os.exit.
-- Each command is a module marketo.commands.NAME with `summary`, `usage` and
-- main(argv, out, err), where argv[1] is the command's own name.
local marketo = require("marketo")

local core = marketo.core

local M = { EXIT_OK = 0, EXIT_FAILURE = 1, EXIT_USAGE = 2 }

-- The order `--help` lists them in.
M.COMMANDS = { "run", "import", "status", "failures", "warnings", "resume", "sandbox" }

local function writer(stream)
    return { write = function(_, ...) stream:write(...) end }
end

local function load_command(name)
    local ok, mod = pcall(require, "marketo.commands." .. name)
    if ok then return mod end
    if not tostring(mod):find("module 'marketo.commands." .. name .. "' not found", 1, true) then
        error(mod, 0) -- a broken command module must not pass for a missing one
    end
    return nil
end

local function usage()
    local lines = { "usage: marketo-bulk COMMAND [ARGS...]", "", "commands:" }
    for _, name in ipairs(M.COMMANDS) do
        local mod = load_command(name)
        if mod then lines[#lines + 1] = ("  %-10s %s"):format(name, mod.summary) end
    end
    lines[#lines + 1] = "  --version  print the versions of marketo-bulk, Lua and libcurl"
    lines[#lines + 1] = "  --help     print this help (COMMAND --help for a command's own)"
    lines[#lines + 1] = ""
    lines[#lines + 1] = "With no MARKETO_* credentials in the environment, commands that talk to"
    lines[#lines + 1] = "Marketo use the embedded sandbox and say so on stderr."
    return table.concat(lines, "\n") .. "\n"
end

local function version_text()
    local v = core.versions()
    return ("marketo-bulk %s\n%s\nlibcurl %s (%s)\n"):format(v.marketo, v.lua, v.curl, v.ssl)
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
        out:write(usage())
        return M.EXIT_OK
    elseif name == nil then
        err:write(usage())
        return M.EXIT_USAGE
    end
    local command = name:match("^[%w_-]+$") and load_command(name)
    if not command then
        err:write(("marketo-bulk: unknown command '%s'\n\n"):format(name), usage())
        return M.EXIT_USAGE
    end
    return command.main(argv, out, err)
end

return M
