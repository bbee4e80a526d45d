-- marketo.plan without a sandbox: what the pre-pass makes of a file.
local plan = require("marketo.plan")
local csv = require("marketo.csv")

local function tmpdir()
    local p = io.popen("mktemp -d")
    local d = p:read("*l")
    p:close()
    return d
end

-- A file of about `mb` megabytes: email, name, score.
local function big_csv(path, mb)
    local f = assert(io.open(path, "wb"))
    f:write("Mail,Name,Score\n")
    local buf, size, i = {}, 0, 0
    while size < mb * 1e6 do
        i = i + 1
        local line = ("person%d@example.com,Name %d with some padding text,%d\n")
            :format(i, i, i % 100)
        buf[#buf + 1] = line
        size = size + #line
        if #buf == 5000 then f:write(table.concat(buf)); buf = {} end
    end
    f:write(table.concat(buf))
    f:close()
    return i
end

describe("marketo.plan", function()
    local dir, src, rows
    setup(function()
        dir = tmpdir()
        src = dir .. "/big.csv"
        rows = big_csv(src, 24)
    end)
    teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

    local function check_parts(p)
        assert.is_true(#p.parts >= 2)
        local total = 0
        for _, part in ipairs(p.parts) do
            assert.is_true(part.bytes + #(part.prefix or "") <= csv.PART_BYTES)
            total = total + part.rows
        end
        assert.equal(rows, total)
        assert.equal(rows, p.rows.read)
    end

    it("cuts an unmapped file into parts under Marketo's limit by default", function()
        check_parts(assert(plan.build({ sources = { src }, format = "csv",
            work_dir = dir })))
    end)

    it("cuts a file mapped in C into parts under the limit by default", function()
        local p = assert(plan.build({ sources = { src }, format = "csv", work_dir = dir,
            mapping = { { "email", "Mail" }, { "leadScore", "Score" } } }))
        check_parts(p)
        assert.is_true(p.parts[1].mapped)
        local lines = plan.part_lines(p.parts[1])
        assert.same({ 2, 3, 4 }, { lines[1], lines[2], lines[3] })
    end)

    it("cuts a file mapped in Lua into parts under the limit by default", function()
        local p = assert(plan.build({ sources = { src }, format = "csv", work_dir = dir,
            mapping = { { "email", function(row) return row.Mail:upper() end },
                { "firstName", "Name" } } }))
        check_parts(p)
        local last = p.parts[#p.parts]
        local lines = plan.part_lines(last)
        assert.equal(last.rows, #lines)
        assert.equal(rows + 1, lines[#lines])
    end)
end)
