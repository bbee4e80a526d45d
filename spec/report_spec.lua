local report = require("marketo.pipeline.report")
local json = require("marketo.json")

describe("marketo.pipeline.report", function()
    local function filled()
        local r = report.new({ object = "leads", source = { "in.csv" } })
        r:count("read", 10)
        r:count("imported", 5)
        r:count("warned", 1)
        r:count("failed", 2)
        r:count("filtered", 1)
        r:count("rejected", 1)
        r:failed(4, "Invalid data type in field Lead Score", { "a@b.c", "x" })
        r:failed(9, "Value for lookup field 'email' not found", { "", "y" })
        r:warned(7, "Invalid email address", { "bad", "z" })
        r:rejected(3, "CSV_FIELD_COUNT: 3 fields, header has 2")
        r.api_calls = { identity = 1, import = 1, status = 3 }
        return r
    end

    it("reconciles when every row read has one outcome", function()
        assert.is_true(filled():reconcile())
    end)

    it("says by how much it does not reconcile", function()
        local r = filled()
        r:count("imported")
        local ok, why = r:reconcile()
        assert.is_nil(ok)
        assert.equal("10 rows read but 11 accounted for", why)
        -- the summary says so first, before any count it cannot vouch for
        assert.matches("^NOT RECONCILED: 10 rows read but 11 accounted for", r:summary("complete"))
    end)

    it("writes a JSON report with rows, failures and API calls", function()
        local path = os.tmpname()
        finally(function() os.remove(path) end)
        assert(filled():write_json(path, "complete"))
        local f = assert(io.open(path))
        local doc = assert(json.decode(f:read("a")))
        f:close()
        assert.equal("leads", doc.object)
        assert.is_true(doc.reconciled)
        assert.equal(10, doc.rows.read)
        assert.equal(2, #doc.failures)
        assert.equal(4, doc.failures[1].line)
        assert.equal(3, doc.api_calls.status)
    end)

    it("summarises for people", function()
        local text = filled():summary("complete")
        assert.matches("10 rows read: 5 imported, 1 imported with warnings, 2 failed",
            text, 1, true)
        assert.matches("API calls: 5 (identity 1, import 1, status 3)", text, 1, true)
        assert.matches("  failed: 1 row: Invalid data type in field Lead Score (line 4)\n", text, 1,
            true)
    end)

    it("raises on an outcome it does not know", function()
        assert.has_error(function() report.new():count("lost") end,
            "report:count: unknown outcome 'lost'")
    end)
end)
