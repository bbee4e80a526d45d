-- marketo.csv.writer and marketo.csv.map: quoting in the three formats,
-- parts, round trips reader -> writer -> reader, the C and Lua mapping paths.
local csv = require("marketo.csv")
local helper = require("spec.fixtures.csv.helper")
local files = require("spec.support.files")
local fails = require("spec.support.fails")

describe("marketo.csv.writer", function()
    local path
    files.temp_each(function(p) path = p end)

    for _, f in ipairs(helper.FORMATS) do
        local d = f.delim
        it("quotes " .. f.name .. " values with its delimiter, quotes, CR or LF only", function()
            local w = assert(csv.writer(path, { format = f.name, header = { "a", "b" } }))
            local others = ("x,y;z\tw"):gsub(d, "")
            assert.is_true(w:write({ "Acme" .. d .. " Inc", 'say "hi"' }))
            assert.is_true(w:write({ "l1\nl2", "c\rr" }))
            assert.is_true(w:write({ others, "" }))
            assert.is_true(w:close())
            assert.equal("a" .. d .. "b\n"
                .. '"Acme' .. d .. ' Inc"' .. d .. '"say ""hi"""\n'
                .. '"l1\nl2"' .. d .. '"c\rr"\n'
                .. others .. d .. "\n", helper.read_all(path))
        end)

        it("round-trips tricky rows in " .. f.name .. " through reader and writer", function()
            local rows = helper.tricky_rows(3000)
            local w = assert(csv.writer(path, { format = f.name, header = { "id", "t", "u" },
                crlf = true }))
            for i, r in ipairs(rows) do assert(w:write(r, i + 1)) end
            assert(w:close())
            local r = assert(csv.open(path, { format = f.name }))
            local got = helper.collect(r)
            r:close()
            helper.same_rows(rows, got.values)
        end)
    end

    it("writes numbers, nil as empty, and a lone empty field as \"\"", function()
        local w = assert(csv.writer(path, { header = { "only" } }))
        w:write({ 42 })
        w:write({})
        w:write({ "" })
        assert(w:close())
        assert.equal('only\n42\n""\n""\n', helper.read_all(path))
        local r = assert(csv.open(path))
        assert.same({ { "42" }, { "" }, { "" } }, helper.collect(r).values)
        r:close()
    end)

    it("quotes a value that starts with a BOM, so no reader strips it", function()
        local w = assert(csv.writer(path))
        assert(w:write({ "\239\187\191x", "y" }))
        assert(w:close())
        assert.equal('"\239\187\191x",y\n', helper.read_all(path))
        local r = assert(csv.open(path, { header = false }))
        assert.same({ "\239\187\191x", "y" }, r:read())
        assert.is_false(r:stats().bom)
        r:close()
    end)

    it("writes a header-only file when no row comes", function()
        local w = assert(csv.writer(path, { header = { "a", "b" } }))
        assert(w:close())
        assert.equal("a,b\n", helper.read_all(path))
    end)

    it("raises on a field that is not a string or number, and on misuse", function()
        local w = assert(csv.writer(path, { header = { "a" } }))
        assert.has_error(function() w:write({ true }) end,
            "field 1 is a boolean (string or number expected)")
        assert.has_error(function() csv.writer(path, { max_bytes = 10, header = { "a" } }) end,
            "bad argument #1 to 'writer' (with max_bytes the path needs one %d or %0Nd "
            .. "for the part number)")
        assert(w:close())
        assert.is_true(w:close())
        assert.has_error(function() w:write({ "x" }) end,
            "attempt to use a closed marketo.csv_writer")
    end)

    it("fails with ENOENT for a missing folder", function()
        local msg = fails("ENOENT", csv.writer(path .. ".d/x.csv"))
        assert.matches("x.csv", msg)
    end)

    it("writes parts under max_bytes, each with the header and its source lines", function()
        local dir = path .. "-%03d.csv"
        local w = assert(csv.writer(dir, { header = { "id", "v" }, max_bytes = 30 }))
        for i = 1, 10 do assert(w:write({ i, "value" }, i * 2)) end
        local _, msg, code = w:write({ 1, ("x"):rep(40) }, 99)
        assert.equal("CSV_ROW_TOO_LARGE", code)
        assert.matches("line 99", msg)
        assert(w:close())
        local parts, rows = w:parts(), 0
        assert.equal(4, #parts) -- 5-byte header + 3 rows of 8 bytes fit 30
        for i, p in ipairs(parts) do
            local body = helper.read_all(p.path)
            os.remove(p.path)
            assert.equal(path .. ("-%03d.csv"):format(i), p.path)
            assert.equal(#body, p.bytes)
            assert.is_true(p.bytes <= 30)
            assert.equal("id,v\n", body:sub(1, 5))
            assert.equal(p.first_line, (rows + 1) * 2)
            rows = rows + p.rows
            assert.equal(p.last_line, rows * 2)
        end
        assert.equal(10, rows)
    end)

    it("creates parts and lines files for their owner only, not inherited by children", function()
        local dir = files.tmpdir()
        finally(function() files.rmdir(dir) end)
        local lines = dir .. "/lines"
        local w = assert(csv.writer(dir .. "/part-%d.csv", { header = { "id" }, max_bytes = 8,
            lines = lines }))
        for i = 1, 6 do assert(w:write({ i }, i + 1)) end
        -- the shell is a child of this process: it sees what would leak to one
        local p = io.popen("ls -l /proc/$$/fd/")
        local inherited = p:read("*a")
        p:close()
        assert(w:close())
        p = io.popen("stat -c '%a %n' " .. files.q(dir) .. "/*")
        local modes = p:read("*a")
        p:close()
        assert.is_true(#w:parts() > 1)
        for mode, name in modes:gmatch("(%d+) (%S+)") do assert.equal("600", mode, name) end
        assert.is_nil(inherited:find(lines, 1, true), inherited)
    end)
end)

describe("marketo.csv.map", function()
    local src, dst
    before_each(function()
        src, dst = os.tmpname(), os.tmpname()
        helper.write_file(src, "Email,First Name,score,junk\n"
            .. "Ann@X.com,\"ann, marie\",12.0,z\n"
            .. ",bob,3,z\n"
            .. "Cy@X.com,\"cy \"\"the\"\"\nguy\",7,z\n")
    end)
    after_each(function()
        os.remove(src)
        os.remove(dst)
    end)

    it("renames, reorders, drops and sets constants in C", function()
        local res = assert(csv.map(src, dst, {
            { to = "firstName", from = "First Name" },
            { to = "email", from = "Email" },
            { to = "leadSource", value = "Fair, 2026" },
        }))
        assert.is_true(res.fast)
        assert.equal(3, res.rows)
        assert.equal('firstName,email,leadSource\n"ann, marie",Ann@X.com,"Fair, 2026"\n'
            .. 'bob,,"Fair, 2026"\n"cy ""the""\nguy",Cy@X.com,"Fair, 2026"\n',
            helper.read_all(dst))
        assert.same({ { path = dst, bytes = #helper.read_all(dst), rows = 3, first_line = 2,
                        last_line = 4 } }, res.parts)
    end)

    it("keeps the source line of every row written in a lines file", function()
        local lines = os.tmpname()
        finally(function() os.remove(lines) end)
        local res = assert(csv.map(src, dst, { { to = "email", from = "Email" } },
            { lines = lines }))
        assert.is_true(res.fast)
        -- the third row starts on line 4; its quoted newline makes it end on 5
        assert.equal("2\n3\n4\n", helper.read_all(lines))
        local w = assert(csv.writer(dst, { header = { "a" }, lines = lines }))
        assert(w:write({ "x" }, 17))
        assert(w:write({ "y" }, 40))
        assert(w:close())
        assert.equal("17\n40\n", helper.read_all(lines))
    end)

    it("re-quotes for another output format", function()
        helper.write_file(src, "a,b\n\"x;y\",\"p,q\"\n")
        assert(csv.map(src, dst, { { to = "b", from = "b" }, { to = "a", from = "a" } },
            { out_format = "ssv" }))
        assert.equal('b;a\np,q;"x;y"\n', helper.read_all(dst))
    end)

    it("calls Lua functions per row and filters rows", function()
        local filtered = {}
        local res = assert(csv.map(src, dst, {
            { to = "email", from = "Email", fn = string.lower },
            { to = "firstName", from = "First Name", fn = function(v)
                return (v:gsub("(%a)(%a*)", function(a, b) return a:upper() .. b end))
            end },
            { to = "score", from = "score", fn = function(v) return math.floor(tonumber(v)) end },
        }, { filter = function(row) return row.Email ~= "" end,
             on_filter = function(line) filtered[#filtered + 1] = line end }))
        assert.is_false(res.fast)
        assert.equal(2, res.rows)
        assert.equal(1, res.filtered)
        assert.same({ 3 }, filtered)
        assert.equal('email,firstName,score\nann@x.com,"Ann, Marie",12\n'
            .. 'cy@x.com,"Cy ""The""\nGuy",7\n', helper.read_all(dst))
    end)

    it("writes parts in both paths", function()
        local pattern = dst .. "-%d.csv"
        for _, fn in ipairs({ false, true }) do
            local res = assert(csv.map(src, pattern, {
                { to = "email", from = "Email", fn = fn and string.lower or nil },
            }, { max_bytes = 16 }))
            assert.equal(3, #res.parts)
            assert.same({ 2, 3, 4 }, { res.parts[1].first_line, res.parts[2].first_line,
                                       res.parts[3].first_line })
            for _, p in ipairs(res.parts) do
                assert.is_true(p.bytes <= 16)
                os.remove(p.path)
            end
        end
    end)

    it("counts lenient rejects, and fails on strict errors and unknown columns", function()
        helper.write_file(src, "a,b\n1,2\n3\n4,5\n")
        local res = assert(csv.map(src, dst, { { to = "a", from = "a" } }, { lenient = true }))
        assert.equal(2, res.rows)
        assert.equal(1, res.rejected)
        assert.equal(3, res.rejects[1].line)
        local msg = fails("CSV_FIELD_COUNT", csv.map(src, dst, { { to = "a", from = "a" } }))
        assert.matches(":3:2: ", msg)
        msg = fails("CSV_UNKNOWN_COLUMN", csv.map(src, dst, { { to = "a", from = "nope" } }))
        assert.matches("nope", msg)
    end)

    it("copies rows of a pure rename as they are, with the writer's line end", function()
        local rows = helper.tricky_rows(2000)
        helper.write_rows(src, ",", { "id", "text", "n" }, rows, "\r\n")
        local data = helper.read_all(src)
        helper.write_file(src, data:sub(1, -3)) -- the last row without a line end
        local res = assert(csv.map(src, dst .. "-%d", {
            { to = "ID", from = "id" }, { to = "T", from = "text" }, { to = "N", from = "n" },
        }, { max_bytes = 50000 }))
        assert.is_true(res.fast)
        assert.equal(#rows, res.rows)
        local body, lines = {}, 0
        for i, p in ipairs(res.parts) do
            local part = helper.read_all(p.path)
            os.remove(p.path)
            assert.equal("ID,T,N\n", part:sub(1, 7))
            assert.is_true(#part <= 50000)
            assert.equal(#part, p.bytes)
            body[i] = part:sub(8)
            lines = lines + p.rows
        end
        assert.equal(#rows, lines)
        local want = data:sub(#"id,text,n\r\n" + 1):gsub("\r\n(%d+,)", "\n%1")
        assert.equal(want:sub(1, -3) .. "\n", table.concat(body))
    end)

    it("gives functions nil without 'from', and the row by name on demand", function()
        local seen = {}
        local res = assert(csv.map(src, dst, {
            { to = "n", fn = function(v, row)
                seen[#seen + 1] = tostring(v) .. "|" .. row.junk .. "|" .. row["First Name"]
                return -#seen
            end },
            { to = "s", from = "score", fn = function(v) return math.floor(tonumber(v)) * 2 end },
        }))
        assert.equal(3, res.rows)
        assert.same({ "nil|z|ann, marie", "nil|z|bob", "nil|z|cy \"the\"\nguy" }, seen)
        assert.equal("n,s\n-1,24\n-2,6\n-3,14\n", helper.read_all(dst))
    end)

    it("raises on an unknown row name and on a function result of the wrong type", function()
        assert.has_error(function()
            csv.map(src, dst, { { to = "a", fn = function(_, row) return row.Emial end } })
        end, "the source has no column 'Emial'")
        assert.has_error(function()
            csv.map(src, dst, { { to = "a", from = "Email", fn = function() return {} end } })
        end, "the function of output column 1 returned a table (string, number or nil expected)")
    end)

    it("raises on a malformed mapping", function()
        assert.has_error(function() csv.map(src, dst, { { to = "a", form = "b" } }) end,
            "bad argument #3 to 'map' (entry 1: unknown key 'form')")
        assert.has_error(function()
            csv.map(src, dst, { { to = "a", value = "1" }, { to = "a", value = "2" } })
        end, "bad argument #3 to 'map' (entry 2 repeats 'a')")
    end)
end)
