-- The sandbox's queue, instance limits, fault injection and inspection
-- endpoints, through a real `marketo-bulk sandbox` child.
local sandbox = require("spec.support.sandbox")
local socket = require("socket")

local BASE = {
    speed = 0, rate_limit = 100, rate_window = 20, max_in_flight = 10, daily_quota = 50000,
    max_importing = 2, max_queue = 10, latency = 0, error_rate = 0, drop_rate = 0,
    slow_rate = 0, lost_rate = 0, job_fail_rate = 0, seed = 1,
    error_codes = { "502", "604", "608", "611", "615" },
}

local sb, token

local function rows(n, prefix)
    local out = { "email,firstName" }
    for i = 1, n do out[#out + 1] = ("%s%d@example.com,N%d"):format(prefix or "r", i, i) end
    return table.concat(out, "\n") .. "\n"
end

local function import_leads(data)
    return sb.upload{ path = "/bulk/v1/leads.json", token = token,
                      fields = { { "format", "csv" } }, data = data }
end

local function status_of(id)
    local _, res = sb.api_get("/bulk/v1/leads/batch/" .. id .. ".json", token)
    return res.result[1]
end

local function assert_error(res, code, message)
    assert.same({ requestId = res.requestId, success = false,
                  errors = { { code = code, message = message } } }, res)
end

-- Runs `n` GETs at once with curl, returning their bodies.
local function concurrent_gets(n, path)
    local files, cmds = {}, {}
    for i = 1, n do
        files[i] = os.tmpname()
        cmds[i] = ("curl -s -H 'Authorization: Bearer %s' -o %s '%s%s' &")
            :format(token, files[i], sb.base_url, path)
    end
    os.execute(table.concat(cmds, " ") .. " wait")
    local bodies = {}
    for i = 1, n do
        local f = assert(io.open(files[i]))
        bodies[i] = f:read("a")
        f:close()
        os.remove(files[i])
    end
    return bodies
end

sandbox.each_test(BASE, function(s) sb, token = s, s.token() end)

describe("marketo.sandbox queue", function()
    it("runs at most 2 Importing, holds 10 in all, and answers 1016 beyond", function()
        sb.control{ speed = 1 }
        sb.freeze()
        local ids = {}
        for i = 1, 10 do
            local _, res = import_leads(rows(50, "q" .. i .. "-"))
            assert.equal(true, res.success)
            ids[i] = res.result[1].batchId
        end
        local _, res = import_leads(rows(1))
        assert_error(res, "1016", "Too many imports")
        local seen = {}
        for i, id in ipairs(ids) do seen[i] = status_of(id).status end
        assert.same({ "Importing", "Importing", "Queued", "Queued", "Queued", "Queued",
                      "Queued", "Queued", "Queued", "Queued" }, seen)
        local c = sb.inspect("counters")
        assert.equal(2, c.max_importing)
        assert.equal(10, c.max_queue_depth)
        assert.equal(1, c.answered_1016)
        -- Speeding up drains the queue in FIFO order.
        sb.control{ speed = 0 }
        for _, id in ipairs(ids) do
            local r = sb.wait("/bulk/v1/leads/batch/" .. id .. ".json", token)
            assert.equal("Complete", r.status)
        end
        assert.equal(500, #sb.inspect("records/leads"))
        assert.equal(2, sb.inspect("counters").max_importing)
    end)

    it("grows the counters while a job imports at its speed", function()
        sb.control{ speed = 20 }
        sb.freeze()
        local _, res = import_leads(rows(60))
        local id = res.result[1].batchId
        assert.equal("Importing", status_of(id).status)
        assert.equal(0, status_of(id).numOfLeadsProcessed)
        sb.advance(1.5)
        local mid = status_of(id)
        assert.equal("Importing", mid.status)
        assert.equal(30, mid.numOfLeadsProcessed)
        assert.is_nil(mid.message)
        sb.advance(1.5)
        local done = status_of(id)
        assert.equal("Complete", done.status)
        assert.equal(60, done.numOfLeadsProcessed)
    end)
end)

describe("marketo.sandbox limits", function()
    it("answers 606 past the calls allowed in the rolling window", function()
        sb.control{ rate_limit = 5, rate_window = 2 }
        for _ = 1, 5 do
            local _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
            assert.equal("1013", res.errors[1].code)
        end
        local status, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal(200, status)
        assert_error(res, "606", "Max rate limit '5' exceeded with in '2' secs")
        sb.token() -- identity calls are not counted and not limited
        assert.equal(1, sb.inspect("counters").answered_606)
        sb.advance(2)
        status, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal(200, status)
        assert.equal("1013", res.errors[1].code)
    end)

    it("answers 615 past the calls allowed in flight", function()
        -- real time: four curl processes must overlap inside the sandbox, so
        -- each answer takes 1.2 s (room for a slow start on a busy machine)
        sb.control{ max_in_flight = 2, latency = 1.2 }
        local bodies = concurrent_gets(4, "/bulk/v1/leads/batch/1.json")
        local codes = {}
        for _, b in ipairs(bodies) do
            local res = sandbox.decode(b)
            codes[#codes + 1] = res.errors[1].code
            if res.errors[1].code == "615" then
                assert_error(res, "615", "Concurrent access limit '2' reached")
            end
        end
        table.sort(codes)
        assert.same({ "1013", "1013", "615", "615" }, codes)
        local c = sb.inspect("counters")
        assert.equal(2, c.answered_615)
        assert.equal(2, c.max_in_flight)
    end)

    it("answers 607 once the daily quota is spent", function()
        sb.control{ daily_quota = 3 }
        for _ = 1, 3 do sb.api_get("/bulk/v1/leads/batch/1.json", token) end
        local _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert_error(res, "607", "Daily quota reached")
        assert.equal(1, sb.inspect("counters").answered_607)
        -- the quota resets at midnight US Central (marketo.day): a second before, not yet
        local wall = sb.clock().wall
        local to_reset = require("marketo.day").next_reset(wall) - wall
        if to_reset < 2 then to_reset = to_reset + 86400 end
        sb.advance(to_reset - 1)
        token = sb.token() -- the old one may have outlived its hour meanwhile
        _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal("607", res.errors[1].code)
        sb.advance(1.01)
        _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal("1013", res.errors[1].code)
        assert.equal(1, sb.inspect("counters").quota_used)
    end)

    it("does not count calls with a bad token", function()
        sb.control{ rate_limit = 2 }
        for _ = 1, 5 do sb.api_get("/bulk/v1/leads/batch/1.json", "bad") end
        local _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal("1013", res.errors[1].code)
    end)
end)

describe("marketo.sandbox faults", function()
    it("answers the transient errors it is told to", function()
        sb.control{ error_rate = 1 }
        for _, want in ipairs({
            { "604", "Request time-out" },
            { "608", "API Temporarily Unavailable" },
            { "611", "System error" },
            { "615", "Concurrent access limit '10' reached" },
            { "614", "Invalid Subscription" },
            { "713", "Transient Error" },
            { "719", "Lock wait timeout exception" },
        }) do
            sb.control{ error_codes = { want[1] } }
            local _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
            assert_error(res, want[1], want[2])
        end
        sb.control{ error_codes = { "502" } }
        local status, body = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal(502, status)
        assert.truthy(tostring(body):find("502 Bad Gateway", 1, true))
        assert.equal(8, sb.inspect("counters").faults)
    end)

    it("drops connections and answers late", function()
        sb.control{ drop_rate = 1 }
        local status, err = sb.http{ path = "/bulk/v1/leads/batch/1.json",
            headers = { authorization = "Bearer " .. token } }
        assert.is_nil(status)
        assert.equal("closed", err)
        -- real time: a slow answer is late on the wire, not on the sandbox's clock
        sb.control{ drop_rate = 0, slow_rate = 1, slow_seconds = 0.3 }
        local t0 = socket.gettime()
        local _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal("1013", res.errors[1].code)
        assert.truthy(socket.gettime() - t0 >= 0.3)
        local c = sb.inspect("counters")
        assert.equal(1, c.dropped)
    end)

    it("loses the answer of a call it carried out", function()
        sb.control{ lost_rate = 1 }
        local body, ctype = sandbox.multipart({ { "format", "csv" } }, { data = rows(2) })
        local status, err = sb.http{ method = "POST", path = "/bulk/v1/leads.json", body = body,
            headers = { authorization = "Bearer " .. token, ["content-type"] = ctype } }
        assert.is_nil(status)
        assert.equal("closed", err)
        sb.control{ lost_rate = 0 }
        local jobs = sb.inspect("jobs")
        assert.equal(1, #jobs)
        local log = sb.inspect("log")
        assert.equal("lost", log[#log].fault)
        assert.equal(jobs[1].batchId, log[#log].batchId)
        assert.equal(1, sb.inspect("counters").lost)
    end)

    it("ends jobs Failed, half of their rows imported (sandbox_fidelity_spec has more)",
        function()
        sb.control{ job_fail_rate = 1, failed_message = "Import failed: system error" }
        local _, res = import_leads(rows(3))
        local r = sb.wait("/bulk/v1/leads/batch/" .. res.result[1].batchId .. ".json", token)
        assert.equal("Failed", r.status)
        assert.equal("Import failed: system error", r.message)
        assert.equal(1, #sb.inspect("records/leads"))
    end)

    it("replays the same faults for the same seed", function()
        local function pattern()
            sb.control{ error_rate = 0.5, error_codes = { "604" }, seed = 7 }
            sb.reset()
            local out = {}
            for i = 1, 16 do
                local _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
                out[i] = res.errors[1].code
            end
            return table.concat(out, ",")
        end
        local first = pattern()
        assert.truthy(first:find("604", 1, true))
        assert.truthy(first:find("1013", 1, true))
        assert.equal(first, pattern())
    end)
end)

describe("marketo.sandbox inspection", function()
    it("logs every request without secrets", function()
        sb.control{ legacy_token = true }
        import_leads(rows(2))
        sb.http{ path = "/bulk/v1/leads/batch/1.json?access_token=" .. token }
        local body = sb.get("/__sandbox/log")
        assert.falsy(body:find(token, 1, true))
        assert.falsy(body:find(sb.client_secret, 1, true))
        local log = sandbox.decode(body)
        local upload = log[#log - 1]
        assert.same({ n = upload.n, time = upload.time, method = "POST",
            path = "/bulk/v1/leads.json", auth = "bearer", status = 200,
            bytes = upload.bytes, batchId = upload.batchId,
            parts = { { name = "format", size = 3 },
                      { name = "file", filename = "data.csv", size = #rows(2) } } }, upload)
        local get = log[#log]
        assert.equal("query", get.auth)
        assert.equal("1013", get.code)
        assert.equal("(hidden)", get.query.access_token)
        assert.equal("identity", log[1].auth)
        assert.equal("(hidden)", log[1].query.client_secret)
    end)

    it("shows the config without the secret and refuses bad changes", function()
        local body = sb.get("/__sandbox/config")
        local conf = sandbox.decode(body)
        assert.equal(sb.client_id, conf.client_id)
        assert.is_nil(conf.client_secret)
        assert.falsy(body:find(sb.client_secret, 1, true))
        local text, status = sb.post("/__sandbox/config", '{"speed": -1}')
        assert.equal(400, status)
        assert.same({ error = "option speed: expected a non-negative number, got '-1'" },
            sandbox.decode(text))
        text, status = sb.post("/__sandbox/config", '{"nope": 1}')
        assert.equal(400, status)
        assert.same({ error = "unknown option 'nope'" }, sandbox.decode(text))
        text, status = sb.post("/__sandbox/config", '{"error_codes": ["604", "999"]}')
        assert.equal(400, status)
        assert.matches("option error_codes: '999' is not an error code the sandbox knows "
            .. "(one of 502, 601, 602, ", sandbox.decode(text).error, 1, true)
    end)

    it("resets records, jobs, log and counters", function()
        local _, res = import_leads(rows(2))
        sb.wait("/bulk/v1/leads/batch/" .. res.result[1].batchId .. ".json", token)
        assert.same({ leads = 2, customObjects = {}, programMembers = {}, lists = {} },
            sb.inspect("records"))
        sb.reset()
        assert.equal("[]", (sb.get("/__sandbox/records/leads")))
        assert.equal("[]", (sb.get("/__sandbox/log")))
        assert.same({}, sb.inspect("jobs"))
        assert.same({}, sb.inspect("log"))
        assert.equal(0, sb.inspect("counters").requests)
    end)

    it("refuses control calls a web page could make: an Origin, or no JSON type", function()
        local before = sb.inspect("config")
        local function post(path, headers, body)
            return sb.http{ method = "POST", path = "/__sandbox/" .. path, headers = headers,
                body = body or '{"client_secret": "evil", "speed": 7}' }
        end
        -- a fetch() from a page: JSON, but the browser names the page
        local status, _, body = post("config", { ["content-type"] = "application/json",
            origin = "http://evil.example" })
        assert.equal(403, status)
        assert.matches("web page", sandbox.decode(body).error, 1, true)
        -- a page's plain form post: no preflight, but no JSON type either
        for _, ctype in ipairs({ "text/plain", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x" }) do
            status, _, body = post("config", { ["content-type"] = ctype })
            assert.equal(415, status, ctype)
            assert.matches("application/json", sandbox.decode(body).error, 1, true)
        end
        status = post("config", {})
        assert.equal(415, status)
        assert.same(before, sb.inspect("config"))
        local fresh = sb.token()
        assert.equal(fresh, sb.token()) -- nothing was changed, the secret still works
        for _, path in ipairs({ "reset", "expire-token", "clock" }) do
            assert.equal(403, (post(path, { ["content-type"] = "application/json",
                origin = "null" }, "{}")))
            assert.equal(415, (post(path, { ["content-type"] = "text/plain" }, "{}")))
        end
        assert.equal(fresh, sb.token()) -- expire-token was refused
        assert.is_false(sb.clock().frozen)
        -- the inspection GETs stay open
        assert.equal(200, (sb.http{ path = "/__sandbox/counters",
            headers = { origin = "http://evil.example" } }))
        -- and a JSON call without an Origin goes through (charset allowed)
        status = post("config", { ["content-type"] = "application/json; charset=utf-8" },
            '{"speed": 7}')
        assert.equal(200, status)
        assert.equal(7, sb.inspect("config").speed)
    end)

    it("moves its clock on, holds it still, and never back", function()
        local start = sb.clock()
        assert.is_false(start.frozen)
        local frozen = sb.freeze()
        assert.is_true(frozen.frozen)
        assert.equal(frozen.now, sb.clock().now)
        local later = sb.advance(90)
        assert.equal(frozen.now + 90, later.now)
        assert.truthy(math.abs(later.wall - start.wall - 90) < 5)
        for _, bad in ipairs({ '{"advance": -1}', '{"advance": "1"}', '{"freeze": 1}',
            '{"rewind": 1}', '[1]' }) do
            local text, status = sb.post("/__sandbox/clock", bad)
            assert.equal(400, status, bad)
            assert.is_string(sandbox.decode(text).error)
        end
        assert.equal(later.now, sb.clock().now)
        local thawed = sb.thaw()
        assert.is_false(thawed.frozen)
        assert.truthy(thawed.now >= later.now)
        sb.freeze()
        sb.reset() -- a reset lets time run again, without turning it back
        local after = sb.clock()
        assert.is_false(after.frozen)
        assert.truthy(after.now >= later.now)
    end)

    it("answers 404 for unknown inspection paths", function()
        local _, status = sb.get("/__sandbox/nothing")
        assert.equal(404, status)
    end)
end)
