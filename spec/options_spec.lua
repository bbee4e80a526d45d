-- marketo.options: one message style for every option check of the library, and
-- errors that point at the caller's line.
local options = require("marketo.options")

local function check(opts, spec)
    return options.check(opts, spec, "f", 1)
end

-- The message f raised, without its position.
local function message(f)
    local ok, msg = pcall(f)
    assert.is_false(ok)
    return (tostring(msg):gsub("^[^:]*:%d+: ", ""))
end

describe("marketo.options", function()
    it("passes a good table through, and nil as an empty one", function()
        local o = { a = "x", n = 3 }
        assert.equal(o, check(o, { a = "string", n = { "number", integer = true, min = 1 } }))
        assert.same({}, check(nil, { a = "string" }))
    end)

    it("refuses what is not a table, unknown keys and wrong types", function()
        assert.equal("bad argument #1 to 'f' (table expected, got string)",
            message(function() check("x", {}) end))
        assert.equal("bad argument #1 to 'f' (unknown option 'wokers')",
            message(function() check({ wokers = 2 }, { workers = "number" }) end))
        assert.equal("bad argument #1 to 'f' (option 'n': number expected, got string)",
            message(function() check({ n = "2" }, { n = { "number", min = 1 } }) end))
        assert.equal("bad argument #1 to 'f' (option 't': table or userdata expected, got "
            .. "boolean)", message(function() check({ t = true }, { t = "table|userdata" }) end))
    end)

    it("says what values a constraint wants, and the value it got", function()
        local spec = { w = { "number", integer = true, min = 1 },
            r = { "number", integer = true, min = 1, max = 64 },
            p = { "number", positive = true }, m = { "number", max = 9 },
            f = { "string", one_of = { "csv", "tsv", "ssv" } } }
        local cases = {
            { { w = 0 }, "option 'w': whole number >= 1 expected, got 0" },
            { { w = 1.5 }, "option 'w': whole number >= 1 expected, got 1.5" },
            { { r = 65 }, "option 'r': whole number from 1 to 64 expected, got 65" },
            { { p = 0 }, "option 'p': number > 0 expected, got 0" },
            { { m = 10 }, "option 'm': number <= 9 expected, got 10" },
            { { f = "xls" }, "option 'f': csv, tsv or ssv expected, got \"xls\"" },
        }
        for _, c in ipairs(cases) do
            assert.equal("bad argument #1 to 'f' (" .. c[2] .. ")",
                message(function() check(c[1], spec) end))
        end
        assert(check({ w = 1, r = 64, p = 0.1, m = 9, f = "tsv" }, spec))
    end)

    it("asks a registry's check, saying what it expects", function()
        local function csv(v) return v:lower() == "csv" end
        local spec = { f = { "string", valid = csv, expected = "csv" },
            id = { "number|string", valid = function(v)
                return tonumber(v) and tonumber(v) >= 1, "a positive whole number"
            end } }
        assert(check({ f = "CSV", id = "7" }, spec))
        assert.equal("bad argument #1 to 'f' (option 'f': csv expected, got \"xls\")",
            message(function() check({ f = "xls" }, spec) end))
        assert.equal("bad argument #1 to 'f' (option 'id': a positive whole number expected, "
            .. "got 0)", message(function() check({ id = 0 }, spec) end))
    end)

    it("refuses a missing required option, also when the table itself is missing", function()
        local spec = { path = { "string", required = true } }
        assert.equal("bad argument #1 to 'f' (option 'path': string expected, got no value)",
            message(function() check({}, spec) end))
        assert.equal("bad argument #1 to 'f' (option 'path': string expected, got no value)",
            message(function() check(nil, spec) end))
    end)

    it("checks every value of a table, naming the key", function()
        local spec = { classes = { "table", values = { "string", one_of = { "retry", "fatal" } } } }
        assert(check({ classes = { ["1003"] = "retry" } }, spec))
        assert.equal("bad argument #1 to 'f' (option 'classes.1003': retry or fatal expected, "
            .. "got \"later\")",
            message(function() check({ classes = { ["1003"] = "later" } }, spec) end))
    end)

    it("names the argument and the nested table it checks", function()
        assert.equal("bad argument #3 to 'f' (unknown option 'multipart.file.size')",
            message(function()
                options.check({ size = 1 }, {}, "f", 1, 3, "multipart.file")
            end))
        assert.equal("bad argument #3 to 'f' (option 'multipart.file': table expected, got "
            .. "number)", message(function()
                options.check(1, {}, "f", 1, 3, "multipart.file")
            end))
    end)

    it("points the error at the line that called the checked function", function()
        local function api(o)
            local checked = options.check(o, { a = "string" }, "api", 2) -- not a tail call
            return checked
        end
        local ok, msg = pcall(function()
            api({ b = 1 }) -- this line
        end)
        assert.is_false(ok)
        local line = debug.getinfo(1, "l").currentline - 3
        assert.matches("options_spec%.lua:" .. line .. ": bad argument #1 to 'api'", msg)
        local function api2() options.fail("api2", "x expected", 2, 2) end
        local _, msg2 = pcall(function()
            api2() -- this line
        end)
        line = debug.getinfo(1, "l").currentline - 2
        assert.matches("options_spec%.lua:" .. line .. ": bad argument #2 to 'api2' %(x expected%)",
            msg2)
    end)

    describe("in the library", function()
        it("client.new, retry.policy and scheduler.new speak the same", function()
            local config = require("marketo.config")
            assert.equal("bad argument #1 to 'client.new' (option 'classes.1003': reauth, retry, "
                .. "throttle, queue or fatal expected, got \"later\")", message(function()
                    options.check({ classes = { ["1003"] = "later" } }, config.options,
                        "client.new", 1)
                end))
            assert.equal("bad argument #1 to 'policy' (option 'max_attempts': whole number >= 1 "
                .. "expected, got 0)", message(function()
                    require("marketo.retry").policy{ max_attempts = 0 }
                end))
            assert.equal("bad argument #1 to 'scheduler.new' (option 'limits.importing': whole "
                .. "number >= 1 expected, got 0)", message(function()
                    require("marketo.pipeline.scheduler").new{ limits = { importing = 0 } }
                end))
        end)
    end)
end)
