-- The state of --changed-only (src/state.c): keys held with a hash of the row
-- sent, looked up as Marketo compares keys, saved whole (0600) and loaded back;
-- a truncated or damaged file is STATE_CORRUPT, never fewer keys. Run under
-- ASan+UBSan and LuaJIT too.
local core = require("marketo.core")
local files = require("spec.support.files")
local fails = require("spec.support.fails")

local function state() return core.state_new("https://123-abc.mktorest.com", "leads", "email") end

describe("core.state", function()
    local dir
    before_each(function() dir = files.tmpdir() end)
    after_each(function() files.rmdir(dir) end)

    it("holds a key with its row once merged, compared as Marketo compares keys", function()
        local st = state()
        assert.is_true(st:put("Ann@Example.com", "ann,1\n"))
        assert.same({ false, false }, { st:same("ann@example.com", "ann,1\n") })
        st:merge()
        assert.same({ true, true }, { st:same(" ANN@example.com\t", "ann,1\n") })
        assert.same({ false, true }, { st:same("ann@example.com", "ann,2\n") })
        assert.same({ false, false }, { st:same("bob@example.com", "ann,1\n") })
        st:put("ann@example.com", "ann,2\n") -- held already: changed at once
        assert.same({ true, true }, { st:same("ann@example.com", "ann,2\n") })
        assert.equal(1, st:count())
    end)

    it("never holds a blank key, and keeps the fields of a key apart", function()
        local st = state()
        assert.is_false(st:put(" ", "x"))
        assert.is_false(st:put({ "V1", "" }, "x"))
        st:put({ "V1", "2001" }, "x")
        st:merge()
        assert.equal(1, st:count())
        assert.same({ false, false }, { st:same({ "V12", "001" }, "x") })
        assert.same({ true, true }, { st:same({ " v1", "2001" }, "x") })
        assert.same({ false, false }, { st:same(" ", "x") })
        assert.has_error(function() st:put({}, "x") end)
        assert.has_error(function() st:same("a", nil) end)
    end)

    it("merges batches as a table of the last rows put would hold them", function()
        local st, model = state(), {}
        local seed = 7
        local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n end
        for batch = 1, 6 do
            for _ = 1, 3000 do
                local k, row = "k" .. rand(9000), "r" .. batch .. "," .. rand(3)
                st:put(k, row)
                model[k] = row
            end
            st:merge()
        end
        local n = 0
        for k, row in pairs(model) do
            n = n + 1
            assert.same({ true, true }, { st:same(k, row) })
        end
        assert.equal(n, st:count())
        assert.same({ false, false }, { st:same("k9001", "r1,0") })
    end)

    it("sifts a reader's rows: the held ones counted, the others written", function()
        local csv = require("marketo.csv")
        local src, out = dir .. "/in.csv", dir .. "/out.csv"
        files.write(src, 'id,email\r\n1,a@x.com\r\n2,"b@x.com"\r\n3,c@x.com\r\n4,\r\n')
        local st = state()
        st:put("A@x.com", "1,a@x.com")
        st:put("b@x.com", '2,"b@x.com"')
        st:put("c@x.com", "3,old")
        st:merge()
        local r = assert(csv.open(src))
        local w = assert(csv.writer(out, { header = r:header(), lines = out .. ".lines" }))
        assert.same({ 2, 2 }, { r:sift(st, { 2 }, w, false) })
        r:close()
        assert(w:close())
        assert.equal("id,email\n3,c@x.com\n4,\n", files.read(out))
        assert.equal("4\n5\n", files.read(out .. ".lines"))
    end)

    it("sifts with each row's line from a list, and a salt makes the same bytes another row",
        function()
        local csv = require("marketo.csv")
        local src, out = dir .. "/in.csv", dir .. "/out.csv"
        files.write(src, "id,email\n1,a@x.com\n2,b@x.com\n3,c@x.com\n")
        local st = state()
        st:salt("status=Attended")
        st:put("a@x.com", "1,a@x.com")
        st:salt(nil)
        st:put("b@x.com", "2,b@x.com")
        st:merge()
        assert.same({ true, true }, { st:same("b@x.com", "2,b@x.com") })
        assert.same({ false, true }, { st:same("a@x.com", "1,a@x.com") })
        st:salt("status=Attended")
        assert.same({ true, true }, { st:same("a@x.com", "1,a@x.com") })
        assert.same({ false, true }, { st:same("b@x.com", "2,b@x.com") })
        -- sifted under the salt: a is held, b (held without it) and c are not
        local r = assert(csv.open(src))
        local w = assert(csv.writer(out, { header = r:header(), lines = out .. ".lines" }))
        assert.same({ 2, 1 }, { r:sift(st, 2, w, { 70, 80, 90 }) })
        r:close()
        assert(w:close())
        assert.equal("id,email\n2,b@x.com\n3,c@x.com\n", files.read(out))
        assert.equal("80\n90\n", files.read(out .. ".lines"))
        -- a row without a line in the list is misuse
        r = assert(csv.open(src))
        w = assert(csv.writer(out, { header = r:header() }))
        st:salt(nil)
        assert.has_error(function() r:sift(st, 2, w, { 70 }) end)
        r:close()
        w:close()
        -- recorded under a salt: held with it
        r = assert(csv.open(src))
        st:salt("list_id=5")
        assert.equal(3, r:record(st, 2, {}, false))
        r:close()
        st:merge()
        assert.same({ true, true }, { st:same("c@x.com", "3,c@x.com") })
        st:salt(nil)
        assert.same({ false, true }, { st:same("c@x.com", "3,c@x.com") })
    end)

    it("records a sent part's rows, but the lines (or row numbers) to skip", function()
        local csv = require("marketo.csv")
        local src = dir .. "/in.csv"
        files.write(src, "id,email\n1,a@x.com\n2,b@x.com\n3,c@x.com\n4,\n")
        local st = state()
        local r = assert(csv.open(src))
        assert.equal(2, r:record(st, { 2 }, { [3] = true }, false)) -- line 3; 5 is blank
        r:close()
        st:merge()
        assert.same({ true, true }, { st:same("a@x.com", "1,a@x.com") })
        assert.same({ false, false }, { st:same("b@x.com", "2,b@x.com") })
        r = assert(csv.open(src))
        assert.equal(2, r:record(st, 2, { [1] = true }, true)) -- the first row
        r:close()
        st:merge()
        assert.same({ true, true }, { st:same("b@x.com", "2,b@x.com") })
        assert.equal(3, st:count())
    end)

    it("saves whole and 0600, and loads its keys, names and note back", function()
        local st, path = state(), dir .. "/leads.state"
        for i = 1, 5000 do st:put("user" .. i .. "@example.com", "row " .. i) end
        assert.equal("import of leads.csv", st:note("import of leads.csv"))
        assert.is_true(st:save(path))
        assert.equal(5000, st:count())
        local p = io.popen("stat -c %a " .. files.q(path))
        assert.equal("600", p:read("*l"))
        p:close()
        local back = assert(core.state_load(path))
        assert.same({ "https://123-abc.mktorest.com", "leads", "email" }, { back:identity() })
        assert.equal("import of leads.csv", back:note())
        assert.equal(5000, back:count())
        assert.same({ true, true }, { back:same("USER4999@example.com", "row 4999") })
        assert.same({ false, true }, { back:same("user4999@example.com", "row 4998") })
        back:close()
        assert.has_error(function() back:count() end)
        local empty = state()
        assert.is_true(empty:save(path))
        assert.equal(0, assert(core.state_load(path)):count())
    end)

    it("refuses a truncated, damaged, longer or foreign file, and names a missing one", function()
        local st, path = state(), dir .. "/leads.state"
        for i = 1, 100 do st:put("k" .. i, "row " .. i) end
        assert(st:save(path))
        local whole = files.read(path)
        local function load(data)
            files.write(path, data)
            return core.state_load(path)
        end
        assert.matches("truncated", fails("STATE_CORRUPT", load(whole:sub(1, #whole - 16))))
        assert.matches("truncated", fails("STATE_CORRUPT", load(whole:sub(1, 20))))
        assert.matches("truncated", fails("STATE_CORRUPT", load("")))
        local at = #whole - 100
        local flipped = whole:sub(1, at - 1) .. string.char((whole:byte(at) + 1) % 256)
            .. whole:sub(at + 1)
        assert.matches("checksum", fails("STATE_CORRUPT", load(flipped)))
        assert.matches("longer", fails("STATE_CORRUPT", load(whole .. "x")))
        assert.matches("not a marketo%-bulk state", fails("STATE_CORRUPT", load(("x"):rep(64))))
        assert.matches("/none", fails("ENOENT", core.state_load(dir .. "/none")))
        assert.equal(100, assert(load(whole)):count())
    end)
end)
