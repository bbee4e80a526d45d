-- marketo.csv reader: quoting in the three formats, line numbers, BOM, CRLF,
-- strict errors with line and column, lenient rejects, lifecycle.
local csv = require("marketo.csv")
local helper = require("spec.fixtures.csv.helper")
local files = require("spec.support.files")
local fails = require("spec.support.fails")
local lifecycle = require("spec.support.lifecycle")

local write_file = helper.write_file

describe("marketo.csv reader", function()
    local path
    files.temp_each(function(p) path = p end)

    for _, f in ipairs(helper.FORMATS) do
        local d, fmt = f.delim, f.name
        local function row(...) return table.concat({ ... }, d) end

        describe(fmt, function()
            it("reads quoted fields with the delimiter, doubled quotes and newlines", function()
                write_file(path, row("a", "b", "c") .. "\n"
                    .. row('"x' .. d .. 'y"', '"say ""hi"""', '"two\nlines"') .. "\n"
                    .. row("plain", '""', "") .. "\n")
                local r = assert(csv.open(path, { format = fmt }))
                assert.same({ "a", "b", "c" }, r:header())
                local t, line, offset = r:read()
                assert.same({ "x" .. d .. "y", 'say "hi"', "two\nlines" }, t)
                assert.equal(2, line)
                assert.equal(6, offset)
                t, line = r:read()
                assert.same({ "plain", "", "" }, t)
                assert.equal(4, line) -- the quoted newline advanced the line count
                assert.is_nil(r:read())
                assert.equal(2, r:stats().rows)
                r:close()
            end)

            it("handles CRLF, quoted CRLF, and a last row without a line end", function()
                write_file(path, row("a", "b") .. "\r\n" .. row('"1\r\n2"', "x") .. "\r\n"
                    .. row("3", '"4"'))
                local r = assert(csv.open(path, { format = fmt }))
                local rows = helper.collect(r)
                assert.same({ { "1\r\n2", "x" }, { "3", "4" } }, rows.values)
                assert.same({ 2, 4 }, rows.lines)
                assert.is_true(r:stats().crlf)
                r:close()
            end)

            it("keeps empty fields: leading, trailing, and only delimiters", function()
                write_file(path, row("a", "b", "c") .. "\n" .. row("", "", "") .. "\n"
                    .. row("", "x", "") .. "\n")
                local r = assert(csv.open(path, { format = fmt }))
                assert.same({ { "", "", "" }, { "", "x", "" } }, helper.collect(r).values)
                r:close()
            end)

            it("treats the other formats' delimiters as data", function()
                local others = ("1,2;3\t4"):gsub(d, "")
                write_file(path, row("a", "b") .. "\n" .. row(others, "z") .. "\n")
                local r = assert(csv.open(path, { format = fmt }))
                assert.same({ others, "z" }, r:read())
                r:close()
            end)
        end)
    end

    it("strips and reports a UTF-8 BOM", function()
        write_file(path, "\239\187\191email,name\nA@B.C,Zoë\n")
        local r = assert(csv.open(path))
        assert.same({ "email", "name" }, r:header())
        assert.same({ "A@B.C", "Zoë" }, r:read())
        assert.is_true(r:stats().bom)
        r:close()
    end)

    it("skips blank lines but counts them and keeps line numbers", function()
        write_file(path, "a,b\n\n1,2\r\n\r\n\n3,4\n\n")
        local r = assert(csv.open(path))
        local rows = helper.collect(r)
        assert.same({ 3, 6 }, rows.lines)
        assert.equal(4, r:stats().blank)
        r:close()
    end)

    it("reads rows by header name, reusing the given table", function()
        write_file(path, "email,name\na@x,Ann\nb@x,Bob\n")
        local r = assert(csv.open(path))
        local t = {}
        assert.equal(t, (r:read(t, true)))
        assert.same({ email = "a@x", name = "Ann" }, t)
        r:read(t, true)
        assert.same({ email = "b@x", name = "Bob" }, t)
        r:close()
    end)

    it("clears leftovers of a longer row in a reused table without a header", function()
        write_file(path, "1,2,3\n4\n")
        local r = assert(csv.open(path, { header = false }))
        local t = {}
        r:read(t)
        assert.same({ "1", "2", "3" }, t)
        r:read(t)
        assert.same({ "4" }, t)
        assert.is_nil(r:header())
        r:close()
    end)

    it("iterates with rows(), fresh tables unless reuse", function()
        write_file(path, "a\n1\n2\n")
        local r = assert(csv.open(path))
        local seen = {}
        for t in r:rows() do seen[#seen + 1] = t end
        assert.same({ { "1" }, { "2" } }, seen)
        assert.are_not.equal(seen[1], seen[2])
        r:close()
    end)

    it("streams a file larger than its buffer, with fields across refills", function()
        local rows = helper.tricky_rows(6000)
        helper.write_rows(path, ",", { "id", "text", "n" }, rows, "\r\n")
        local r = assert(csv.open(path))
        local got = helper.collect(r)
        helper.same_rows(rows, got.values)
        assert.equal(2, got.lines[1])
        r:close()
    end)
end)

describe("marketo.csv strict errors", function()
    local path
    files.temp_each(function(p) path = p end)

    local function refused(content, code, where, opts)
        write_file(path, content)
        local r, msg, c = csv.open(path, opts)
        if r then
            local t
            repeat t, msg, c = r:read() until t == nil
            -- the failure is sticky: a second read says the same
            local _, msg2 = r:read()
            assert.equal(msg, msg2)
            r:close()
        end
        assert.equal(code, c)
        assert.matches("^" .. code .. ": " .. path:gsub("%p", "%%%0") .. ":" .. where .. ": ", msg)
        return msg
    end

    it("names an unbalanced quote where it opens", function()
        local msg = refused('a,b,c\n1,2,3\n4,5,"six\n7,8,9\n', "CSV_UNBALANCED_QUOTE", "3:5")
        assert.matches("field 3", msg)
        assert.matches("lenient", msg)
    end)

    it("names a stray quote in an unquoted field, and text after a closing quote", function()
        refused('a,b\n1,2\n3,4"5\n', "CSV_STRAY_QUOTE", "3:4")
        refused('a,b\n"x"y,2\n', "CSV_STRAY_QUOTE", "2:4")
    end)

    it("names a wrong field count: too many at the extra field, too few at the end", function()
        refused("a,b\n1,2\n3,4,5\n", "CSV_FIELD_COUNT", "3:5")
        refused('a,b,c\n1,"x\ny"\n', "CSV_FIELD_COUNT", "3:3")
    end)

    it("names invalid UTF-8 by character column", function()
        refused("a,b\nZoë,\255\n", "CSV_INVALID_UTF8", "2:5")
        refused("a\n\237\160\128\n", "CSV_INVALID_UTF8", "2:1") -- a UTF-16 surrogate
        refused("a\n\192\175\n", "CSV_INVALID_UTF8", "2:1")     -- overlong
    end)

    it("names a NUL byte", function()
        refused("a,b\n1,\"x\0\"\n", "CSV_NUL_BYTE", "2:5")
    end)

    it("names a row over max_row at the line where it starts", function()
        refused("a\n" .. ("x"):rep(100) .. "\n", "CSV_ROW_TOO_LARGE", "2:1", { max_row = 50 })
        local msg = refused('a\n"' .. ("x\n"):rep(3000), "CSV_ROW_TOO_LARGE", "2:1",
            { max_row = 1000 })
        assert.matches("unbalanced quote", msg)
    end)

    it("fails on the header too, and on duplicate or missing headers", function()
        refused('a,"b\n', "CSV_UNBALANCED_QUOTE", "1:3")
        refused("a,b,a\n", "CSV_DUPLICATE_HEADER", "1", { lenient = true })
        write_file(path, "\n\n")
        local msg = fails("CSV_NO_HEADER", csv.open(path))
        assert.matches("header row", msg)
    end)

    it("refuses CR-only line ends (old Mac) in open, plan, map and shares alike", function()
        local dst = path .. ".out"
        finally(function() os.remove(dst) end)
        local big = {}
        for i = 1, 200 do big[i] = "u" .. i .. "@x.com,U" .. i end
        for _, content in ipairs({
            "email,name\ra@x.com,A\rb@x.com,B\r",          -- reads as a header of 4 names
            '"email","name"\r"a@x.com","A"\r',              -- quotes: a stray CR
            "email,name\r",                                 -- a header alone
            "email,name\r" .. table.concat(big, "\r"),      -- over max_row
        }) do
            write_file(path, content)
            for name, try in pairs({
                open = function() return csv.open(path, { max_row = 1000 }) end,
                plan = function() return csv.plan(path, { max_row = 1000, lenient = true }) end,
                map = function()
                    return csv.map(path, dst, { { to = "email", from = "email" } },
                        { max_row = 1000 })
                end,
                shares = function() return csv.shares(path, 2, { max_row = 1000 }) end,
            }) do
                local ok, msg, code = try()
                assert.is_nil(ok, name)
                assert.equal("CSV_CR_LINE_ENDINGS", code, name .. ": " .. tostring(msg))
                assert.matches(path:gsub("%p", "%%%0") .. ": uses CR%-only line endings %(old "
                    .. "Mac format%).*tr '\\r' '\\n' < in.csv > out.csv", msg)
            end
        end
        -- CRLF, and a lone CR inside a row, are not that
        write_file(path, "email,name\r\na@x.com,A\rB\r\n")
        local r = assert(csv.open(path))
        assert.same({ "a@x.com", "A\rB" }, r:read())
        r:close()
    end)

    it("returns ENOENT for a missing file", function()
        local msg = fails("ENOENT", csv.open(path .. ".missing"))
        assert.matches("missing", msg)
    end)
end)

describe("marketo.csv lenient mode", function()
    local path
    files.temp_each(function(p) path = p end)

    it("rejects bad rows with line, reason and raw bytes, and reads on", function()
        write_file(path, 'a,b\n1,2\n3,4"\n5\n6,7,8\n\255,9\n"x\0",1\n10,11\n')
        local r = assert(csv.open(path, { lenient = true }))
        local got = helper.collect(r)
        assert.same({ { "1", "2" }, { "10", "11" } }, got.values)
        assert.same({ 2, 8 }, got.lines)
        local codes, lines = {}, {}
        for i, rej in ipairs(r:rejects()) do codes[i], lines[i] = rej.code, rej.line end
        assert.same({ "CSV_STRAY_QUOTE", "CSV_FIELD_COUNT", "CSV_FIELD_COUNT",
                      "CSV_INVALID_UTF8", "CSV_NUL_BYTE" }, codes)
        assert.same({ 3, 4, 5, 6, 7 }, lines)
        assert.equal('3,4"\n', r:rejects()[1].raw)
        assert.equal(8, r:rejects()[1].offset)
        assert.equal(5, r:stats().rejected)
        assert.equal(2, r:stats().rows)
        r:close()
    end)

    it("hands rejects to on_reject, including rows over max_row without raw", function()
        write_file(path, "a\n" .. ("y"):rep(300) .. '\n"z\nok\n')
        local seen = {}
        local r = assert(csv.open(path, { lenient = true, max_row = 100,
            on_reject = function(rej) seen[#seen + 1] = rej end }))
        assert.same({}, helper.collect(r).values) -- the open quote swallows the rest
        assert.equal(2, #seen)
        assert.equal("CSV_ROW_TOO_LARGE", seen[1].code)
        assert.is_nil(seen[1].raw)
        assert.equal("CSV_UNBALANCED_QUOTE", seen[2].code)
        assert.equal(3, seen[2].line)
        assert.same({}, r:rejects())
        r:close()
    end)

    it("reads a long file with bad rows among good ones like a short one", function()
        local rows = helper.write_with_bad_rows(path, ";", "\r\n", "\255")
        local r = assert(csv.open(path, { format = "ssv", lenient = true }))
        local got = helper.collect(r)
        local good = {}
        for i, row in ipairs(rows) do
            if i ~= 100 and i ~= 300 then good[#good + 1] = row end
        end
        helper.same_rows(good, got.values)
        assert.same({ "CSV_STRAY_QUOTE", "CSV_INVALID_UTF8" },
            { r:rejects()[1].code, r:rejects()[2].code })
        local lf = select(2, table.concat(rows[99], ";"):gsub("\n", ""))
        assert.equal(got.lines[99] + 1 + lf, r:rejects()[1].line)
        r:close()
    end)

    it("keeps max_rejects of them but counts all", function()
        write_file(path, "a,b\n" .. ("1\n"):rep(20))
        local r = assert(csv.open(path, { lenient = true, max_rejects = 5 }))
        helper.collect(r)
        assert.equal(5, #r:rejects())
        assert.equal(20, r:stats().rejected)
        r:close()
    end)
end)

describe("marketo.csv reader's lazy row", function()
    local path
    files.temp_each(function(p) path = p end)

    it("hands out the current row's fields by name or column, as next() moves on", function()
        write_file(path, 'email,name,n\nA@X.COM,"Ann, Jr",1\n\nb@x.com,"Bo\nB",2\n')
        local r = assert(csv.open(path))
        local row = r:row()
        assert.equal(row, r:row() and row) -- one table for all rows
        local line, offset = r:next()
        assert.same({ 2, 13 }, { line, offset })
        assert.equal("A@X.COM", row.email)
        assert.equal("Ann, Jr", row[2])
        assert.equal("1", row.n)
        assert.is_nil(row.nope)
        assert.is_nil(row[4])
        -- numbers that are no column: no cast or arithmetic overflows on them
        for _, k in ipairs({ 0, 1.5, -1, 2 ^ 63, -2 ^ 63, math.huge, -math.huge, 0 / 0 }) do
            assert.is_nil(row[k], tostring(k))
        end
        assert.equal("Ann, Jr", row[2.0])
        local seen, honours = {}, false -- __pairs: Lua 5.2+, not LuaJIT's default build
        pairs(setmetatable({}, { __pairs = function(t) honours = true; return next, t end }))
        for k, v in pairs(row) do seen[#seen + 1] = k .. "=" .. v end
        assert.same(honours and { "email=A@X.COM", "name=Ann, Jr", "n=1" } or {}, seen)
        line = r:next()
        assert.equal(4, line) -- the blank line 3 skipped
        assert.equal("Bo\nB", row.name)
        assert.is_nil(r:next())
        r:close()
        assert.is_nil(row.email) -- a closed reader has no row
    end)

    it("is read-only, and strict about names when asked", function()
        write_file(path, "a,b\n1,2\n")
        local r = assert(csv.open(path))
        local row, strict = r:row(), r:row(true)
        assert(r:next())
        assert.error_matches(function() row.a = "x" end, "the source row is read-only ('a')",
            1, true)
        assert.equal("1", row.a)
        assert.is_nil(row.zz)
        assert.error_matches(function() return strict.zz end, "the source has no column 'zz'")
        assert.equal("2", strict.b)
        r:close()
    end)

    it("passes a strict failure on from next()", function()
        write_file(path, 'a,b\n1,2\n3,"x\n')
        local r = assert(csv.open(path))
        assert.equal(2, (r:next()))
        local msg = fails("CSV_UNBALANCED_QUOTE", r:next())
        assert.matches(":3:3:", msg, 1, true)
        r:close()
    end)
end)

describe("marketo.csv reader misuse and lifecycle", function()
    local path
    before_each(function()
        path = os.tmpname()
        write_file(path, "a\n1\n")
    end)
    after_each(function() os.remove(path) end)

    it("raises on unknown options, bad formats and on_reject without lenient", function()
        assert.has_error(function() csv.open(path, { fromat = "csv" }) end,
            "bad argument #2 to 'open' (unknown option 'fromat')")
        assert.has_error(function() csv.open(path, { format = "psv" }) end,
            "bad argument #2 to 'open' (option 'format': csv, tsv or ssv expected, got \"psv\")")
        assert.has_error(function() csv.open(path, { on_reject = print }) end,
            "bad argument #2 to 'open' (on_reject needs lenient = true)")
        assert.has_error(function() csv.open(path, { max_row = "big" }) end,
            "bad argument #2 to 'open' (option 'max_row': number expected, got string)")
    end)

    it("closes twice, raises after close, and says so in tostring", function()
        local r = assert(csv.open(path))
        assert.matches("^marketo.csv_reader %(", tostring(r))
        assert.is_true(r:close())
        assert.is_true(r:close())
        assert.equal("marketo.csv_reader (closed)", tostring(r))
        assert.has_error(function() r:read() end, "attempt to use a closed marketo.csv_reader")
    end)

    local it_54 = (_VERSION >= "Lua 5.4") and it or pending
    it_54("is closed by a <close> variable, as the C reader and writer are", function()
        local core = require("marketo.core")
        assert.equal("marketo.csv_reader (closed)",
            lifecycle.after_scope(core.csv_reader(path, ",", false, 100, true)))
        assert.equal("marketo.csv_reader (closed)", lifecycle.after_scope(assert(csv.open(path))))
        assert.equal("marketo.csv_writer (closed)",
            lifecycle.after_scope(assert(csv.writer(path .. ".out"))))
        os.remove(path .. ".out")
    end)

    it("is collected open or closed", function()
        local core = require("marketo.core")
        local weak = lifecycle.weak()
        weak[1] = core.csv_reader(path, ",", false, 100, true)
        weak[2] = core.csv_reader(path, ",", false, 100, true)
        weak[2]:close()
        lifecycle.collected(weak)
    end)
end)
