--- marketo-bulk resume JOURNAL: finish an import from its journal alone.
local core = require("marketo.core")
local import = require("marketo.import")
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")
local import_cmd = require("marketo.commands.import")
local paths = require("marketo.commands.paths")

local M = { summary = "finish an interrupted import from its journal" }

M.usage = [[
usage: marketo-bulk resume JOURNAL [--report FILE] [--json] [--quiet] [limits]

Picks up where the journal says the import stopped: parts already finished are
never sent again, none is skipped, and a part whose upload outcome is unknown
(a crash between sending and Marketo's answer) is sent again, which is safe
because Marketo's import is an upsert by the dedupe key. Rerunning the original
`marketo-bulk import` command does the same.
Limits: --importing N --queued N --uploads N --calls N --window S --in-flight N

Exit status as for `marketo-bulk import`.
]]

local FLAGS = { report = "string", json = "boolean", quiet = "boolean", help = "boolean" }
for k, kind in pairs(import_cmd.LIMIT_FLAGS) do FLAGS[k] = kind end

function M.main(argv, out, err)
    local flags, positional = args.parse(argv, 2, FLAGS)
    if not flags then return args.usage_error(err, "resume", positional) end
    if flags.help then out:write(M.usage); return 0 end
    if #positional ~= 1 then err:write(M.usage); return 2 end
    local ok, msg = paths.input(positional[1], "the journal")
    if ok and flags.report then ok, msg = paths.output(flags.report, "the report") end
    if not ok then err:write("marketo-bulk resume: ", msg, "\n"); return 1 end
    local spec = { report = flags.report, limits = import_cmd.limits_of(flags) }
    local client, stop = target.marketo(err)
    if not client then err:write("marketo-bulk: ", stop, "\n"); return 1 end
    spec.client = client
    core.catch_signals()
    local done, status = pcall(import_cmd.execute, function(s)
        return import.resume(positional[1], s)
    end, spec, flags, out, err)
    stop()
    if not done then error(status, 0) end
    return status
end

return M
