-- marketo.pipeline.keys's fast path (rows read in C, keys hashed on every
-- core: src/csv_keys_parallel.c, src/csv_keys_rows.c) against its reference
-- (keys.REFERENCE: every row read in Lua, as the first version did), on
-- random files: quoted values with delimiters, doubled quotes and line
-- breaks, CRLF or LF, keys in another case or with spaces around them, blank
-- keys, copies spread across small parts, keys of several fields, byte
-- ranges and mapped parts, strict and lenient. Both plans must be the same:
-- every part's bytes and source lines, the `after` edges, the keys report
-- (examples and their lines) and the rejects, or the same error.
local plan = require("marketo.pipeline.plan")
local keys = require("marketo.pipeline.keys")
local objects = require("marketo.objects")
local files = require("spec.support.files")

local SPICE = { "", "", "", "a,b", 'say "hi"', "two\nlines", "  padded  ", "x\r\ny", "ünï" }

local function field(v)
    if v:find('[,"\r\n]') or (v ~= "" and math.random(6) == 1) then
        return '"' .. v:gsub('"', '""') .. '"'
    end
    return v
end

-- A key from a small pool (so copies come again across parts), in some
-- other case, with blanks around it or quotes, commas or a line break in
-- it; blank now and then.
local function key_value(pool, blanks)
    local r = math.random(100)
    if r <= 6 and blanks then return ({ "", " ", "\t" })[math.random(3)] end
    local v = ("k%d@Example.com"):format(math.random(pool))
    if r <= 30 then v = v:upper() end
    if r > 30 and r <= 40 then v = v .. ({ '"q', ',c', '""', '\nl' })[r % 4 + 1] end
    if r >= 90 then v = " " .. v .. "\t" end
    return v
end

-- A random file: id, email, vin, year, name; `rows` rows, some of their
-- keys blank with `blanks`.
local function random_file(path, rows, crlf, blanks)
    local eol = crlf and "\r\n" or "\n"
    local out = { "id,email,vin,year,name" }
    local pool = math.random(5, rows)
    for i = 1, rows do
        local vin = "V" .. math.random(math.floor(pool / 2) + 1)
        if blanks and math.random(8) == 1 then vin = "" end
        out[#out + 1] = table.concat({ tostring(i), field(key_value(pool, blanks)), field(vin),
            field(tostring(2000 + math.random(3))), field(SPICE[math.random(#SPICE)]) }, ",")
    end
    files.write(path, table.concat(out, eol) .. eol)
end

-- Everything a plan says, its parts' bytes and lines read back.
local function digest(p)
    if not p.parts then return p end
    local parts = {}
    for i, part in ipairs(p.parts) do
        local f = assert(io.open(part.mapped and part.path or part.source, "rb"))
        f:seek("set", part.offset or 0)
        local bytes = f:read(part.length)
        f:close()
        local lines
        if part.mapped then
            lines = {}
            local lf = assert(io.open(part.lines.file, "rb"))
            for _ = 1, part.lines.skip do lf:read("l") end
            for j = 1, part.rows do lines[j] = lf:read("l") end
            lf:close()
        end
        parts[i] = { bytes = bytes, lines = lines, rows = part.rows, first = part.first_line,
            last = part.last_line, after = part.after, status = part.status,
            mapped = part.mapped or false }
    end
    return { parts = parts, rows = p.rows, keys = p.keys, rejects = p.rejects }
end

local function build(o, reference, dir)
    keys.REFERENCE = reference
    local run = {}
    for k, v in pairs(o) do run[k] = v end
    run.work_dir = dir .. (reference and "/ref" or "/fast")
    os.execute("mkdir -p " .. files.q(run.work_dir))
    local p, msg, code = plan.build(run)
    keys.REFERENCE = false
    if not p then return { failed = msg, code = code } end
    return digest(p)
end

local LEADS = objects.key(objects.get("leads"), {})
local CARS = { fields = { "vin", "year" }, normalize = objects.normalize_key }

describe("keys: the fast path and the reference make the same plan", function()
    local dir
    before_each(function() dir = files.tmpdir() end)
    after_each(function() files.rmdir(dir) end)

    local cases = {
        { "leads, byte ranges", { key = LEADS } },
        { "leads, mapped", { key = LEADS,
            mapping = { { "email", "email" }, { "firstName", "name" }, { "leadId", "id" } } } },
        { "leads, mapped by a Lua function", { key = LEADS,
            mapping = { { "email", function(row) return row.email end },
                        { "firstName", "name" } } } },
        { "custom object, two dedupe fields", { key = CARS } },
    }
    for _, case in ipairs(cases) do
        for _, lenient in ipairs({ true, false }) do
            it(("%s, %s"):format(case[1], lenient and "lenient" or "strict"), function()
                for seed = 1, 12 do
                    math.randomseed(seed * 7919 + #case[1])
                    local src = ("%s/in-%d.csv"):format(dir, seed)
                    -- strict: a blank key stops the plan, so most files have none
                    random_file(src, math.random(20, 700), seed % 2 == 0,
                        lenient or seed % 4 == 0)
                    local o = { sources = { src }, format = "csv", lenient = lenient,
                        max_bytes = math.random(300, 4000), key = case[2].key,
                        mapping = case[2].mapping, max_rejects = 1e9 }
                    local seed_dir = ("%s/w%d"):format(dir, seed)
                    local ref = build(o, true, seed_dir)
                    local fast = build(o, false, seed_dir)
                    assert.same(ref, fast, "seed " .. seed)
                    assert.equal(not lenient and seed % 4 == 0, ref.failed ~= nil, ref.failed)
                end
            end)
        end
    end

    it("moves rows and has examples on these files (the comparison is not empty)", function()
        math.randomseed(42)
        local src = dir .. "/in.csv"
        random_file(src, 600, true, true)
        local p = build({ sources = { src }, format = "csv", lenient = true, max_bytes = 1500,
            key = LEADS, max_rejects = 1e9 }, false, dir)
        assert.is_true(p.keys.moved > 0)
        assert.is_true(#p.keys.examples > 0)
        assert.is_true(#p.rejects > 0)
        local mapped = 0
        for _, part in ipairs(p.parts) do
            if part.mapped then mapped = mapped + 1 end
        end
        assert.is_true(mapped > 0) -- parts with holes, written again
    end)
end)

describe("csv_keys_job", function()
    local core = require("marketo.core")
    local csv = require("marketo.csv")

    it("puts the parts' keys in the keyset in the order queued, as keys:scan does",
        function()
            local dir = files.tmpdir()
            local path = dir .. "/in.csv"
            local out = { "id,email" }
            for i = 1, 3000 do out[#out + 1] = ("%d,u%d@x.com"):format(i, i % 1700) end
            files.write(path, table.concat(out, "\n") .. "\n")
            local p = assert(csv.plan(path, { max_bytes = 4000 }))
            local function share(part)
                return assert(csv.open(path, { share = { offset = part.offset,
                    length = part.length, line = part.first_line } }))
            end
            local ref, ks = {}, csv.keyset(10, 3000)
            for k, part in ipairs(p.parts) do
                local r = share(part)
                local n = assert(r:scan_keys(ks, 2, k))
                for e = 1, n do ref[#ref + 1] = { ks:event(e) } end
                r:close()
            end
            local got, ks2 = {}, csv.keyset(10, 3000)
            local job = core.csv_keys_job(ks2, 2)
            local readers, queued = {}, 0
            for k = 1, #p.parts do
                while queued < #p.parts and job:room() > 0 do
                    queued = queued + 1
                    readers[queued] = share(p.parts[queued])
                    readers[queued]:queue_keys(job, { 2 }, queued)
                end
                local n = assert(job:take())
                for e = 1, n do got[#got + 1] = { ks2:event(e) } end
                readers[k]:close()
            end
            assert.has_error(function() job:take() end) -- nothing queued
            job:close()
            job:close()
            assert.matches("closed", tostring(job))
            files.rmdir(dir)
            assert.equal(1300, #ref)
            assert.same(ref, got)
        end)

    it("fails a part whose lines file is short, and raises when it has no room", function()
        local dir = files.tmpdir()
        local path, lines = dir .. "/in.csv", dir .. "/in.lines"
        files.write(path, "id,email\n1,a@x.com\n2,b@x.com\n3,c@x.com\n")
        files.write(lines, "7\n8\n")
        local ks = csv.keyset(0)
        local job = core.csv_keys_job(ks, 1)
        local readers = {}
        for i = 1, 2 do
            readers[i] = assert(csv.open(path))
            readers[i]:queue_keys(job, { 2 }, i, lines, 0)
        end
        local extra = assert(csv.open(path))
        assert.has_error(function() extra:queue_keys(job, { 2 }, 3) end)
        local ok, msg, code = job:take()
        assert.is_nil(ok)
        assert.equal("READ_ERROR", code)
        assert.matches("fewer lines", msg)
        job:close()
        for _, r in ipairs(readers) do r:close() end
        extra:close()
        ks:close()
        files.rmdir(dir)
    end)
end)
