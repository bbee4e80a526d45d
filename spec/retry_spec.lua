local retry = require("marketo.retry")

local function err(class, code, elapsed)
    return { class = class, code = code, elapsed = elapsed or 0 }
end

describe("marketo.retry", function()
    describe("random", function()
        it("replays the same sequence for the same seed", function()
            local a, b = retry.random(42), retry.random(42)
            for _ = 1, 5 do
                local x = a()
                assert.equal(x, b())
                assert.is_true(x >= 0 and x < 1)
            end
            assert.not_equal(retry.random(42)(), retry.random(43)())
        end)
    end)

    describe("policy", function()
        it("rejects unknown options", function()
            assert.has_error(function() retry.policy{ max_attempt = 3 } end,
                "bad argument #1 to 'policy' (unknown option 'max_attempt')")
        end)

        it("backs off exponentially with jitter, up to the cap", function()
            local p = retry.policy{ seed = 7, base = 1, cap = 8 }
            local expect = { 1, 2, 4, 8, 8, 8, 8 }
            for attempt, full in ipairs(expect) do
                local d = p(err("retry", "604"), attempt)
                assert.is_true(d >= full / 2 and d <= full, ("attempt %d: %g"):format(attempt, d))
            end
        end)

        it("gives the same schedule for the same seed", function()
            local a, b = retry.policy{ seed = 3 }, retry.policy{ seed = 3 }
            for attempt = 1, 5 do
                assert.equal(a(err("retry", "604"), attempt), b(err("retry", "604"), attempt))
            end
        end)

        it("gives up after max_attempts and after max_elapsed", function()
            local p = retry.policy{ max_attempts = 3, max_elapsed = 10, seed = 1 }
            assert.is_number(p(err("retry", "604"), 2))
            assert.is_nil(p(err("retry", "604"), 3))
            assert.is_nil(p(err("retry", "604", 10), 1))
        end)

        it("never retries fatal errors", function()
            local p = retry.policy()
            assert.is_nil(p(err("fatal", "607"), 1))
            assert.is_nil(p(err("fatal", "AUTH_FAILED"), 1))
        end)

        it("re-authenticates at once, a bounded number of times", function()
            local p = retry.policy{ reauth_attempts = 2 }
            assert.equal(0, p(err("reauth", "601"), 1))
            assert.equal(0, p(err("reauth", "602"), 2))
            assert.is_nil(p(err("reauth", "601"), 3))
        end)

        it("waits a growing share of the rate window on 606, never more than it", function()
            local p = retry.policy{ throttle_window = 20, seed = 5 }
            local d1, d4 = p(err("throttle", "606"), 1), p(err("throttle", "606"), 4)
            assert.is_true(d1 >= 5 and d1 < 7, tostring(d1))
            assert.is_true(d4 >= 20 and d4 < 22, tostring(d4))
            assert.is_true(p(err("throttle", "606"), 7) < 22)
        end)

        it("backs off from a second on 615", function()
            local p = retry.policy{ seed = 5 }
            local d = p(err("throttle", "615"), 1)
            assert.is_true(d >= 0.5 and d <= 1, tostring(d))
        end)

        it("waits patiently for a queue slot, beyond max_attempts, until queue_timeout", function()
            local p = retry.policy{ max_attempts = 2, queue_base = 5, queue_cap = 60,
                queue_timeout = 100, seed = 9 }
            local d1 = p(err("queue", "1016", 0), 1)
            assert.is_true(d1 >= 2.5 and d1 <= 5, tostring(d1))
            local d20 = p(err("queue", "1016", 50), 20)
            assert.is_true(d20 >= 30 and d20 <= 60, tostring(d20))
            assert.is_nil(p(err("queue", "1016", 100), 3))
        end)
    end)

    describe("never", function()
        it("never retries", function()
            assert.is_nil(retry.never(err("retry", "604"), 1))
        end)
    end)
end)
