-- Token logic on a fake clock, with a scripted transport: the behaviours that need
-- exact timing. The same behaviours run against the real sandbox in client_spec.lua.
local client = require("marketo.client")
local h = require("spec.support.client")

local SECRET = h.SCRIPTED_SECRET
local scripted, envelope_error = h.scripted, h.envelope_error

local function fake_time()
    local now = 0
    return function() return now end, function(s) now = now + s end
end

local function new(t, extra)
    local clock, sleep = fake_time()
    local o = { base_url = "http://127.0.0.1:1", client_id = "id", client_secret = SECRET,
        transport = t, clock = clock, sleep = sleep, retry = require("marketo.retry").policy{
            seed = 1 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(client.new(o)), sleep
end

local function get(c) return c:call{ method = "GET", path = "/bulk/v1/leads/batch/1.json" } end

describe("marketo.auth (fake clock)", function()
    it("fetches one token for many calls", function()
        local t = scripted{}
        local c = new(t)
        for _ = 1, 5 do assert(get(c)) end
        assert.equal(1, c:identity_calls())
        assert.equal("Bearer tok-1", t.log[#t.log].headers.Authorization)
    end)

    it("renews ahead of expiry, within the margin", function()
        local t = scripted{ ttl = 100 }
        local c, advance = new(t, { token_margin = 60 })
        assert(get(c))
        advance(89)
        assert(get(c))
        assert.equal(1, c:identity_calls())
        advance(2) -- 91 s: within 10% of the lifetime
        assert(get(c))
        assert.equal(2, c:identity_calls())
        assert.equal("Bearer tok-2", t.log[#t.log].headers.Authorization)
    end)

    for _, code in ipairs({ "601", "602" }) do
        it("renews the token and repeats the call, header and all, on " .. code, function()
            local t = scripted{ bulk = { envelope_error(code) } }
            local c = new(t)
            assert(get(c))
            assert.equal(2, c:identity_calls())
            local calls = {}
            for _, r in ipairs(t.log) do
                if not r.url:find("identity") then calls[#calls + 1] = r end
            end
            assert.equal(2, #calls)
            assert.equal("Bearer tok-1", calls[1].headers.Authorization)
            assert.equal("Bearer tok-2", calls[2].headers.Authorization)
        end)
    end

    it("gives up with an error (not silence) when fresh tokens keep being refused", function()
        local refusals = {}
        for i = 1, 10 do refusals[i] = envelope_error("601") end
        local t = scripted{ bulk = refusals }
        local c = new(t)
        local ok, msg, code, err = get(c)
        assert.is_nil(ok)
        assert.equal("601", code)
        assert.equal("reauth", err.class)
        assert.equal(4, err.attempts)
        assert.equal(4, c:identity_calls())
        assert.matches("601", msg)
    end)

    it("trusts an expires_in 0 token for a second only", function()
        local t = scripted{ expires_in = 0 }
        local c, advance = new(t)
        assert(get(c)); assert(get(c))
        assert.equal(1, c:identity_calls())
        advance(1.5)
        assert(get(c))
        assert.equal(2, c:identity_calls())
    end)

    it("fails at once on bad credentials, naming the client id, not the secret", function()
        local t = scripted{}
        local c = new(t, { client_secret = "wrong-secret-value" })
        local ok, msg, code, err = get(c)
        assert.is_nil(ok)
        assert.equal("AUTH_FAILED", code)
        assert.equal(1, c:identity_calls())
        assert.matches('client id "id"', msg)
        assert.matches("Bad client credentials", msg)
        assert.not_matches("wrong%-secret", msg)
        assert.equal(1, err.attempts)
    end)

    it("sends the credentials in the body, never in the URL", function()
        local t = scripted{}
        local c = new(t)
        assert(c:authenticate())
        assert.not_matches(SECRET, t.log[1].url)
        assert.equal("POST", t.log[1].method)
    end)
end)
