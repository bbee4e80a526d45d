--- marketo-bulk run SCRIPT [ARGS...]: run an import script written in Lua.
-- The script sees `arg` as a standalone Lua would (arg[0] the script,
-- arg[1..] its arguments) and gets them as `...` too. A whole number it
-- returns becomes the exit status.
local core = require("marketo.core")
local config = require("marketo.config")
local target = require("marketo.commands.target")
local args = require("marketo.commands.args")
local progress = require("marketo.pipeline.progress")

local M = {
    summary = "run an import script written in Lua",
    usage = [[
usage: marketo-bulk run SCRIPT [ARGS...]

Runs SCRIPT, a Lua 5.4 file, with the marketo modules built in (no LUA_PATH
needed): `arg` and `...` are its ARGS, and a whole number it returns is the
exit status. With no MARKETO_* credentials (and no profile) the first client it
makes gets the embedded sandbox. Everything after SCRIPT is the script's own.

Examples:
  marketo-bulk run examples/crm-leads.lua
  marketo-bulk run nightly.lua --since yesterday
]],
}

-- A script's own error is the user's: its message, and with --debug its
-- traceback down to the script, without the runner's frames below it.
local function script_error(debug_on)
    return function(e)
        local msg = tostring(e)
        if not debug_on then return msg end
        local trace = debug.traceback(msg, 2)
        return (trace:gsub("\n%s*%[C%]: in function 'xpcall'.*$", ""))
    end
end

function M.main(argv, out, err, opts)
    local script = argv[2]
    if script == "--help" or script == "-h" then
        out:write(M.usage)
        return 0
    elseif not script then
        return args.usage_error(err, "run", "SCRIPT expected")
    elseif script:match("^%-.") then
        return args.usage_error(err, "run", ("unknown flag %s"):format(script))
    end
    local chunk, msg = loadfile(script)
    if not chunk then
        err:write("marketo-bulk run: ", msg, "\n")
        return 1
    end
    local script_arg = { [0] = script }
    for i = 3, #argv do script_arg[i - 2] = argv[i] end
    local saved_arg = rawget(_G, "arg")
    rawset(_G, "arg", script_arg)
    core.catch_signals()
    -- A script that makes a client with no credentials anywhere gets the
    -- embedded sandbox, started on first use and stopped when the script ends.
    local stop = function() end
    config.fallback = function()
        local creds, stopper = target.sandbox(err)
        if not creds then error(stopper, 0) end
        config.fallback, stop = function() return creds end, stopper
        return creds
    end
    -- an import the script gives no on_event shows the same progress as the
    -- import command: a line on a terminal, JSON lines on stderr elsewhere
    progress.default = function()
        return progress.new({ out = err, tty = core.isatty(2) })
    end
    local ok, result = xpcall(chunk, script_error(opts and opts.debug),
        table.unpack(script_arg, 1, #script_arg))
    config.fallback, progress.default = nil, nil
    stop()
    rawset(_G, "arg", saved_arg)
    if not ok then
        err:write("marketo-bulk run: ", result, "\n")
        return 1
    end
    if math.type(result) == "integer" then
        if result < 0 or result > 255 then
            err:write(("marketo-bulk: the script returned %d; an exit status is 0-255\n")
                :format(result))
            return 1
        end
        return result
    end
    return 0
end

return M
