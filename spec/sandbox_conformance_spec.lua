-- Conformance of the sandbox to Marketo's Bulk Import docs (doc/sandbox.md
-- cites the pages), through the real HTTP layer of a real `marketo-bulk
-- sandbox` child: every endpoint and every error, with exact codes and JSON
-- shapes. The docs' own request/response pairs: sandbox_docs_pairs_spec.lua.
local sandbox = require("spec.support.sandbox")
local cjson = { decode = sandbox.decode, null = require("cjson").null }

local BASE = {
    speed = 0, token_ttl = 3600, expires_in_zero = false, legacy_token = false,
    rate_limit = 100, rate_window = 20, max_in_flight = 10, daily_quota = 50000,
    max_importing = 2, max_queue = 10, max_file_bytes = 10000000, size_limit_on = "file",
    latency = 0, empty_files = "404", blank_cells = "skip", header_case = "sensitive",
    unknown_column = "reject", require_format = false, unknown_path = "610",
    partitions = { "Default" }, count_refused = true, failed_imports = "part",
    unbalanced_quote = "rest",
    unknown_batch_code = "1013", error_rate = 0, drop_rate = 0, slow_rate = 0, lost_rate = 0,
    job_fail_rate = 0, program_statuses = {}, error_codes = { "502", "604", "608", "611", "615" },
}

local LEADS = "email,firstName,lastName\nkenny@example.com,Kenny,Elkington\n"
    .. "edward@example.com,Edward,Unthank\njenny@example.com,Jenny,Chan\n"

local REQUEST_ID = "^%x+#%x+$"

local sb, token

local function import_leads(data, fields, path)
    return sb.upload{ path = path or "/bulk/v1/leads.json", token = token,
                      fields = fields or { { "format", "csv" } }, data = data }
end

local function lead_status(id)
    return sb.wait("/bulk/v1/leads/batch/" .. id .. ".json", token)
end

local function assert_error(res, code, message)
    assert.is_string(res.requestId)
    assert.truthy(res.requestId:match(REQUEST_ID))
    assert.same({ requestId = res.requestId, success = false,
                  errors = { { code = code, message = message } } }, res)
end

local function assert_file(path, expected)
    local status, body, headers = sb.api_get(path, token)
    assert.equal(200, status)
    assert.equal("text/csv;charset=UTF-8", headers["content-type"])
    assert.equal(expected, body)
end

sandbox.each_test(BASE, function(s) sb, token = s, s.token() end)

describe("marketo.sandbox identity", function()
    it("answers GET with the token JSON of the docs", function()
        local status, headers, body = sb.http{ path = "/identity/oauth/token?grant_type="
            .. "client_credentials&client_id=" .. sb.client_id .. "&client_secret="
            .. sb.client_secret }
        assert.equal(200, status)
        assert.equal("application/json;charset=UTF-8", headers["content-type"])
        assert.equal("no-store", headers["cache-control"])
        local t = cjson.decode(body)
        assert.truthy(t.access_token:match("^%x+%-%x+%-%x+%-%x+%-%x+:sb$"))
        assert.same({ access_token = t.access_token, token_type = "bearer",
                      expires_in = t.expires_in, scope = "apis@sandbox.local" }, t)
        assert.truthy(body:find('"expires_in":%d+[,}]'))
        assert.truthy(t.expires_in <= 3599 and t.expires_in >= 3590)
    end)

    it("answers POST with a form body, with the same token and less time left", function()
        local status, _, body = sb.http{ method = "POST", path = "/identity/oauth/token",
            headers = { ["content-type"] = "application/x-www-form-urlencoded" },
            body = "grant_type=client_credentials&client_id=" .. sb.client_id
                .. "&client_secret=" .. sb.client_secret }
        assert.equal(200, status)
        assert.equal(token, cjson.decode(body).access_token)
        status, _, body = sb.http{ method = "POST", path = "/identity/oauth/token?grant_type="
            .. "client_credentials&client_id=" .. sb.client_id .. "&client_secret="
            .. sb.client_secret }
        assert.equal(200, status)
        assert.equal(token, cjson.decode(body).access_token)
    end)

    it("answers 401 with an OAuth error body for bad credentials", function()
        local status, _, body = sb.http{ path = "/identity/oauth/token?grant_type="
            .. "client_credentials&client_id=" .. sb.client_id .. "&client_secret=wrong" }
        assert.equal(401, status)
        assert.same({ error = "invalid_client", error_description = "Bad client credentials" },
            cjson.decode(body))
    end)

    it("answers 400 without a grant type", function()
        local status, _, body = sb.http{ path = "/identity/oauth/token?client_id="
            .. sb.client_id .. "&client_secret=" .. sb.client_secret }
        assert.equal(400, status)
        assert.same({ error = "invalid_request", error_description = "Missing grant type" },
            cjson.decode(body))
    end)

    it("can answer expires_in 0 while the token stays valid", function()
        sb.control{ expires_in_zero = true }
        local status, _, body = sb.http{ path = "/identity/oauth/token?grant_type="
            .. "client_credentials&client_id=" .. sb.client_id .. "&client_secret="
            .. sb.client_secret }
        assert.equal(200, status)
        assert.equal(0, cjson.decode(body).expires_in)
        assert.truthy(body:find('"expires_in":0[,}]'))
        local s, res = sb.api_get("/bulk/v1/leads/batch/1.json", token)
        assert.equal(200, s)
        assert.equal("1013", res.errors[1].code)
    end)

    it("expires a token after its lifetime: 602 on first use, 601 after, then a new one",
        function()
        sb.control{ token_ttl = 1 }
        local _, expired = sb.post("/__sandbox/expire-token")
        assert.equal(200, expired)
        local fresh = sb.token()
        assert.not_equal(token, fresh)
        local _, early = sb.api_get("/bulk/v1/leads/batch/1.json", fresh)
        assert.equal("1013", early.errors[1].code)
        sb.advance(1)
        local _, first = sb.api_get("/bulk/v1/leads/batch/1.json", fresh)
        assert_error(first, "602", "Access token expired")
        local _, second = sb.api_get("/bulk/v1/leads/batch/1.json", fresh)
        assert_error(second, "601", "Access token invalid")
        assert.not_equal(fresh, sb.token())
    end)

    it("is not counted against the limits", function()
        for _ = 1, 5 do sb.token() end
        local c = sb.inspect("counters")
        assert.equal(0, c.quota_used)
        assert.equal(0, c.in_window)
    end)
end)

describe("marketo.sandbox auth on bulk calls", function()
    it("answers 601 without a token", function()
        local status, res = sb.upload{ path = "/bulk/v1/leads.json", token = false,
            fields = { { "format", "csv" } }, data = LEADS }
        assert.equal(200, status)
        assert_error(res, "601", "Access token invalid")
    end)

    it("answers 601 for a token it never issued", function()
        local status, res = sb.api_get("/bulk/v1/leads/batch/1001.json", "nope:sb")
        assert.equal(200, status)
        assert_error(res, "601", "Access token invalid")
    end)

    it("refuses the legacy access_token parameter unless told to accept it", function()
        local status, _, body = sb.http{ path = "/bulk/v1/leads/batch/1.json?access_token="
            .. token }
        assert.equal(200, status)
        assert_error(cjson.decode(body), "601", "Access token invalid")
        sb.control{ legacy_token = true }
        _, _, body = sb.http{ path = "/bulk/v1/leads/batch/1.json?access_token=" .. token }
        assert_error(cjson.decode(body), "1013", "Object not found")
        local _, res = sb.upload{ path = "/bulk/v1/leads.json", token = false,
            fields = { { "format", "csv" }, { "access_token", token } }, data = LEADS }
        assert.equal(true, res.success)
        local log = sb.inspect("log")
        assert.equal("query", log[#log - 1].auth)
        assert.equal("form", log[#log].auth)
    end)
end)

describe("marketo.sandbox leads", function()
    it("creates a job with the shape of the docs and completes it", function()
        local status, res, headers = import_leads(LEADS)
        assert.equal(200, status)
        assert.equal("application/json;charset=UTF-8", headers["content-type"])
        assert.truthy(res.requestId:match(REQUEST_ID))
        local id = res.result[1].batchId
        assert.same({ requestId = res.requestId, success = true,
            result = { { batchId = id, importId = tostring(id), status = "Queued" } } }, res)
        local r = lead_status(id)
        assert.same({ batchId = id, importId = tostring(id), status = "Complete",
            numOfLeadsProcessed = 3, numOfRowsFailed = 0, numOfRowsWithWarning = 0,
            message = "Import succeeded, 3 records imported (3 members)" }, r)
        local _, _, raw = sb.http{ path = "/bulk/v1/leads/batch/" .. id .. ".json",
            headers = { authorization = "Bearer " .. token } }
        assert.truthy(raw:find('"batchId":' .. id .. '[,}]'))
        assert.falsy(raw:find("%d%.0[,}]"))
    end)

    it("answers 404 for failures and warnings when there are none", function()
        local _, res = import_leads(LEADS)
        local id = res.result[1].batchId
        lead_status(id)
        assert.equal(404, (sb.api_get("/bulk/v1/leads/batch/" .. id .. "/failures.json", token)))
        assert.equal(404, (sb.api_get("/bulk/v1/leads/batch/" .. id .. "/warnings.json", token)))
        sb.control{ empty_files = "empty" }
        assert_file("/bulk/v1/leads/batch/" .. id .. "/failures.json", "")
    end)

    it("takes its parameters from the query string too, in tsv and ssv", function()
        local _, res = import_leads("email\tfirstName\nt@example.com\tTab\n", {},
            "/bulk/v1/leads.json?format=tsv")
        assert.equal("Complete", lead_status(res.result[1].batchId).status)
        _, res = import_leads("email;firstName\ns@example.com;Semi\n", { { "format", "ssv" } })
        assert.equal("Complete", lead_status(res.result[1].batchId).status)
        local leads = sb.inspect("records/leads")
        assert.same({ { id = 1, email = "t@example.com", firstName = "Tab" },
                      { id = 2, email = "s@example.com", firstName = "Semi" } }, leads)
    end)

    it("defaults a missing format to csv, or answers 1002 when told to", function()
        local _, res = import_leads(LEADS, {})
        assert.equal(true, res.success)
        sb.control{ require_format = true }
        _, res = import_leads(LEADS, {})
        assert_error(res, "1002", "Missing value for the required parameter 'format'")
    end)

    it("answers 1001 for an unknown format or a bad listId", function()
        local _, res = import_leads(LEADS, { { "format", "xml" } })
        assert_error(res, "1001", "Invalid value 'xml'. Required of type 'csv|tsv|ssv'")
        _, res = import_leads(LEADS, { { "format", "csv" }, { "listId", "abc" } })
        assert_error(res, "1001", "Invalid value 'abc'. Required of type 'Integer'")
    end)

    it("answers 1011 for an unsupported lookupField", function()
        local _, res = import_leads(LEADS, { { "format", "csv" }, { "lookupField", "firstName" } })
        assert_error(res, "1011", "Field 'firstName' not supported")
    end)

    it("adds imported leads to the static list of listId", function()
        local _, res = import_leads(LEADS, { { "format", "csv" }, { "listId", "77" } })
        lead_status(res.result[1].batchId)
        assert.same({ 1, 2, 3 }, sb.inspect("records/lists/77"))
    end)

    it("updates only with lookupField=id", function()
        local _, res = import_leads(LEADS)
        lead_status(res.result[1].batchId)
        _, res = import_leads("id,firstName\n2,Ed\n99,Nobody\n",
            { { "format", "csv" }, { "lookupField", "id" } })
        local id = res.result[1].batchId
        local r = lead_status(id)
        assert.equal(1, r.numOfLeadsProcessed)
        assert.equal(1, r.numOfRowsFailed)
        assert_file("/bulk/v1/leads/batch/" .. id .. "/failures.json",
            "id,firstName,Import Failure Reason\n99,Nobody,Lead not found\n")
        assert.equal("Ed", sb.inspect("records/leads")[2].firstName)
        assert.equal(3, #sb.inspect("records/leads"))
    end)

    it("answers 612 for a body that is not multipart", function()
        local status, res = sb.upload{ path = "/bulk/v1/leads.json?format=csv", token = token,
            body = LEADS, headers = { ["content-type"] = "text/csv" } }
        assert.equal(200, status)
        assert_error(res, "612", "Invalid Content Type")
    end)

    it("answers 613 for broken multipart", function()
        local status, res = sb.upload{ path = "/bulk/v1/leads.json?format=csv", token = token,
            body = "--nope\r\nno headers end", headers = {
                ["content-type"] = "multipart/form-data; boundary=b0undary" } }
        assert.equal(200, status)
        assert_error(res, "613", "Invalid Multipart Request")
    end)

    it("answers 1002 when there is no part named file", function()
        local _, res = import_leads(nil, { { "format", "csv" } })
        assert_error(res, "1002", "Missing value for the required parameter 'file'")
    end)

    it("answers 1003 Empty File for an empty or header-only file", function()
        local _, res = import_leads("")
        assert_error(res, "1003", "Empty File")
        _, res = import_leads("email,firstName\n")
        assert_error(res, "1003", "Empty File")
    end)

    it("answers HTTP 413 over the size limit", function()
        sb.control{ max_file_bytes = 200 }
        local status = import_leads(LEADS .. ("x@example.com,X,Y\n"):rep(10))
        assert.equal(413, status)
        assert.equal(200, (import_leads(LEADS)))
        local log = sb.inspect("log")
        assert.equal(413, log[#log - 1].status)
        -- Measured on the whole body, the multipart framing counts too.
        sb.control{ max_file_bytes = #LEADS + 10, size_limit_on = "body" }
        assert.equal(413, (import_leads(LEADS)))
        sb.control{ size_limit_on = "file" }
        assert.equal(200, (import_leads(LEADS)))
    end)

    it("writes failures and warnings with the reasons of the docs", function()
        local data = "firstName,lastName,email,leadScore\n"
            .. "Aerys,Targaryen,aerys@targaryen.com,TEXT_VALUE_IN_INTEGER_FIELD\n"
            .. "Benji,Nordstrom,,5\n"
            .. "Bad,Row,x@example.com\n"
            .. "Rhae,Targaryen,INVALID_EMAIL,0\n"
            .. "\"Quote, Inc\",\"Say \"\"hi\"\"\",ok@example.com,7\n"
        local _, res = import_leads(data)
        local id = res.result[1].batchId
        local r = lead_status(id)
        assert.same({ batchId = id, importId = tostring(id), status = "Complete",
            numOfLeadsProcessed = 2, numOfRowsFailed = 3, numOfRowsWithWarning = 1,
            message = "Import completed with errors, 2 records imported (2 members), 3 failed, "
                .. "1 warning." }, r)
        assert_file("/bulk/v1/leads/batch/" .. id .. "/failures.json",
            "firstName,lastName,email,leadScore,Import Failure Reason\n"
            .. "Aerys,Targaryen,aerys@targaryen.com,TEXT_VALUE_IN_INTEGER_FIELD,"
            .. "Invalid data type in field Lead Score\n"
            .. "Benji,Nordstrom,,5,Value for lookup field 'email' not found\n"
            .. "Bad,Row,x@example.com,,Malformed row: 3 fields for 4 columns\n")
        assert_file("/bulk/v1/leads/batch/" .. id .. "/warnings.json",
            "firstName,lastName,email,leadScore,Import Warning Reason\n"
            .. "Rhae,Targaryen,INVALID_EMAIL,0,Invalid email address\n")
        local leads = sb.inspect("records/leads")
        assert.equal('Say "hi"', leads[2].lastName)
        assert.equal("Quote, Inc", leads[2].firstName)
    end)

    it("keeps or clears values for blank cells as configured", function()
        local _, res = import_leads("email,firstName\nb@example.com,Before\n")
        lead_status(res.result[1].batchId)
        _, res = import_leads("email,firstName\nb@example.com,\n")
        lead_status(res.result[1].batchId)
        assert.equal("Before", sb.inspect("records/leads")[1].firstName)
        sb.control{ blank_cells = "null" }
        _, res = import_leads("email,firstName\nb@example.com,\n")
        lead_status(res.result[1].batchId)
        assert.equal(cjson.null, sb.inspect("records/leads")[1].firstName)
    end)

    it("answers 1013 for an unknown batchId, or 610 when told to", function()
        local status, res = sb.api_get("/bulk/v1/leads/batch/424242.json", token)
        assert.equal(200, status)
        assert_error(res, "1013", "Object not found")
        status, res = sb.api_get("/bulk/v1/leads/batch/424242/failures.json", token)
        assert.equal(200, status)
        assert_error(res, "1013", "Object not found")
        sb.control{ unknown_batch_code = "610" }
        status, res = sb.api_get("/bulk/v1/leads/batch/424242/warnings.json", token)
        assert.equal(200, status)
        assert_error(res, "610", "Requested resource not found")
    end)

    it("answers 605 for a wrong method and 610 for an unknown path", function()
        local _, res = sb.api_get("/bulk/v1/leads.json", token)
        assert_error(res, "605", "HTTP Method not supported")
        _, res = sb.api_get("/bulk/v1/nothing.json", token)
        assert_error(res, "610", "Requested resource not found")
        sb.control{ unknown_path = "404" }
        assert.equal(404, (sb.api_get("/bulk/v1/nothing.json", token)))
    end)
end)

describe("marketo.sandbox custom objects", function()
    local function co_status(name, id)
        return sb.wait("/bulk/v1/customobjects/" .. name .. "/import/" .. id .. "/status.json",
            token)
    end

    it("creates and completes a job with the shapes of the docs", function()
        local status, res = sb.upload{ path = "/bulk/v1/customobjects/car_c/import.json",
            token = token, fields = { { "format", "csv" } },
            data = "color,make,model,vin\nred,bmw,2002,WBA4R7C55HK895912\n"
                .. "blue,bmw,2004,WBA4R7C30HK896061\nsilver,bmw,2002,WBY1Z4C55EV273078\n" }
        assert.equal(200, status)
        local id = res.result[1].batchId
        assert.same({ requestId = res.requestId, success = true,
            result = { { batchId = id, status = "Queued", objectApiName = "car_c" } } }, res)
        local r = co_status("CAR_C", id)
        assert.truthy(r.importTime:match("^%d+ second%(s%)$"))
        assert.same({ batchId = id, operation = "import", status = "Complete",
            objectApiName = "car_c", numOfObjectsProcessed = 3, numOfRowsFailed = 0,
            numOfRowsWithWarning = 0, importTime = r.importTime,
            message = "Import succeeded, 3 records imported (3 members)" }, r)
        assert.equal(404, (sb.api_get("/bulk/v1/customobjects/car_c/import/" .. id
            .. "/failures.json", token)))
        assert.equal(404, (sb.api_get("/bulk/v1/customobjects/Car_C/import/" .. id
            .. "/warnings.json", token)))
        assert.equal(3, #sb.inspect("records/customobjects/car_c"))
    end)

    it("fails rows without the dedupe field: missing.dedupe.fields", function()
        local _, res = sb.upload{ path = "/bulk/v1/customobjects/car_c/import.json",
            token = token, fields = { { "format", "csv" } },
            data = "color,make,model, vin\nred,bmw,2002,WBA4R7C55HK895912\n" }
        local id = res.result[1].batchId
        local r = co_status("car_c", id)
        assert.equal("Import completed with errors, 0 records imported (0 members), 1 failed",
            r.message)
        assert_file("/bulk/v1/customobjects/car_c/import/" .. id .. "/failures.json",
            "color,make,model, vin,Import Failure Reason\n"
            .. "red,bmw,2002,WBA4R7C55HK895912,missing.dedupe.fields\n")
    end)

    it("answers 1013 for an unknown object or a batch of another object", function()
        local _, res = sb.upload{ path = "/bulk/v1/customobjects/boat_c/import.json",
            token = token, fields = { { "format", "csv" } }, data = "vin\n1\n" }
        assert_error(res, "1013", "Object not found")
        _, res = import_leads(LEADS)
        local _, st = sb.api_get("/bulk/v1/customobjects/car_c/import/"
            .. res.result[1].batchId .. "/status.json", token)
        assert_error(st, "1013", "Object not found")
    end)
end)

describe("marketo.sandbox program members", function()
    local function pm_import(fields, data)
        return sb.upload{ path = "/bulk/v1/program/1044/members/import.json", token = token,
            fields = fields, data = data }
    end

    it("imports members with the shapes and warning file of the docs", function()
        local status, res = pm_import({ { "format", "csv" }, { "programMemberStatus", "Member" } },
            "firstName,lastName,email,title,company,leadScore\n"
            .. "Aerys,Targaryen,INVALID_EMAIL,Targaryen,House Targaryen,0\n")
        assert.equal(200, status)
        local id = res.result[1].batchId
        assert.same({ requestId = res.requestId, success = true,
            result = { { batchId = id, importId = tostring(id), status = "Queued" } } }, res)
        local r = sb.wait("/bulk/v1/program/members/import/" .. id .. "/status.json", token)
        assert.same({ batchId = id, importId = tostring(id), status = "Complete",
            numOfLeadsProcessed = 1, numOfRowsFailed = 0, numOfRowsWithWarning = 1,
            message = "Import succeeded, 1 records imported (1 members), 1 warning." }, r)
        assert_file("/bulk/v1/program/members/import/" .. id .. "/warnings.json",
            "firstName,lastName,email,title,company,leadScore,Import Warning Reason\n"
            .. "Aerys,Targaryen,INVALID_EMAIL,Targaryen,House Targaryen,0,Invalid email address\n")
        assert.equal(404, (sb.api_get("/bulk/v1/program/members/import/" .. id
            .. "/failures.json", token)))
        local members = sb.inspect("records/programs/1044/members")
        assert.equal(1, #members)
        assert.equal("Member", members[1].status)
        assert.equal("INVALID_EMAIL", members[1].email)
    end)

    it("needs programMemberStatus (1002) from the known statuses (1025)", function()
        local _, res = pm_import({ { "format", "csv" } }, "email\na@example.com\n")
        assert_error(res, "1002", "Missing value for the required parameter 'programMemberStatus'")
        sb.control{ program_statuses = { "Member", "Registered" } }
        _, res = pm_import({ { "format", "CSV" }, { "programMemberStatus", "Dreaming" } },
            "email\na@example.com\n")
        assert_error(res, "1025", "Program status not found")
        _, res = pm_import({ { "format", "CSV" }, { "programMemberStatus", "registered" } },
            "email\na@example.com\n")
        assert.equal(true, res.success)
    end)

    it("fails rows without an email", function()
        local _, res = pm_import({ { "format", "csv" }, { "programMemberStatus", "Member" } },
            "firstName,email\nNo,\n")
        local id = res.result[1].batchId
        assert.equal(1, sb.wait("/bulk/v1/program/members/import/" .. id .. "/status.json",
            token).numOfRowsFailed)
        assert_file("/bulk/v1/program/members/import/" .. id .. "/failures.json",
            "firstName,email,Import Failure Reason\nNo,,Value for lookup field 'email' not found\n")
    end)
end)
