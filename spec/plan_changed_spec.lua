-- --changed-only in the pre-pass (marketo.pipeline.changed): rows the state
-- holds as they would be sent are left out of their parts and counted
-- unchanged; the rows kept still tie back to their source lines.
local plan = require("marketo.pipeline.plan")
local core = require("marketo.core")
local objects = require("marketo.objects")
local results = require("marketo.results")
local files = require("spec.support.files")

local KEY = { fields = { "Email" }, normalize = objects.normalize_key }

local function email(i) return ("u%d@example.com"):format(i) end
local function row(i, name) return ("u%d@example.com,%s %d"):format(i, name or "Name", i) end

local function lines_of(p)
    local out = {}
    for _, part in ipairs(p.parts) do
        for _, r in ipairs(assert(results.read_part(part)).rows) do out[#out + 1] = r.line end
    end
    return out
end

describe("marketo.pipeline.changed", function()
    local dir, src
    before_each(function()
        dir = files.tmpdir()
        src = dir .. "/leads.csv"
        local out = { "Email,Name" }
        for i = 1, 300 do out[#out + 1] = ("u%d@example.com,Name %d"):format(i, i) end
        files.write(src, table.concat(out, "\n") .. "\n")
    end)
    after_each(function() files.rmdir(dir) end)

    local function build(state, extra)
        local o = { sources = { src }, format = "csv", work_dir = dir, key = KEY,
            max_bytes = 2000, state = state }
        for k, v in pairs(extra or {}) do o[k] = v end
        return assert(plan.build(o))
    end

    local function state() return core.state_new("https://x", "leads", "email") end

    it("leaves out the rows held as they are, in every part, and ties the rest back", function()
        local st = state()
        for i = 1, 300 do
            if i % 50 ~= 0 then st:put(email(i):upper(), row(i)) end
        end
        st:put("u100@example.com", "u100@example.com,Old name")
        st:merge()
        local p = build(st)
        assert.equal(294, p.rows.unchanged)
        assert.same({ 51, 101, 151, 201, 251, 301 }, lines_of(p)) -- line = row + 1
        local sent = 0
        for _, part in ipairs(p.parts) do sent = sent + part.rows end
        assert.equal(6, sent)
    end)

    it("sends nothing when every row is held, and everything without a state", function()
        local st = state()
        for i = 1, 300 do st:put(email(i), row(i)) end
        st:merge()
        local p = build(st)
        assert.equal(300, p.rows.unchanged)
        assert.same({}, p.parts)
        local full = build(nil)
        assert.is_nil(full.rows.unchanged)
        assert.equal(300, #lines_of(full))
    end)

    it("hashes a mapped row as it is sent, not as it is read", function()
        local st = state()
        for i = 1, 300 do
            st:put(email(i), row(i, i <= 150 and "NAME" or "Name"))
        end
        st:merge()
        local p = build(st, { mapping = { Email = "Email", Name = function(r)
            return r.Name:upper() end } })
        assert.equal(150, p.rows.unchanged)
        local lines = lines_of(p)
        assert.equal(150, #lines)
        assert.equal(152, lines[1])
        assert.equal(301, lines[#lines])
    end)

    it("sends every row of a file without the key's column", function()
        files.write(src, "Name\nAnn\nBob\n")
        local st = state()
        st:put("Ann", "Ann")
        st:merge()
        local p = build(st)
        assert.equal(0, p.rows.unchanged)
        assert.same({ 2, 3 }, lines_of(p))
    end)
end)
