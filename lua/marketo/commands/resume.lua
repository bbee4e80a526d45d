--- marketo-bulk resume JOURNAL: finish an import from its journal alone.
local import = require("marketo.import")
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")
local import_cmd = require("marketo.commands.import")
local instance = require("marketo.commands.instance")

local M = { summary = "finish an interrupted import from its journal" }

M.usage = ([[
usage: marketo-bulk resume JOURNAL [--report FILE] [--json] [--quiet] [limits]

Picks up where the journal says the import stopped: parts already finished are
never sent again, none is skipped, and a part whose upload outcome is unknown
(a crash between sending and Marketo's answer) is sent again, which is safe
because Marketo's import is an upsert by the dedupe key. A journal whose plan
was cut short (a crash while planning: nothing was sent) is planned again, unless
Lua functions map its rows: then run the original command or script again.
Rerunning the original `marketo-bulk import` command does the same as resume.
Limits: --importing N --queued N --uploads N --calls N --window S --in-flight N
        --budget URL (as for `marketo-bulk import`)
Quota:  --daily-quota N --wait-for-quota --quota-check S (as for `marketo-bulk import`)
%s

Exit status as for `marketo-bulk import`.

Examples:
  marketo-bulk resume contacts.csv.journal
  marketo-bulk resume crm.journal --importing 1 --report crm-report.json
  marketo-bulk resume crm.journal --profile prod
]]):format(target.FLAGS_HELP)

local FLAGS = { report = "string", json = "boolean", quiet = "boolean", help = "boolean",
    budget = "string", daily_quota = "count", wait_for_quota = "boolean",
    quota_check = "seconds" }
for k, kind in pairs(import_cmd.LIMIT_FLAGS) do FLAGS[k] = kind end
for k, kind in pairs(target.FLAGS) do FLAGS[k] = kind end
M.FLAGS = FLAGS -- for the shell's completion

function M.main(argv, out, err)
    local flags, positional = args.parse(argv, 2, FLAGS)
    if not flags then return args.usage_error(err, "resume", positional) end
    if flags.help then out:write(M.usage); return 0 end
    local _, bad = target.instance(flags)
    if bad then return args.usage_error(err, "resume", bad) end
    if #positional ~= 1 then
        return args.usage_error(err, "resume", #positional == 0 and "JOURNAL expected"
            or ("one JOURNAL expected, got '%s' after it"):format(positional[2]))
    end
    local spec = { report = flags.report, limits = import_cmd.limits_of(flags) }
    import_cmd.quota_of(flags, spec)
    -- a plan made again is checked as the first was: the instance asked only then
    spec.schema = function(object, params)
        return instance.schema({ object = object, values = params },
            { settings = target.instance(flags) })
    end
    local msg, code
    spec.budget, msg = import_cmd.budget_of(flags)
    if msg then return args.usage_error(err, "resume", msg) end
    -- the journal locked (and a plan cut short made again) before any server starts
    local prepared
    prepared, msg, code = import.reopen(positional[1], spec)
    return import_cmd.send(prepared, msg, code, spec, flags, out, err)
end

return M
