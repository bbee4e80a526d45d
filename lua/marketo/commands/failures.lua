--- marketo-bulk failures: Marketo's failure file of one batch, as a file.
-- `warnings` is the same command for the warnings file.
local args = require("marketo.commands.args")
local target = require("marketo.commands.target")

local function command(what)
    local M = { summary = ("save a batch's %s file from Marketo"):format(what) }
    M.usage = ([[
usage: marketo-bulk %s %s BATCH_ID [-o FILE]

Saves Marketo's %s file for the batch to FILE (default: stdout), exactly as
Marketo sent it: the uploaded header plus a reason column. No file means none.
]]):format(what, target.usage("status"), what)
    local FLAGS = { output = "string", help = "boolean", format = "string" }

    function M.main(argv, out, err)
        local list = {}
        for i, a in ipairs(argv) do list[i] = a == "-o" and "--output" or a end
        local flags, positional = args.parse(list, 2, FLAGS)
        if not flags then
            err:write(("marketo-bulk %s: %s\n\n"):format(what, positional), M.usage)
            return 2
        end
        if flags.help then out:write(M.usage); return 0 end
        local object, next_i = target.object(positional, 1, "status")
        if not object or #positional ~= next_i then
            err:write(("marketo-bulk %s: %s\n\n"):format(what,
                object and "BATCH_ID expected" or next_i), M.usage)
            return 2
        end
        local options, stop = target.marketo(err)
        if not options then err:write("marketo-bulk: ", stop, "\n"); return 1 end
        local client, msg = require("marketo.client").new(options)
        if not client then stop(); err:write("marketo-bulk: ", msg, "\n"); return 1 end
        local job = client:job(object.object, tonumber(positional[next_i]) or positional[next_i],
            object.values)
        local body
        body, msg = client:call({ method = "GET", path = job:path("file", what),
            expect = "file" })
        stop()
        if body == nil then err:write("marketo-bulk: ", msg, "\n"); return 1 end
        if body == false then
            err:write(("marketo-bulk: batch %s has no %s\n"):format(positional[next_i], what))
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
