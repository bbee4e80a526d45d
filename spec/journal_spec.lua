local journal = require("marketo.pipeline.journal")
local files = require("spec.support.files")
local json = require("marketo.json")
local fails = require("spec.support.fails")

local q = files.q

local function tmpname()
    local p = os.tmpname()
    os.remove(p)
    return p
end

local function append_raw(path, text)
    local f = assert(io.open(path, "ab"))
    f:write(text)
    f:close()
end

describe("marketo.pipeline.journal", function()
    local path
    before_each(function() path = tmpname() end)
    after_each(function() os.remove(path) end)

    -- journal.read refuses a journal holding just `text` as corrupt: its message.
    local function refused(text)
        os.remove(path)
        append_raw(path, text)
        return fails("JOURNAL_CORRUPT", journal.read(path))
    end

    it("creates the file readable by its owner only", function()
        local j = assert(journal.open(path))
        assert(j:record({ ev = "run", object = "leads" }))
        j:close()
        local p = assert(io.popen("stat -c %a " .. path))
        assert.equal("600", p:read("l"))
        p:close()
    end)

    it("replays every record into the state a resumed run starts from", function()
        local j = assert(journal.open(path))
        assert(j:record({ ev = "run", object = "leads" }))
        for k = 1, 3 do
            assert(j:record({ ev = "planned", part = k, offset = (k - 1) * 100, length = 100 }))
        end
        assert(j:record({ ev = "plan_done", parts = 3 }))
        assert(j:record({ ev = "sending", part = 1 }))
        assert(j:record({ ev = "uploaded", part = 1, batch = 41 }))
        assert(j:record({ ev = "finished", part = 1, status = "Complete", processed = 9 }))
        assert(j:record({ ev = "sending", part = 2 }))
        j:close()

        local again = assert(journal.open(path))
        local parts = again:parts()
        assert.equal(3, #parts)
        assert.equal("finished", parts[1].stage)
        assert.equal(41, parts[1].batch)
        assert.equal(9, parts[1].finished.processed)
        assert.equal("sending", parts[2].stage)   -- outcome unknown: send again
        assert.equal("planned", parts[3].stage)
        assert(again:record({ ev = "uploaded", part = 2, batch = 42 }))
        again:close()
        assert.equal(42, assert(journal.read(path)).parts[2].batch)
    end)

    it("ignores a last line cut short by a crash", function()
        local j = assert(journal.open(path))
        assert(j:record({ ev = "run", object = "leads" }))
        assert(j:record({ ev = "planned", part = 1 }))
        j:close()
        append_raw(path, '{"ev":"sending","pa')
        local state = assert(journal.read(path))
        assert.is_true(state.torn)
        assert.equal("planned", state.parts[1].stage)
    end)

    it("refuses a damaged line in the middle, naming it", function()
        local msg = refused('{"ev":"run"}\nnot json\n{"ev":"done"}\n')
        assert.matches(":2: not a journal record", msg, 1, true)
    end)

    it("refuses a record for a part that was never planned", function()
        local msg = refused('{"ev":"run"}\n{"ev":"plan_done","parts":0}\n'
            .. '{"ev":"uploaded","part":7,"batch":1}\n')
        assert.matches("part 7 before its plan", msg, 1, true)
    end)

    it("raises on a record it does not know", function()
        local j = assert(journal.open(path))
        finally(function() j:close() end)
        assert.has_error(function() j:record({ ev = "bogus" }) end,
            "journal:record: unknown record 'bogus'")
    end)

    -- The lines of the file, each a whole JSON record.
    local function whole_lines(text)
        assert.equal("\n", text:sub(-1))
        local n = 0
        for line in text:gmatch("([^\n]*)\n") do
            n = n + 1
            assert.equal("table", type(json.decode(line)), "line " .. n .. ": " .. line)
        end
        return n
    end

    local function planned(j, n)
        assert(j:record({ ev = "run", object = "leads" }))
        for k = 1, n do assert(j:record({ ev = "planned", part = k, rows = 1 })) end
    end

    describe("a plan", function()
        it("counts as whole only once a closing record counts its parts", function()
            local j = assert(journal.open(path))
            planned(j, 2)
            j:close()
            local state = assert(journal.read(path))
            assert.is_false(state.plan_closed)
            assert.matches("PLAN_INCOMPLETE: " .. path .. ": the plan is incomplete (2 parts "
                .. "journaled, no closing record)", journal.incomplete(path, state), 1, true)
            j = assert(journal.open(path))
            assert(j:record({ ev = "plan_done", parts = 2 }))
            j:close()
            state = assert(journal.read(path))
            assert.is_true(state.plan_closed)
            assert.is_nil(journal.incomplete(path, state))
        end)

        it("cut short is superseded by a new run record", function()
            local j = assert(journal.open(path))
            planned(j, 3)
            planned(j, 1)
            assert(j:record({ ev = "plan_done", parts = 1 }))
            j:close()
            local state = assert(journal.read(path))
            assert.equal(1, state.nparts)
            assert.equal(1, #assert(journal.open(path)):parts())
        end)

        it("is refused when its closing record miscounts the parts", function()
            local msg = refused('{"ev":"run"}\n{"ev":"planned","part":1}\n'
                .. '{"ev":"plan_done","parts":2}\n')
            assert.matches(":3: the plan closed with 2 parts, but 1 were planned", msg, 1, true)
        end)

        it("comes before any send, and is never planned again once closed", function()
            local msg = refused('{"ev":"run"}\n{"ev":"planned","part":1}\n'
                .. '{"ev":"sending","part":1}\n')
            assert.matches(":3: a 'sending' record before the plan closed", msg, 1, true)
            msg = refused('{"ev":"run"}\n{"ev":"plan_done","parts":0}\n{"ev":"run"}\n')
            assert.matches(":3: a 'run' record after the plan closed", msg, 1, true)
        end)
    end)

    it("cuts a torn last line off before appending, so the journal stays whole", function()
        local j = assert(journal.open(path))
        planned(j, 1)
        j:close()
        local before = #files.read(path)
        append_raw(path, '{"ev":"planned","pa')
        j = assert(journal.open(path))
        assert.equal(before, #files.read(path)) -- cut before anything else is written
        assert(j:record({ ev = "planned", part = 2 }))
        j:close()
        assert.equal(3, whole_lines(files.read(path)))
        local state = assert(journal.read(path))
        assert.is_false(state.torn)
        assert.equal(2, state.nparts)
    end)

    -- A child runner appends until its file can take no more, mid-line.
    -- `around` sets the limit, then runs the command it is given.
    local function append_until_full(around, journal_path)
        local script = path .. ".lua"
        files.write(script, ([[
            local j = assert(require("marketo.pipeline.journal").open(%q))
            assert(j:record({ ev = "run", object = "leads" }))
            for k = 1, 1e6 do
                local ok, msg, code = j:record({ ev = "planned", part = k,
                    pad = ("x"):rep(k * 7 %% 300) })
                if not ok then print(k, code, msg); return 0 end
            end
        ]]):format(journal_path))
        -- (not under `make asan`'s preloaded sanitizers: the runner is not built for them)
        local p = assert(io.popen(around("env -u LD_PRELOAD "
            .. q(os.getenv("MARKETO_BULK_BIN")) .. " run " .. q(script)) .. " 2>&1"))
        local out = p:read("*a")
        p:close()
        os.remove(script)
        local k, code, msg, rest = out:match("^(%d+)\t(%S+)\t([^\n]*)\n(.*)$")
        assert(k, out)
        return tonumber(k), code, msg, rest
    end

    it("cuts a failed append back to the last whole line (file too large)", function()
        -- SIGXFSZ ignored: the write fails (EFBIG) as on a full disk
        local k, code, msg = append_until_full(function(cmd)
            return "sh -c " .. q("ulimit -f 2; trap '' XFSZ; exec " .. cmd)
        end, path)
        local text = files.read(path)
        assert.is_true(#text < 1024 and #text > 1024 - 400, #text) -- stopped near the limit
        assert.equal(k, whole_lines(text)) -- the run record and k - 1 parts
        assert.equal(k - 1, assert(journal.read(path)).nparts)
        assert.equal("JOURNAL_WRITE", code)
        assert.equal("JOURNAL_WRITE: " .. path .. ": File too large", msg)
    end)

    local can_mount = os.execute("unshare -m true 2>/dev/null")
    local it_root = (can_mount == true or can_mount == 0) and it or pending
    it_root("cuts a failed append back to the last whole line (disk full)", function()
        local dir = files.tmpdir()
        finally(function() files.rmdir(dir) end)
        -- a 4 KiB tmpfs in a mount namespace of its own: gone with the child
        local k, code, msg, text = append_until_full(function(cmd)
            return "unshare -m sh -c " .. q("mount -t tmpfs -o size=4k none " .. q(dir)
                .. " && " .. cmd .. " && cat " .. q(dir .. "/j"))
        end, dir .. "/j")
        assert.is_true(#text <= 4096 and #text > 4096 - 400, #text)
        assert.equal(k, whole_lines(text))
        assert.equal("JOURNAL_WRITE", code)
        assert.equal("JOURNAL_WRITE: " .. dir .. "/j: No space left on device", msg)
    end)

    describe("refuses what is not a journal file", function()
        it("a device, a pipe, a folder: without reading or writing it", function()
            for _, open in ipairs({ journal.open, journal.read }) do
                local msg = fails("JOURNAL", open("/dev/full"))
                assert.equal("JOURNAL: /dev/full is a character device; a journal must be a "
                    .. "regular file", msg)
                local dir = files.tmpdir()
                msg = fails("JOURNAL", open(dir))
                assert.equal("JOURNAL: " .. dir .. " is a directory", msg)
                assert(os.execute("mkfifo " .. dir .. "/fifo"))
                -- a fifo would wait for a writer if opened plainly
                msg = fails("JOURNAL", open(dir .. "/fifo"))
                assert.equal("JOURNAL: " .. dir .. "/fifo is a pipe; a journal must be a regular "
                    .. "file", msg)
                files.rmdir(dir)
            end
        end)

        it("a line longer than any record, found without holding the line", function()
            -- a 4 GiB stretch of zeros (sparse: no disk used), as a crash can leave
            assert(os.execute("truncate -s 4G " .. q(path)))
            local msg = fails("JOURNAL_CORRUPT", journal.read(path))
            assert.equal(("JOURNAL_CORRUPT: %s:1: a line longer than %d bytes, which no journal "
                .. "record is; the file is damaged or is not a journal"):format(path,
                journal.MAX_LINE), msg)
            os.remove(path)
            append_raw(path, '{"ev":"run"}\n"' .. ("x"):rep(journal.MAX_LINE) .. '"\n')
            msg = fails("JOURNAL_CORRUPT", journal.open(path))
            assert.matches(":2: a line longer than", msg, 1, true)
        end)
    end)

    it("lets a reader in while a run holds it, and no second run", function()
        local j = assert(journal.open(path))
        finally(function() j:close() end)
        planned(j, 1)
        assert.equal(1, assert(journal.read(path)).nparts)
        local msg = fails("JOURNAL_BUSY", journal.open(path))
        assert.matches(path .. " is in use by", msg, 1, true)
        assert(j:record({ ev = "plan_done", parts = 1 })) -- the holder goes on
    end)
end)
