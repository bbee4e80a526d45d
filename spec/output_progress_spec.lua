-- What a person sees while an import runs, through the real runner against the
-- real sandbox: on a terminal (a pty from script(1)) the progress line is ended
-- before the summary, and `marketo-bulk run` shows a script's import the same
-- progress as the import command, without the script asking for it.
local cli = require("spec.support.cli")
local json = require("marketo.json")
local files = require("spec.support.files")

local SCRIPT = [[
local import = require("marketo.import")
local result = assert(import.run({ object = "leads", lookup_field = "email",
    source = arg[1], part_bytes = 3000 }))
io.write(result.summary)
return result.exit
]]

describe("the progress display", function()
    local ctx = cli.sandboxed()
    local sb, dir
    before_each(function()
        sb, dir = ctx.sb, ctx.dir
        cli.leads_csv(dir .. "/leads.csv", 200)
        cli.write(dir .. "/import.lua", SCRIPT)
    end)

    it("ends its line on a terminal before a script's summary", function()
        local inner = table.concat({ files.q(os.getenv("MARKETO_BULK_BIN")), "run",
            files.q(dir .. "/import.lua"), files.q(dir .. "/leads.csv") }, " ")
        local r = cli.run({ "-qec", inner, "/dev/null" }, { bin = "script",
            env = cli.env_of(sb) })
        assert.equal(0, r.status, r.out)
        -- the script gave no on_event: the runner drew the line all the same
        assert.matches("rows uploaded | parts: ", r.out, 1, true)
        local last = r.out:match(".*\r\27%[K([^\r\n]*)")
        assert.matches("^200/200 rows uploaded | parts: 0 importing, 0 finishing, 0 queued, "
            .. "%d+/%d+ done", last)
        -- the line, then a line end, then the summary at the start of its own line
        assert.matches("ETA %d%d:%d%d\r?\ncomplete: 200 rows read", r.out)
    end)

    it("gives a script JSON lines on stderr elsewhere, the last one the end", function()
        local r = cli.run({ "run", dir .. "/import.lua", dir .. "/leads.csv" },
            { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.err)
        local events = {}
        for line in r.err:gmatch("[^\n]+") do
            if line:sub(1, 1) == "{" then events[#events + 1] = json.decode(line).ev end
        end
        assert.equal("planned", events[1])
        assert.equal("ended", events[#events])
        assert.matches("^complete: 200 rows read", r.out)
    end)
end)
