-- The client against the sandbox, over loopback through the real libcurl: tokens,
-- envelopes, every error class, fault injection. Ends with a scan of everything the
-- library logged or returned here for the client secret and every token.
local client = require("marketo.client")
local h = require("spec.support.client")
local fails = require("spec.support.fails")

local LEADS = "email,firstName,lastName\n"
    .. "ann@example.org,Ann,Lee\nbob@example.org,Bob,Ray\ncy@example.org,Cy,Oh\n"

-- The defaults every test starts from: quick jobs, no faults, generous limits.
local BASE = {
    token_ttl = 3600, expires_in_zero = false, rate_limit = 100, rate_window = 20,
    max_in_flight = 10, daily_quota = 50000, max_importing = 2, max_queue = 10, speed = 0,
    error_rate = 0, drop_rate = 0, slow_rate = 0, job_fail_rate = 0, latency = 0,
}

describe("marketo.client (sandbox)", function()
    local sb, cap, path

    local function settings(extra)
        local c = {}
        for k, v in pairs(BASE) do c[k] = v end
        for k, v in pairs(extra or {}) do c[k] = v end
        sb.control(c)
    end

    local function new_client(extra)
        local o = { base_url = sb.base_url, client_id = sb.client_id,
            client_secret = sb.client_secret, log = cap.log, retry = h.fast_retry(),
            timeout = 10 }
        for k, v in pairs(extra or {}) do o[k] = v end
        return cap.watch(assert(client.new(o)))
    end

    -- The client's waits move the sandbox's clock instead of passing real time.
    local function sleep_on_sandbox(seconds)
        h.post(sb, "/clock", { advance = seconds })
        return true
    end

    local function import(c)
        return c:import_leads{ path = path, lookup_field = "email" }
    end

    local function identity_calls_logged()
        local n = 0
        for _, e in ipairs(h.inspect(sb, "/log")) do
            if tostring(e.path):find("^/identity/") then n = n + 1 end
        end
        return n
    end

    setup(function()
        sb = h.sandbox()
        cap = h.capture()
        path = h.file(LEADS)
    end)

    teardown(function()
        if path then os.remove(path) end
        if sb then sb.stop() end
    end)

    before_each(function()
        h.post(sb, "/reset")
        settings()
    end)

    describe("tokens", function()
        it("fetches one token for many requests", function()
            local c = new_client()
            local job = assert(import(c))
            for _ = 1, 4 do assert(job:refresh()) end
            assert(job:wait(h.fast_wait))
            assert.equal(1, c:identity_calls())
            assert.equal(1, identity_calls_logged())
        end)

        it("recovers from 602 with a new token, the header present on the retry", function()
            local c = new_client()
            local job = assert(import(c))
            h.post(sb, "/expire-token")
            assert(job:refresh())
            assert.equal(2, c:identity_calls())
            local bulk = {}
            for _, e in ipairs(h.inspect(sb, "/log")) do
                if not tostring(e.path):find("^/identity/") then bulk[#bulk + 1] = e end
            end
            local last, before = bulk[#bulk], bulk[#bulk - 1]
            assert.equal("602", tostring(before.code))
            assert.equal("bearer", last.auth) -- the repeated call carries its header
            assert.equal(200, last.status)
            assert.not_equal("601", tostring(last.code))
            assert.not_equal("602", tostring(last.code))
        end)

        it("recovers from 601 (a token another client already saw expire)", function()
            local a, b = new_client(), new_client()
            local job = assert(import(a))
            assert(b:authenticate())
            h.post(sb, "/expire-token")
            assert(job:refresh())                       -- a: 602, then a new token
            local again = assert(b:job("leads", job.id)):refresh() -- b: 601
            assert.is_table(again)
            assert.equal(2, b:identity_calls())
            local codes = {}
            for _, e in ipairs(h.inspect(sb, "/log")) do
                codes[tostring(e.code)] = true
                if e.auth ~= "identity" then assert.equal("bearer", e.auth) end
            end
            assert.is_true(codes["601"])
            assert.is_true(codes["602"])
        end)

        it("keeps working across short token lifetimes (renewal timing: auth_spec)", function()
            settings{ token_ttl = 2 }
            h.post(sb, "/expire-token") -- the live token was issued for an hour
            local c = new_client()
            local job = assert(import(c))
            for _ = 1, 6 do -- 3 s on the sandbox's clock: the token expires
                assert(job:refresh())
                h.post(sb, "/clock", { advance = 0.5 })
            end
            assert.is_true(c:identity_calls() >= 2)
        end)

        it("copes with expires_in: 0: uses the token, asks again once a second", function()
            settings{ expires_in_zero = true }
            -- the client's own clock, moved by hand: 1.5 s in steps of 0.05 s
            local now = require("marketo.core").monotonic()
            local c = new_client{ clock = function() return now end }
            local job = assert(import(c))
            assert(job:wait(h.fast_wait))
            local calls = 0
            for _ = 1, 30 do
                assert(job:refresh())
                calls = calls + 1
                now = now + 0.05
            end
            assert.is_true(calls > 10)
            local n = c:identity_calls()
            assert.is_true(n >= 2 and n <= 4, tostring(n) .. " identity calls")
        end)

        it("fails at once on a bad client secret, with a clear message", function()
            local c = new_client{ client_secret = "not-the-right-secret" }
            local msg, err = fails("AUTH_FAILED", import(c))
            assert.equal(1, err.attempts)
            assert.equal(1, c:identity_calls())
            assert.matches("refused client id", msg)
            assert.matches("MARKETO_CLIENT_SECRET", msg)
            assert.not_matches("not%-the%-right%-secret", msg)
        end)
    end)

    describe("errors", function()
        it("stops at once on 607 with Marketo's message and the requestId", function()
            settings{ daily_quota = 0 }
            local c = new_client()
            local msg, err = fails("607", import(c))
            assert.equal("fatal", err.class)
            assert.equal(1, err.attempts)
            assert.equal("POST /bulk/v1/leads.json", err.call)
            assert.is_string(err.request_id)
            assert.matches("POST /bulk/v1/leads.json: 607", msg)
            assert.matches("requestId", msg)
        end)

        it("retries every transient error and network failure; the import completes", function()
            settings{ error_rate = 0.4, drop_rate = 0.15, seed = 3,
                error_codes = { "502", "604", "608", "611", "614", "713", "719" } }
            local c = new_client{ retry = h.fast_retry{ max_attempts = 30 } }
            for _ = 1, 3 do
                local job = assert(import(c))
                local info = assert(job:wait(h.fast_wait))
                assert.equal("Complete", info.status)
                assert.equal(3, info.processed)
            end
            local faults = 0
            for _, e in ipairs(h.inspect(sb, "/log")) do
                local code = tostring(e.code)
                if e.status == "dropped" or ({ ["502"] = 1, ["604"] = 1, ["608"] = 1,
                    ["611"] = 1, ["614"] = 1, ["713"] = 1, ["719"] = 1 })[code] then
                    faults = faults + 1
                end
            end
            assert.is_true(faults >= 4, "only " .. faults .. " faults were injected")
            assert.equal(3, #h.inspect(sb, "/records/leads"))
        end)

        it("throttles on 606 and 615 and gets through", function()
            settings{ rate_limit = 3, rate_window = 1, error_rate = 0.3, error_codes = { "615" } }
            local c = new_client{ retry = h.fast_retry{ max_attempts = 40, throttle_window = 1 },
                sleep = sleep_on_sandbox }
            local job = assert(import(c))
            for _ = 1, 6 do assert(job:refresh()) end
            local codes = {}
            for _, e in ipairs(h.inspect(sb, "/log")) do codes[tostring(e.code)] = true end
            assert.is_true(codes["606"])
        end)

        it("waits for a queue slot on 1016, then succeeds", function()
            settings{ max_queue = 1, max_importing = 1, speed = 10 }
            local c = new_client{ sleep = sleep_on_sandbox }
            local first = assert(import(c))
            local second = assert(import(c))
            assert.is_not_nil(second.id)
            assert.not_equal(first.id, second.id)
            local waited = false
            for _, line in ipairs(cap.lines) do
                if line:find("1016", 1, true) and line:find("import slot", 1, true) then
                    waited = true
                end
            end
            assert.is_true(waited)
            assert(second:wait(h.fast_wait))
        end)

        it("gives up on 1016 when the policy says so", function()
            settings{ max_queue = 1, max_importing = 1, speed = 1 }
            local c = new_client{ retry = h.fast_retry{ queue_timeout = 0.2 } }
            assert(import(c))
            local _, err = fails("1016", import(c))
            assert.equal("queue", err.class)
        end)

        it("accepts a script's own policy and class overrides", function()
            settings{ daily_quota = 0 }
            local seen = {}
            local c = new_client{
                classes = { ["607"] = "retry" },
                retry = function(err, attempt)
                    seen[#seen + 1] = err.code .. "/" .. err.class .. "/" .. attempt
                    if attempt < 3 then return 0 end
                end,
            }
            fails("607", import(c))
            assert.same({ "607/retry/1", "607/retry/2", "607/retry/3" }, seen)
        end)

        it("times a call out and retries it", function()
            -- real time: a libcurl timeout (0.3 s) against an answer 1 s late
            settings{ slow_rate = 1, slow_seconds = 1 }
            local c = new_client{ timeout = 0.3, retry = h.fast_retry{ max_attempts = 2 } }
            local job = c:job("leads", 1)
            local _, err = fails("OPERATION_TIMEDOUT", job:refresh())
            assert.equal(2, err.attempts)
        end)

        it("reports an error envelope where a failures file should be", function()
            local c = new_client()
            local ok, _, code, err = c:job("leads", 987654):failures()
            assert.is_nil(ok)
            assert.equal("GET /bulk/v1/leads/batch/987654/failures.json", err.call)
            assert.not_equal("HTTP_404", code)
            assert.equal("fatal", err.class)
        end)
    end)

    describe("secrets", function()
        it("the scan finds a planted secret (it can fail)", function()
            local leaks = h.scan({ "x" .. sb.client_secret .. "y" }, { sb.client_secret })
            assert.equal(1, #leaks)
        end)

        it("nothing logged, returned or sent holds the secret or a token", function()
            assert.is_true(#cap.lines > 20)
            local secrets = cap.secrets({ sb.client_secret })
            assert.is_true(#secrets >= 3, "tokens were recorded")
            local lines = {}
            for _, l in ipairs(cap.lines) do lines[#lines + 1] = l end
            for _, l in ipairs(h.sent(sb)) do lines[#lines + 1] = l end
            assert.same({}, h.scan(lines, secrets))
        end)
    end)
end)
