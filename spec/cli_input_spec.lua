-- What `import` reads, through the real runner and sandbox: a gzip file (by
-- its bytes), standard input, and --encoding for cp1252, latin1 and UTF-16;
-- each file in another encoding read without the flag is a message naming
-- what it is and the flag that reads it.
local cli = require("spec.support.cli")
local files = require("spec.support.files")

local TEXT = "email,firstName\nzoe@example.com,Zoë\nann@example.com,Ann\n"

-- TEXT's one letter beyond ASCII, ë, as Latin-1 has it.
local function latin1(s)
    return (s:gsub("\195\171", "\235"))
end

local function utf16le(s)
    return "\255\254" .. latin1(s):gsub(".", "%0\0")
end

describe("marketo-bulk import reads", function()
    local ctx = cli.sandboxed()
    local sb, dir
    before_each(function()
        sb, dir = ctx.sb, ctx.dir
    end)

    local function names() return cli.first_names(sb) end
    local WANT = { ["zoe@example.com"] = "Zoë", ["ann@example.com"] = "Ann" }

    local function import(args, opts)
        opts = opts or {}
        opts.env, opts.cwd = cli.env_of(sb), dir
        local argv = { "import", "leads", "--quiet" }
        for _, a in ipairs(args) do argv[#argv + 1] = a end
        return cli.run(argv, opts)
    end

    it("a gzip file, known by its bytes whatever its name", function()
        cli.write(dir .. "/people.csv", TEXT)
        os.execute(("gzip -c %s > %s"):format(files.q(dir .. "/people.csv"),
            files.q(dir .. "/export")))
        local r = import({ "export" })
        assert.equal(0, r.status, r.out .. r.err)
        assert.same(WANT, names())
        -- the journal is beside the file, and a rerun knows it is done
        r = import({ "export" })
        assert.matches("already imported on", r.err, 1, true)
        assert.truthy(cli.read(dir .. "/export.journal"))
    end)

    it("standard input, spooled", function()
        cli.write(dir .. "/people.csv", TEXT)
        local r = cli.run({ "sh", "-c", ("%s import leads - --quiet < people.csv")
            :format(files.q(os.getenv("MARKETO_BULK_BIN"))) },
            { env = cli.env_of(sb), cwd = dir, bin = "env" })
        assert.equal(0, r.status, r.out .. r.err)
        assert.same(WANT, names())
        assert.truthy(cli.read(dir .. "/stdin.journal"))
    end)

    for _, enc in ipairs({ "cp1252", "latin1" }) do
        it("a Latin-1 file with --encoding " .. enc .. ", and names the flag without", function()
            cli.write(dir .. "/people.csv", latin1(TEXT))
            local r = import({ "people.csv" })
            assert.equal(1, r.status, r.err)
            assert.equal("marketo-bulk: ENCODING: people.csv is not UTF-8: it looks like Latin-1 "
                .. "or Windows-1252 text; --encoding cp1252 (or latin1) reads it\n", r.err)
            r = import({ "people.csv", "--encoding", enc })
            assert.equal(0, r.status, r.out .. r.err)
            assert.same(WANT, names())
        end)
    end

    it("a Latin-1 byte far into the file: the row named, and the flag", function()
        local rows = { "email,firstName" }
        for i = 1, 300 do rows[#rows + 1] = ("p%d@example.com,Person%d"):format(i, i) end
        rows[#rows + 1] = latin1("zoe@example.com,Zoë")
        cli.write(dir .. "/people.csv", table.concat(rows, "\n") .. "\n")
        local r = import({ "people.csv" })
        assert.equal(1, r.status, r.err)
        assert.matches("CSV_INVALID_UTF8: .*people%.csv:302:.*; the file is not UTF%-8: if it is "
            .. "Latin%-1 or Windows%-1252 text, %-%-encoding cp1252 %(or latin1%) reads it", r.err)
    end)

    it("a UTF-16 file with --encoding utf-16, and says which flag without it", function()
        cli.write(dir .. "/people.csv", utf16le(TEXT))
        local r = import({ "people.csv" })
        assert.equal(1, r.status, r.err)
        assert.equal("marketo-bulk: ENCODING: people.csv is UTF-16 text, not UTF-8: "
            .. "--encoding utf-16 reads it\n", r.err)
        r = import({ "people.csv", "--encoding", "utf-16" })
        assert.equal(0, r.status, r.out .. r.err)
        assert.same(WANT, names())
    end)

    it("nothing it cannot convert: a byte cp1252 lacks is named, nothing is sent", function()
        cli.write(dir .. "/people.csv", "email,firstName\nzoe@example.com,Zo\129\n")
        local r = import({ "people.csv", "--encoding", "cp1252" })
        assert.equal(1, r.status, r.err)
        assert.equal("marketo-bulk: ENCODING: people.csv: byte 0x81 at offset 34 is not CP1252: "
            .. "check --encoding\n", r.err)
        assert.same({}, names())
    end)
end)
