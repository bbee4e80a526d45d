-- A plan a crash cut short, made again by resume, checks the rows against the
-- instance's schema as the first plan did (the run record says it was
-- checked): the same bad row is refused, and without a schema there is no
-- plan made with fewer checks.
local import = require("marketo.import")
local schema_mod = require("marketo.schema")
local cli = require("spec.support.cli")
local files = require("spec.support.files")

local function lead_schema()
    return assert(schema_mod.from_sandbox("leads", {}, require("marketo.sandbox.schema").new(),
        require("marketo.sandbox.config").defaults()))
end

describe("a plan made again from the journal", function()
    local dir, src, journal
    before_each(function()
        dir = cli.tmpdir()
        src = dir .. "/leads.csv"
        journal = src .. ".journal"
        files.write(src, "email,firstName,numberOfEmployees\na@example.com,A,5\n"
            .. "b@example.com,B,lots\nc@example.com,C,7\n")
    end)
    after_each(function() cli.rmdir(dir) end)

    -- The journal of a checked lenient plan, cut after its run record.
    local function cut_short()
        local prepared = assert(import.prepare({ object = "leads", source = src,
            lenient = true, schema = lead_schema() }))
        prepared:close()
        local text = files.read(journal)
        files.write(journal, text:match("^[^\n]*\n"))
        return text
    end

    local function rejected_of(prepared)
        return prepared.journal.state.run.rows.rejected
    end

    it("checks the types again, with the schema resume asks for", function()
        cut_short()
        local asked
        local prepared = assert(import.reopen(journal, { schema = function(object, params)
            asked = object
            assert.is_table(params)
            return lead_schema()
        end }))
        assert.equal("leads", asked)
        assert.equal(1, rejected_of(prepared))
        prepared:close()
    end)

    it("refuses to plan again with fewer checks when no schema is given", function()
        cut_short()
        local p, msg, code = import.reopen(journal, {})
        assert.is_nil(p)
        assert.equal("PLAN_INCOMPLETE", code)
        assert.matches("checked against the schema of embedded sandbox", msg, 1, true)
        assert.matches("nothing was sent", msg, 1, true)
    end)

    it("through `resume`, which asks the instance (here the embedded sandbox)", function()
        cut_short()
        local r = cli.run({ "resume", journal })
        assert.equal(3, r.status, r.err) -- done, some rows not imported
        local report = cli.read_json(src .. ".report.json")
        assert.equal(1, report.rows.rejected, r.out)
    end)
end)
