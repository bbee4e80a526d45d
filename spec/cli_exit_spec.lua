-- Exit statuses and messages a user acts on, through the real runner and
-- the real sandbox: 4 and "run the same command again" only where a rerun
-- can succeed; what must be fixed first is exit 1 naming the fix; no file
-- name is taken for a flag or reaches a shell.
local cli = require("spec.support.cli")

describe("marketo-bulk import's exit status", function()
    local ctx = cli.sandboxed()
    local sb, dir, src
    before_each(function()
        sb, dir = ctx.sb, ctx.dir
        src = dir .. "/leads.csv"
        cli.leads_csv(src, 3)
    end)

    it("is 1 for bad credentials, naming the fix, with the journal kept", function()
        local env = cli.env_of(sb)
        env.MARKETO_CLIENT_SECRET = "not-the-secret"
        -- the instance's schema is asked first: the same answer, before any row is read
        local r = cli.run({ "import", "leads", src, "--quiet" }, { env = env })
        assert.equal(1, r.status, r.out .. r.err)
        assert.matches("AUTH_FAILED", r.err, 1, true)
        -- and while sending (--no-schema: nothing asked before)
        r = cli.run({ "import", "leads", src, "--quiet", "--no-schema", "--ignore-quota" },
            { env = env })
        assert.equal(1, r.status, r.out .. r.err)
        assert.matches("AUTH_FAILED", r.out, 1, true)
        assert.matches("not finished: check the client id and secret", r.out, 1, true)
        assert.not_matches("run the same command again, or", r.out, 1, true)
        assert.not_matches("not-the-secret", r.out .. r.err, 1, true)
        -- fixed, the same command resumes and finishes
        r = cli.run({ "import", "leads", src, "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.out .. r.err)
    end)

    it("is 1 for an object the instance does not have", function()
        local r = cli.run({ "import", "custom_objects", "nope_c", src, "--quiet", "--no-schema" },
            { env = cli.env_of(sb) })
        assert.equal(1, r.status, r.out .. r.err)
        assert.matches("1013", r.out, 1, true)
        assert.matches("not finished: check the object's name", r.out, 1, true)
    end)

    it("is 4, with a rerun to finish, when Marketo's quota is used up", function()
        sb.control({ daily_quota = 1 })
        local r = cli.run({ "import", "leads", src, "--quiet", "--no-schema", "--ignore-quota" },
            { env = cli.env_of(sb) })
        assert.equal(4, r.status, r.out .. r.err)
        assert.matches("not finished: run the same command again", r.out, 1, true)
    end)

    it("is 1 for a missing file, a column the header lacks, an unknown kind", function()
        local r = cli.run({ "import", "leads", dir .. "/nothere.csv" })
        assert.equal(1, r.status, r.err)
        assert.matches("cannot read the file " .. dir .. "/nothere.csv", r.err, 1, true)
        r = cli.run({ "import", "leads", src, "--map", "email=Nope" })
        assert.equal(1, r.status, r.err)
        assert.matches("reads column 'Nope', which the header does not have", r.err, 1, true)
        r = cli.run({ "import", "leeds", src })
        assert.equal(2, r.status, r.err)
    end)
end)

describe("a file name", function()
    local dir
    before_each(function() dir = cli.tmpdir() end)
    after_each(function() cli.rmdir(dir) end)

    it("that starts with '-' or holds quotes is never a flag or shell code", function()
        for _, name in ipairs({ "-weird.csv", "it's $(touch pwned).csv" }) do
            cli.leads_csv(dir .. "/" .. name, 2)
            local r = cli.run({ "import", "leads", "--dry-run", "--", name }, { cwd = dir })
            assert.equal(0, r.status, name .. ": " .. r.err)
            r = cli.run({ "import", "leads", "--quiet", "--", name }, { cwd = dir })
            assert.equal(0, r.status, name .. ": " .. r.out .. r.err)
            assert.matches("2 imported", r.out, 1, true)
            assert.is_nil(cli.read(dir .. "/pwned"))
        end
    end)

    it("whose work folder cannot be made is one line naming it", function()
        local src = dir .. "/leads.csv"
        cli.leads_csv(src, 2)
        cli.write(dir .. "/file", "")
        local r = cli.run({ "import", "leads", src, "--work-dir", dir .. "/file/work" })
        assert.equal(1, r.status, r.err)
        assert.equal(("marketo-bulk: WORK_DIR: cannot create the work folder %s/file/work "
            .. "(%s/file/work: Not a directory); give another --work-dir\n"):format(dir, dir),
            r.err)
    end)
end)
