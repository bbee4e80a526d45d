-- Trust where no earlier spec looked: full disks, paths seen from another
-- folder, a report that does not add up, files of two formats, a changed
-- planning option, and what the import leaves on disk. The real runner
-- against the real sandbox over loopback.
local cli = require("spec.support.cli")

local write, read_json, leads_csv = cli.write, cli.read_json, cli.leads_csv
local inspect = cli.inspect

local function stored(sb)
    local seen, n = {}, 0
    for _, rec in ipairs(inspect(sb, "records/leads")) do
        assert.is_nil(seen[rec.email], "stored twice: " .. tostring(rec.email))
        seen[rec.email], n = true, n + 1
    end
    return n
end

local function uploads(sb)
    local n = 0
    for _, e in ipairs(inspect(sb, "log")) do
        if e.method == "POST" and e.path == "/bulk/v1/leads.json" then n = n + 1 end
    end
    return n
end

local function mode_of(path)
    local p = assert(io.popen("stat -c %a '" .. path .. "'"))
    local mode = p:read("l")
    p:close()
    return mode
end

local function sh(cmd)
    local ok = os.execute(cmd)
    return ok == true or ok == 0
end

describe("trust", function()
    -- one sandbox for the file, reset before each test; a new folder each
    local ctx = cli.sandboxed({ speed = 0 })
    local sb, dir
    before_each(function() sb, dir = ctx.sb, ctx.dir end)

    describe("on a full disk", function()
        local disk
        -- A real full disk: a small tmpfs for the journal, the work folder and
        -- the report, with a filler that leaves `free` bytes. Needs root.
        local function mount(free)
            disk = dir .. "/disk"
            assert(sh("mkdir -p '" .. disk .. "'"))
            assert(sh("mount -t tmpfs -o size=2m tmpfs '" .. disk .. "'"))
            local p = assert(io.popen("df -B1 --output=avail '" .. disk .. "' | tail -1"))
            local avail = tonumber(p:read("l"))
            p:close()
            assert(sh(("head -c %d /dev/zero > '%s/filler'"):format(avail - free, disk)))
        end
        after_each(function()
            if disk then os.execute("umount '" .. disk .. "' 2>/dev/null") end
            disk = nil
        end)
        local root = io.popen("id -u"):read("l") == "0"
            and sh("mkdir -p /tmp/mb-tmpfs-probe && mount -t tmpfs -o size=64k tmpfs "
                .. "/tmp/mb-tmpfs-probe 2>/dev/null && umount /tmp/mb-tmpfs-probe")
        local it_root = root and it or pending
        if not root then
            print("trust spec: the full-disk specs need root and tmpfs; skipped")
        end

        -- Each amount of room runs out somewhere else: in a part's results,
        -- the journal, the report or its row files. Whatever the place, the
        -- run stops with exit 4 naming the file and "No space left", or ends
        -- whole; and once room is made the same command finishes with every
        -- row stored once and every failed row in the report, by its line.
        it_root("stops with the path and exit 4, and a rerun after room is made loses nothing",
            function()
                local src = dir .. "/leads.csv"
                leads_csv(src, 1200, { bad_every = 3 }) -- 400 failed rows
                for _, free in ipairs({ 4096, 12288, 24576, 40960, 61440, 90112 }) do
                    sb.reset()
                    mount(free)
                    local argv = { "import", "leads", src, "--no-schema", "--part-bytes", "8000",
                        "--quiet", "--journal", disk .. "/leads.journal" }
                    local first = cli.run(argv, { env = cli.env_of(sb) })
                    if first.status ~= 3 then
                        assert.equal(4, first.status, first.out .. first.err)
                        assert.matches("No space left on device", first.out .. first.err, 1, true)
                        assert.matches(disk, first.out .. first.err, 1, true)
                    end
                    os.remove(disk .. "/filler")
                    local again = cli.run(argv, { env = cli.env_of(sb) })
                    assert.equal(3, again.status, again.out .. again.err)
                    local doc = read_json(disk .. "/leads.report.json")
                    assert.is_true(doc.reconciled)
                    assert.is_nil(doc.problems)
                    assert.equal(400, doc.rows.failed)
                    assert.equal(400, #doc.failures)
                    for _, f in ipairs(doc.failures) do
                        assert.equal(0, (f.line - 1) % 3, "line " .. tostring(f.line))
                    end
                    assert.equal(800, stored(sb))
                    os.execute("umount '" .. disk .. "'")
                    disk = nil
                end
            end)
    end)

    it("resumes and reports from any folder, with a custom work folder", function()
        local src = dir .. "/in/leads.csv"
        assert(sh("mkdir -p '" .. dir .. "/in' '" .. dir .. "/elsewhere'"))
        leads_csv(src, 600, { bad_every = 100 })
        -- a quota that runs out mid-import stops it: exit 4, resumable
        sb.control({ daily_quota = 8 })
        local first = cli.run({ "import", "leads", "leads.csv", "--no-schema", "--part-bytes",
            "6000", "--work-dir", "work", "--journal", "j.journal", "--quiet" },
            { env = cli.env_of(sb), cwd = dir .. "/in" })
        assert.equal(4, first.status, first.out .. first.err)
        sb.control({ daily_quota = 50000 })
        local status = cli.run({ "status", "../in/j.journal" }, { cwd = dir .. "/elsewhere" })
        assert.equal(0, status.status, status.err)
        local resumed = cli.run({ "resume", "../in/j.journal", "--quiet" },
            { env = cli.env_of(sb), cwd = dir .. "/elsewhere" })
        assert.equal(3, resumed.status, resumed.out .. resumed.err)
        -- the report went where the import said, not into the resuming folder
        local doc = read_json(dir .. "/in/j.report.json")
        assert.is_true(doc.reconciled)
        assert.equal(6, doc.rows.failed)
        assert.equal(6, #doc.failures)
        assert.equal(594, stored(sb))
        assert.is_nil(io.open(dir .. "/elsewhere/j.report.json"))
        -- the results were kept in the custom work folder
        assert.is_truthy(io.open(dir .. "/in/work/rejects.jsonl"))
        local again = cli.run({ "status", dir .. "/in/j.journal" }, { cwd = "/" })
        assert.matches("complete: 600 rows read: 594 imported", again.out, 1, true)
    end)

    it("never says 0 when the counts do not add up: the summary says so first", function()
        local src = dir .. "/leads.csv"
        leads_csv(src, 300)
        local r = cli.run({ "import", "leads", src, "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(0, r.status, r.err)
        -- a Marketo that answered a count short by one row
        local f = assert(io.open(src .. ".journal", "rb"))
        local text = f:read("a")
        f:close()
        local doctored, n = text:gsub('("processed":)300', "%1299")
        assert.equal(1, n)
        write(src .. ".journal", doctored)
        local status = cli.run({ "status", src .. ".journal" })
        assert.matches("^NOT RECONCILED: 300 rows read but 299 accounted for", status.out)
        local again = cli.run({ "import", "leads", src, "--quiet" }, { env = cli.env_of(sb) })
        assert.equal(3, again.status)
        assert.matches("^NOT RECONCILED", again.out)
        assert.is_false(read_json(src .. ".report.json").reconciled)
    end)

    describe("formats", function()
        it("reads each file's format from its own name and refuses two in one import",
            function()
                local a, b = dir .. "/a.csv", dir .. "/b.tsv"
                write(a, "email,firstName\na@example.com,A\n")
                write(b, "email\tfirstName\nb@example.com\tB\n")
                local r = cli.run({ "import", "leads", a, b }, { env = cli.env_of(sb) })
                assert.equal(1, r.status)
                assert.matches(b .. " is tsv", r.err, 1, true)
                assert.equal(0, #inspect(sb, "log"))
                local tsv = cli.run({ "import", "leads", dir .. "/b.tsv", "--quiet" },
                    { env = cli.env_of(sb) })
                assert.equal(0, tsv.status, tsv.err)
                assert.equal(1, stored(sb))
            end)

        it("refuses an unknown --format", function()
            local a = dir .. "/a.csv"
            write(a, "email\na@example.com\n")
            local r = cli.run({ "import", "leads", a, "--format", "xyz" },
                { env = cli.env_of(sb) })
            assert.equal(2, r.status)
            assert.matches("--format must be csv, tsv or ssv, got 'xyz'", r.err, 1, true)
        end)
    end)

    it("names a changed --part-bytes on a rerun instead of letting the journal win", function()
        local src = dir .. "/leads.csv"
        leads_csv(src, 300)
        sb.control({ daily_quota = 3 })
        local argv = { "import", "leads", src, "--part-bytes", "6000", "--quiet" }
        assert.equal(4, cli.run(argv, { env = cli.env_of(sb) }).status)
        local sent = uploads(sb)
        local changed = cli.run({ "import", "leads", src, "--part-bytes", "9000" },
            { env = cli.env_of(sb) })
        assert.equal(1, changed.status)
        assert.matches("was planned with part_bytes (--part-bytes) 6000 and this run asks "
            .. "for 9000; to resume it, run with --part-bytes 6000", changed.err, 1, true)
        assert.equal(sent, uploads(sb))
        sb.control({ daily_quota = 50000 })
        assert.equal(0, cli.run(argv, { env = cli.env_of(sb) }).status)
        assert.equal(300, stored(sb))
    end)

    it("keeps what holds people's data to its owner, and a dry run leaves no copy", function()
        local src = dir .. "/leads.csv"
        leads_csv(src, 300, { bad_every = 50 })
        local argv = { "import", "leads", src, "--no-schema", "--map", "email=email", "--map",
            "leadScore=leadScore", "--quiet", "--part-bytes", "3000", "--lenient" }
        local dry = {}
        for i, a in ipairs(argv) do dry[i] = a end
        dry[#dry + 1] = "--dry-run"
        assert.equal(0, cli.run(dry, { env = cli.env_of(sb) }).status)
        local p = assert(io.popen("find '" .. dir .. "' -type f"))
        local files = p:read("a")
        p:close()
        assert.equal(src .. "\n", files) -- nothing but the source
        assert.equal(3, cli.run(argv, { env = cli.env_of(sb) }).status)
        for _, path in ipairs({ src .. ".journal", src .. ".report.json",
            src .. ".report.failed.csv", src .. ".journal.work/rejects.jsonl" }) do
            assert.equal("600", mode_of(path), path)
        end
    end)
end)

describe("trust, a rerun of the same import", function()
    local ctx = cli.sandboxed({ speed = 0 })

    -- Several parameters make a table whose keys each process encodes in its
    -- own order (Lua seeds its string hashes per process): the journal's check
    -- must compare them key by key, or a rerun is refused as another import.
    it("with several parameters is the same import, whatever order they come in", function()
        local src = ctx.dir .. "/leads.csv"
        leads_csv(src, 20)
        local argv = { "import", "leads", src, "--lookup-field", "email", "--partition",
            "Default", "--quiet", "--no-schema" }
        assert.equal(0, cli.run(argv, { env = cli.env_of(ctx.sb) }).status)
        for _ = 1, 6 do
            local again = cli.run(argv, { env = cli.env_of(ctx.sb) })
            assert.equal(0, again.status, again.err)
            assert.matches("already imported", again.err, 1, true)
        end
    end)
end)
