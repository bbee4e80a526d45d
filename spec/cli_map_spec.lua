-- --map with other columns present, through the real runner and sandbox:
-- the columns left out are named in a warning (they are not sent: a dedupe
-- field among them used to fail every row with no hint), and --keep-unmapped
-- sends them under their own names.
local cli = require("spec.support.cli")

describe("marketo-bulk import --map", function()
    local ctx = cli.sandboxed()
    local sb, dir, src
    before_each(function()
        sb, dir = ctx.sb, ctx.dir
        src = dir .. "/people.csv"
        cli.write(src, "email,First\nann@example.com,Ann\nbo@example.com,Bo\n")
    end)

    it("warns that the columns it does not map are not sent", function()
        local r = cli.run({ "import", "leads", src, "--map", "firstName=First", "--quiet" },
            { env = cli.env_of(sb) })
        assert.matches("^marketo%-bulk: warning: 1 column is not mapped, so not sent: email "
            .. "%(%-%-keep%-unmapped sends them too%)\n", r.err)
        -- and the instance's schema refuses it before anything is sent: the lookup
        -- field is among the columns left out
        assert.equal(1, r.status, r.err)
        assert.matches("lookup field 'email' is not a column of the file", r.err, 1, true)
        assert.equal(0, cli.calls(sb, "^/bulk/"))
        r = cli.run({ "import", "--help" })
        assert.matches("a\n%s+column not mapped is left out", r.out)
    end)

    it("sends them with --keep-unmapped", function()
        local r = cli.run({ "import", "leads", src, "--map", "firstName=First",
            "--keep-unmapped", "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.out .. r.err)
        assert.not_matches("warning", r.err, 1, true)
        assert.same({ ["ann@example.com"] = "Ann", ["bo@example.com"] = "Bo" },
            cli.first_names(sb))
    end)

    it("says nothing when every column is mapped, and --keep-unmapped needs a mapping", function()
        local r = cli.run({ "import", "leads", src, "--map", "firstName=First", "--map",
            "email=email", "--dry-run" })
        assert.equal(0, r.status, r.err)
        assert.not_matches("warning", r.err, 1, true)
        r = cli.run({ "import", "leads", src, "--keep-unmapped", "--dry-run" })
        assert.equal(2, r.status, r.err)
        assert.matches("--keep-unmapped goes with --map or --set", r.err, 1, true)
    end)
end)
