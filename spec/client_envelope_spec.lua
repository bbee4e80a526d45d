-- How the client reads answers, on a fake clock with a scripted transport: every
-- shape of failure Marketo (or a proxy in front of it) can send. The same paths run
-- against the real sandbox in client_spec.lua and job_spec.lua.
local client = require("marketo.client")
local h = require("spec.support.client")

local function new(bulk, extra)
    local now, slept = 0, {}
    local t = h.scripted{ bulk = bulk }
    local lines = {}
    local o = { base_url = "http://127.0.0.1:1", client_id = "id",
        client_secret = h.SCRIPTED_SECRET, transport = t,
        clock = function() return now end,
        sleep = function(s) slept[#slept + 1] = s; now = now + s end,
        retry = require("marketo.retry").policy{ seed = 1 },
        log = function(level, msg) lines[#lines + 1] = level .. " " .. msg end }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(client.new(o)), t, slept, lines
end

local STATUS = "/bulk/v1/leads/batch/1.json"

describe("marketo.client envelopes (fake clock)", function()
    it("retries HTTP 5xx, then succeeds", function()
        local c, _, slept = new{ h.answer(503, "text/html", "<html>busy</html>"),
            h.answer(502, "text/html", "<html>bad gateway</html>") }
        local job = c:job("leads", 1)
        local info = assert(job:refresh())
        assert.equal("Complete", info.status)
        assert.equal(2, #slept)
        assert.is_true(slept[2] > slept[1] / 2)
    end)

    it("takes a 200 that is not JSON as a bad answer, and retries it", function()
        local c, t = new{ h.answer(200, "text/html", "<html>maintenance</html>") }
        assert(c:job("leads", 1):refresh())
        assert.equal(3, #t.log) -- identity, the HTML, the retry
    end)

    it("takes unparsable JSON as a bad answer", function()
        local c = new({ h.answer(200, "application/json", "{\"success\": tr") },
            { retry = require("marketo.retry").never })
        local ok, _, code, err = c:call{ method = "GET", path = STATUS }
        assert.is_nil(ok)
        assert.equal("BAD_RESPONSE", code)
        assert.equal("retry", err.class)
    end)

    it("retries a status answer with an empty result", function()
        local c, t = new{ h.json_answer(200, { requestId = "x#1", success = true, result = {} }) }
        assert(c:job("leads", 1):refresh())
        assert.equal(3, #t.log)
    end)

    it("stops at once on HTTP 413, with a hint", function()
        local c, t = new{ h.answer(413, "text/html", "<html>413</html>") }
        local ok, msg, code, err = c:call{ method = "POST", path = "/bulk/v1/leads.json" }
        assert.is_nil(ok)
        assert.equal("HTTP_413", code)
        assert.equal(1, err.attempts)
        assert.matches("10 MB", msg)
        assert.equal(2, #t.log)
    end)

    it("reads Marketo's error from an envelope with success false", function()
        local c = new{ h.envelope_error("610") }
        local ok, msg, code, err = c:call{ method = "GET", path = STATUS }
        assert.is_nil(ok)
        assert.equal("610", code)
        assert.equal("m610", err.message)
        assert.equal("b#2", err.request_id)
        assert.equal("GET " .. STATUS, err.call)
        assert.matches("^GET /bulk/v1/leads/batch/1.json: 610 m610 %(requestId b#2%)", msg)
    end)

    it("logs the warnings of a successful envelope", function()
        local c, _, _, lines = new{ h.json_answer(200, { requestId = "w#1", success = true,
            warnings = { "Something odd" }, result = { { batchId = 1, status = "Queued" } } }) }
        assert(c:job("leads", 1):refresh())
        local found = false
        for _, l in ipairs(lines) do
            if l:find("Marketo warns: Something odd", 1, true) then found = true end
        end
        assert.is_true(found)
    end)

    describe("failures and warnings files", function()
        it("takes 404 as no file", function()
            local c = new{ h.answer(404, "text/html", "") }
            local rows = assert(c:job("leads", 1):failures())
            assert.equal(0, #rows)
            assert.is_true(rows.none)
        end)

        it("takes an empty 200 as no file", function()
            local c = new{ h.answer(200, "text/csv;charset=UTF-8", "") }
            local rows = assert(c:job("leads", 1):warnings())
            assert.equal(0, #rows)
        end)

        it("reports an error envelope in place of the file as an error", function()
            local c = new{ h.envelope_error("1013") }
            local ok, _, code = c:job("leads", 1):failures()
            assert.is_nil(ok)
            assert.equal("1013", code)
        end)

        it("parses a file in the job's format", function()
            local c = new{ h.answer(200, "text/csv;charset=UTF-8",
                "email\tfirstName\tImport Failure Reason\na@x.org\tAnn\tBad\n") }
            local rows = assert(c:job("leads", 1, { format = "tsv" }):failures())
            assert.equal(1, #rows)
            assert.equal("Bad", rows[1].reason)
            assert.equal("Ann", rows[1].fields.firstName)
        end)
    end)

    describe("wait", function()
        local function status(s, msg)
            return h.json_answer(200, { requestId = "s#1", success = true,
                result = { { batchId = 1, status = s, message = msg } } })
        end

        it("polls quickly at first, backing off toward max_interval", function()
            local c, _, slept = new{ status("Queued"), status("Importing"),
                status("Importing"), status("Importing"), status("Importing"),
                status("Complete") }
            assert(c:job("leads", 1):wait{ first = 1, factor = 2, max_interval = 5 })
            assert.same({ 1, 2, 4, 5, 5, 5 }, slept)
        end)

        it("with the row count, polls near the end the rate between two polls predicts",
            function()
            -- 10 rows/s, from when the job starts importing at t = 3 s: 100 rows end
            -- at t = 13 s.
            local now, slept = 0, {}
            local function job_now()
                local n = math.max(0, (now - 3) * 10)
                if n >= 100 then return status("Complete") end
                return h.json_answer(200, { requestId = "s#1", success = true, result = { {
                    batchId = 1, status = n > 0 and "Importing" or "Queued",
                    numOfLeadsProcessed = n - math.floor(n / 10), numOfRowsFailed =
                    math.floor(n / 10) } } })
            end
            local bulk = {}
            for i = 1, 10 do bulk[i] = function() return job_now()() end end
            local c = new(bulk, { clock = function() return now end,
                sleep = function(s) slept[#slept + 1] = s; now = now + s end })
            assert(c:job("leads", 1):wait{ first = 1, factor = 2, max_interval = 30,
                rows = 100 })
            -- Queued at 1 and 3 s; at 7 s 40 rows are done, a second look at 7.05 s
            -- gives the rate, the next poll comes just after 13 s: 5 polls, not 7.
            assert.equal(5, #slept)
            assert.same({ 1, 2, 4, 0.05 }, { slept[1], slept[2], slept[3], slept[4] })
            assert.near(13.05, now, 1e-6)
        end)

        it("uses the default schedule of 1 s growing to 30 s", function()
            local bulk = {}
            for _ = 1, 12 do bulk[#bulk + 1] = status("Importing") end
            bulk[#bulk + 1] = status("Complete")
            local c, _, slept = new(bulk)
            assert(c:job("leads", 1):wait())
            assert.equal(1, slept[1])
            assert.equal(30, slept[#slept])
        end)

        it("refuses a schedule that would never sleep or never grow", function()
            local c = new{}
            assert.has_error(function() c:job("leads", 1):wait{ first = 0 } end,
                "bad argument #1 to 'wait' (option 'first': number > 0 expected, got 0)")
            assert.has_error(function() c:job("leads", 1):wait{ factor = 0.5 } end,
                "bad argument #1 to 'wait' (option 'factor': number >= 1 expected, got 0.5)")
        end)

        it("ends on Failed with Marketo's message", function()
            local c = new{ status("Importing"), status("Failed", "Import failed: disk") }
            local ok, msg, code, err = c:job("leads", 1):wait()
            assert.is_nil(ok)
            assert.equal("JOB_FAILED", code)
            assert.equal("Import failed: disk", err.message)
            assert.matches("Import failed: disk", msg, 1, true)
        end)

        it("ends at its timeout, never sleeping past it", function()
            local bulk = {}
            for _ = 1, 20 do bulk[#bulk + 1] = status("Importing") end
            local c, _, slept = new(bulk)
            local ok, _, code = c:job("leads", 1):wait{ timeout = 10 }
            assert.is_nil(ok)
            assert.equal("TIMEOUT", code)
            local total = 0
            for _, s in ipairs(slept) do total = total + s end
            assert.equal(10, total)
        end)
    end)
end)
