-- The type checks in C (csv_types.c, the fast path of unmapped and
-- rename-only files) and in Lua (marketo.pipeline.checks, mapped rows) are one
-- set of rules: every value here gets the same verdict from both.
local csv = require("marketo.csv")
local checks = require("marketo.pipeline.checks")
local files = require("spec.support.files")

local VALUES = {
    integer = { "0", "-12", "+7", "1.5", "1e3", " 1", "0x10", "12a", "99999999999999999999" },
    float = { "1.5", "-.5", "+3.", "1e3", "-1.5E-3", ".", "e5", "1e", "$5", "1,5", "inf", "nan" },
    currency = { "10.25", "10,25", "1 000" },
    boolean = { "true", "FALSE", "Yes", "no", "1", "0", "y", "t", "truth" },
    date = { "2024-02-29", "2023-02-29", "1990-12-31", "31/12/1990", "2024-13-01", "2024-1-01",
        "2024-04-31", "2024-01-01T00:00:00Z" },
    datetime = { "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123+01:00",
        "2024-01-02T03:04:05-0800",
        "2024-01-02T03:04:05", "2024-01-02", "2024-01-02 03:04:05Z", "2024-01-02T24:00:00Z",
        "2024-01-02T03:04:05+1", "2024-01-02T03:04:05.Z" },
    string = { "abc", "äöü", "abcd", "äöüß", 'a"b', 'a"bc', "a,b", "a,bc" }, -- 3 at most
}

-- Emails and strings around 64 bytes, where the C checks look at a record's
-- fields a block of 64 bytes at a time.
local LONG_EMAILS = { ("a"):rep(51) .. "@example.com", ("a"):rep(52) .. "@example.com",
    ("a"):rep(53) .. "@example.com", ("a"):rep(50) .. "@exa mple.com", ("a"):rep(62) .. "@b",
    ("a"):rep(60) .. "@b.c", ("a"):rep(61) .. "@b.c", ("a"):rep(62) .. "@b.c",
    ("a"):rep(58) .. "@b.c@",
    ("a"):rep(40) .. "@" .. ("b"):rep(23) .. ".", ("a"):rep(70) .. "@b.co" }

-- The verdicts of csv.plan with types on a file of `values` in column 2 (after
-- a padding column of `pad` bytes): line -> rejected?
local function plan_verdicts(dir, kind, length, values, pad)
    local path = dir .. "/plan.csv"
    local lines = { "pad,f,other" }
    for _, v in ipairs(values) do
        lines[#lines + 1] = ("a"):rep(pad) .. ',"' .. v:gsub('"', '""') .. '",x'
        if not v:find('[",]') then lines[#lines + 1] = ("a"):rep(pad) .. "," .. v .. ",x" end
    end
    files.write(path, table.concat(lines, "\n") .. "\n")
    local p = assert(csv.plan(path, { lenient = true, types = { kinds = { false, kind, false },
        lengths = { false, length or false, false }, failure = function() return "no" end } }))
    local out = {}
    for _, rej in ipairs(p.rejects) do out[rej.line] = true end
    return out, lines, p.emails
end

describe("csv_check_types", function()
    it("gives each value the verdict checks.value gives it", function()
        local dir = files.tmpdir()
        for t, values in pairs(VALUES) do
            local f = { name = "f", type = t, length = t == "string" and 3 or nil }
            local path = dir .. "/" .. t .. ".csv"
            local lines = { "f,other" }
            -- each value quoted, then as it is (if it can be): the C pass reads both
            local expect = {}
            for _, v in ipairs(values) do
                lines[#lines + 1] = '"' .. v:gsub('"', '""') .. '",x'
                expect[#lines] = v
                if not v:find('[",]') then
                    lines[#lines + 1] = v .. ",x"
                    expect[#lines] = v
                end
            end
            files.write(path, table.concat(lines, "\n") .. "\n")
            local reader = assert(csv.open(path))
            local kinds = { ({ integer = "integer", float = "number", currency = "number",
                boolean = "boolean", date = "date", datetime = "datetime" })[t] or false, false }
            local rows, failures = reader:check_types(kinds, { f.length or false, false }, 1000)
            reader:close()
            assert.equal(#lines - 1, rows)
            local failed = {}
            for _, bad in ipairs(failures) do
                assert.equal(1, bad.column)
                failed[bad.line] = bad.value
            end
            for line = 2, #lines do
                local v = expect[line]
                local lua = checks.value(f, v) ~= nil
                assert.equal(lua, failed[line] ~= nil, ("%s '%s' on line %d: Lua says %s, "
                    .. "C says %s"):format(t, v, line, tostring(lua), tostring(not lua)))
                if lua then assert.equal(v, failed[line]) end
            end
        end
        files.rmdir(dir)
    end)

    it("notes the emails that do not look like one as checks.is_email does", function()
        local values = { "a@b.co", "bob-at-example", "c@d", "@b.co", "a@.co", "a@b.", "a b@c.de",
            "a@b@c.de", "a@b.c.d", "x.y@sub.example.org" }
        local dir = files.tmpdir()
        local path = dir .. "/e.csv"
        local lines, bad, first = { "email" }, 0, nil
        for _, v in ipairs(values) do
            lines[#lines + 1] = '"' .. v .. '"'
            if not checks.is_email(v) then
                bad = bad + 1
                first = first or { line = #lines, value = v }
            end
        end
        files.write(path, table.concat(lines, "\n") .. "\n")
        local reader = assert(csv.open(path))
        local rows, failures, note = reader:check_types({ "email" }, { false }, 10)
        reader:close()
        files.rmdir(dir)
        assert.equal(#values, rows)
        assert.same({}, failures) -- a warning, never a failure
        assert.same({ count = bad, line = first.line, column = 1, value = first.value }, note)
    end)

    it("gives the verdicts of checks.value in a plan, wherever a value falls in its row",
        function()
        local dir = files.tmpdir()
        local map = { integer = "integer", float = "number", currency = "number",
            boolean = "boolean", date = "date", datetime = "datetime", string = false }
        for t, values in pairs(VALUES) do
            local f = { name = "f", type = t, length = t == "string" and 3 or nil }
            for _, pad in ipairs({ 0, 30, 60, 61, 62, 63, 64, 65, 127 }) do
                local rejected, lines = plan_verdicts(dir, map[t], f.length, values, pad)
                for line = 2, #lines do
                    local v = lines[line]:sub(pad + 2):gsub(",x$", "")
                    if v:sub(1, 1) == '"' then v = v:sub(2, -2):gsub('""', '"') end
                    local lua = checks.value(f, v) ~= nil
                    assert.equal(lua, rejected[line] == true, ("%s '%s' after %d bytes: Lua "
                        .. "says %s"):format(t, v, pad, tostring(lua)))
                end
            end
        end
        files.rmdir(dir)
    end)

    it("notes the emails around 64 bytes long as checks.is_email does", function()
        local dir = files.tmpdir()
        for _, pad in ipairs({ 0, 1, 10, 63, 64 }) do
            for _, v in ipairs(LONG_EMAILS) do
                local rejected, _, note = plan_verdicts(dir, "email", nil, { v }, pad)
                assert.same({}, rejected)
                assert.equal(checks.is_email(v), note == nil, v)
            end
        end
        files.rmdir(dir)
    end)

    it("skips blank cells and stops at max failures", function()
        local dir = files.tmpdir()
        local path = dir .. "/a.csv"
        files.write(path, "n\n1\n\nx\ny\nz\n")
        local reader = assert(csv.open(path))
        local rows, failures = reader:check_types({ "integer" }, { false }, 2)
        reader:close()
        assert.equal(3, rows) -- the blank line is no row; stopped at the second failure
        assert.same({ { line = 4, column = 1, value = "x", what = "type" },
            { line = 5, column = 1, value = "y", what = "type" } }, failures)
        files.rmdir(dir)
    end)
end)
