-- marketo.csv.plan: parts under a byte limit, cut between rows, header in
-- each, rows counted once, source lines right; nothing copied.
local csv = require("marketo.csv")
local helper = require("spec.fixtures.csv.helper")
local files = require("spec.support.files")
local fails = require("spec.support.fails")

-- A part as it is sent: the header and its byte range, or, with rows
-- rejected among its own, its copy without them (as the pipeline makes it).
local function sent(path, plan, p, data)
    if p.rejected == 0 then
        return plan.header .. data:sub(p.offset + 1, p.offset + p.length)
    end
    local tmp = os.tmpname()
    local c = assert(csv.copy(path, tmp, { offset = p.offset, length = p.length,
        line = p.first_line }))
    local text = helper.read_all(tmp)
    os.remove(tmp)
    assert.equal(p.rows, c.rows)
    assert.equal(p.rejected, c.rejected)
    assert.is_true(#text <= p.bytes)
    return text
end

-- Rebuilds each part as the transport would send it and reads it back.
local function check_parts(path, plan, max_bytes, fmt)
    local data = helper.read_all(path)
    local src = assert(csv.open(path, { format = fmt }))
    local expected = helper.collect(src)
    src:close()
    local tmp = os.tmpname()
    local n, total = 0, 0
    for _, p in ipairs(plan.parts) do
        assert.is_true(p.bytes <= max_bytes)
        assert.equal(#plan.header + p.length, p.bytes)
        helper.write_file(tmp, plan.header .. data:sub(p.offset + 1, p.offset + p.length))
        local r = assert(csv.open(tmp, { format = fmt }))
        local got = helper.collect(r)
        r:close()
        assert.equal(p.rows, #got.values)
        for _, row in ipairs(got.values) do
            n = n + 1
            assert.same(expected.values[n], row)
        end
        assert.equal(expected.lines[n - p.rows + 1], p.first_line)
        assert.equal(expected.lines[n], p.last_line)
        total = total + p.rows
    end
    os.remove(tmp)
    assert.equal(#expected.values, n)
    assert.equal(plan.rows, total)
end

describe("marketo.csv.plan", function()
    local path
    files.temp_each(function(p) path = p end)

    for _, f in ipairs(helper.FORMATS) do
        it("cuts " .. f.name .. " between rows, even rows with quoted newlines", function()
            helper.write_rows(path, f.delim, { "id", "text", "n" }, helper.tricky_rows(500), "\n")
            for _, max in ipairs({ 400, 1000, 4096, 1e9 }) do
                local plan = assert(csv.plan(path, { format = f.name, max_bytes = max }))
                check_parts(path, plan, max, f.name)
                if max == 1e9 then assert.equal(1, #plan.parts) end
            end
        end)
    end

    it("keeps the header as in the file without the BOM, with CRLF", function()
        helper.write_file(path, "\239\187\191email,name\r\na,1\r\nb,2\r\n")
        local plan = assert(csv.plan(path, { max_bytes = 20 }))
        assert.equal("email,name\r\n", plan.header)
        assert.equal(3, plan.header_offset)
        assert.is_true(plan.bom)
        assert.equal(2, #plan.parts)
        assert.same({ offset = 15, length = 5, bytes = 17, rows = 1, first_line = 2,
                      last_line = 2, rejected = 0 }, plan.parts[1])
        check_parts(path, plan, 20)
    end)

    it("uses PART_BYTES by default and makes no part for a header-only file", function()
        helper.write_file(path, "a,b\n")
        local plan = assert(csv.plan(path))
        assert.equal(csv.PART_BYTES, plan.max_bytes)
        assert.equal(9900000, csv.PART_BYTES)
        assert.same({}, plan.parts)
        assert.equal(0, plan.rows)
    end)

    it("fails on a row that cannot fit a part, naming its line", function()
        helper.write_file(path, "a\n1\n" .. ("x"):rep(50) .. "\n2\n")
        local msg = fails("CSV_ROW_TOO_LARGE", csv.plan(path, { max_bytes = 40 }))
        assert.matches(":3: the row takes 51 bytes", msg)
    end)

    it("fails like the reader in strict mode", function()
        helper.write_file(path, 'a,b\n1,2\n3,"4\n')
        local msg = fails("CSV_UNBALANCED_QUOTE", csv.plan(path))
        assert.matches(":3:3: ", msg)
    end)

    it("leaves rejected rows out of a part without ending it in lenient mode", function()
        helper.write_file(path, "a,b\n1,2\n3,4\n5\n\n6,7\n8,9\n")
        local plan = assert(csv.plan(path, { lenient = true }))
        assert.equal(1, #plan.parts)
        assert.same({ offset = 4, length = 19, bytes = 4 + 19 - 3, rows = 4, first_line = 2,
                      last_line = 7, rejected = 1 }, plan.parts[1]) -- "5\n\n" is a hole
        assert.equal(4, plan.rows)
        assert.equal(1, plan.rejected)
        assert.equal(4, plan.rejects[1].line)
        assert.equal("CSV_FIELD_COUNT", plan.rejects[1].code)
        -- its copy holds the clean rows as they are, and their lines
        local lines = path .. ".lines"
        finally(function() os.remove(path .. ".out"); os.remove(lines) end)
        local p = plan.parts[1]
        assert.same({ path = path .. ".out", bytes = 20, rows = 4, first_line = 2, last_line = 7,
                      rejected = 1 }, csv.copy(path, path .. ".out", { offset = p.offset,
                      length = p.length, line = p.first_line }, { lines = lines }))
        assert.equal("a,b\n1,2\n3,4\n6,7\n8,9\n", helper.read_all(path .. ".out"))
        assert.equal("2\n3\n6\n7\n", helper.read_all(lines))
        -- rejects between parts are in neither
        plan = assert(csv.plan(path, { lenient = true, max_bytes = 12 }))
        assert.same({ { 2, 3, 0 }, { 6, 7, 0 } }, {
            { plan.parts[1].first_line, plan.parts[1].last_line, plan.parts[1].rejected },
            { plan.parts[2].first_line, plan.parts[2].last_line, plan.parts[2].rejected } })
    end)

    it("cuts 1,000 rows with 10% bad ones into as many parts as their clean bytes need",
        function()
            local out, clean = { "email,n\n" }, { "email,n\n" }
            for i = 1, 1000 do
                local row = i % 10 == 0 and ("bad%d@x.com\n"):format(i)
                    or ("user%d@example.com,%d\n"):format(i, i)
                out[#out + 1] = row
                if i % 10 ~= 0 then clean[#clean + 1] = row end
            end
            helper.write_file(path, table.concat(out))
            local plan = assert(csv.plan(path, { lenient = true, max_rejects = 5 }))
            assert.equal(1, #plan.parts)
            assert.equal(#table.concat(clean), plan.parts[1].bytes)
            -- the last row is bad: after the part, not in it
            assert.same({ 900, 100, 99 }, { plan.rows, plan.rejected, plan.parts[1].rejected })
            assert.equal(5, #plan.rejects) -- kept: max_rejects; counted: all
            assert.equal(table.concat(clean), sent(path, plan, plan.parts[1], ""))
            -- under a limit: parts as for the clean bytes alone
            helper.write_file(path .. ".clean", table.concat(clean))
            finally(function() os.remove(path .. ".clean") end)
            for _, max in ipairs({ 1000, 4000 }) do
                local want = #assert(csv.plan(path .. ".clean", { max_bytes = max })).parts
                assert.equal(want, #assert(csv.plan(path, { lenient = true,
                    max_bytes = max })).parts)
            end
        end)

    it("agrees with the reader on a long file with bad rows among good ones", function()
        local _, data = helper.write_with_bad_rows(path, ",", "\n", "\0")
        local plan = assert(csv.plan(path, { lenient = true, max_bytes = 2000 }))
        assert.equal(398, plan.rows)
        assert.equal(2, plan.rejected)
        assert.same({ "CSV_STRAY_QUOTE", "CSV_NUL_BYTE" },
            { plan.rejects[1].code, plan.rejects[2].code })
        local r = assert(csv.open(path, { lenient = true }))
        local want = helper.collect(r)
        r:close()
        local n, holes, sent_path = 0, 0, path .. ".sent"
        finally(function() os.remove(sent_path) end)
        for _, p in ipairs(plan.parts) do
            for _, line in ipairs(want.lines) do
                if line >= p.first_line and line <= p.last_line then n = n + 1 end
            end
            assert.is_true(p.bytes <= 2000)
            local inside = 0
            for _, rej in ipairs(plan.rejects) do
                if rej.line >= p.first_line and rej.line <= p.last_line then
                    inside = inside + 1
                end
            end
            assert.equal(inside, p.rejected)
            holes = holes + inside
            helper.write_file(sent_path, sent(path, plan, p, data))
            local r2 = assert(csv.open(sent_path))
            assert.equal(p.rows, #helper.collect(r2).values)
            r2:close()
        end
        assert.equal(398, n)
        assert.is_true(holes >= 1) -- a reject inside a part, not only between two
        local _, msg, code = csv.plan(path)
        assert.equal("CSV_STRAY_QUOTE", code)
        assert.equal(plan.rejects[1].message, msg:sub(#code + 3))
    end)

    it("reads a file many buffers long as the reader reads it, bad rows and all",
       function()
        -- the planner finds rows by its fast path (and workers), the reader row by row
        local long, out, size = ("x"):rep(2000), { "id,text,n\n" }, 10
        local bad = {
            [4100] = "4100,x\0y,1\n",                          -- NUL
            [4110] = "4110,1\n",                               -- field count
            [6000] = "6000," .. ("y"):rep(1100000) .. ",1\n", -- over max_row
            [9000] = "9000,\255,1\n",                         -- invalid UTF-8
        }
        local window_end = 10 + 8 * 1048576 -- once the end of the mapped window; still a refill
        for i = 1, 12000 do
            local row = bad[i] or i % 7 == 0
                and ('%d,"%s\n""q"", %s",%d\n'):format(i, long:sub(1, 900), long:sub(1, 1000), i)
                or ("%d,%s,%d\n"):format(i, long, i)
            if size < window_end and size + #row >= window_end - 20000 then
                -- a stray quote just past the window's end, in a row that
                -- starts well before it (the scan moves the window in the
                -- row): the error's column counts from the row's start
                row = ("%d,%s\"y,1\n"):format(i, ("z"):rep(window_end - size + 100))
            end
            out[#out + 1], size = row, size + #row
        end
        helper.write_file(path, table.concat(out))
        local plan = assert(csv.plan(path, { lenient = true, max_bytes = 1000000 }))
        local seen, lines, offsets = {}, {}, {}
        local r = assert(csv.open(path, { lenient = true,
            on_reject = function(rej) seen[#seen + 1] = rej end }))
        local values = {}
        for row, line, offset in r:rows() do
            lines[#lines + 1], offsets[#offsets + 1], values[#values + 1] = line, offset, row
        end
        r:close()
        -- where a part may end: where a row or a rejected one starts, or the end
        local starts = { [#helper.read_all(path)] = true }
        for _, o in ipairs(offsets) do starts[o] = true end
        for _, rej in ipairs(seen) do starts[rej.offset] = true end
        assert.equal(5, #seen)
        assert.equal(#lines, plan.rows)
        assert.equal(#seen, plan.rejected)
        for i, rej in ipairs(seen) do
            local got = plan.rejects[i]
            assert.same({ rej.code, rej.message, rej.line, rej.column, rej.offset, rej.raw },
                        { got.code, got.message, got.line, got.column, got.offset, got.raw })
        end
        local n, data, tmp, differ = 0, table.concat(out), os.tmpname(), 0
        for _, p in ipairs(plan.parts) do
            assert.equal(lines[n + 1], p.first_line)
            assert.equal(offsets[n + 1], p.offset)
            assert.is_true(starts[p.offset + p.length])
            -- the part as the transport sends it holds the reader's rows
            helper.write_file(tmp, sent(path, plan, p, data))
            local pr = assert(csv.open(tmp))
            for row in pr:rows() do
                n = n + 1
                if not helper.same_row(values[n], row) then differ = differ + 1 end
            end
            pr:close()
            assert.equal(lines[n], p.last_line)
        end
        os.remove(tmp)
        assert.equal(0, differ)
        assert.equal(#lines, n)
        local _, msg, code = csv.plan(path)
        assert.equal("CSV_NUL_BYTE", code)
        assert.equal(seen[1].message, msg:sub(#code + 3))
        assert.same({ "CSV_NUL_BYTE", "CSV_FIELD_COUNT", "CSV_STRAY_QUOTE", "CSV_ROW_TOO_LARGE",
                      "CSV_INVALID_UTF8" }, { seen[1].code, seen[2].code, seen[3].code,
                                              seen[4].code, seen[5].code })
    end)

    it("raises on unknown options", function()
        assert.has_error(function() csv.plan(path, { max_byte = 1 }) end,
            "bad argument #2 to 'plan' (unknown option 'max_byte')")
    end)

    it("gives a result, not a crash, when the file is cut short while it is planned", function()
        -- a bad row early on: on_reject runs mid-plan and cuts the file to a
        -- quarter of its 24 MB (read through a mapping, this was a SIGBUS)
        local rows = { "a,b\n", "1,2,3\n" }
        local row = ("x"):rep(90) .. ",y\n"
        for _ = 1, 24e6 / #row do rows[#rows + 1] = row end
        local content = table.concat(rows)
        helper.write_file(path, content)
        for _, threads in ipairs({ 1, 2 }) do
            helper.write_file(path, content)
            local cut = false
            local plan, msg = csv.plan(path, { lenient = true, threads = threads,
                segment_bytes = 4e6, on_reject = function()
                    if not cut then helper.write_file(path, content:sub(1, 6e6)) end
                    cut = true
                end })
            assert.is_true(cut)
            if plan then
                assert.is_true(plan.rows < 6e6 / #row, "rows past the cut")
            else
                assert.matches("changed while it was planned", msg)
            end
        end
    end)
end)
