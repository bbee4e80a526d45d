-- marketo.pipeline.plan without a sandbox: what the pre-pass makes of a file.
local plan = require("marketo.pipeline.plan")
local csv = require("marketo.csv")
local results = require("marketo.results")

local tmpdir = require("spec.support.files").tmpdir

-- A file of about `mb` megabytes: email, name, score.
local function big_csv(path, mb)
    local f = assert(io.open(path, "wb"))
    f:write("Mail,Name,Score\n")
    local buf, size, i = {}, 0, 0
    while size < mb * 1e6 do
        i = i + 1
        local line = ("person%d@example.com,Name %d with some padding text,%d\n")
            :format(i, i, i % 100)
        buf[#buf + 1] = line
        size = size + #line
        if #buf == 5000 then f:write(table.concat(buf)); buf = {} end
    end
    f:write(table.concat(buf))
    f:close()
    return i
end

-- The source line of each row of a planned part, as the tie-back reads them.
local function part_lines(part)
    local out = {}
    for _, r in ipairs(assert(results.read_part(part)).rows) do out[#out + 1] = r.line end
    return out
end

describe("marketo.pipeline.plan", function()
    local dir, src, rows
    setup(function()
        dir = tmpdir()
        src = dir .. "/big.csv"
        rows = big_csv(src, 24)
    end)
    teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

    local function check_parts(p)
        assert.is_true(#p.parts >= 2)
        local total = 0
        for _, part in ipairs(p.parts) do
            assert.is_true(part.bytes + #(part.prefix or "") <= csv.PART_BYTES)
            total = total + part.rows
        end
        assert.equal(rows, total)
        assert.equal(rows, p.rows.read)
    end

    it("cuts an unmapped file into parts under Marketo's limit by default", function()
        check_parts(assert(plan.build({ sources = { src }, format = "csv",
            work_dir = dir })))
    end)

    it("cuts a file mapped in C into parts under the limit by default", function()
        local p = assert(plan.build({ sources = { src }, format = "csv", work_dir = dir,
            mapping = { { "email", "Mail" }, { "leadScore", "Score" } } }))
        check_parts(p)
        assert.is_true(p.parts[1].mapped)
        local lines = part_lines(p.parts[1])
        assert.same({ 2, 3, 4 }, { lines[1], lines[2], lines[3] })
    end)

    it("cuts a file mapped in Lua into parts under the limit by default", function()
        local p = assert(plan.build({ sources = { src }, format = "csv", work_dir = dir,
            mapping = { { "email", function(row) return row.Mail:upper() end },
                { "firstName", "Name" } } }))
        check_parts(p)
        local last = p.parts[#p.parts]
        local lines = part_lines(last)
        assert.equal(last.rows, #lines)
        assert.equal(rows + 1, lines[#lines])
    end)

    describe("a row as mapping functions see it", function()
        local small
        -- rows are read lazily where pairs() honours __pairs (Lua 5.2+); on
        -- LuaJIT's default build each row is a plain table, as it always was
        local lazy = false
        pairs(setmetatable({}, { __pairs = function(t) lazy = true; return next, t end }))
        before_each(function()
            small = dir .. "/row.csv"
            local f = assert(io.open(small, "wb"))
            f:write("Mail,Name,Score\nann@example.com,Ann,7\nbo@example.com,Bo,8\n")
            f:close()
        end)

        it("reads by name, walks with pairs, and answers nil for a missing column",
            function()
                local p = assert(plan.build({ sources = { small }, format = "csv", work_dir = dir,
                    mapping = { { "email", function(row) return row.Mail end },
                        { "all", function(row)
                            local n = 0
                            for _, v in pairs(row) do n = n + #v end
                            return n
                        end },
                        { "middle", function(row) return row.Middle or "-" end } } }))
                local f = assert(io.open(p.parts[1].path, "rb"))
                local text = f:read("a")
                f:close()
                assert.equal("email,all,middle\nann@example.com,19,-\nbo@example.com,17,-\n",
                    text)
                assert.equal(2, p.rows.read)
            end)

        if lazy then
            it("cannot be written to: the script is at fault, naming the row's line", function()
                local ok, msg, code = plan.build({ sources = { small }, format = "csv",
                    work_dir = dir, mapping = { { "email", function(row)
                        row.Mail = row.Mail:upper()
                        return row.Mail
                    end } } })
                assert.is_nil(ok)
                assert.equal("SCRIPT_ERROR", code)
                assert.matches("row.csv:2:", msg, 1, true)
                assert.matches("; fix the script", msg, 1, true)
                assert.matches("read-only", msg, 1, true)
            end)
        end
    end)

    describe("with workers", function()
        local share_bytes
        before_each(function() share_bytes, csv.SHARE_BYTES = csv.SHARE_BYTES, 4096 end)
        after_each(function() csv.SHARE_BYTES = share_bytes end)

        local function data_of(p)
            local texts, lines = {}, {}
            for _, part in ipairs(p.parts) do
                local f = assert(io.open(part.path, "rb"))
                texts[#texts + 1] = f:read("a"):gsub("^[^\n]*\n", "")
                f:close()
                for _, l in ipairs(part_lines(part)) do lines[#lines + 1] = l end
            end
            return table.concat(texts), lines
        end

        it("maps in Lua on several cores: the same rows, lines and counts", function()
            local function opts(workers, sub)
                os.execute("mkdir -p '" .. dir .. "/" .. sub .. "'")
                return { sources = { src }, format = "csv", work_dir = dir .. "/" .. sub,
                    workers = workers,
                    mapping = { { "email", function(row) return row.Mail:upper() end },
                        { "leadScore", "Score" } },
                    filter = function(row) return not row.Mail:find("7@") end }
            end
            local one = assert(plan.build(opts(1, "one")))
            local many = assert(plan.build(opts(2, "many")))
            assert.same(one.rows, many.rows)
            assert.is_true(one.rows.filtered > 0)
            local a_rows, a_lines = data_of(one)
            local b_rows, b_lines = data_of(many)
            assert.equal(a_rows, b_rows)
            assert.same(a_lines, b_lines)
            assert.matches("/s01%-w2%-part%-0001%.csv$", many.parts[#many.parts].path)
            for k, part in ipairs(many.parts) do
                assert.equal(k, part.part)
                assert.is_true(part.bytes <= csv.PART_BYTES)
            end
        end)

        it("stops on the first invalid row in file order, as one process does", function()
            local small = dir .. "/small.csv"
            local f = assert(io.open(small, "wb"))
            f:write("Mail,Score\n")
            for i = 1, 3000 do f:write(("p%d@example.com,%d\n"):format(i, i)) end
            f:close()
            local function run(workers)
                return { plan.build({ sources = { small }, format = "csv", work_dir = dir,
                    workers = workers, mapping = { { "email", "Mail" }, { "score", "Score" } },
                    validate = function(out)
                        if out.score == "1200" or out.score == "2900" then
                            return "a score we refuse", "score"
                        end
                    end }) }
            end
            local one, many = run(1), run(3)
            assert.is_nil(one[1])
            assert.equal("INVALID_ROW", one[3])
            assert.matches("small.csv:1201:2: a score we refuse", one[2], 1, true)
            assert.same(one, many)
        end)

        it("brings back the warnings of the validation run in each worker", function()
            local small = dir .. "/emails.csv"
            local f = assert(io.open(small, "wb"))
            f:write("Mail,Score\n")
            for i = 1, 3000 do
                f:write(("p%d%s,%d\n"):format(i, i == 2500 and "" or "@example.com", i))
            end
            f:close()
            local s = assert(require("marketo.schema").from_sandbox("leads", {},
                require("marketo.sandbox.schema").new(),
                require("marketo.sandbox.config").defaults()))
            local function run(workers)
                local warnings = {}
                os.execute("mkdir -p '" .. dir .. "/w" .. workers .. "'")
                assert(plan.build({ sources = { small }, format = "csv", workers = workers,
                    work_dir = dir .. "/w" .. workers, warnings = warnings,
                    mapping = { { "email", "Mail" }, { "leadScore", "Score" } },
                    validate = require("marketo.pipeline.checks").validate(s, nil, warnings) }))
                return warnings
            end
            local one = run(1)
            assert.equal(1, #one)
            assert.matches("line 2501, email: the email 'p2500' does not look like an email",
                one[1], 1, true)
            assert.same(one, run(3)) -- found in the last share
        end)

        it("streams the rejects of every worker to on_reject, in file order", function()
            local bad = dir .. "/bad.csv"
            local f = assert(io.open(bad, "wb"))
            f:write("Mail,Score\n")
            for i = 1, 3000 do
                f:write(i % 100 == 0 and ("x%d@example.com,1,extra\n"):format(i)
                    or ("p%d@example.com,%d\n"):format(i, i))
            end
            f:close()
            local function run(workers, sub)
                os.execute("mkdir -p '" .. dir .. "/" .. sub .. "'")
                local got = {}
                local p = assert(plan.build({ sources = { bad }, format = "csv", lenient = true,
                    work_dir = dir .. "/" .. sub, workers = workers,
                    mapping = { { "email", function(row) return row.Mail end },
                        { "score", "Score" } },
                    validate = function(out)
                        if out.score:find("77") then return "no 77s", "score" end
                    end,
                    on_reject = function(rej) got[#got + 1] = rej end }))
                assert.same({}, p.rejects) -- none held: all went to on_reject
                local ls = io.popen("ls '" .. dir .. "/" .. sub .. "'")
                local left = ls:read("a")
                ls:close()
                assert.is_nil(left:find("rejects", 1, true), left) -- the workers' files served
                return got, p.rows
            end
            local one, one_rows = run(1, "one")
            local many, many_rows = run(3, "many")
            assert.same(one_rows, many_rows)
            local sevens = 0
            for i = 1, 3000 do
                if i % 100 ~= 0 and tostring(i):find("77") then sevens = sevens + 1 end
            end
            assert.equal(30 + sevens, #one) -- the malformed rows and the refused scores
            for i = 2, #one do assert.is_true(one[i].line > one[i - 1].line) end
            assert.same(one, many)
        end)

        it("refuses more than one worker in nginx, where forking is wrong", function()
            _G.ngx = { worker = {} }
            local ok, err = pcall(plan.build, { sources = { src }, work_dir = dir, workers = 2 })
            _G.ngx = nil
            assert.is_false(ok)
            assert.matches("fork an nginx worker", err)
        end)
    end)
end)

describe("marketo.pipeline.plan of a small file", function()
    local files = require("spec.support.files")
    local dir
    before_each(function() dir = tmpdir() end)
    after_each(function() files.rmdir(dir) end)

    local function build(text, o)
        o.sources, o.format, o.work_dir = { dir .. "/in.csv" }, "csv", dir
        files.write(o.sources[1], text)
        return plan.build(o)
    end
    local computed = function() return "x" end -- makes a mapping run in Lua

    it("refuses an unmapped file with an empty name or spaces around one, in both modes",
        function()
            for _, case in ipairs({
                { "email,,name\na@x.com,1,A\n", 'column 2 of the header has no name %(""%)' },
                { "email, firstName\na@x.com,A\n", 'column 2 of the header, " firstName", has '
                    .. 'spaces around the name.*rename it "firstName"' },
                { "email,name\t\na@x.com,A\n", 'column 2 of the header, "name\t", has spaces' },
            }) do
                for _, lenient in ipairs({ false, true }) do
                    local p, msg, code = build(case[1], { lenient = lenient })
                    assert.is_nil(p)
                    assert.equal("CSV_HEADER_NAME", code)
                    assert.matches("^CSV_HEADER_NAME: " .. dir:gsub("%p", "%%%0")
                        .. "/in.csv: " .. case[2], msg)
                end
            end
        end)

    it("lets a mapped file have such a column that the mapping does not read", function()
        local text = "email, junk ,\na@x.com,1,2\n"
        assert(build(text, { mapping = { { "email", "email" } } }))
        assert(build(text, { mapping = { { "email", "email" }, { "x", computed } } }))
    end)

    it("hints at spaces when the mapping reads a name the file has only with them", function()
        local text = " email ,name\na@x.com,A\n"
        local p, msg, code = build(text, { mapping = { { "email", "email" } } })
        assert.is_nil(p)
        assert.equal("CSV_UNKNOWN_COLUMN", code)
        -- said the same by C's path and by Lua's: the file, the column, the fix
        assert.matches("in.csv:1: the mapping of 'email' reads column 'email'", msg, 1, true)
        assert.matches("the file has ' email ', with spaces around the name", msg)
        p, msg = build(text, { mapping = { { "email", "email" }, { "x", computed } } })
        assert.is_nil(p)
        assert.matches("the file has ' email ', with spaces around the name", msg)
    end)

    it("copies a part with rows rejected among its own, and only that one, as a mapped part",
        function()
            local src = dir .. "/in.csv"
            local p = assert(build("email,n\na@x.com,1\nbad\nb@x.com,2\nc@x.com,3\n",
                { lenient = true }))
            assert.equal(1, #p.parts)
            local part = p.parts[1]
            assert.same({ true, 0, 3, 2, 5 }, { part.mapped, part.offset, part.rows,
                part.first_line, part.last_line })
            assert.equal(dir, part.path:sub(1, #dir))
            assert.equal(part.bytes, #files.read(part.path))
            assert.equal(part.length, part.bytes)
            assert.equal("email,n\na@x.com,1\nb@x.com,2\nc@x.com,3\n", files.read(part.path))
            assert.same({ 2, 4, 5 }, part_lines(part))
            assert.same({ 3 }, { p.rejects[1].line })
            -- without a hole inside, a part stays a byte range of the source
            p = assert(build("email,n\na@x.com,1\nb@x.com,2\nbad\n", { lenient = true }))
            assert.same({ false, src, 2 }, { p.parts[1].mapped, p.parts[1].path, p.parts[1].rows })
        end)
end)
