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

    it("lists the first failed rows, groups them all, and writes every one from the parts' "
        .. "results, a part at a time", function()
        local dir = os.tmpname()
        os.remove(dir)
        assert(require("marketo.core").mkdir(dir))
        local made = {}
        finally(function()
            for _, path in ipairs(made) do os.remove(path) end
            os.remove(dir)
        end)
        -- two parts whose rows all failed, and a third whose job failed whole
        local per, parts = report.LISTED_ROWS, {}
        for k = 1, 2 do
            local failed = {}
            for i = 1, per do
                local line = (k - 1) * per + i + 1
                failed[i] = { line = line, reason = i % 2 == 0 and "even" or "odd",
                    values = { "p" .. line .. "@x.com" } }
            end
            local results = dir .. "/results." .. k .. ".json"
            local f = assert(io.open(results, "w"))
            f:write(json.encode({ header = { "email" }, failed = failed, warned = {} }))
            f:close()
            made[#made + 1] = results
            parts[k] = { plan = { rows = per, first_line = (k - 1) * per + 2,
                last_line = k * per + 1, source = "in.csv" },
                finished = { status = "Complete", processed = 0, failed = per, warned = 0 },
                fetched = { results = results } }
        end
        parts[3] = { plan = { rows = 7, first_line = 2 * per + 2, last_line = 2 * per + 8,
            source = "in.csv" }, finished = { status = "Failed", message = "Import failed" } }
        local r = report.from_journal({ nparts = 3, parts = parts, plan_closed = true, calls = {},
            run = { object = "leads", sources = { "in.csv" }, format = "csv",
                rows = { read = 2 * per + 7, filtered = 0, rejected = 0 } } })
        local path = dir .. "/r.json"
        for _, name in ipairs({ "r.json", "r.html", "r.failed.csv", "r.failed.reasons.csv" }) do
            made[#made + 1] = dir .. "/" .. name
        end
        local doc = assert(r:save(path, "complete"))
        assert.is_true(doc.reconciled)
        assert.equal(2 * per + 7, doc.rows.failed)
        assert.equal(per, #doc.failures)
        local counts = {}
        for _, g in ipairs(doc.failed_reasons) do counts[g.reason:sub(1, 4)] = g.count end
        assert.same({ even = per, odd = per, ["the "] = 7 }, counts)
        local n, last = -1, nil -- the header is not a row
        for line in io.lines(dir .. "/r.failed.csv") do n, last = n + 1, line end
        assert.equal(2 * per, n)
        assert.equal("p" .. (2 * per + 1) .. "@x.com", last)
        n = -1
        for _ in io.lines(dir .. "/r.failed.reasons.csv") do n = n + 1 end
        assert.equal(2 * per, n)
    end)

    it("raises on an outcome it does not know", function()
        assert.has_error(function() report.new():count("lost") end,
            "report:count: unknown outcome 'lost'")
    end)
end)
