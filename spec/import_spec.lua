-- marketo.import's misuse: one message style (marketo.options), raised at the
-- caller's line, before any file is read or any journal made.
local import = require("marketo.import")

describe("marketo.import", function()
    local cases = {
        { { object = "lead", source = "x.csv" },
            "option 'object': leads, custom_objects or program_members expected, got \"lead\"" },
        { { object = "leads", source = "x.csv", wokers = 2 }, "unknown option 'wokers'" },
        { { object = "leads", source = "x.csv", lookupField = "email" },
            "option 'lookupField' is spelled 'lookup_field'" },
        { { object = "leads", source = "x.csv", program_id = 5 },
            "option 'program_id' is for program_members, not leads" },
        { { object = "custom_objects", source = "x.csv" },
            "option 'api_name': string expected, got no value" },
        { { object = "program_members", source = "x.csv", program_id = "abc",
            program_member_status = "Member" },
            "option 'program_id': a positive whole number expected, got \"abc\"" },
        { { object = "leads", source = "x.csv", part_bytes = 0 },
            "option 'part_bytes': whole number >= 1 expected, got 0" },
        { { object = "leads", source = "x.csv", workers = 1.5 },
            "option 'workers': whole number >= 1 expected, got 1.5" },
        { { object = "leads", source = "x.csv", limits = { importing = 0 } },
            "option 'limits.importing': whole number >= 1 expected, got 0" },
        { { object = "leads", source = "x.csv", limits = { window = -1 } },
            "option 'limits.window': number > 0 expected, got -1" },
        { { object = "leads", source = {} },
            "option 'source': a path or a list of paths expected" },
    }
    for i, case in ipairs(cases) do
        it("refuses misuse at the caller's line, case " .. i, function()
            for _, fn in ipairs({ import.run, import.prepare }) do
                local ok, msg = pcall(function() fn(case[1]) end)
                assert.is_false(ok)
                assert.matches("^spec/import_spec%.lua:%d+: bad argument #1 to 'import' %(",
                    msg)
                assert.matches(case[2], msg, 1, true)
            end
        end)
    end
end)
