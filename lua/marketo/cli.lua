--- marketo.cli: the runner's command line. main(argv, out, err) -> exit status
-- (0 ok, 1 runtime failure, 2 usage error); library code never calls os.exit.
-- Each command is a module marketo.commands.NAME with `summary`, `usage` and
-- main(argv, out, err, opts), where argv[1] is the command's own name and
-- opts.debug says whether the user asked for tracebacks (--debug), opts.verbose
-- for the HTTP exchanges (--verbose; --debug shows them too, with headers).
--
-- A Lua error that escapes a command is a bug: the user gets one line saying
-- so, and the traceback only with --debug (or MARKETO_BULK_DEBUG=1).
local marketo = require("marketo")

local core = marketo.core
local trace = require("marketo.commands.trace")

local M = { EXIT_OK = 0, EXIT_FAILURE = 1, EXIT_USAGE = 2 }

-- The order `--help` lists them in.
M.COMMANDS = { "run", "import", "fields", "status", "failures", "warnings", "resume",
    "state", "sandbox", "completion" }

local function writer(stream)
    return { write = function(_, ...) stream:write(...) end }
end

local function load_command(name)
    local ok, mod = pcall(require, "marketo.commands." .. name)
    -- commands/ also holds what the commands share (args, target, ...): not commands
    if ok then return type(mod) == "table" and type(mod.main) == "function" and mod or nil end
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
    lines[#lines + 1] = "  --help     print this help (`help COMMAND` or COMMAND --help for a"
    lines[#lines + 1] = "             command's own, with examples)"
    lines[#lines + 1] = "  --verbose  before COMMAND: each HTTP exchange on stderr (method, path,"
    lines[#lines + 1] = "             status, requestId, time, bytes; secrets masked)"
    lines[#lines + 1] = "  --debug    before COMMAND: as --verbose with the headers, and the"
    lines[#lines + 1] = "             traceback of an internal error (MARKETO_BULK_DEBUG=1 too)"
    lines[#lines + 1] = ""
    lines[#lines + 1] = "With no MARKETO_* credentials in the environment, commands that talk to"
    lines[#lines + 1] = "Marketo use the embedded sandbox and say so on stderr."
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Examples:"
    lines[#lines + 1] = "  marketo-bulk import leads contacts.csv"
    lines[#lines + 1] = "  marketo-bulk help import"
    lines[#lines + 1] = "  marketo-bulk status contacts.csv.journal"
    return table.concat(lines, "\n") .. "\n"
end

local function version_text()
    local v = core.versions()
    return ("marketo-bulk %s\n%s\nlibcurl %s (%s)\n"):format(v.marketo, v.lua, v.curl, v.ssl)
end

local function dispatch(argv, out, err, opts)
    local name = argv[1]
    if name == "--version" then
        out:write(version_text())
        return M.EXIT_OK
    elseif (name == "help" and argv[2] == nil) or name == "--help" or name == "-h" then
        out:write(usage())
        return M.EXIT_OK
    elseif name == nil then
        err:write(usage())
        return M.EXIT_USAGE
    end
    local asked = name == "help" and argv[2] or name
    local command = asked:match("^[%w_]+$") and load_command(asked)
    if not command then
        err:write(("marketo-bulk: unknown command '%s'; see 'marketo-bulk --help'\n")
            :format(asked))
        return M.EXIT_USAGE
    end
    if name == "help" then return command.main({ [0] = argv[0], asked, "--help" }, out, err,
        opts) end
    return command.main(argv, out, err, opts)
end

local function internal_error(e)
    local msg = tostring(e)
    return { message = msg, traceback = debug.traceback(msg, 2) }
end

--- main(argv, out, err): argv[1] is the command (or --debug, then the
-- command); out and err have :write.
function M.main(argv, out, err)
    out = out or writer(io.stdout)
    err = err or writer(io.stderr)
    local opts = { debug = os.getenv("MARKETO_BULK_DEBUG") == "1" }
    local first = 1
    while argv[first] == "--debug" or argv[first] == "--verbose" do
        opts[argv[first]:sub(3)] = true
        first = first + 1
    end
    if first > 1 then
        local rest = { [0] = argv[0] }
        for i = first, #argv do rest[i - first + 1] = argv[i] end
        argv = rest
    end
    -- --debug is everything for a bug report: the exchanges with their headers too
    if opts.verbose or opts.debug then trace.start(err, opts.debug) end
    local ok, status = xpcall(dispatch, internal_error, argv, out, err, opts)
    trace.stop()
    if ok then return status end
    if opts.debug then
        err:write("marketo-bulk: internal error: ", status.traceback, "\n")
    else
        err:write(("marketo-bulk: internal error: %s (run again with --debug for the "
            .. "traceback, and report it)\n"):format((status.message:gsub("\n", " "))))
    end
    return M.EXIT_FAILURE
end

return M
