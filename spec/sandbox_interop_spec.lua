-- Clients we did not write, against a real sandbox child: curl doing what the
-- docs show, and a Python 3 script on Debian's python3-requests.
local sandbox = require("spec.support.sandbox")

local sb, dir

local DATA = "email,firstName,lastName,leadScore\n"
    .. "kenny@example.com,Kenny,Elkington,10\n"
    .. "edward@example.com,Edward,Unthank,20\n"
    .. "jenny@example.com,Jenny,Chan,NOT_A_NUMBER\n"

local function run(cmd)
    local env = ("MARKETO_BASE_URL='%s' MARKETO_CLIENT_ID='%s' MARKETO_CLIENT_SECRET='%s' ")
        :format(sb.base_url, sb.client_id, sb.client_secret)
    local p = assert(io.popen(env .. cmd .. " 2>&1; echo \"EXIT $?\""))
    local out = p:read("a")
    p:close()
    return out
end

setup(function()
    sb = sandbox.start{ speed = 0 }
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/leads.csv", "wb"))
    f:write(DATA)
    f:close()
end)

teardown(function()
    if sb then sb.stop() end
    if dir then os.execute("rm -rf " .. dir) end
end)

before_each(function() sb.reset() end)

local FAILURES = "email,firstName,lastName,leadScore,Import Failure Reason\n"
    .. "jenny@example.com,Jenny,Chan,NOT_A_NUMBER,Invalid data type in field Lead Score\n"

describe("marketo.sandbox with curl as the docs use it", function()
    it("imports leads: token, -F file=@leads.csv, status, failures", function()
        local out = run("sh spec/interop/curl_import.sh " .. dir .. "/leads.csv")
        assert.truthy(out:find("EXIT 0\n", 1, true), out)
        local token = sandbox.decode(out:match("TOKEN ([^\n]+)"))
        assert.same({ access_token = "(hidden)", token_type = "bearer",
                      expires_in = token.expires_in, scope = "apis@sandbox.local" }, token)
        local created = sandbox.decode(out:match("CREATED ([^\n]+)"))
        local id = created.result[1].batchId
        assert.same({ { batchId = id, importId = tostring(id), status = "Queued" } },
            created.result)
        local status = sandbox.decode(out:match("STATUS ([^\n]+)"))
        assert.same({ { batchId = id, importId = tostring(id), status = "Complete",
            numOfLeadsProcessed = 2, numOfRowsFailed = 1, numOfRowsWithWarning = 0,
            message = "Import completed with errors, 2 records imported (2 members), 1 failed" } },
            status.result)
        assert.truthy(out:find("FAILURES 200 text/csv;charset=UTF-8\n" .. FAILURES, 1, true), out)
        local log = sb.inspect("log")
        assert.same({ { name = "format", size = 3 },
                      { name = "file", filename = "leads.csv", size = #DATA } }, log[2].parts)
        assert.equal(2, #sb.inspect("records/leads"))
    end)
end)

describe("marketo.sandbox with python3-requests", function()
    it("runs a whole lead import", function()
        local out = run("/usr/bin/python3 spec/interop/python_import.py " .. dir .. "/leads.csv")
        assert.truthy(out:find("EXIT 0\n", 1, true), out)
        local res = sandbox.decode(out:match("^([^\n]+)"))
        local id = res.created.batchId
        assert.equal("bearer", res.token_type)
        assert.same({ batchId = id, importId = tostring(id), status = "Queued" }, res.created)
        assert.same({ batchId = id, importId = tostring(id), status = "Complete",
            numOfLeadsProcessed = 2, numOfRowsFailed = 1, numOfRowsWithWarning = 0,
            message = "Import completed with errors, 2 records imported (2 members), 1 failed" },
            res.status)
        assert.same({ status = 200, content_type = "text/csv;charset=UTF-8", text = FAILURES },
            res.files.failures)
        assert.equal(404, res.files.warnings.status)
        local log = sb.inspect("log")
        assert.equal("identity", log[1].auth)
        assert.equal("POST", log[1].method)
        assert.equal("bearer", log[2].auth)
        assert.equal("leads.csv", log[2].parts[2].filename)
        local leads = sb.inspect("records/leads")
        assert.same({ "kenny@example.com", "edward@example.com" },
            { leads[1].email, leads[2].email })
    end)
end)
