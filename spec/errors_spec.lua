local errors = require("marketo.errors")

describe("marketo.errors", function()
    describe("classify", function()
        it("sends 601 and 602 to re-authentication", function()
            assert.equal("reauth", errors.classify("601"))
            assert.equal("reauth", errors.classify(602))
        end)
        it("retries Marketo's transient codes, HTTP 5xx and network failures", function()
            for _, code in ipairs({ "604", "608", "611", "614", "713", "HTTP_500",
                "HTTP_503", "HTTP_599", "COULDNT_CONNECT", "GOT_NOTHING", "RECV_ERROR",
                "OPERATION_TIMEDOUT", "SEND_ERROR" }) do
                assert.equal("retry", errors.classify(code), code)
            end
        end)
        it("throttles on 606 and 615", function()
            assert.equal("throttle", errors.classify("606"))
            assert.equal("throttle", errors.classify("615"))
        end)
        it("waits for a queue slot on 1016 and 1019", function()
            assert.equal("queue", errors.classify("1016"))
            assert.equal("queue", errors.classify("1019"))
        end)
        it("stops at once on 607, auth failures and anything unknown", function()
            for _, code in ipairs({ "607", "603", "610", "1003", "HTTP_413", "HTTP_404",
                "AUTH_FAILED", "whatever" }) do
                assert.equal("fatal", errors.classify(code), code)
            end
        end)
        it("stops at once on what the sandbox, like Marketo, refuses at create, saying why",
            function()
            for code, hint in pairs({ ["1006"] = "fix the header", ["1008"] = "--partition",
                                      ["1011"] = "cannot be a lookup field" }) do
                assert.equal("fatal", errors.classify(code), code)
                assert.matches(hint, tostring(errors.new{ code = code, message = "m" }), 1, true)
            end
        end)
        it("lets an override win over the table", function()
            assert.equal("retry", errors.classify("1003", { ["1003"] = "retry" }))
            assert.equal("fatal", errors.classify("604", { ["604"] = "fatal" }))
        end)
        it("lets a script change the shared table", function()
            local saved = errors.classes["1003"]
            errors.classes["1003"] = "retry"
            local got = errors.classify("1003")
            errors.classes["1003"] = saved
            assert.equal("retry", got)
            assert.equal("fatal", errors.classify("1003"))
        end)
    end)

    describe("new", function()
        it("carries code, message, requestId and call, and prints them", function()
            local e = errors.new{ code = "607", message = "Daily quota reached",
                request_id = "e42b#14272d07d78", call = "POST /bulk/v1/leads.json" }
            assert.equal("fatal", e.class)
            assert.equal("POST /bulk/v1/leads.json: 607 Daily quota reached "
                .. "(requestId e42b#14272d07d78): the instance's daily API quota is used up; "
                .. "it resets at midnight US Central time", tostring(e))
            assert.is_true(errors.is_error(e))
            local v, msg, code, err = errors.fail(e)
            assert.is_nil(v)
            assert.equal(tostring(e), msg)
            assert.equal("607", code)
            assert.equal(e, err)
        end)
        it("redacts the secrets it is given from the message", function()
            local e = errors.new({ code = "COULDNT_CONNECT",
                message = "failed for https://h/x?client_secret=s3cr3t-value&a=1 tok-abcdef" },
                { "tok-abcdef" })
            assert.not_matches("s3cr3t", tostring(e))
            assert.not_matches("tok%-abcdef", tostring(e))
        end)
    end)

    describe("tostring", function()
        it("counts the attempts and leaves out what is unknown", function()
            local e = errors.new{ code = "COULDNT_CONNECT", message = "refused", attempts = 3 }
            assert.equal("COULDNT_CONNECT refused after 3 attempts", tostring(e))
        end)
    end)

    describe("redact", function()
        it("hides access_token parameters and Bearer headers", function()
            local s = errors.redact("GET /x?access_token=abc:int&b=2 Authorization: Bearer xyz:st")
            assert.equal("GET /x?access_token=***&b=2 Authorization: Bearer ***", s)
        end)
        it("hides strings with pattern characters literally", function()
            assert.equal("a *** b", errors.redact("a %x.+-y b", { "%x.+-y" }))
        end)
    end)
end)
