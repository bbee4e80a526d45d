-- Rerunning an import, through the real runner and sandbox: a finished
-- journal sends nothing and says so first; a source changed to the same size
-- or an edited mapping function is another import; --restart imports anew
-- and keeps the old journal as JOURNAL.1.
local cli = require("spec.support.cli")

local first_names = cli.first_names

describe("rerunning an import", function()
    local ctx = cli.sandboxed()
    local sb, dir, src
    before_each(function()
        sb, dir = ctx.sb, ctx.dir
        src = dir .. "/people.csv"
        cli.write(src, "email,firstName\nann@example.com,Ann\nbo@example.com,Bo\n")
    end)

    local function import(...)
        return cli.run({ "import", "leads", src, "--quiet", ... }, { env = cli.env_of(sb) })
    end

    it("of a finished journal sends nothing and says so first", function()
        assert.equal(0, import().status)
        local calls = cli.calls(sb, "^/bulk/") -- (a describe may be asked again)
        local r = import()
        assert.equal(0, r.status, r.err)
        assert.matches(("^marketo%%-bulk: already imported on %%d+%%-%%d+%%-%%d+ %%d+:%%d+ UTC per "
            .. "journal %s; nothing sent%%. %%-%%-restart to import again%%.\n$")
            :format(src:gsub("%p", "%%%0") .. "%.journal"), r.err)
        assert.matches("^complete: 2 rows read: 2 imported", r.out)
        assert.equal(calls, cli.calls(sb, "^/bulk/"))
        -- resume says the same, and how to import again
        r = cli.run({ "resume", src .. ".journal" }, { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.err)
        assert.matches("nothing sent. `marketo-bulk import ... --restart` to import again.\n",
            r.err, 1, true)
        assert.equal(calls, cli.calls(sb, "^/bulk/"))
    end)

    it("of a file changed to the same size is another import; --restart sends it", function()
        assert.equal(0, import().status)
        cli.write(src, "email,firstName\nann@example.com,Ana\nbo@example.com,Bo\n")
        local r = import()
        assert.equal(1, r.status, r.err)
        assert.matches("JOURNAL_MISMATCH: " .. src .. ".journal is of " .. src .. " as it was "
            .. "(its bytes changed since, the size did not); --restart", r.err, 1, true)
        assert.equal("Ann", first_names(sb)["ann@example.com"])
        r = import("--restart")
        assert.equal(0, r.status, r.err)
        assert.matches("marketo-bulk: the old journal is kept as " .. src .. ".journal.1\n", r.err,
            1, true)
        assert.equal("Ana", first_names(sb)["ann@example.com"])
        assert.truthy(cli.read(src .. ".journal.1"))
        -- the kept journal is still a finished import's
        assert.matches("^complete: 2 rows read: 2 imported",
            cli.run({ "status", src .. ".journal.1" }).out)
    end)

    it("with an edited mapping function is another import", function()
        local script = dir .. "/import.lua"
        local function write_script(body)
            cli.write(script, ([[
                local result, msg = require("marketo.import").run{ object = "leads",
                    source = %q, restart = arg[1] == "restart",
                    mapping = { email = "email", firstName = function(row) return %s end } }
                if not result then io.stderr:write(msg, "\n") return 1 end
                if result.already then io.stderr:write(result.already, "\n") end
                return result.exit
            ]]):format(src, body))
        end
        write_script("row.firstName")
        local env = cli.env_of(sb)
        assert.equal(0, cli.run({ "run", script }, { env = env }).status)
        local r = cli.run({ "run", script }, { env = env })
        assert.equal(0, r.status, r.err)
        assert.matches("already imported on", r.err, 1, true)
        write_script("row.firstName:upper()")
        r = cli.run({ "run", script }, { env = env })
        assert.equal(1, r.status, r.err)
        assert.matches("belongs to an import whose mapping script has changed since", r.err, 1,
            true)
        r = cli.run({ "run", script, "restart" }, { env = env })
        assert.equal(0, r.status, r.err)
        assert.equal("ANN", first_names(sb)["ann@example.com"])
    end)
end)
