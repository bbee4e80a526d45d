--- marketo-bulk status: where an import stands (from its journal), or what
-- Marketo says of one batch.
local json = require("marketo.json")
local import = require("marketo.import")
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")

local M = { summary = "show an import's progress (JOURNAL) or a batch's status" }

M.usage = ([[
usage: marketo-bulk status JOURNAL [--json]
       marketo-bulk status {%s} BATCH_ID [--json]

With a journal: the import's report so far, from the journal alone (no call to
Marketo). With an object kind and a batch id: one status call to Marketo (a
program member batch is named by its batch id alone).
%s

Examples:
  marketo-bulk status contacts.csv.journal
  marketo-bulk status leads 1234 --json
  marketo-bulk status custom_objects car_c 1235
  marketo-bulk status program_members 1236 --profile prod
]]):format(target.usage("status"), target.FLAGS_HELP)

local FLAGS = { json = "boolean", help = "boolean" }
for k, kind in pairs(target.FLAGS) do FLAGS[k] = kind end
M.FLAGS = FLAGS -- for the shell's completion

local function journal_status(path, flags, out, err)
    local doc, summary = import.report_of(path)
    if not doc then err:write("marketo-bulk: ", summary, "\n"); return 1 end
    if flags.json then out:write(json.encode(doc), "\n"); return 0 end
    out:write(summary)
    local stages = {}
    for _, p in ipairs(doc.parts) do stages[p.stage] = (stages[p.stage] or 0) + 1 end
    local list = {}
    for stage, n in pairs(stages) do list[#list + 1] = ("%d %s"):format(n, stage) end
    table.sort(list)
    out:write(("parts: %d (%s)\n"):format(#doc.parts, table.concat(list, ", ")))
    return 0
end

local function batch_status(object, batch, flags, out, err)
    local instance, bad = target.instance(flags)
    if not instance then return args.usage_error(err, "status", bad) end
    local options, stop = target.marketo(err, { instance = instance })
    if not options then err:write("marketo-bulk: ", stop, "\n"); return 1 end
    local client, msg = require("marketo.client").new(options)
    if not client then stop(); err:write("marketo-bulk: ", msg, "\n"); return 1 end
    local job = client:job(object.object, batch, object.values)
    local info
    info, msg = job:refresh()
    stop()
    if not info then err:write("marketo-bulk: ", msg, "\n"); return 1 end
    if flags.json then out:write(json.encode(info.raw), "\n"); return 0 end
    out:write(("batch %s (%s): %s; processed %s, failed %s, warned %s\n%s\n"):format(
        tostring(info.batch_id), object.label, tostring(info.status), tostring(info.processed),
        tostring(info.failed), tostring(info.warned), tostring(info.message or "")))
    return 0
end

function M.main(argv, out, err)
    local flags, positional = args.parse(argv, 2, FLAGS)
    if not flags then return args.usage_error(err, "status", positional) end
    if flags.help then out:write(M.usage); return 0 end
    if #positional == 0 then
        return args.usage_error(err, "status", "a JOURNAL, or a kind and a BATCH_ID, expected")
    end
    if #positional == 1 then return journal_status(positional[1], flags, out, err) end
    local object, batch = target.batch(positional)
    if not object then return args.usage_error(err, "status", batch) end
    return batch_status(object, batch, flags, out, err)
end

return M
