-- marketo.csv.plan with threads: the plan of a parallel scan is the plan of
-- one scan, byte for byte (parts, counts, rejects in order, failures),
-- whatever the file and wherever the segments fall. segment_bytes forces
-- segments on small files so that their starts land everywhere: inside
-- quoted fields, on blank lines, on bad rows and just around them.
local csv = require("marketo.csv")
local helper = require("spec.fixtures.csv.helper")
local files = require("spec.support.files")

-- A small deterministic generator (the same files on Lua 5.4 and LuaJIT).
local function rng(seed)
    local x = seed
    return function(n)
        x = (x * 1103515245 + 12345) % 2147483648
        return x % n + 1
    end
end

local BITS = { "plain", "a,b", "x;y", "t\tu", 'say "hi"', "two\nlines", "cr\r\nlf", "",
               "Zoë ✓", "lone\rcr", '"', "\n", "\n\n", '"\n"', ("long"):rep(30) }

-- Bad rows, each as a function of the delimiter and the field count.
local BAD = {
    function(d, nf) return ("1"):rep(1) .. d:rep(nf) end,                -- extra field
    function(d, nf) return nf > 1 and "short" or "a" .. d .. "b" end,     -- field count
    function(d, nf) return 'st"ray' .. d:rep(nf - 1) end,                 -- stray quote
    function(d, nf) return '"closed"x' .. d:rep(nf - 1) end,              -- after a quote
    function(d, nf) return "n\0ul" .. d:rep(nf - 1) end,                  -- NUL
    function(d, nf) return "bad\255utf" .. d:rep(nf - 1) end,             -- UTF-8
    function(d, nf) return ("w"):rep(300) .. d:rep(nf - 1) end,           -- over max_row (256)
}

-- A file: header, rows (some quoted over several lines), blank lines, CRLF,
-- maybe a BOM, maybe bad rows, maybe no line end at the end.
local function gen(r, d, nrows, opts)
    local nf = r(4)
    local out = {}
    if r(4) == 1 then out[1] = "\239\187\191" end
    local names = {}
    for i = 1, nf do names[i] = "c" .. i end
    local crlf = r(3) == 1
    out[#out + 1] = table.concat(names, d) .. (crlf and "\r\n" or "\n")
    for i = 1, nrows do
        local eol = (crlf or r(10) == 1) and "\r\n" or "\n"
        if r(12) == 1 then
            out[#out + 1] = r(2) == 1 and "\n" or "\r\n"
            if r(3) == 1 then out[#out + 1] = ("\n"):rep(r(5)) end
        end
        if opts.bad and r(opts.bad) == 1 then
            out[#out + 1] = BAD[r(#BAD)](d, nf) .. eol
        else
            local f = {}
            for j = 1, nf do f[j] = helper.quote(BITS[r(#BITS)] .. (j == 1 and i or ""), d) end
            out[#out + 1] = table.concat(f, d) .. eol
        end
    end
    if opts.unbalanced then out[#out + 1] = '"never closed' .. d .. "x\n1\n" end
    local s = table.concat(out)
    if r(5) == 1 then s = s:gsub("\r?\n$", "") end
    return s
end

-- Every result of csv.plan, rejects included, as one comparable table.
local function plan_of(path, opts)
    return { csv.plan(path, opts) } -- plan | nil, msg, code: no hole before the end
end

local function same_plans(path, opts, cases)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.threads = 1
    local want = plan_of(path, o)
    for _, c in ipairs(cases) do
        o.threads, o.segment_bytes = c[1], c[2]
        local got = plan_of(path, o)
        assert.same(want, got, ("threads %d, segment_bytes %d"):format(c[1], c[2]))
    end
    return want
end

local SEGMENTS = { 1, 13, 64, 333, 1000, 4096 }

local function cases(r, n)
    local out = {}
    for i = 1, n do out[i] = { 1 + r(8), SEGMENTS[r(#SEGMENTS)] } end
    return out
end

describe("marketo.csv.plan with threads", function()
    local path
    files.temp_each(function(p) path = p end)

    for _, f in ipairs(helper.FORMATS) do
        it("plans clean " .. f.name .. " files as one scan does", function()
            local r = rng(#f.name + f.delim:byte())
            for _ = 1, 25 do
                helper.write_file(path, gen(r, f.delim, r(300), {}))
                for _, max in ipairs({ 60, 300, 2000, 1e9 }) do
                    same_plans(path, { format = f.name, max_bytes = max }, cases(r, 4))
                end
            end
        end)

        it("fails and rejects in " .. f.name .. " as one scan does", function()
            local r = rng(7 * f.delim:byte())
            for n = 1, 25 do
                helper.write_file(path, gen(r, f.delim, r(300), { bad = 2 + r(30),
                    unbalanced = n % 5 == 0 }))
                for _, lenient in ipairs({ false, true }) do
                    for _, max in ipairs({ 100, 700, 1e9 }) do
                        same_plans(path, { format = f.name, lenient = lenient, max_bytes = max,
                                           max_row = 256 }, cases(r, 3))
                    end
                end
            end
        end)
    end

    it("agrees on files a third of whose rows are bad, parts spanning their holes", function()
        local r = rng(2)
        for _ = 1, 6 do
            helper.write_file(path, gen(r, ",", 200 + r(300), { bad = 3 }))
            for _, max in ipairs({ 100, 700, 1e9 }) do
                local want = same_plans(path, { lenient = true, max_bytes = max, max_row = 256 },
                    cases(r, 4))
                local holes = 0 -- (a small max_bytes may not fit some row)
                for _, p in ipairs(want[1] and want[1].parts or {}) do
                    holes = holes + p.rejected
                end
                assert.is_true(max < 1e9 or holes > 0, tostring(want[2]))
            end
        end
    end)

    it("agrees with bad rows right at and around the segment starts", function()
        -- segments start at the first line after size * k / threads
        local good = ("g,%s\n"):format(("y"):rep(20))
        local bads = { "b\n", 'b"x,1\n', "b,\0\n", '"q\n,z",1\n', "\n", "\r\n",
                       ("z"):rep(90) .. ",1\n" }
        for threads = 2, 6 do
            for _, bad in ipairs(bads) do
                for shift = -3, 3 do
                    local rows = {}
                    for i = 1, 60 do rows[i] = good end
                    local body = table.concat(rows)
                    local total = 4 + #body
                    for k = 1, threads - 1 do
                        -- the row holding the nominal start k, shifted by rows
                        local nominal = math.floor((total - 4) / threads) * k
                        local row = math.floor(nominal / #good) + 1 + shift
                        rows[row] = bad
                    end
                    helper.write_file(path, "a,b\n" .. table.concat(rows))
                    for _, lenient in ipairs({ false, true }) do
                        same_plans(path, { lenient = lenient, max_bytes = 120, max_row = 80 },
                            { { threads, 1 }, { threads, 50 } })
                    end
                end
            end
        end
    end)

    it("agrees when segments start inside quoted fields of many lines", function()
        local r = rng(99)
        for _ = 1, 30 do
            local rows = {}
            for i = 1, 40 + r(40) do
                local lines = {}
                for j = 1, r(12) do lines[j] = ("l%d,%d"):format(i, j) end
                -- a quoted field whose lines look like rows of the file
                rows[i] = { tostring(i), table.concat(lines, "\n"), r(3) == 1 and '"' or "x" }
            end
            helper.write_rows(path, ",", { "id", "text", "n" }, rows, r(2) == 1 and "\n" or "\r\n")
            for _, max in ipairs({ 200, 1500, 1e9 }) do
                same_plans(path, { max_bytes = max }, cases(r, 4))
                same_plans(path, { max_bytes = max, lenient = true }, cases(r, 2))
            end
        end
    end)

    it("fills parts to the last byte as one scan does", function()
        -- rows of 10 bytes: parts end exactly at the limit, or one byte short
        local r = rng(21)
        local rows = { "h\n" }
        for i = 1, 3000 do
            rows[#rows + 1] = ("%08d\n"):format(i):sub(1, 8) .. (i % 97 == 0 and "\n\n" or "\n")
        end
        helper.write_file(path, table.concat(rows))
        for _, max in ipairs({ 12, 2 + 10 * 7, 2 + 10 * 7 + 1, 2 + 10 * 500, 2 + 10 * 500 - 1,
                               2 + 10 * 1000 }) do
            same_plans(path, { max_bytes = max }, cases(r, 6))
        end
    end)

    it("fails on a row too large for a part, at the same line", function()
        local r = rng(5)
        for _ = 1, 20 do
            local rows = {}
            for i = 1, 100 do
                rows[i] = { tostring(i), r(25) == 1 and ("x"):rep(150) or "v", "w" }
            end
            helper.write_rows(path, ",", { "a", "b", "c" }, rows, "\n")
            for _, lenient in ipairs({ false, true }) do
                local want = same_plans(path, { lenient = lenient, max_bytes = 150 }, cases(r, 4))
                assert.is_true(want[1] == nil or #want[1].parts > 0)
            end
        end
    end)

    it("plans tiny files, and header-only and empty ones", function()
        local contents = { "", "a\n", "a,b", "a,b\n1,2", "a,b\n1,2\n", "\239\187\191a\n\n\n",
                        "a\n\n1\n\n", "a\r\n1\r\n2", 'a\n"\n"\n', "a\n1\n2\n3\n4\n5\n6\n7\n8\n" }
        for _, content in ipairs(contents) do
            helper.write_file(path, content)
            for _, lenient in ipairs({ false, true }) do
                same_plans(path, { lenient = lenient, max_bytes = 5 },
                    { { 2, 1 }, { 8, 1 }, { 3, 2 } })
            end
        end
    end)

    it("plans a file many buffers long as one scan does", function()
        local r = rng(3)
        local row = ('%s,"%s\n%s",3\n'):format(("a"):rep(60), ("b"):rep(50), ("c"):rep(50))
        local chunks = { "x,y,z\n" }
        for i = 1, 64 do
            local piece = row:rep(2000 + r(500))
            if i % 9 == 0 then piece = piece .. "bad\n" end
            if i % 13 == 0 then piece = piece .. "\n\n" end
            chunks[#chunks + 1] = piece
        end
        helper.write_file(path, table.concat(chunks))
        for _, lenient in ipairs({ false, true }) do
            local want = same_plans(path, { lenient = lenient, max_bytes = 1000000 },
                { { 2, 1048576 }, { 5, 1048576 }, { 8, 3145728 } })
            assert.is_true(lenient == (want[1] ~= nil))
        end
        same_plans(path, { lenient = true, max_bytes = 500 }, { { 2, 1048576 } })
    end)

    -- The values' checks (csv.plan's types, as marketo.pipeline.checks makes
    -- them): column 1 a whole number, 2 an email (a bad one is a note, not a
    -- failure) of 40 characters at most, 3 a string of 5, 4 a date.
    local TYPES = { kinds = { "integer", "email", false, "date" },
        lengths = { false, 40, 5, false },
        failure = function(column, value) return ("column %d: '%s'"):format(column, value) end }
    local INTS = { "12", "-3", "", "x1", "1.5", "007" }
    local EMAILS = { "a@b.co", "", "bob-at-example", '"q"@b.co', "a,b@c.de", "c@d", "x@y.org" }
    local TEXTS = { "abc", "", "Zoë ✓", "a\nb", "toolong", 'q"q', "a,b", "\n\n\n", "äöüßx" }
    local DATES = { "2024-02-29", "", "2023-02-29", "31/12/1990", "1999-12-31" }

    -- A file of those columns: bad values every `bad` rows or so (0: none),
    -- malformed rows every `broken` rows or so (0: none), blank lines.
    local function typed_file(r, d, nrows, bad, broken)
        local out = { table.concat({ "n", "email", "s", "born" }, d) .. "\n" }
        local function pick(list, good)
            if bad > 0 and r(bad) == 1 then return list[r(#list)] end
            return list[good]
        end
        for i = 1, nrows do
            if r(15) == 1 then out[#out + 1] = "\n" end
            if broken > 0 and r(broken) == 1 then
                out[#out + 1] = BAD[r(#BAD)](d, 4) .. "\n"
            else
                local f = { pick(INTS, r(2)), pick(EMAILS, r(2)), TEXTS[r(4)], pick(DATES, 1) }
                if i % 3 == 0 then f[1] = tostring(i) end
                for j = 1, 4 do f[j] = helper.quote(f[j], d) end
                out[#out + 1] = table.concat(f, d) .. (r(8) == 1 and "\r\n" or "\n")
            end
        end
        return table.concat(out)
    end

    it("checks values as one scan does: the same failure, rejects, parts, notes", function()
        for _, f in ipairs(helper.FORMATS) do
            local r = rng(17 + f.delim:byte())
            for n = 1, 12 do
                local bad = ({ 0, 5, 40 })[n % 3 + 1]
                helper.write_file(path, typed_file(r, f.delim, 50 + r(300), bad,
                    n % 4 == 0 and 30 or 0))
                for _, lenient in ipairs({ false, true }) do
                    for _, max in ipairs({ 120, 900, 1e9 }) do
                        same_plans(path, { format = f.name, lenient = lenient, max_bytes = max,
                            max_row = 256, types = TYPES }, cases(r, 3))
                    end
                end
            end
        end
    end)

    it("agrees with values that fail right at and around the segment starts", function()
        local good = "12,a@b.co,abc,2024-02-29\n"
        local bads = { "x,a@b.co,abc,2024-02-29\n", "1,a@b.co,toolong,2024-02-29\n",
            "1,bob-at-example,abc,2024-02-29\n", '1,a@b.co,"a\nb,c",31/12/1990\n',
            '"1\n",a@b.co,abc,2024-02-29\n', "1,a@b.co,abc,2023-02-29\r\n" }
        for threads = 2, 5 do
            for _, bad in ipairs(bads) do
                for shift = -2, 2 do
                    local rows = {}
                    for i = 1, 60 do rows[i] = good end
                    local total = #table.concat(rows)
                    for k = 1, threads - 1 do
                        local row = math.floor(math.floor(total / threads) * k / #good) + 1 + shift
                        rows[row] = bad
                        rows[row + 2] = bad -- and two failures close together
                    end
                    helper.write_file(path, "n,email,s,born\n" .. table.concat(rows))
                    for _, lenient in ipairs({ false, true }) do
                        same_plans(path, { lenient = lenient, max_bytes = 130, types = TYPES },
                            { { threads, 1 }, { threads, 40 } })
                    end
                end
            end
        end
    end)

    it("fails on the first value that fails, names it, and rejects each in lenient mode",
        function()
        helper.write_file(path, "n,email,s,born\n1,a@b.co,abc,2024-02-29\n2,c@d,abc,\n"
            .. '3,"x@y.org",toolong,\n"4\n",e@f.gh,ab,\n5,g@h.ij,ab,1999-12-31\n')
        local want = "INVALID_ROW: " .. path .. ":4:3: column 3: 'toolong'; fix the row, or "
            .. "pass lenient mode to reject it"
        for _, t in ipairs({ 1, 3 }) do
            assert.same({ nil, want, "INVALID_ROW" }, { csv.plan(path, { types = TYPES,
                threads = t, segment_bytes = 10 }) })
            local p = assert(csv.plan(path, { types = TYPES, lenient = true, threads = t,
                segment_bytes = 10 }))
            assert.equal(3, p.rows)
            assert.equal(2, p.rejected)
            assert.same({ { code = "INVALID_ROW", message = "column 3: 'toolong'", line = 4,
                column = 3, offset = 50, raw = '3,"x@y.org",toolong,\n' },
                { code = "INVALID_ROW", message = "column 1: '4\n'", line = 5, column = 1,
                offset = 71, raw = '"4\n",e@f.gh,ab,\n' } }, p.rejects)
            assert.same({ count = 1, line = 3, column = 2, value = "c@d" }, p.emails)
            assert.same({ { offset = 15, length = 95, bytes = 15 + 95 - 21 - 16, rows = 3,
                first_line = 2, last_line = 7, rejected = 2 } }, p.parts)
        end
    end)

    it("counts the emails that do not look like one among the rows planned", function()
        local lines = { "n,email" }
        for i = 1, 3000 do
            lines[#lines + 1] = ("%d,%s"):format(i, i % 700 == 0 and ("p" .. i) or
                (i % 1100 == 0 and "x" or ("p%d@example.com"):format(i)))
        end
        helper.write_file(path, table.concat(lines, "\n") .. "\n")
        local t = { kinds = { "integer", "email" }, lengths = { false, false },
            failure = TYPES.failure }
        for _, threads in ipairs({ 1, 2, 4 }) do
            -- no row fails: a bad email is a warning
            local p = assert(csv.plan(path, { types = t, threads = threads, segment_bytes = 100 }))
            assert.same({ count = 6, line = 701, column = 2, value = "p700" }, p.emails)
            t.kinds[1] = "date" -- every row fails now: no email counted, all rejected
            p = assert(csv.plan(path, { types = t, lenient = true, threads = threads,
                segment_bytes = 100 }))
            assert.is_nil(p.emails)
            assert.equal(3000, p.rejected)
            t.kinds[1] = "integer"
        end
    end)

    it("calls on_reject in file order, and passes on its error", function()
        helper.write_file(path, gen(rng(11), ",", 2000, { bad = 10 }))
        local seen = {}
        local function keep(tag)
            return function(rej) seen[tag][#seen[tag] + 1] = rej end
        end
        for _, t in ipairs({ 1, 2, 4 }) do
            seen[t] = {}
            assert(csv.plan(path, { lenient = true, threads = t, segment_bytes = 100,
                                    on_reject = keep(t) }))
        end
        assert.is_true(#seen[1] > 50)
        assert.same(seen[1], seen[2])
        assert.same(seen[1], seen[4])
        local calls = 0
        local ok, err = pcall(csv.plan, path, { lenient = true, threads = 4, segment_bytes = 100,
            on_reject = function()
                calls = calls + 1
                if calls == 3 then error("stop here") end
            end })
        assert.is_false(ok)
        assert.matches("stop here", tostring(err))
        assert(csv.plan(path, { lenient = true, threads = 4, segment_bytes = 100 }))
    end)

    it("checks its options", function()
        assert.has_error(function() csv.plan(path, { threads = 0 }) end,
            "bad argument #2 to 'plan' (option 'threads': whole number from 1 to 64 expected, "
            .. "got 0)")
        assert.has_error(function() csv.plan(path, { threads = 1.5 }) end,
            "bad argument #2 to 'plan' (option 'threads': whole number from 1 to 64 expected, "
            .. "got 1.5)")
        assert.has_error(function() csv.plan(path, { segment_bytes = 0 }) end,
            "bad argument #2 to 'plan' (option 'segment_bytes': whole number >= 1 expected, "
            .. "got 0)")
        assert.has_error(function() csv.plan(path, { threads = "2" }) end,
            "bad argument #2 to 'plan' (option 'threads': number expected, got string)")
    end)
end)
