-- No key in two jobs that can import at the same time (marketo.pipeline.keys),
-- proved on the sandbox's duplicate_hazard: two Importing jobs that upsert
-- one lead key make two records there, as Marketo warns they can. The real
-- runner against the real sandbox over loopback.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")

local write, read_json = cli.write, cli.read_json

-- The leads the sandbox holds, by email as Marketo compares it; a key held
-- twice fails the spec.
local function by_key(sb)
    local out, n = {}, 0
    for _, rec in ipairs(cli.inspect(sb, "records/leads")) do
        local key = rec.email:lower()
        assert.is_nil(out[key], "two records of " .. key)
        out[key], n = rec, n + 1
    end
    return out, n
end

-- One record per key, each with its last copy's firstName.
local function assert_last_wins(sb, last, n)
    local held, count = by_key(sb)
    assert.equal(n, count)
    for key, first in pairs(last) do
        assert.equal(first, held[key] and held[key].firstName, key)
    end
end

-- n leads; copies of the first `dups` keys come again after every `every`
-- rows (in another case, as Marketo still matches them), each copy with the
-- row's own firstName: the last one must win.
local function leads_with_copies(path, n, dups, every)
    local out, last = { "email,firstName" }, {}
    local copy = 0
    for i = 1, n do
        out[#out + 1] = ("lead%d@example.com,First%d"):format(i, i)
        last[("lead%d@example.com"):format(i)] = "First" .. i
        if i % every == 0 then
            copy = copy + 1
            for k = 1, dups do
                local first = ("Copy%d-%d"):format(copy, k)
                out[#out + 1] = ("LEAD%d@Example.com,%s"):format(k, first)
                last[("lead%d@example.com"):format(k)] = first
            end
        end
    end
    write(path, table.concat(out, "\n") .. "\n")
    return last, #out - 1
end

describe("keys", function()
    -- Real time: the hazard needs two jobs Importing at once, which takes
    -- rows imported at a finite speed while the import runs on its own.
    local fx = sandbox.fixture({ speed = 4000, duplicate_hazard = true })
    local t = cli.per_test(fx, { setup, teardown, before_each, after_each })

    it("the sandbox's hazard: two Importing jobs that upsert one key make two records",
        function()
        t.sb.freeze() -- both jobs Importing, no row done until the clock moves
        local token = t.sb.token()
        local rows = { "email,firstName" }
        for i = 1, 40 do
            rows[#rows + 1] = ("other%d@example.com,X"):format(i)
            if i == 19 then rows[#rows + 1] = "same@example.com,A" end
        end
        local a = table.concat(rows, "\n") .. "\n"
        local b = a:gsub("other", "another"):gsub("same@example.com,A", "SAME@example.com,B")
        local paths = {}
        for _, data in ipairs({ a, b }) do
            local status, res = t.sb.upload({ path = "/bulk/v1/leads.json",
                fields = { { "format", "csv" } }, data = data, token = token })
            assert.equal(200, status)
            paths[#paths + 1] = ("/bulk/v1/leads/batch/%d.json"):format(res.result[1].batchId)
        end
        -- 4000 rows a second: 25 rows of each, the 20th the same key in both,
        -- while both are Importing; then the rest
        t.sb.advance(0.0064)
        t.sb.advance(1)
        for _, p in ipairs(paths) do assert.equal("Complete", t.sb.wait(p, token).status) end
        t.sb.thaw()
        local same = 0
        for _, rec in ipairs(cli.inspect(t.sb, "records/leads")) do
            if rec.email:lower():match("same@example.com") then same = same + 1 end
        end
        assert.equal(2, same)
    end)

    it("a file with copies of keys across parts ends with one record per key, the last "
        .. "copy's", function()
        local src = t.dir .. "/leads.csv"
        local last, nrows = leads_with_copies(src, 3000, 60, 400)
        local r = cli.run({ "import", "leads", src, "--part-bytes", "8000", "--quiet" },
            { env = cli.env_of(t.sb) })
        assert.equal(0, r.status, r.err .. r.out)
        assert_last_wins(t.sb, last, 3000)
        local doc = read_json(src .. ".report.json")
        assert.is_true(doc.reconciled)
        assert.equal(nrows, doc.rows.imported)
        assert.equal(60, doc.keys.repeated)
        assert.equal("lead1@example.com", doc.keys.examples[1].key)
        assert.same({ 2, 402, 862, 1322, 1782 }, doc.keys.examples[1].lines)
        assert.matches("keys: 60 email values seen more than once", r.out, 1, true)
    end)

    it("keeps the order through kill -9 and the resume", function()
        local src = t.dir .. "/leads.csv"
        local last = leads_with_copies(src, 3000, 60, 400)
        local argv = { "import", "leads", src, "--part-bytes", "8000", "--quiet" }
        t.sb.freeze() -- no job ends: the kill surely comes with parts in Marketo's queue
        local job = cli.start(argv, { env = cli.env_of(t.sb) })
        local socket = require("socket")
        while not (cli.read(src .. ".journal") or ""):find('"ev":"uploaded"', 1, true) do
            assert(job.done() == false, "the import ended before its first upload")
            socket.sleep(0.005)
        end
        job:signal("KILL")
        job:wait()
        assert.matches('"after":[', cli.read(src .. ".journal"), 1, true)
        t.sb.thaw()
        local r = cli.run(argv, { env = cli.env_of(t.sb) })
        assert.equal(0, r.status, r.err .. r.out)
        assert_last_wins(t.sb, last, 3000)
    end)

    it("the dry run shows which parts wait for which", function()
        local src = t.dir .. "/leads.csv"
        leads_with_copies(src, 600, 3, 500)
        local r = cli.run({ "import", "leads", src, "--part-bytes", "8000", "--dry-run" },
            { env = cli.env_of(t.sb) })
        assert.equal(0, r.status, r.err)
        assert.matches("lines 502%-504, 3 rows, %d+ bytes, after part 1\n", r.out)
        assert.matches("keys: 3 email values seen more than once, 3 rows moved", r.out, 1, true)
    end)

    it("orders a custom object's records by its dedupe fields (its schema's, or those "
        .. "given)", function()
        local src = t.dir .. "/cars.csv"
        local out = { "vin,color" }
        for i = 1, 400 do out[#out + 1] = ("VIN%d,red"):format(i) end
        for i = 1, 10 do out[#out + 1] = ("VIN%d,blue"):format(i) end
        write(src, table.concat(out, "\n") .. "\n")
        local dry = cli.run({ "import", "custom_objects", "car_c", src, "--dedupe-fields",
            "vin", "--no-schema", "--part-bytes", "2000", "--dry-run" }, { env = cli.env_of(t.sb) })
        assert.matches("after part 1\n", dry.out, 1, true)
        local r = cli.run({ "import", "custom_objects", "car_c", src, "--part-bytes", "2000" },
            { env = cli.env_of(t.sb) })
        assert.equal(0, r.status, r.err .. r.out)
        assert.matches("keys: 10 vin values seen more than once", r.out, 1, true)
        assert.equal(10, read_json(src .. ".report.json").keys.moved)
        assert.matches('"after":[1]', cli.read(src .. ".journal"), 1, true)
        local cars = cli.inspect(t.sb, "records/customobjects/car_c")
        local color = {}
        for _, c in ipairs(cars) do
            assert.is_nil(color[c.vin], "two records of " .. c.vin)
            color[c.vin] = c.color
        end
        assert.equal("blue", color.VIN1)
        assert.equal("red", color.VIN11)
    end)

    describe("a blank key", function()
        local function with_blank(path)
            write(path, "email,firstName\na@example.com,A\n  ,Blank\nb@example.com,B\n")
        end

        -- unmapped (the keys scanned in C) and mapped (the parts written, the
        -- keys seen from Lua)
        for _, case in ipairs({ { "", {} },
            { ", mapped", { "--map", "email=email", "--map", "firstName=firstName" } } }) do
            local function import(src, ...)
                local argv = { "import", "leads", src, ... }
                for _, a in ipairs(case[2]) do argv[#argv + 1] = a end
                return cli.run(argv, { env = cli.env_of(t.sb) })
            end

            it("stops a strict import naming the line, with nothing sent" .. case[1], function()
                local src = t.dir .. "/leads.csv"
                with_blank(src)
                local r = import(src)
                assert.equal(1, r.status, r.err)
                assert.matches("leads.csv:3:email: the key column 'email' is blank", r.err, 1,
                    true)
                assert.same({}, cli.inspect(t.sb, "records/leads"))
            end)

            it("is a rejected row in lenient mode" .. case[1], function()
                local src = t.dir .. "/leads.csv"
                with_blank(src)
                local r = import(src, "--lenient", "--quiet")
                assert.equal(3, r.status, r.err)
                local doc = read_json(src .. ".report.json")
                assert.equal(1, doc.rows.rejected)
                assert.equal(2, doc.rows.imported)
                assert.equal(3, doc.rejects[1].line)
                local _, n = by_key(t.sb)
                assert.equal(2, n)
            end)
        end
    end)
end)
