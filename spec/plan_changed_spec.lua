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

    it("puts the rows left into as few parts as the byte limit allows, in file order",
        function()
        local st = state()
        for i = 1, 300 do
            if i % 50 ~= 0 then st:put(email(i), row(i)) end
        end
        st:merge()
        local p = build(st)
        assert.is_true(#build(nil).parts >= 4) -- the rows were in 4 parts or more
        assert.equal(1, #p.parts)
        assert.same({ 51, 101, 151, 201, 251, 301 }, lines_of(p))
        assert.equal(51, p.parts[1].first_line)
        assert.equal(301, p.parts[1].last_line)
    end)

    it("cuts many rows left at the byte limit, and a later copy of a key still waits",
        function()
        local out = { "Email,Name" }
        for i = 1, 300 do out[#out + 1] = row(i) end
        out[#out + 1] = row(1, "Again") -- line 302: a later copy of line 2's key
        files.write(src, table.concat(out, "\n") .. "\n")
        local st = state()
        for i = 1, 300 do
            if i % 3 == 0 then st:put(email(i), row(i)) end
        end
        st:merge()
        local p = build(st)
        assert.equal(100, p.rows.unchanged)
        local lines = lines_of(p)
        assert.equal(201, #lines)
        -- as few parts as the limit allows: each as cut but the last is full (no
        -- row of 27 bytes or less would fit)
        local cut = {}
        for _, part in ipairs(p.parts) do
            assert.is_true(part.bytes <= 2000, part.bytes)
            if not part.after then cut[#cut + 1] = part end
        end
        assert.is_true(#cut >= 3)
        for k = 1, #cut - 1 do assert.is_true(cut[k].bytes > 2000 - 27, cut[k].bytes) end
        -- line 302 is not in a part that may import beside line 2's
        local first, last
        for k, part in ipairs(p.parts) do
            for _, r in ipairs(assert(results.read_part(part)).rows) do
                if r.line == 2 then first = k end
                if r.line == 302 then last = k end
            end
        end
        assert.is_truthy(first and last)
        if first ~= last then
            assert.is_truthy(p.parts[last].after, "the later copy does not wait")
            local waits = false
            for _, k in ipairs(p.parts[last].after) do waits = waits or k == first end
            assert.is_true(waits)
        end
    end)

    it("keeps a status group's rows apart, and a row sent with another status is changed",
        function()
        files.write(src, "Email,Name,Status\nu1@example.com,A,Registered\n"
            .. "u2@example.com,B,Attended\nu3@example.com,C,Registered\n")
        local st = core.state_new("https://x", "program_members/1001", "email")
        -- held as sent before: u1 and u3 Registered, u2 Registered too
        st:salt("program_member_status=Registered")
        st:put("u1@example.com", "u1@example.com,A")
        st:put("u2@example.com", "u2@example.com,B")
        st:put("u3@example.com", "u3@example.com,C")
        st:salt(nil)
        st:merge()
        local changed = require("marketo.pipeline.changed")
        changed.remember(st, "program_members", { program_id = 1001 })
        local p = build(st, { status_column = "Status" })
        assert.equal(2, p.rows.unchanged)
        assert.equal(1, #p.parts)
        assert.equal("Attended", p.parts[1].status)
        assert.same({ 3 }, lines_of(p))
    end)

    it("cuts the rows left of one part in two, for Marketo's two importing jobs", function()
        local changed = require("marketo.pipeline.changed")
        local split = changed.SPLIT_ROWS
        changed.SPLIT_ROWS = 4
        local st = state()
        local want = {}
        for i = 1, 300 do
            if i % 3 == 0 then st:put(email(i), row(i)) else want[#want + 1] = i + 1 end
        end
        st:merge()
        local ok, p = pcall(build, st, { max_bytes = 100000 })
        changed.SPLIT_ROWS = split
        assert(ok, p)
        assert.equal(2, #p.parts)
        assert.is_true(math.abs(p.parts[1].rows - p.parts[2].rows) <= 4)
        assert.equal(200, p.parts[1].rows + p.parts[2].rows)
        assert.same(want, lines_of(p))
        assert.equal(want[p.parts[1].rows + 1], p.parts[2].first_line)
        -- one part below the mark stays whole
        assert.equal(1, #build(st, { max_bytes = 100000 }).parts)
    end)
end)
