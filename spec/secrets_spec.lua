-- The secret scan: a whole workflow against the sandbox, through every path that
-- builds a message (success, retries, re-authentication, every kind of failure), with
-- everything the library logged or returned kept; then none of it, nor anything the
-- client sent after the identity call, may hold the client secret or any token.
local client = require("marketo.client")
local results = require("marketo.results")
local h = require("spec.support.client")

local LEADS = "email,firstName,leadScore\na@example.org,Ann,1\nb@example.org,Bob,lots\n"
    .. "not-an-email,Cy,2\n"

describe("secrets", function()
    local sb, cap, path
    local sent = {}

    local function new_client(extra)
        local o = { env = { MARKETO_BASE_URL = sb.base_url .. "/rest",
            MARKETO_CLIENT_ID = sb.client_id, MARKETO_CLIENT_SECRET = sb.client_secret },
            log = cap.log, retry = h.fast_retry{ max_attempts = 30 }, timeout = 10 }
        for k, v in pairs(extra or {}) do o[k] = v end
        return cap.watch(assert(client.new(o)))
    end

    setup(function()
        sb = h.sandbox()
        cap = h.capture()
        path = h.file(LEADS)
        h.post(sb, "/reset")
        sb.control{ token_ttl = 1, speed = 0, error_rate = 0, drop_rate = 0, job_fail_rate = 0 }
        h.post(sb, "/expire-token")
    end)

    teardown(function()
        if path then os.remove(path) end
        if sb then sb.stop() end
    end)

    local unauthorized = 0

    after_each(function()
        for _, l in ipairs(h.sent(sb)) do sent[#sent + 1] = l end
        for _, e in ipairs(h.inspect(sb, "/log")) do
            if e.auth ~= "identity" and e.auth ~= "bearer" then
                unauthorized = unauthorized + 1
            end
        end
        h.post(sb, "/reset")
    end)

    it("runs a workflow across token renewals and faults", function()
        sb.control{ error_rate = 0.3, drop_rate = 0.1, seed = 11,
            error_codes = { "502", "604", "608", "611", "615" } }
        local c = new_client()
        for _ = 1, 2 do
            local job = assert(c:import_leads{ path = path, lookup_field = "email" })
            assert(job:wait(h.fast_wait))
            local part = assert(results.read_part{ path = path })
            cap.keep(results.tie(assert(job:failures()), part))
            cap.keep(results.tie(assert(job:warnings()), part))
            h.post(sb, "/clock", { advance = 1.1 }) -- outlive the 1 s token
        end
        assert.is_true(c:identity_calls() >= 2)
        sb.control{ error_rate = 0, drop_rate = 0 }
    end)

    it("runs through every kind of failure", function()
        local c = new_client()
        local job = assert(c:import_leads{ path = path })
        h.post(sb, "/expire-token")
        assert(job:refresh())
        sb.control{ job_fail_rate = 1 }
        assert.is_nil(assert(c:import_leads{ path = path }):wait(h.fast_wait))
        sb.control{ job_fail_rate = 0, speed = 1 }
        assert.is_nil(assert(c:import_leads{ path = path }):wait{ first = 0.05, timeout = 0.2 })
        sb.control{ speed = 0, daily_quota = 0 }
        assert.is_nil(c:import_leads{ path = path })
        sb.control{ daily_quota = 50000 }
        assert.is_nil(c:job("leads", 424242):failures())
        assert.is_nil(new_client{ env = { MARKETO_BASE_URL = sb.base_url,
            MARKETO_CLIENT_ID = sb.client_id, MARKETO_CLIENT_SECRET = "wrong-" .. sb.client_secret }
        }:authenticate())
        assert.is_nil(new_client{ env = { MARKETO_BASE_URL = "http://127.0.0.1:1",
            MARKETO_CLIENT_ID = sb.client_id, MARKETO_CLIENT_SECRET = sb.client_secret },
            retry = h.fast_retry{ max_attempts = 2 } }:authenticate())
    end)

    it("the scan catches a planted token (it can fail)", function()
        local secrets = cap.secrets({ sb.client_secret })
        local token = secrets[#secrets]
        assert.is_true(#h.scan({ "Authorization: Bearer " .. token }, secrets) > 0)
        assert.is_true(#h.scan({ "x=" .. sb.client_secret }, secrets) > 0)
    end)

    it("finds neither the secret nor a token in anything logged, returned or sent", function()
        local secrets = cap.secrets({ sb.client_secret })
        assert.is_true(#secrets >= 3, "tokens were recorded")
        assert.is_true(#cap.lines > 50)
        assert.is_true(#sent > 10)
        local lines = {}
        for _, l in ipairs(cap.lines) do lines[#lines + 1] = l end
        for _, l in ipairs(sent) do lines[#lines + 1] = l end
        assert.same({}, h.scan(lines, secrets))
    end)

    it("sent every call after the identity call with its Bearer header", function()
        assert.equal(0, unauthorized)
    end)

    it("never put a token or the secret in a URL", function()
        for _, l in ipairs(sent) do
            assert.is_nil(l:find("access_token", 1, true), l)
            assert.is_nil(l:find("client_secret", 1, true), l)
        end
    end)
end)
