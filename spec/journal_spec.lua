local journal = require("marketo.pipeline.journal")

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
        append_raw(path, '{"ev":"run"}\nnot json\n{"ev":"done"}\n')
        local state, msg, code = journal.read(path)
        assert.is_nil(state)
        assert.equal("JOURNAL_CORRUPT", code)
        assert.matches(":2: not a journal record", msg, 1, true)
    end)

    it("refuses a record for a part that was never planned", function()
        append_raw(path, '{"ev":"run"}\n{"ev":"uploaded","part":7,"batch":1}\n')
        local state, msg = journal.read(path)
        assert.is_nil(state)
        assert.matches("part 7 before its plan", msg, 1, true)
    end)

    it("raises on a record it does not know", function()
        local j = assert(journal.open(path))
        finally(function() j:close() end)
        assert.has_error(function() j:record({ ev = "bogus" }) end,
            "journal:record: unknown record 'bogus'")
    end)
end)
