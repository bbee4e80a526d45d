-- --map with other columns present, through the real runner and sandbox:
-- the columns left out are named in a warning (they are not sent: a dedupe
-- field among them used to fail every row with no hint), and --keep-unmapped
-- sends them under their own names.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")

describe("marketo-bulk import --map", function()
    local sb, dir, src
    setup(function() sb = sandbox.start({ speed = 0 }) end)
    teardown(function() sb.stop() end)
    before_each(function()
        sb.reset()
        dir = cli.tmpdir()
        src = dir .. "/people.csv"
        cli.write(src, "email,First\nann@example.com,Ann\nbo@example.com,Bo\n")
    end)
    after_each(function() cli.rmdir(dir) end)

    it("warns that the columns it does not map are not sent", function()
        local r = cli.run({ "import", "leads", src, "--map", "firstName=First", "--quiet" },
            { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err)
        assert.equal("marketo-bulk: warning: 1 column is not mapped, so not sent: email "
            .. "(--keep-unmapped sends them too)\n", r.err)
        r = cli.run({ "import", "--help" })
        assert.matches("a\n%s+column not mapped is left out", r.out)
    end)

    it("sends them with --keep-unmapped", function()
        local r = cli.run({ "import", "leads", src, "--map", "firstName=First",
            "--keep-unmapped", "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.out .. r.err)
        assert.equal("", r.err)
        assert.same({ ["ann@example.com"] = "Ann", ["bo@example.com"] = "Bo" },
            cli.first_names(sb))
    end)

    it("says nothing when every column is mapped, and --keep-unmapped needs a mapping", function()
        local r = cli.run({ "import", "leads", src, "--map", "firstName=First", "--map",
            "email=email", "--dry-run" })
        assert.equal(0, r.status, r.err)
        assert.equal("", r.err)
        r = cli.run({ "import", "leads", src, "--keep-unmapped", "--dry-run" })
        assert.equal(2, r.status, r.err)
        assert.matches("--keep-unmapped goes with --map or --set", r.err, 1, true)
    end)
end)
