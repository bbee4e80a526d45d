-- The sandbox is never kinder than Marketo (doc/sandbox.md, "The rule"):
-- where the docs speak it does what they say, where they are silent it takes
-- the harder case by default and offers the other as an option. One describe
-- per item of issue #18, each through a real `marketo-bulk sandbox` child.
local sandbox = require("spec.support.sandbox")

-- Every option a test here turns, at its default.
local BASE = {
    speed = 0, rate_limit = 100, rate_window = 20, max_in_flight = 10, daily_quota = 50000,
    max_file_bytes = 10000000, size_limit_on = "file", header_case = "sensitive",
    unknown_column = "reject", partitions = { "Default" }, count_refused = true,
    failed_imports = "part", unbalanced_quote = "rest", job_fail_rate = 0, empty_files = "404",
    error_rate = 0, drop_rate = 0, slow_rate = 0, lost_rate = 0,
}

local sb, token
sandbox.each_test(BASE, function(s) sb, token = s, s.token() end)

local function import_leads(data, fields, opts)
    opts = opts or {}
    return sb.upload{ path = opts.path or "/bulk/v1/leads.json", token = opts.token or token,
                      fields = fields or { { "format", "csv" } }, data = data }
end

local function import_members(data, program)
    return sb.upload{ path = "/bulk/v1/program/" .. (program or "1044") .. "/members/import.json",
        token = token, fields = { { "format", "csv" }, { "programMemberStatus", "Member" } },
        data = data }
end

local function lead_status(id)
    return sb.wait("/bulk/v1/leads/batch/" .. id .. ".json", token)
end

local function refused(res, code, message)
    assert.equal(false, res.success)
    assert.same({ { code = code, message = message } }, res.errors)
end

local function failures(id)
    local status, body = sb.api_get("/bulk/v1/leads/batch/" .. id .. "/failures.json", token)
    return status, body
end

describe("1. header names (leads, program members)", function()
    -- Each file (a leads or a members import) is refused with its code and
    -- message, and none makes a job.
    local function all_refused(cases)
        for _, c in ipairs(cases) do
            local import = c.leads and import_leads or import_members
            local _, res = import(c.leads or c.members)
            refused(res, c[1], c[2])
        end
        assert.same({}, sb.inspect("jobs"))
    end

    it("refuses an unknown column, a wrong delimiter and a mis-cased name with 1006", function()
        all_refused{
            { "1006", "Field 'favouriteColour' not found",
              leads = "email,favouriteColour\na@example.com,red\n" },
            { "1006", "Field 'email;firstName' not found",
              leads = "email;firstName\na@example.com;Ann\n" },
            { "1006", "Field 'FirstName' not found",
              leads = "email,FirstName\na@example.com,Ann\n" },
            { "1006", "Field 'seat' not found", members = "email,seat\na@example.com,1\n" },
        }
    end)

    it("refuses a column named twice with 1003", function()
        all_refused{
            { "1003", "Duplicate field 'email'",
              leads = "email,firstName,email\na@example.com,Ann,b@example.com\n" },
            { "1003", "Duplicate field 'email'",
              members = "email,email\na@example.com,a@example.com\n" },
        }
    end)

    it("matches case-insensitively, or fails the rows instead, when told to", function()
        sb.control{ header_case = "insensitive" }
        local _, res = import_leads("EMAIL,FirstName\nc@example.com,Case\n")
        assert.equal(1, lead_status(res.result[1].batchId).numOfLeadsProcessed)
        _, res = import_leads("email,firstName,Email\nc@example.com,Case,d@example.com\n")
        refused(res, "1003", "Duplicate field 'Email'")
        sb.control{ header_case = "sensitive", unknown_column = "fail" }
        _, res = import_leads("email,favouriteColour\na@example.com,red\n")
        local id = res.result[1].batchId
        assert.equal(1, lead_status(id).numOfRowsFailed)
        local _, body = failures(id)
        assert.equal("email,favouriteColour,Import Failure Reason\n"
            .. "a@example.com,red,Field 'favouriteColour' not found\n", body)
    end)

    it("keeps the documented custom-object case: ' vin' makes a job whose rows fail", function()
        local path = "/bulk/v1/customobjects/car_c/import.json"
        local _, res = sb.upload{ path = path, token = token, fields = { { "format", "csv" } },
            data = "color, vin\nred,WBA4R7C55HK895912\n" }
        assert.equal(true, res.success)
        -- with its dedupe field there, an unknown name is refused as for leads
        _, res = sb.upload{ path = path, token = token, fields = { { "format", "csv" } },
            data = "vin,colour\nWBA4R7C55HK895912,red\n" }
        refused(res, "1006", "Field 'colour' not found")
    end)
end)

describe("2. parameters", function()
    it("answers 1008 for a partition the instance does not have", function()
        local _, res = import_leads("email\na@example.com\n",
            { { "format", "csv" }, { "partitionName", "Europe" } })
        refused(res, "1008", "Access denied to partition 'Europe'")
        _, res = import_leads("email\na@example.com\n",
            { { "format", "csv" }, { "partitionName", "Default" } })
        assert.equal(true, res.success)
        sb.control{ partitions = { "Default", "Europe" } }
        _, res = import_leads("email\na@example.com\n",
            { { "format", "csv" }, { "partitionName", "Europe" } })
        assert.equal(true, res.success)
    end)

    it("answers 1001 for a listId or programId that is not a positive integer", function()
        for _, bad in ipairs({ "abc", "0", "-3", "1.5", "99999999999" }) do
            local _, res = import_leads("email\na@example.com\n",
                { { "format", "csv" }, { "listId", bad } })
            refused(res, "1001", ("Invalid value '%s'. Required of type 'Integer'"):format(bad))
            _, res = import_members("email\na@example.com\n", bad)
            refused(res, "1001", ("Invalid value '%s'. Required of type 'Integer'"):format(bad))
        end
    end)

    it("answers 1006 for a lookupField that is no field, 1011 for one that is no key", function()
        local _, res = import_leads("email\na@example.com\n",
            { { "format", "csv" }, { "lookupField", "nope" } })
        refused(res, "1006", "Field 'nope' not found")
        _, res = import_leads("email\na@example.com\n",
            { { "format", "csv" }, { "lookupField", "firstName" } })
        refused(res, "1011", "Field 'firstName' not supported")
    end)
end)

describe("3. size", function()
    -- A file of exactly `size` bytes whose header is refused once the size
    -- has passed, so no job is left importing it.
    local function file_of(size)
        local head = "nope\n"
        local row = ("x"):rep(99) .. "\n"
        local n = (size - #head) // #row
        return head .. row:rep(n) .. ("y"):rep(size - #head - n * #row)
    end

    it("takes 10,000,000 bytes of file and answers HTTP 413 past them", function()
        local _, res = import_leads(file_of(10000000))
        refused(res, "1006", "Field 'nope' not found")
        local status = import_leads(file_of(10000001))
        assert.equal(413, status)
        sb.control{ max_file_bytes = 10485760 }
        _, res = import_leads(file_of(10485760))
        refused(res, "1006", "Field 'nope' not found")
    end)

    it("checks the size before the token, as a proxy in front of Marketo would", function()
        local status = import_leads(file_of(10000001), nil, { token = "not-a-token" })
        assert.equal(413, status)
        local log = sb.inspect("log")
        assert.equal("413", log[#log].code)
        assert.equal(0, sb.inspect("counters").in_window)
    end)
end)

describe("4. failures and warnings upon completion", function()
    it("answers 404 for them while the job is Queued or Importing", function()
        sb.control{ speed = 1 }
        sb.freeze()
        local _, res = import_leads("email,leadScore\na@example.com,x\nb@example.com,1\n"
            .. "c@example.com,2\n")
        local id = res.result[1].batchId
        assert.equal(404, (failures(id)))
        sb.advance(1.5)
        local _, st = sb.api_get("/bulk/v1/leads/batch/" .. id .. ".json", token)
        assert.equal("Importing", st.result[1].status)
        assert.equal(1, st.result[1].numOfRowsFailed)
        assert.equal(404, (failures(id)))
        sb.advance(5)
        assert.equal("Complete", lead_status(id).status)
        local status, body = failures(id)
        assert.equal(200, status)
        assert.equal("email,leadScore,Import Failure Reason\n"
            .. "a@example.com,x,Invalid data type in field Lead Score\n", body)
    end)
end)

describe("5. refused calls count", function()
    local function get()
        local _, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        return res.errors[1].code
    end

    it("keeps a client that hammers refused; the older reading lets it in", function()
        for _, count in ipairs({ true, false }) do
            sb.reset()
            sb.control{ rate_limit = 2, rate_window = 20, count_refused = count }
            sb.freeze()
            assert.equal("1013", get())
            assert.equal("1013", get())
            sb.advance(1)
            for _ = 1, 3 do assert.equal("606", get()) end
            -- the two admitted calls have left the window; the refused ones have not
            sb.advance(19.5)
            assert.equal(count and "606" or "1013", get())
        end
    end)
end)

describe("6. a Failed job", function()
    it("has imported part of its rows, or none when told so", function()
        sb.control{ job_fail_rate = 1 }
        local rows = "email\na@example.com\nb@example.com\nc@example.com\nd@example.com\n"
        local _, res = import_leads(rows)
        local r = lead_status(res.result[1].batchId)
        assert.equal("Failed", r.status)
        assert.equal(2, r.numOfLeadsProcessed)
        assert.equal(2, #sb.inspect("records/leads"))
        sb.reset()
        sb.control{ failed_imports = "none" }
        _, res = import_leads(rows)
        r = lead_status(res.result[1].batchId)
        assert.equal("Failed", r.status)
        assert.equal(0, r.numOfLeadsProcessed)
        assert.equal(0, #sb.inspect("records/leads"))
    end)
end)

describe("7. values", function()
    it("checks each value against its field's type", function()
        local bad = { " 5", "5 ", "+5", "1.0", "2147483648", "-2147483649", "0x10", "" }
        local good = { "0", "-2147483648", "2147483647", "007" }
        local lines = { "email,leadScore,annualRevenue,dateOfBirth" }
        local function add(email, score, revenue, dob)
            lines[#lines + 1] = table.concat({ email, score, revenue, dob }, ",")
        end
        for i, v in ipairs(bad) do
            if v ~= "" then add(("bad%d@example.com"):format(i), v, "", "") end
        end
        for i, v in ipairs(good) do add(("good%d@example.com"):format(i), v, "", "") end
        for i, v in ipairs({ " 12", "nan", "inf", "0x10", "1e", "." }) do
            add(("money%d@example.com"):format(i), "", v, "")
        end
        add("rich@example.com", "", "-1.5e3", "")
        add("leap@example.com", "", "", "2024-02-29")
        add("noleap@example.com", "", "", "2023-02-29")
        local _, res = import_leads(table.concat(lines, "\n") .. "\n")
        local id = res.result[1].batchId
        local r = lead_status(id)
        assert.equal(#good + 2, r.numOfLeadsProcessed)
        assert.equal(#bad - 1 + 6 + 1, r.numOfRowsFailed)
        local _, body = failures(id)
        assert.truthy(body:find("bad1@example.com, 5,,,Invalid data type in field Lead Score\n",
            1, true))
        assert.truthy(body:find("money1@example.com,, 12,,Invalid data type in field "
            .. "Annual Revenue\n", 1, true))
        assert.truthy(body:find("noleap@example.com,,,2023-02-29,Invalid data type in field "
            .. "Date of Birth\n", 1, true))
    end)

    it("warns on an email that is not local@domain.tld in plain ASCII, and imports it",
        function()
        local warned = { "a@b", "a b@c.co", "\195\164@b.co", " a@b.co", "a..b@c.co", ".a@b.co",
                         "a@b.co.", "a@@b.co" }
        local lines = { "email" }
        for _, e in ipairs(warned) do lines[#lines + 1] = '"' .. e .. '"' end
        lines[#lines + 1] = "Fine.Name+tag@Example.CO.uk"
        local _, res = import_leads(table.concat(lines, "\n") .. "\n")
        local r = lead_status(res.result[1].batchId)
        assert.equal(#warned + 1, r.numOfLeadsProcessed)
        assert.equal(#warned, r.numOfRowsWithWarning)
        assert.equal(0, r.numOfRowsFailed)
    end)
end)

describe("8. malformed rows", function()
    local DATA = 'email,firstName\na@example.com,"Ann\nb@example.com,Bob\nc@example.com,Cy\n'

    it("lets a quote that never closes take the rest of the file, or only its line", function()
        local _, res = import_leads(DATA)
        local id = res.result[1].batchId
        local r = lead_status(id)
        -- three rows sent, one counted: the two it swallowed are counted nowhere
        assert.equal(0, r.numOfLeadsProcessed)
        assert.equal(1, r.numOfRowsFailed)
        local _, body = failures(id)
        assert.truthy(body:find("Malformed row: unbalanced quote\n$"))
        sb.control{ unbalanced_quote = "line" }
        _, res = import_leads(DATA)
        id = res.result[1].batchId
        r = lead_status(id)
        assert.equal(2, r.numOfLeadsProcessed)
        assert.equal(1, r.numOfRowsFailed)
        _, body = failures(id)
        assert.equal("email,firstName,Import Failure Reason\n"
            .. "a@example.com,Ann,Malformed row: unbalanced quote\n", body)
    end)
end)
