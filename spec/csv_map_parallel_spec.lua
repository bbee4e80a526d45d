-- Mapping with Lua functions on every core: marketo.pipeline.workers (forked workers
-- and what comes back from them), csv.shares (a file cut at row starts) and
-- csv.map{ workers = n }, which must write exactly what one process writes.
local csv = require("marketo.csv")
local core = require("marketo.core")
local workers = require("marketo.pipeline.workers")
local helper = require("spec.fixtures.csv.helper")
local files = require("spec.support.files")
local fails = require("spec.support.fails")

local write_file, read_all = helper.write_file, helper.read_all

-- Rows with everything a share boundary could fall into: quoted delimiters,
-- doubled quotes, quoted newlines (so a line feed is not always a row end),
-- empty values, and every `bad_every`th row broken when asked.
local function sample(path, d, nrows, opts)
    opts = opts or {}
    local eol = opts.crlf and "\r\n" or "\n"
    local out = { (opts.bom and "\239\187\191" or "") .. (opts.blank_top and eol or "")
        .. table.concat({ "id", "Email", "Name", "Score" }, d) .. eol }
    for i = 1, nrows do
        local email = i % 7 == 0 and "" or ("User" .. i .. "@Example.COM")
        local name = i % 5 == 0 and ('"ann ""the ' .. i .. '"" \nsmith"')
            or i % 3 == 0 and ('"jo' .. d .. ' doe ' .. i .. '"') or ("bob lee " .. i)
        local row = table.concat({ tostring(i), email, name, tostring(i * 1.5) }, d)
        if opts.bad_every and i % opts.bad_every == 0 then
            row = row .. d .. "extra" -- one field too many
        end
        out[#out + 1] = row .. eol
        if opts.blank_every and i % opts.blank_every == 0 then out[#out + 1] = eol end
    end
    write_file(path, table.concat(out))
end

local MAPPING = {
    { to = "email", from = "Email", fn = string.lower },
    { to = "name", from = "Name", fn = function(v) return (v:gsub("^%l", string.upper)) end },
    { to = "score", from = "Score", fn = function(v) return math.floor(tonumber(v)) end },
    { to = "id", from = "id" },
    { to = "source", value = "crm" },
}

local function keep_with_email(row) return row.Email ~= "" end

local function leftovers(dir)
    local p = io.popen("ls -a '" .. dir .. "' 2>/dev/null")
    local names = {}
    for name in p:lines() do
        if name:find("%.w%d+$") then names[#names + 1] = name end
    end
    p:close()
    return names
end

describe("marketo.pipeline.workers", function()
    it("brings back each worker's result, in worker order, values intact", function()
        local weird = "nul\0cr\r\nquote\"backslash\\\255\1"
        local res = assert(workers.run(3, function(k)
            return { k = k, pid = core.getpid(), s = weird, f = k / 4, big = 2 ^ 60,
                whole = 3.0, yes = true, list = { k, "x", { deep = k * 10 } } }
        end))
        assert.equal(3, #res)
        local pids = {}
        for k, r in ipairs(res) do
            assert.equal(k, r.k)
            assert.equal(weird, r.s)
            assert.equal(k / 4, r.f)
            assert.equal(2 ^ 60, r.big)
            assert.equal(3.0, r.whole)
            local math_type = rawget(math, "type") -- 5.3+
            if math_type then assert.equal("float", math_type(r.whole)) end
            assert.is_true(r.yes)
            assert.same({ k, "x", { deep = k * 10 } }, r.list)
            assert.not_equal(core.getpid(), r.pid)
            pids[r.pid] = true
        end
        local n = 0
        for _ in pairs(pids) do n = n + 1 end
        assert.equal(3, n) -- three processes, not one three times
    end)

    it("keeps what a worker changes in its own copy of the process", function()
        local count = 0
        assert(workers.run(2, function() count = count + 100; return {} end))
        assert.equal(0, count)
    end)

    it("raises the first error in worker order, after every worker ended", function()
        local dir = os.tmpname()
        os.remove(dir)
        assert.error_matches(function()
            workers.run(3, function(k)
                if k == 1 then
                    -- worker 1 is slow: its error still comes first
                    core.sleep(0.2)
                    error("first " .. k, 0)
                end
                if k == 3 then write_file(dir, "3 ran to its end") end
                error("later " .. k, 0)
            end)
        end, "^first 1$")
        assert.equal("3 ran to its end", read_all(dir))
        os.remove(dir)
    end)

    it("reports a worker that dies as WORKER_FAILED", function()
        local ok, msg, code = workers.run(2, function(k)
            if k == 2 then core.exit_now(7) end
            return {}
        end)
        assert.is_nil(ok)
        assert.equal("WORKER_FAILED", code)
        assert.matches("worker 2 of 2 ended with status 7", msg, 1, true)
    end)

    it("raises for a result that cannot come back (a function)", function()
        assert.error_matches(function()
            workers.run(1, function() return { f = print } end)
        end, "a result holds a function")
    end)

    it("refuses a count that is not a whole number, or no function", function()
        assert.error_matches(function() workers.run(0, function() end) end, "positive whole")
        assert.error_matches(function() workers.run(1.5, function() end) end, "positive whole")
        assert.error_matches(function() workers.run(2) end, "function expected")
    end)
end)

describe("csv.shares", function()
    local path
    files.temp_each(function(p) path = p end)

    for _, f in ipairs(helper.FORMATS) do
        it("cuts a " .. f.name .. " file at row starts, together the whole file", function()
            sample(path, f.delim, 400, { crlf = f.name == "tsv", bom = f.name == "csv",
                blank_top = true, blank_every = 37 })
            local whole = assert(csv.open(path, { format = f.name }))
            local expect = {}
            for row, line, offset in whole:rows() do
                expect[#expect + 1] = { row, line, offset }
            end
            whole:close()
            local size = #read_all(path)
            for n = 1, 6 do
                local shares = assert(csv.shares(path, n, { format = f.name }))
                assert.is_true(#shares >= 1 and #shares <= n)
                assert.equal(size, shares[#shares].offset + shares[#shares].length)
                local got = {}
                for k, share in ipairs(shares) do
                    if k > 1 then
                        assert.equal(shares[k - 1].offset + shares[k - 1].length, share.offset)
                    end
                    local r = assert(csv.open(path, { format = f.name, share = share }))
                    for row, line, offset in r:rows() do got[#got + 1] = { row, line, offset } end
                    r:close()
                end
                assert.same(expect, got)
                if n > 1 then assert.is_true(#shares > 1) end
            end
        end)
    end

    it("gives the header's error for a file whose header is bad", function()
        write_file(path, 'a,"b\n1,2\n')
        local msg = fails("CSV_UNBALANCED_QUOTE", csv.shares(path, 2))
        assert.matches(path .. ":1:", msg, 1, true)
    end)
end)

describe("csv.map with workers", function()
    local src, dir, share_bytes
    before_each(function()
        src = os.tmpname()
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p '" .. dir .. "'"))
        -- small files, many workers: the specs run in a blink
        share_bytes, csv.SHARE_BYTES = csv.SHARE_BYTES, 512
    end)
    after_each(function()
        csv.SHARE_BYTES = share_bytes
        os.remove(src)
        os.execute("rm -rf '" .. dir .. "'")
    end)

    local function both(opts, n)
        local one, many = {}, {}
        for k, v in pairs(opts) do one[k], many[k] = v, v end
        if opts.lines then one.lines, many.lines = dir .. "/one.lines", dir .. "/many.lines" end
        many.workers = n
        local dst = opts.max_bytes and "%03d.csv" or ".csv"
        local a = { csv.map(src, dir .. "/one" .. dst, MAPPING, one) }
        local b = { csv.map(src, dir .. "/many" .. dst, MAPPING, many) }
        return a, b
    end

    for _, f in ipairs(helper.FORMATS) do
        it("writes one " .. f.name .. " file as one process does, for 2 to 5 workers", function()
            sample(src, f.delim, 600, { crlf = f.name == "ssv", bom = true, blank_every = 50,
                blank_top = true })
            for n = 2, 5 do
                local a, b = both({ format = f.name, filter = keep_with_email, lines = true }, n)
                assert.is_table(a[1])
                assert.equal(read_all(dir .. "/one.csv"), read_all(dir .. "/many.csv"))
                assert.equal(read_all(dir .. "/one.lines"), read_all(dir .. "/many.lines"))
                b[1].parts[1].path = a[1].parts[1].path
                a[1].fast, b[1].fast = nil, nil
                assert.same(a[1], b[1])
                assert.same({}, leftovers(dir))
            end
        end)
    end

    it("says which lines one file holds when the first shares wrote no row", function()
        sample(src, ",", 600)
        local function late(row) return tonumber(row.id) > 500 end
        local a = assert(csv.map(src, dir .. "/one.csv", MAPPING, { filter = late }))
        local b = assert(csv.map(src, dir .. "/many.csv", MAPPING, { filter = late,
            workers = 4 }))
        assert.equal(100, b.rows)
        assert.is_true(a.parts[1].first_line > 500)
        b.parts[1].path = a.parts[1].path
        a.fast, b.fast = nil, nil
        assert.same(a, b)
        assert.equal(read_all(dir .. "/one.csv"), read_all(dir .. "/many.csv"))
    end)

    it("writes the same parts, numbered in order, with the same lines files", function()
        sample(src, ",", 900)
        local a, b = both({ max_bytes = 2000, lines = true }, 3)
        a, b = a[1], b[1]
        assert.is_true(#b.parts > 6)
        -- a part never spans two shares, so there may be one more per share
        assert.is_true(#b.parts <= #a.parts + 2)
        local one, many = {}, {}
        for i, p in ipairs(b.parts) do
            assert.equal(dir .. ("/many%03d.csv"):format(i), p.path)
            local text = read_all(p.path)
            assert.equal(p.bytes, #text)
            assert.is_true(p.bytes <= 2000)
            many[#many + 1] = text:gsub("^[^\n]*\n", "")
        end
        for _, p in ipairs(a.parts) do one[#one + 1] = read_all(p.path):gsub("^[^\n]*\n", "") end
        assert.equal(table.concat(one), table.concat(many))
        assert.equal(read_all(dir .. "/one.lines"), read_all(dir .. "/many.lines"))
        assert.equal(a.rows, b.rows)
        assert.same({}, leftovers(dir))
    end)

    it("rejects the same rows in lenient mode, in file order", function()
        sample(src, ",", 700, { bad_every = 45 })
        local a, b = both({ lenient = true, filter = keep_with_email }, 4)
        assert.equal(15, a[1].rejected)
        assert.same(a[1].rejects, b[1].rejects)
        assert.equal(a[1].rows, b[1].rows)
        assert.equal(read_all(dir .. "/one.csv"), read_all(dir .. "/many.csv"))
    end)

    it("fails on the first bad row in file order in strict mode, leaving no temp file", function()
        sample(src, ",", 700, { bad_every = 400 })
        local a, b = both({}, 4)
        assert.is_nil(a[1])
        assert.same(a, b)
        assert.equal("CSV_FIELD_COUNT", b[3])
        assert.matches(":481:%d+: row has 5 fields", b[2]) -- row 400, after 80 quoted LFs
        assert.same({}, leftovers(dir))
    end)

    it("raises a function's error as one process would, the first in file order", function()
        sample(src, ",", 700)
        local function failing(v)
            if v == "350" or v == "650" then error("no row " .. v, 0) end
            return v
        end
        for _, n in ipairs({ 1, 3 }) do
            assert.error_matches(function()
                csv.map(src, dir .. "/x.csv", { { to = "id", from = "id", fn = failing } },
                    { workers = n })
            end, "^no row 350$")
        end
        assert.same({}, leftovers(dir))
    end)

    it("gives a bad row's failure before a later function's error, as one process does",
        function()
            sample(src, ",", 700, { bad_every = 100 }) -- row 100: too many fields
            local function failing(v)
                if v == "650" then error("no row 650", 0) end
                return v
            end
            local spec = { { to = "id", from = "id", fn = failing } }
            local one = { csv.map(src, dir .. "/x%02d.csv", spec, { max_bytes = 4000 }) }
            local many = { csv.map(src, dir .. "/y%02d.csv", spec, { max_bytes = 4000,
                workers = 3 }) }
            assert.equal("CSV_FIELD_COUNT", one[3])
            assert.same(one, many)
            assert.same({}, leftovers(dir))
        end)

    it("stays in this process when callbacks must see every event", function()
        sample(src, ",", 300, { bad_every = 100 })
        local filtered, rejected, pid = 0, 0, core.getpid()
        local r = assert(csv.map(src, dir .. "/x.csv", MAPPING, { workers = 3, lenient = true,
            filter = function(row)
                assert.equal(pid, core.getpid())
                return row.Email ~= ""
            end,
            on_filter = function() filtered = filtered + 1 end,
            on_reject = function() rejected = rejected + 1 end }))
        assert.equal(r.filtered, filtered)
        assert.equal(3, rejected)
    end)

    it("refuses a worker count that is not a whole number", function()
        assert.error_matches(function()
            csv.map(src, dir .. "/x.csv", MAPPING, { workers = 0 })
        end, "option 'workers': whole number >= 1 expected, got 0")
    end)
end)
