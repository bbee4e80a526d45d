-- marketo.core records: the sandbox's packed record store (src/records.c).
-- Lua 5.1 syntax: this file also runs under LuaJIT and under ASan+UBSan.
local core = require("marketo.core")
local null = require("cjson").null

describe("marketo.core records", function()
    local r
    before_each(function() r = core.records() end)
    after_each(function() r:close() end)

    it("upserts by key: named fields replaced, the others kept", function()
        assert.same({ 1, true }, { r:upsert("k", { a = "x", b = "y" }) })
        assert.same({ 1, false }, { r:upsert("k", { a = "z", c = null }) })
        assert.same({ a = "z", b = "y", c = null }, r:get(1))
        assert.same({ 2, true }, { r:upsert("K", { a = "other" }) }) -- keys are exact
        assert.equal(2, r:count())
        assert.equal(2, #r)
        assert.equal(1, r:find("k"))
        assert.is_nil(r:find("nope"))
        assert.equal("K", r:key(2))
        assert.is_nil(r:get(3))
        assert.is_nil(r:get(0))
    end)

    it("keeps strings, numbers, booleans and null as they were given", function()
        local rec = { s = "a\0b", e = "", n = 42, f = 1.5, neg = -7, t = true, no = false,
                      z = null, big = 2 ^ 40 }
        r:insert(nil, rec)
        assert.same(rec, r:get(1))
        assert.equal("", r:key(1))
    end)

    it("finds records by a field, case-folded when asked, in step with changes", function()
        r:insert(nil, { email = "Ann@Example.com", no = "1" })
        r:insert(nil, { email = "bob@example.com", no = "" })
        r:index("email", true)
        r:index("no", false)
        assert.equal(1, r:lookup("email", "ann@example.COM"))
        assert.equal(1, r:lookup("no", "1"))
        assert.is_nil(r:lookup("no", "")) -- an empty value is not a key
        r:merge(1, { email = "ann@new.example" })
        assert.is_nil(r:lookup("email", "ann@example.com"))
        assert.equal(1, r:lookup("email", "ANN@new.example"))
        r:merge(2, { email = null })
        assert.is_nil(r:lookup("email", "bob@example.com"))
        -- two records with one key (insert, not upsert): the newer is found;
        -- once it moves away the key finds neither (one record per key)
        r:insert(nil, { email = "ann@new.example" })
        assert.equal(3, r:lookup("email", "ann@new.example"))
        r:merge(1, { email = "ann@new.example", more = "x" }) -- unchanged: still the newer
        assert.equal(3, r:lookup("email", "ann@new.example"))
        r:merge(3, { email = "carl@example.com" })
        assert.is_nil(r:lookup("email", "ann@new.example"))
        assert.equal(3, r:lookup("email", "carl@example.com"))
        -- an index made later sees the records made before
        r:index("city", false)
        assert.is_nil(r:lookup("city", "Oslo"))
        r:merge(2, { city = "Oslo" })
        assert.equal(2, r:lookup("city", "Oslo"))
    end)

    it("keeps every key findable through many records, growth and rewrites", function()
        local n = 20000
        r:index("email", true)
        for i = 1, n do r:insert(nil, { email = "u" .. i .. "@x.com", v = "short" }) end
        -- records that grow move; the arena is compacted along the way
        for round = 1, 3 do
            for i = 1, n, 2 do
                r:merge(i, { v = ("longer value %d "):format(round):rep(round) .. i })
            end
        end
        for i = 1, n, 7 do r:merge(i, { email = "U" .. i .. "@Y.com" }) end
        local bad = {}
        for i = 1, n do
            local e = (i % 7 == 1) and ("u" .. i .. "@y.com") or ("u" .. i .. "@x.com")
            if r:lookup("email", e) ~= i then bad[#bad + 1] = i end
        end
        assert.same({}, bad)
        assert.equal("longer value 3 longer value 3 longer value 3 1", r:get(1).v)
        assert.equal("short", r:get(2).v)
        assert.is_true(r:memory() > 0)
    end)

    it("walks the records in key order, the order made again after an insert", function()
        for _, k in ipairs({ "b", "a", "c", "ab" }) do r:upsert(k, {}) end
        local keys = {}
        for i = 1, r:count() do keys[i] = r:key(r:ordered(i)) end
        assert.same({ "a", "ab", "b", "c" }, keys)
        assert.is_nil(r:ordered(5))
        r:upsert("0", {})
        assert.equal("0", r:key(r:ordered(1)))
    end)

    it("raises on misuse", function()
        assert.has_error(function() r:insert(nil, { [1] = "x" }) end,
            "marketo.records: a field name must be a string (got number)")
        assert.has_error(function() r:insert(nil, { a = {} }) end,
            "marketo.records: field 'a' holds a table (strings, numbers, booleans or null)")
        assert.has_error(function() r:lookup("email", "x") end,
            "marketo.records: no index on 'email' (call index first)")
        assert.has_error(function() r:upsert("", {}) end)
        assert.has_error(function() r:merge(1, {}) end)
        assert.equal(0, r:count()) -- nothing half-stored
        r:close()
        assert.has_error(function() r:count() end, "marketo.records: used after close")
        assert.equal("marketo.records (closed)", tostring(r))
    end)
end)
