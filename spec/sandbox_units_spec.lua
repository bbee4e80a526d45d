-- The sandbox's parts in-process, with a fake clock: the Lua CSV reader,
-- options, request ids, token lifetimes, the queue's timing, faults, the
-- schema file. (The HTTP behaviour is in the other sandbox_*_spec files.)
local sandbox = require("marketo.sandbox")
local csv = require("marketo.sandbox.csv")
local config = require("marketo.sandbox.config")
local envelope = require("marketo.sandbox.envelope")
local faults = require("marketo.sandbox.faults")
local helper = require("spec.support.sandbox")
local files = require("spec.support.files")

local function all_rows(text, delim)
    local r = csv.reader(text, delim or ",")
    local out = {}
    while true do
        local cells, err = r:row()
        if not cells then return out end
        out[#out + 1] = err and { cells, err } or cells
    end
end

-- An in-process sandbox on a clock the test moves.
local function fake(opts)
    local now = 1000
    opts = opts or {}
    opts.quiet = true
    opts.clock = function() return now end
    opts.wall = function() return 1700000000 + now end
    local sb = assert(sandbox.new(opts))
    local function call(req)
        req.headers = req.headers or {}
        req.query = req.query or ""
        local status, headers, body = sb:handle(req)
        return status, headers, body and helper.decode(body ~= "" and body or "null")
    end
    local token = select(3, call{ method = "GET", path = "/identity/oauth/token",
        params = { grant_type = "client_credentials", client_id = sb.conf.client_id,
                   client_secret = sb.conf.client_secret } })
    local api = {}
    function api.advance(s) now = now + s end
    function api.token(extra)
        local _, _, t = call{ method = "GET", path = "/identity/oauth/token",
            params = { grant_type = "client_credentials", client_id = sb.conf.client_id,
                       client_secret = sb.conf.client_secret } }
        return extra and t or t.access_token
    end
    function api.get(path, tok)
        return call{ method = "GET", path = path,
                     headers = { authorization = "Bearer " .. (tok or token.access_token) } }
    end
    function api.upload(path, data, fields)
        local body, ctype = helper.multipart(fields or { { "format", "csv" } },
            { data = data })
        return call{ method = "POST", path = path, body = body, headers = {
            authorization = "Bearer " .. token.access_token, ["content-type"] = ctype } }
    end
    api.sb = sb
    return api
end

local function rows(n)
    local out = { "email" }
    for i = 1, n do out[#out + 1] = ("u%d@example.com"):format(i) end
    return table.concat(out, "\n") .. "\n"
end

describe("marketo.sandbox.csv", function()
    it("reads quotes, doubled quotes, embedded newlines, CRLF and a BOM", function()
        assert.same({ { "a", "b" }, { "x, y", 'say "hi"' }, { "line\nbreak", "z" } },
            all_rows('\239\187\191a,b\r\n"x, y","say ""hi"""\r\n"line\nbreak",z\r\n'))
    end)

    it("reads the three delimiters and skips blank lines", function()
        assert.same({ { "a", "b" }, { "1", "2" } }, all_rows("a\tb\n\n1\t2\n", "\t"))
        assert.same({ { "a", "b" }, { "1", "" } }, all_rows("a;b\n1;\n", ";"))
    end)

    it("reports malformed quoted records", function()
        -- The characters after the closing quote are kept, so the failure row shows them.
        assert.same({ { "a" }, { { "xq", "y" }, "stray quote" } },
            all_rows('a\n"x"q,y\n'))
        assert.same({ { "a" }, { { "open\n" }, "unbalanced quote" } },
            all_rows('a\n"open\n'))
    end)

    it("quotes what needs it when writing", function()
        assert.equal('a,"b,c","d""e","f\ng"\n', csv.format_row({ "a", "b,c", 'd"e', "f\ng" }, ","))
        assert.equal("a,b;c\n", csv.format_row({ "a,b", "c" }, ";"))
    end)
end)

describe("marketo.sandbox.config", function()
    it("parses flags in both forms and checks types", function()
        local changes = assert(config.parse_args({ "sandbox", "--port", "0", "--speed=2.5",
            "--legacy-token", "--error-codes", "604,615" }, 2))
        assert.same({ port = "0", speed = "2.5", legacy_token = "true",
                      error_codes = "604,615" }, changes)
        local conf = config.defaults()
        assert(config.apply(conf, changes))
        assert.equal(2.5, conf.speed)
        assert.equal(true, conf.legacy_token)
        assert.same({ "604", "615" }, conf.error_codes)
        assert.same({ nil, "option port: expected a non-negative integer, got '1.5'" },
            { config.apply(conf, { port = 1.5 }) })
        assert.same({ nil, "option empty_files: expected one of 404|empty, got 'x'" },
            { config.apply(conf, { empty_files = "x" }) })
    end)
end)

describe("marketo.sandbox.envelope", function()
    it("makes request ids of a hex counter and hex milliseconds", function()
        local next_id = envelope.request_ids(0x1f00)
        assert.equal("1f01#18bcfe56800", next_id(1700000000000))
        assert.equal("1f02#18bcfe56801", next_id(1700000000001))
    end)
end)

describe("marketo.sandbox.faults", function()
    local function fates(seed, ids)
        local f = faults.new({ seed = seed, drop_rate = 0, error_rate = 0.5, lost_rate = 0,
            slow_rate = 0, error_codes = { "604", "611" }, job_fail_rate = 0.5 })
        local out = {}
        for i, id in ipairs(ids) do
            local fate = f:draw(id)
            out[i] = id .. ":" .. (fate.fault and fate.fault.code or "ok")
        end
        return out
    end

    it("draws the same faults for the same seed, others for another", function()
        local ids = {}
        for i = 1, 16 do ids[i] = "GET /bulk/v1/leads/batch/" .. (i % 3) .. ".json" end
        assert.same(fates(3, ids), fates(3, ids))
        assert.not_same(fates(3, ids), fates(4, ids))
        for n = 1, 50 do
            local x = faults.float(5, "x", n, 1)
            assert.truthy(x >= 0 and x < 1)
        end
    end)

    it("gives a call the same fate whatever order calls arrive in", function()
        local a = fates(9, { "A", "B", "A", "C", "B", "A" })
        local b = fates(9, { "C", "B", "B", "A", "A", "A" })
        local function by_id(list)
            local out = {}
            for _, item in ipairs(list) do
                local id, fate = item:match("^(%a+):(.*)$")
                out[id] = out[id] or {}
                table.insert(out[id], fate)
            end
            return out
        end
        assert.same(by_id(a), by_id(b))
    end)

    it("decides a job's failure by its upload and which job of it this is", function()
        local function jobs(order)
            local f = faults.new({ seed = 2, job_fail_rate = 0.5 })
            local out = {}
            for _, id in ipairs(order) do
                local fails, job_id = f:job(id)
                out[job_id] = fails
            end
            return out
        end
        local one = jobs({ "p1", "p2", "p1", "p3", "p2", "p1" })
        assert.same(one, jobs({ "p3", "p2", "p2", "p1", "p1", "p1" }))
        assert.is_boolean(one["job p1#3"])
    end)
end)

describe("marketo.sandbox identity", function()
    it("counts expires_in down and expires the token on time", function()
        local t = fake{ token_ttl = 100 }
        local first = t.token(true)
        assert.equal(99, first.expires_in)
        t.advance(40.5)
        local again = t.token(true)
        assert.equal(first.access_token, again.access_token)
        assert.equal(59, again.expires_in)
        t.advance(60)
        local _, _, res = t.get("/bulk/v1/leads/batch/1.json", first.access_token)
        assert.equal("602", res.errors[1].code)
        _, _, res = t.get("/bulk/v1/leads/batch/1.json", first.access_token)
        assert.equal("601", res.errors[1].code)
        assert.not_equal(first.access_token, t.token())
    end)
end)

describe("marketo.sandbox queue timing", function()
    it("imports at `speed` rows per second, 2 at a time, FIFO", function()
        local t = fake{ speed = 10 }
        local ids = {}
        for i = 1, 3 do
            local _, _, res = t.upload("/bulk/v1/leads.json", rows(20))
            ids[i] = res.result[1].batchId
        end
        local function states()
            local out = {}
            for i, id in ipairs(ids) do
                local _, _, res = t.get("/bulk/v1/leads/batch/" .. id .. ".json")
                local r = res.result[1]
                out[i] = r.status .. ":" .. r.numOfLeadsProcessed
            end
            return out
        end
        assert.same({ "Importing:0", "Importing:0", "Queued:0" }, states())
        t.advance(1)
        assert.same({ "Importing:10", "Importing:10", "Queued:0" }, states())
        -- a job ends with its last row; the freed slot goes to the next at once
        t.advance(1)
        assert.same({ "Complete:20", "Complete:20", "Importing:0" }, states())
        t.advance(0.5)
        assert.same({ "Complete:20", "Complete:20", "Importing:5" }, states())
        t.advance(1.5)
        assert.same({ "Complete:20", "Complete:20", "Complete:20" }, states())
        assert.equal(2, t.sb.stats.max_importing)
    end)

    it("forgets a batch after batch_days", function()
        local t = fake{ batch_days = 1 }
        local _, _, res = t.upload("/bulk/v1/leads.json", rows(1))
        local id = res.result[1].batchId
        t.advance(86401)
        local _, _, st = t.get("/bulk/v1/leads/batch/" .. id .. ".json", t.token())
        assert.same({ { code = "1013", message = "Object not found" } }, st.errors)
    end)
end)

describe("marketo.sandbox.source", function()
    it("reads with the C engine, and with the Lua reader what the engine refuses", function()
        local source = require("marketo.sandbox.source")
        assert.equal("marketo.csv", source.engine())
        -- a duplicate header is refused at create unless rows may fail instead
        local t = fake{ unknown_column = "fail" }
        local _, _, res = t.upload("/bulk/v1/leads.json",
            "email,firstName,firstName\na@example.com,One,Two\n\"open,x\n")
        t.advance(1)
        local _, _, st = t.get("/bulk/v1/leads/batch/" .. res.result[1].batchId .. ".json")
        assert.equal(1, st.result[1].numOfLeadsProcessed)
        assert.equal(1, st.result[1].numOfRowsFailed)
        assert.equal("Two", t.sb.store:lead_list()[1].firstName)
        local job = t.sb.queue:list()[1]
        assert.equal("email,firstName,firstName,Import Failure Reason\n"
            .. "\"open,x\n\",,,Malformed row: unbalanced quote\n", job:file("failures"))
    end)
end)

describe("marketo.sandbox schema", function()
    it("takes custom objects and lead fields from a schema table", function()
        local t = fake{ schema = {
            leadFields = { { name = "memberNo", type = "integer", displayName = "Member No" } },
            customObjects = { { apiName = "Boat_c", dedupeFields = { "hull", "port" },
                fields = { { name = "length", type = "float" } } } },
        } }
        local _, _, res = t.upload("/bulk/v1/customobjects/boat_C/import.json",
            "hull,port,length\nH1,Oslo,12.5\nH1,Bergen,x\nH1,Oslo,13\n")
        assert.equal("Boat_c", res.result[1].objectApiName)
        t.advance(1)
        local _, _, st = t.get("/bulk/v1/customobjects/boat_c/import/"
            .. res.result[1].batchId .. "/status.json")
        assert.equal(2, st.result[1].numOfObjectsProcessed)
        assert.equal(1, st.result[1].numOfRowsFailed)
        assert.same({ { hull = "H1", port = "Oslo", length = "13" } },
            t.sb.store:object_list("boat_c"))
        _, _, res = t.upload("/bulk/v1/leads.json", "memberNo,firstName\n7,Seven\n",
            { { "format", "csv" }, { "lookupField", "memberNo" } })
        assert.equal(true, res.success)
    end)

    it("loads a schema file, and says what is wrong with a bad one", function()
        local path = files.temp_file('{"customObjects":[{"apiName":"pet_c",'
            .. '"dedupeFields":["tag"]}]}')
        local sb = assert(sandbox.new{ schema = path })
        assert.equal("pet_c", sb.schema:object("PET_C").api_name)
        files.write(path, '{"leadFields":[{"name":"x","type":"blob"}]}')
        local ok, msg = sandbox.new{ schema = path }
        os.remove(path)
        assert.is_nil(ok)
        assert.equal(path .. ": unknown field type 'blob' for 'x'", msg)
    end)
end)
