-- --lenient end to end (the real runner against the real sandbox): rejected
-- rows are left out of a part without ending it, so a file with many bad
-- rows takes as many parts, and API calls, as its clean rows need; the part
-- with holes is sent as a copy, and its failed rows still tie back to their
-- source lines.
local cli = require("spec.support.cli")

local inspect = cli.inspect

describe("an import with --lenient", function()
    -- one sandbox for the file, reset before each test; a new folder each
    local ctx = cli.sandboxed({ speed = 0 })
    local sb, dir
    before_each(function() sb, dir = ctx.sb, ctx.dir end)

    it("sends 1,000 rows with 10% bad ones as one part, every clean row stored", function()
        -- row i is on line i + 1; every 10th is malformed (a field too many), and
        -- every 97th clean one has a score Marketo fails
        local src, out, failing = dir .. "/leads.csv", { "email,firstName,leadScore" }, {}
        for i = 1, 1000 do
            if i % 10 == 0 then
                out[#out + 1] = ("bad%d@example.com,B,1,extra"):format(i)
            else
                local score = i % 97 == 0 and "lots" or tostring(i % 100)
                if i % 97 == 0 then failing[#failing + 1] = i + 1 end
                out[#out + 1] = ("lead%d@example.com,First%d,%s"):format(i, i, score)
            end
        end
        cli.write(src, table.concat(out, "\n") .. "\n")
        local r = cli.run({ "import", "leads", src, "--no-schema", "--lenient", "--quiet" },
            { env = cli.env_of(sb) })
        assert.equal(3, r.status, r.err) -- rows rejected and failed: the documented status
        local doc = cli.read_json(dir .. "/leads.csv.report.json")
        assert.is_true(doc.reconciled, doc.reconcile_error)
        assert.equal(1, #doc.parts)
        assert.equal(1, doc.api_calls.import)
        assert.same({ read = 1000, rejected = 100, failed = #failing, imported = 900 - #failing },
            { read = doc.rows.read, rejected = doc.rows.rejected, failed = doc.rows.failed,
              imported = doc.rows.imported })
        local lines = {}
        for k, rej in ipairs(doc.rejects) do
            lines[k] = rej.line
            assert.matches("field", rej.reason)
        end
        table.sort(lines)
        assert.equal(100, #lines)
        for k = 1, 100 do assert.equal(10 * k + 1, lines[k]) end
        -- failed rows come back with their own source lines, not the copy's
        lines = {}
        for k, f in ipairs(doc.failures) do lines[k] = f.line end
        table.sort(lines)
        assert.same(failing, lines)
        local stored = {}
        for _, rec in ipairs(inspect(sb, "records/leads")) do
            assert.is_nil(stored[rec.email], "stored twice: " .. tostring(rec.email))
            stored[rec.email] = rec
        end
        for i = 1, 1000 do
            local email = ("lead%d@example.com"):format(i)
            if i % 10 == 0 or i % 97 == 0 then
                assert.is_nil(stored[email], email)
                assert.is_nil(stored[("bad%d@example.com"):format(i)])
            else
                assert.equal("First" .. i, stored[email] and stored[email].firstName, email)
            end
        end
        -- the journal has the copy as a mapped part with its lines, and the copy
        -- and its lines file are gone once the import is done
        local f = assert(io.open(dir .. "/leads.csv.journal"))
        local journal = f:read("*a")
        f:close()
        assert.matches('"mapped":true', journal, 1, true)
        assert.matches('"lines":{', journal, 1, true)
        local p = io.popen("ls " .. dir .. "/leads.csv.journal.work")
        local left = p:read("*a")
        p:close()
        assert.is_nil(left:find("s01-part-", 1, true), left)
    end)
end)
