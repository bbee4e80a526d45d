-- The sandbox never loses or invents a record: 50,000 rows over several jobs,
-- with keys repeated within and across jobs, end up exactly as the input
-- upserted by key (later rows win, in FIFO order).
local sandbox = require("spec.support.sandbox")

local JOBS, ROWS, KEYS = 5, 10000, 30011

local sb

setup(function()
    sb = sandbox.start{ speed = 0 }
end)

teardown(function()
    if sb then sb.stop() end
end)

local function job_rows(j)
    local out = { "email,firstName,leadScore" }
    for i = 1, ROWS do
        local k = (j * ROWS + i) * 7919 % KEYS
        out[#out + 1] = ("u%d@example.com,J%dR%d,%d"):format(k, j, i, i)
    end
    return out
end

describe("marketo.sandbox store", function()
    it("holds the input upserted by key after 50,000 rows in 5 jobs", function()
        local token = sb.token()
        local expected, ids = {}, {}
        for j = 1, JOBS do
            local lines = job_rows(j)
            for i = 2, #lines do
                local email, first, score = lines[i]:match("^([^,]+),([^,]+),(%d+)$")
                expected[email] = { first, score }
            end
            local status, res = sb.upload{ path = "/bulk/v1/leads.json", token = token,
                fields = { { "format", "csv" } }, data = table.concat(lines, "\n") .. "\n" }
            assert.equal(200, status)
            assert.equal(true, res.success)
            ids[j] = res.result[1].batchId
        end
        for _, id in ipairs(ids) do
            local r = sb.wait("/bulk/v1/leads/batch/" .. id .. ".json", token, 120)
            assert.same({ batchId = id, importId = tostring(id), status = "Complete",
                numOfLeadsProcessed = ROWS, numOfRowsFailed = 0, numOfRowsWithWarning = 0,
                message = ("Import succeeded, %d records imported (%d members)")
                    :format(ROWS, ROWS) }, r)
        end
        local leads = sb.inspect("records/leads")
        local want = 0
        for _ in pairs(expected) do want = want + 1 end
        assert.equal(want, #leads)
        local seen_ids = {}
        for _, lead in ipairs(leads) do
            local e = expected[lead.email]
            assert.is_table(e, lead.email)
            assert.same({ id = lead.id, email = lead.email, firstName = e[1], leadScore = e[2] },
                lead)
            assert.is_nil(seen_ids[lead.id])
            seen_ids[lead.id] = true
        end
        local c = sb.inspect("counters")
        assert.equal(JOBS, c.jobs_complete)
        assert.equal(0, c.jobs_failed)
    end)
end)
