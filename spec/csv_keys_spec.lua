-- The keyset of marketo.pipeline.keys (src/csv_keys.c): keys compared as
-- Marketo compares them, events for the rows whose key was seen before or is
-- blank, and a reader's rows scanned in C.
local csv = require("marketo.csv")
local files = require("spec.support.files")

describe("csv.keyset", function()
    it("takes keys trimmed and in any case as one, and says so with an event", function()
        local ks = csv.keyset(2)
        assert.equal(0, ks:see("Ann@Example.com", 1, 2))
        assert.equal(0, ks:see("bob@example.com", 1, 3))
        local n = ks:see(" \tann@EXAMPLE.COM ", 2, 7)
        assert.equal(1, n)
        -- line, blank, code the key holds, its first line, seen again before, example
        assert.same({ 7, false, 1, 2, false, 1 }, { ks:event(n) })
        ks:mark(n, -1)
        n = ks:see("ANN@example.com", 3, 9)
        assert.same({ 9, false, -1, 2, true, 1 }, { ks:event(n) })
        assert.equal(2, ks:count())
    end)

    it("has an event for a blank key, and numbers only `examples` keys", function()
        local ks = csv.keyset(1)
        assert.equal(-1, ks:see(" \t ", 1, 2))
        assert.same({ 2, true }, { ks:event(1) })
        ks:see("a", 1, 3)
        ks:see("b", 1, 4)
        local first, second = ks:see("a", 1, 5), ks:see("b", 1, 6)
        assert.equal(1, select(6, ks:event(first)))
        assert.equal(0, select(6, ks:event(second)))
    end)

    it("scans a reader's column in C, events numbered from 1 on each scan", function()
        local dir = files.tmpdir()
        local path = dir .. "/in.csv"
        local out = { "id,email" }
        for i = 1, 5000 do out[#out + 1] = ("%d,user%d@example.com"):format(i, i % 4000) end
        out[#out + 1] = "5001,"
        files.write(path, table.concat(out, "\n") .. "\n")
        local ks = csv.keyset(10, 5000)
        local r = assert(csv.open(path))
        local events = assert(r:scan_keys(ks, 2, 7))
        r:close()
        files.rmdir(dir)
        assert.equal(4000, ks:count())
        assert.equal(1001, events) -- 1000 keys again, one blank
        assert.same({ 4002, false, 7, 2, false, 1 }, { ks:event(1) }) -- row 4001 is user1
        assert.same({ 5002, true }, { ks:event(events) })
        assert.equal(0, ks:see("other", 1, 1))
    end)

    it("takes a key of several fields, blank if one of them is", function()
        local ks = csv.keyset(0)
        assert.equal(0, ks:see({ "V1", "2001" }, 1, 2))
        assert.equal(0, ks:see({ "V12", "001" }, 1, 3)) -- the fields stay apart
        assert.equal(1, ks:see({ " v1", "2001 " }, 2, 4))
        assert.equal(-1, ks:see({ "V2", "" }, 2, 5))
        assert.has_error(function() ks:see({}, 1, 6) end)
    end)

    it("holds 300,000 keys without a collision taken for a key", function()
        local ks = csv.keyset(0)
        for i = 1, 300000 do ks:see("k" .. i, 1, i) end
        assert.equal(300000, ks:count())
    end)

    it("raises on misuse and once closed", function()
        local ks = csv.keyset(0)
        assert.has_error(function() ks:see("a", 0.5, 1) end)
        assert.has_error(function() ks:event(1) end)
        assert.has_error(function() csv.keyset(17) end)
        ks:close()
        ks:close()
        assert.matches("closed", tostring(ks))
        assert.has_error(function() ks:count() end)
    end)
end)
