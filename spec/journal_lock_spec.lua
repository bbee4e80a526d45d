-- One run per journal, through the real runner: while an import runs, a
-- second run on its journal stops at once, naming the first one's pid and
-- sending nothing, while `status` still reads the journal; and a journal
-- that is not a regular file is refused before anything is read from it.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")

local ROWS = 3000

local read, inspect = cli.read, cli.inspect

describe("a journal", function()
    -- slow enough that the first run is still importing when the others come
    local SLOW = { speed = 1000, error_rate = 0, drop_rate = 0, job_fail_rate = 0 }
    local sb, dir, src, journal, argv
    sandbox.each_test(SLOW, function(s)
        sb = s
        dir = cli.tmpdir()
        src = dir .. "/leads.csv"
        journal = src .. ".journal"
        cli.leads_csv(src, ROWS)
        argv = { "import", "leads", src, "--part-bytes", "12000", "--quiet" }
    end)
    after_each(function() cli.rmdir(dir) end)

    it("has one run at a time: a second stops at once with the first one's pid", function()
        local first = cli.start(argv, { env = cli.env_of(sb) })
        -- until the first run has planned and begun to send
        for _ = 1, 1000 do
            if (read(journal) or ""):find('"ev":"sending"', 1, true) then break end
            os.execute("sleep 0.01")
        end
        assert.matches('"ev":"sending"', read(journal) or "", 1, true)
        for _, second in ipairs({ argv, { "resume", journal, "--quiet" } }) do
            local r = cli.run(second, { env = cli.env_of(sb) })
            assert.is_false(first.done(), "the second run waited for the first")
            assert.equal(4, r.status, r.out .. r.err)
            assert.matches(("JOURNAL_BUSY: %s is in use by pid %d"):format(journal, first.pid),
                r.err, 1, true)
            assert.equal("", r.out)
        end
        -- a reader is not a run: status works while the import holds the journal
        local st = cli.run({ "status", journal }, { env = cli.env_of(sb) })
        assert.equal(0, st.status, st.err)
        assert.matches("parts: %d+ %(", st.out)
        local done = first:wait()
        assert.equal(0, done.status, done.err)
        local _, parts = read(journal):gsub('"ev":"planned"', "")
        assert.equal(parts, #inspect(sb, "jobs")) -- each part sent once
        assert.equal(ROWS, #inspect(sb, "records/leads"))
    end)

    it("is a regular file: a device or a folder is refused at once, nothing sent", function()
        for _, path in ipairs({ "/dev/full", dir }) do
            local r = cli.run({ "import", "leads", src, "--journal", path },
                { env = cli.env_of(sb) })
            assert.equal(1, r.status, r.err) -- not 4: running it again cannot help
            assert.matches(path == dir and ("JOURNAL: %s is a directory\n"):format(dir)
                or "JOURNAL: /dev/full is a character device; a journal must be a regular file",
                r.err, 1, true)
            r = cli.run({ "status", path }, { env = cli.env_of(sb) })
            assert.equal(1, r.status)
            assert.matches("JOURNAL: " .. path .. " is a", r.err, 1, true)
        end
        assert.equal(0, #inspect(sb, "jobs"))
        assert.is_nil(read(dir .. ".work/rejects.jsonl")) -- nor made a work folder
    end)
end)
