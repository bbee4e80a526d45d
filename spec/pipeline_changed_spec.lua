-- --changed-only through the real runner and the real sandbox: each import
-- sends exactly the new rows, the changed ones and the ones that failed
-- before (the sandbox's jobs count what was uploaded); a kill -9 in the
-- middle of one leaves the state to the resume; a state of another import,
-- or a damaged one, is refused.
local cli = require("spec.support.cli")
local core = require("marketo.core")

-- n leads, every 50th with a score the sandbox refuses (the schema's checks are
-- off: those rows reach it); the rows `edited`
-- names get another firstName.
local function leads(path, n, edited)
    cli.leads_csv(path, n, { bad_every = 50 })
    local text = cli.read(path)
    for i in pairs(edited or {}) do
        text = text:gsub(("\nlead%d@example.com,First%d,"):format(i, i),
            ("\nlead%d@example.com,Edited%d,"):format(i, i))
    end
    cli.write(path, text)
end

local function set(from, to, step)
    local s = {}
    for i = from, to, step or 1 do s[i] = true end
    return s
end

describe("--changed-only", function()
    local ctx = cli.sandboxed({ speed = 0 })

    -- Rows uploaded since the last call.
    local seen = 0
    local function uploaded()
        local n = 0
        for _, job in ipairs(cli.inspect(ctx.sb, "jobs")) do n = n + job.rows end
        n, seen = n - seen, n
        return n
    end

    local function env()
        local e = cli.env_of(ctx.sb)
        e.XDG_STATE_HOME = ctx.dir .. "/state"
        return e
    end

    local function import(src, journal, extra)
        local argv = { "import", "leads", src, "--changed-only", "--journal",
            ctx.dir .. "/" .. journal, "--part-bytes", "4000", "--no-schema" }
        for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
        return cli.run(argv, { env = env() })
    end

    before_each(function() seen = 0 end)

    it("sends only new, changed and failed rows across imports, through a kill -9",
        function()
        local src = ctx.dir .. "/leads.csv"
        leads(src, 300)
        local r = import(src, "1.journal")
        assert.equal(3, r.status, r.err .. r.out) -- 6 rows failed
        assert.equal(300, uploaded())
        assert.matches("294 imported", r.out, 1, true)

        -- 10 edited, 20 new; the 6 that failed go again (and fail again)
        leads(src, 320, set(11, 20))
        r = import(src, "2.journal")
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(10 + 20 + 6, uploaded())
        assert.matches("284 unchanged", r.out, 1, true)
        assert.equal("Edited15", cli.first_names(ctx.sb)["lead15@example.com"])

        -- 55 edited across the parts; killed once a part is in Marketo
        leads(src, 320, set(101, 320, 4)) -- 55 edited, one of them failing (300)
        ctx.sb.freeze()
        local argv = { "import", "leads", src, "--changed-only", "--journal",
            ctx.dir .. "/3.journal", "--part-bytes", "1000", "--no-schema", "--quiet" }
        local job = cli.start(argv, { env = env() })
        cli.await(function()
            return (cli.read(ctx.dir .. "/3.journal") or ""):find('"ev":"uploaded"', 1, true)
        end, "a part uploaded")
        job:signal("KILL")
        job:wait()
        assert.is_nil((cli.read(ctx.dir .. "/3.journal")):find('"ev":"state"', 1, true))
        ctx.sb.thaw()
        r = cli.run(argv, { env = env() })
        assert.equal(3, r.status, r.err .. r.out)
        local sent = uploaded()
        assert.is_true(sent >= 55 + 6 - 1, sent) -- a part sent twice may count twice
        assert.matches('"ev":"state"', cli.read(ctx.dir .. "/3.journal"), 1, true)

        -- nothing changed since: only the failing rows go
        r = import(src, "4.journal")
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(6, uploaded())
        assert.matches("314 unchanged", r.out, 1, true)
        local names = cli.first_names(ctx.sb)
        assert.equal("Edited101", names["lead101@example.com"])
        assert.equal("First102", names["lead102@example.com"])

        -- --full sends everything
        r = import(src, "5.journal", { "--full" })
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(320, uploaded())
    end)

    it("a plan a crash cut short is made again by resume, with the same state", function()
        local src = ctx.dir .. "/leads.csv"
        leads(src, 100)
        local r = import(src, "1.journal")
        assert.equal(3, r.status, r.err .. r.out) -- rows 50 and 100 fail
        assert.equal(100, uploaded())
        -- the run record alone (the journal's first line): the plan was cut short
        cli.write(ctx.dir .. "/2.journal", cli.read(ctx.dir .. "/1.journal"):match("^[^\n]*\n"))
        r = cli.run({ "resume", ctx.dir .. "/2.journal" }, { env = env() })
        assert.equal(3, r.status, r.err .. r.out)
        assert.equal(2, uploaded())
        assert.matches("98 unchanged", r.out, 1, true)
    end)

    it("refuses a state of another object or key field, naming both", function()
        local src, state = ctx.dir .. "/leads.csv", ctx.dir .. "/my.state"
        leads(src, 10)
        local other = core.state_new("elsewhere", "leads", "email")
        assert(other:save(state))
        local r = import(src, "1.journal", { "--state", state })
        assert.equal(1, r.status)
        assert.matches("STATE_MISMATCH: .*my.state holds the state of instance elsewhere, "
            .. "object leads, key field email; this import is of instance 127%.0%.0%.1:%d+, "
            .. "object leads, key field email", r.err)
        assert.equal(0, uploaded())
    end)

    it("refuses a damaged state, saying to use --full, which writes it anew; state show "
        .. "and forget", function()
        local src, state = ctx.dir .. "/leads.csv", ctx.dir .. "/my.state"
        leads(src, 10)
        local r = import(src, "1.journal", { "--state", state })
        assert.equal(0, r.status, r.err .. r.out)
        local whole = cli.read(state)
        cli.write(state, whole:sub(1, #whole - 8))
        uploaded()
        r = import(src, "2.journal", { "--state", state })
        assert.equal(1, r.status)
        assert.matches("STATE_CORRUPT: .*my.state: it is truncated; run with %-%-full", r.err)
        assert.equal(0, uploaded())
        r = import(src, "3.journal", { "--state", state, "--full" })
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(10, uploaded())
        assert.equal("600", cli.mode_of(state))
        r = import(src, "4.journal", { "--state", state })
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(0, uploaded())
        r = cli.run({ "state", "show", state })
        assert.equal(0, r.status, r.err)
        assert.matches("my.state: instance 127%.0%.0%.1:%d+, object leads, key field email; "
            .. "10 keys; last import: ", r.out)
        r = cli.run({ "state", "forget", state })
        assert.equal(0, r.status, r.err)
        assert.is_nil(cli.read(state))
        r = import(src, "5.journal", { "--state", state })
        assert.equal(0, r.status, r.err .. r.out)
        assert.equal(10, uploaded())
    end)
end)
