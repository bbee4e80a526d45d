local results = require("marketo.results")

local tmpfile = require("spec.support.files").temp_file

describe("marketo.results", function()
    describe("records", function()
        it("reads quoted fields, doubled quotes, CRLF and a BOM, with line numbers", function()
            local recs = results.records('\239\187\191a,b\r\n"x,1","say ""hi"""\r\n'
                .. '"multi\nline",z\n\nlast,row', ",")
            assert.same({ line = 1, fields = { "a", "b" } }, recs[1])
            assert.same({ line = 2, fields = { "x,1", 'say "hi"' } }, recs[2])
            assert.same({ line = 3, fields = { "multi\nline", "z" } }, recs[3])
            assert.same({ line = 6, fields = { "last", "row" } }, recs[4])
            assert.equal(4, #recs)
        end)
        it("splits on tabs and semicolons", function()
            assert.same({ "a", "b;c" }, results.records("a\tb;c\n", "\t")[1].fields)
            assert.same({ "a\tb", "c" }, results.records("a\tb;c\n", ";")[1].fields)
        end)
        it("keeps empty fields", function()
            assert.same({ "", "x", "" }, results.records(",x,\n", ",")[1].fields)
        end)
    end)

    describe("parse", function()
        it("splits off the reason column and names every field", function()
            local rows = results.parse("color,make,model, vin,Import Failure Reason\n"
                .. "red,bmw,2002,WBA4R7C55HK895912,missing.dedupe.fields\n",
                { format = "csv", reason = "Import Failure Reason" })
            assert.same({ "color", "make", "model", " vin" }, rows.header)
            assert.equal("Import Failure Reason", rows.reason_column)
            assert.equal(1, #rows)
            assert.equal("missing.dedupe.fields", rows[1].reason)
            assert.same({ "red", "bmw", "2002", "WBA4R7C55HK895912" }, rows[1].values)
            assert.equal("WBA4R7C55HK895912", rows[1].fields[" vin"])
        end)
        it("reads a warnings file in ssv", function()
            local rows = results.parse("email;firstName;Import Warning Reason\n"
                .. "INVALID;Ann;Invalid email address\n",
                { format = "ssv", reason = "Import Warning Reason" })
            assert.equal("Invalid email address", rows[1].reason)
            assert.equal("Ann", rows[1].fields.firstName)
        end)
        it("takes an empty text as no rows", function()
            local rows = results.parse("", { reason = "Import Failure Reason" })
            assert.equal(0, #rows)
            assert.is_true(rows.none)
        end)
    end)

    describe("tie", function()
        local part = {
            header = { "email", "firstName", "leadScore" },
            rows = {
                { line = 2, values = { "a@x.org", "Ann", "1" } },
                { line = 3, values = { "b@x.org", "Bob", "x" } },
                { line = 5, values = { "c@x.org", "Cy", "2" } },
                { line = 6, values = { "b@x.org", "Bob", "x" } },
                { line = 7, values = { "d@x.org", "Di", "y" } },
            },
        }

        -- A failure file (`text`: part columns, then the reason) tied to part.
        local function tied(text)
            local rows = results.parse(text, { reason = "Import Failure Reason" })
            results.tie(rows, part)
            return rows
        end

        it("finds each failed row's source line, whatever the file's order", function()
            local rows = tied("email,firstName,leadScore,Import Failure Reason\n"
                .. "d@x.org,Di,y,Invalid data type\nc@x.org,Cy,2,Other\n")
            assert.equal(7, rows[1].line)
            assert.equal(5, rows[2].line)
            assert.is_nil(rows[1].ambiguous)
        end)

        it("hands identical rows out in order and says when it cannot tell", function()
            local rows = tied("email,firstName,leadScore,Import Failure Reason\n"
                .. "b@x.org,Bob,x,Invalid data type\n")
            assert.equal(3, rows[1].line)
            assert.is_true(rows[1].ambiguous)
            assert.same({ 3, 6 }, rows[1].candidates)
        end)

        it("is exact when every copy of a duplicated row failed", function()
            local rows = tied("email,firstName,leadScore,Import Failure Reason\n"
                .. "b@x.org,Bob,x,r1\nb@x.org,Bob,x,r2\n")
            assert.equal(3, rows[1].line)
            assert.equal(6, rows[2].line)
            assert.is_false(rows[1].ambiguous)
            assert.is_false(rows[2].ambiguous)
        end)

        it("matches on the columns the failure file kept, in any order", function()
            local rows = tied("leadScore,email,Import Failure Reason\n"
                .. "y,d@x.org,Value for lookup field\n")
            assert.equal(7, rows[1].line)
        end)

        it("falls back to matching without case and surrounding blanks", function()
            local rows = tied("email,firstName,leadScore,Import Failure Reason\n"
                .. "A@X.org ,Ann,1,r\n")
            assert.equal(2, rows[1].line)
        end)

        it("claims no line when the files share no column", function()
            local rows = tied("vin,Import Failure Reason\nV1,r\n")
            assert.is_nil(rows[1].line)
            assert.is_true(rows[1].unmatched)
        end)

        it("marks a row no source row matches", function()
            local rows = tied("email,firstName,leadScore,Import Failure Reason\n"
                .. "z@x.org,Zed,0,r\n")
            assert.is_nil(rows[1].line)
            assert.is_true(rows[1].unmatched)
        end)
    end)

    describe("read_part", function()
        it("reads a byte range after a header prefix, numbering source lines", function()
            local content = "email,name\na@x.org,Ann\n\"b@x.org\",\"B,\nob\"\nc@x.org,Cy\n"
            local path = tmpfile(content)
            local offset = #"email,name\na@x.org,Ann\n"
            local part = assert(results.read_part{ path = path, offset = offset,
                length = #content - offset, prefix = "email,name\n", first_line = 3 })
            os.remove(path)
            assert.same({ "email", "name" }, part.header)
            assert.same({ line = 3, values = { "b@x.org", "B,\nob" } }, part.rows[1])
            assert.same({ line = 5, values = { "c@x.org", "Cy" } }, part.rows[2])
        end)
        it("takes the first row as the header when there is no prefix", function()
            local path = tmpfile("email\tname\na@x.org\tAnn\n")
            local part = assert(results.read_part{ path = path, format = "tsv" })
            os.remove(path)
            assert.same({ "email", "name" }, part.header)
            assert.same({ line = 2, values = { "a@x.org", "Ann" } }, part.rows[1])
        end)
        it("puts back the source lines of a part the pipeline wrote", function()
            local path = tmpfile("email,name\na@x.org,Ann\nb@x.org,Bob\n")
            local part = assert(results.read_part{ path = path, lines = { 120, 457 } })
            local lua_part = assert(results.read_part{ path = path, lines = { 120, 457 },
                engine = false })
            os.remove(path)
            assert.same({ 120, 457 }, { part.rows[1].line, part.rows[2].line })
            assert.same(part, lua_part)
        end)
        it("fails on a missing file", function()
            -- its message names ENOENT, not the code: so not through fails()
            local ok, _, code = results.read_part{ path = "/nonexistent/x.csv" }
            assert.is_nil(ok)
            assert.equal("READ_ERROR", code)
        end)
    end)
end)
