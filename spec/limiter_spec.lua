local limiter = require("marketo.pipeline.limiter")

-- A transport that records when each request went out, on a fake clock.
local function fake_world()
    local world = { now = 0, sent = {} }
    world.clock = function() return world.now end
    world.sleep = function(s) world.now = world.now + s end
    world.transport = {
        request = function(_, req)
            world.sent[#world.sent + 1] = { t = world.now, url = req.url }
            return { status = 200, body = "{}" }
        end,
    }
    return world
end

-- The most calls that any window of `window` seconds saw.
local function busiest(sent, window)
    local most, first = 0, 1
    for last = 1, #sent do
        while sent[last].t - sent[first].t >= window do first = first + 1 end
        most = math.max(most, last - first + 1)
    end
    return most
end

describe("marketo.pipeline.limiter", function()
    describe("kind_of", function()
        it("names each Marketo call", function()
            local b = "http://h"
            assert.equal("identity", limiter.kind_of("GET", b .. "/identity/oauth/token?x=1"))
            assert.equal("import", limiter.kind_of("POST", b .. "/bulk/v1/leads.json?format=csv"))
            assert.equal("status", limiter.kind_of("GET", b .. "/bulk/v1/leads/batch/7.json"))
            assert.equal("failures",
                limiter.kind_of("GET", b .. "/bulk/v1/leads/batch/7/failures.json"))
            assert.equal("warnings", limiter.kind_of("GET",
                b .. "/bulk/v1/program/members/import/7/warnings.json"))
        end)
    end)

    describe("wrap", function()
        it("never lets more than `calls` go in any rolling window", function()
            local w = fake_world()
            local t = limiter.wrap(w.transport,
                { calls = 5, window = 2, margin = 0, clock = w.clock, sleep = w.sleep })
            for i = 1, 23 do
                local res = t:request({ method = "GET", url = "http://h/bulk/v1/x" .. i })
                assert.equal(200, res.status)
            end
            assert.equal(23, #w.sent)
            assert.equal(5, busiest(w.sent, 2))
            -- and it did not wait longer than it had to: 23 calls at 5 per 2 s
            assert.is_true(w.now <= 2 * 4 + 1e-9)
        end)

        it("counts calls by kind", function()
            local w = fake_world()
            local t = limiter.wrap(w.transport, { clock = w.clock, sleep = w.sleep })
            t:request({ method = "GET", url = "http://h/identity/oauth/token" })
            t:request({ method = "POST", url = "http://h/bulk/v1/leads.json" })
            t:request({ method = "GET", url = "http://h/bulk/v1/leads/batch/1.json" })
            t:request({ method = "GET", url = "http://h/bulk/v1/leads/batch/1.json" })
            local counts, total = t:counts()
            assert.same({ identity = 1, import = 1, status = 2 }, counts)
            assert.equal(4, total)
        end)

        it("releases its slot when the transport raises", function()
            local w = fake_world()
            local boom = { request = function() error("boom", 0) end }
            local t = limiter.wrap(boom, { in_flight = 1, clock = w.clock, sleep = w.sleep })
            assert.has_error(function() t:request({ url = "http://h/x" }) end, "boom")
            -- the only slot in flight is free again: a second call gets it
            assert.truthy(t.budget:try("in_flight"))
        end)

        it("rejects unknown options and bad transports", function()
            local w = fake_world()
            assert.has_error(function() limiter.wrap(w.transport, { cals = 1 }) end,
                "bad argument #2 to 'limiter.wrap' (unknown option 'cals')")
            assert.has_error(function() limiter.wrap(w.transport, { in_flight = 0 }) end,
                "bad argument #2 to 'limiter.wrap' (option 'in_flight': whole number >= 1 "
                .. "expected, got 0)")
            assert.has_error(function() limiter.wrap({}) end,
                "bad argument #1 to 'limiter.wrap' (transport expected)")
        end)
    end)
end)
