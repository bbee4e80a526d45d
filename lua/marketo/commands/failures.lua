--- marketo-bulk failures: Marketo's failure file of one batch, as a file.
-- `warnings` is the same command for the warnings file.
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")
local paths = require("marketo.commands.paths")

local function command(what)
    local M = { summary = ("save a batch's %s file from Marketo"):format(what) }
    M.usage = ([[
usage: marketo-bulk %s {%s} BATCH_ID [-o FILE]

Saves Marketo's %s file for the batch to FILE (default: stdout), exactly as
Marketo sent it: the uploaded header plus a reason column. No file means none.
A program member batch is named by its batch id alone.
%s

Examples:
  marketo-bulk %s leads 1234 -o %s-1234.csv
  marketo-bulk %s custom_objects car_c 1235
  marketo-bulk %s program_members 1236
]]):format(what, target.usage("status"), what, target.FLAGS_HELP, what, what, what, what)
    local FLAGS = { output = "string", help = "boolean", format = "string" }
    for k, kind in pairs(target.FLAGS) do FLAGS[k] = kind end
    M.FLAGS, M.SHORT = FLAGS, { "-o" } -- for the shell's completion

    function M.main(argv, out, err)
        local list = {}
        for i, a in ipairs(argv) do list[i] = a == "-o" and "--output" or a end -- as curl's
        local flags, positional = args.parse(list, 2, FLAGS)
        if not flags then return args.usage_error(err, what, positional) end
        if flags.help then out:write(M.usage); return 0 end
        local object, batch = target.batch(positional)
        if not object then return args.usage_error(err, what, batch) end
        if flags.output then
            local ok, why = paths.output(flags.output, "the output file")
            if not ok then err:write(("marketo-bulk %s: %s\n"):format(what, why)); return 1 end
        end
        local instance, bad = target.instance(flags)
        if not instance then return args.usage_error(err, what, bad) end
        local options, stop = target.marketo(err, { instance = instance })
        if not options then err:write("marketo-bulk: ", stop, "\n"); return 1 end
        local client, msg = require("marketo.client").new(options)
        if not client then stop(); err:write("marketo-bulk: ", msg, "\n"); return 1 end
        local job = client:job(object.object, batch, object.values)
        local body
        body, msg = client:call({ method = "GET", path = job:path("file", what),
            expect = "file" })
        stop()
        if body == nil then err:write("marketo-bulk: ", msg, "\n"); return 1 end
        if body == false then
            err:write(("marketo-bulk: batch %d has no %s\n"):format(batch, what))
            return 0
        end
        if flags.output then
            local f, ferr = io.open(flags.output, "wb")
            if not f then err:write("marketo-bulk: ", ferr, "\n"); return 1 end
            f:write(body)
            f:close()
        else
            out:write(body)
        end
        return 0
    end
    return M
end

local failures = command("failures")
failures.for_what = command
return failures
