-- A rehearsal of the docs' worked examples through the sandbox: the 3-lead
-- import (EL-BI) and the car_c custom object with the ` vin` typo (EL-BCOI),
-- step by step over HTTP, then once more through the runner with the real
-- client library (marketo.client) and a sandbox it starts itself
-- (marketo.sandbox.spawn).
local sandbox = require("spec.support.sandbox")

local LEADS = "email,firstName,lastName\nkenny@example.com,Kenny,Elkington\n"
    .. "edward@example.com,Edward,Unthank\njenny@example.com,Jenny,Chan\n"
local CARS = "color,make,model, vin\nred,bmw,2002,WBA4R7C55HK895912\n"
local CAR_FAILURES = "color,make,model, vin,Import Failure Reason\n"
    .. "red,bmw,2002,WBA4R7C55HK895912,missing.dedupe.fields\n"

local sb, dir

local write = require("spec.support.files").write

setup(function()
    sb = sandbox.start{ speed = 0 }
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    write(dir .. "/leads.csv", LEADS)
    write(dir .. "/cars.csv", CARS)
end)

teardown(function()
    if sb then sb.stop() end
    if dir then os.execute("rm -rf " .. dir) end
end)

describe("marketo.sandbox rehearsal of the docs", function()
    it("imports the 3 leads of the Bulk Import page", function()
        local token = sb.token()
        local _, created = sb.upload{ path = "/bulk/v1/leads.json", token = token,
            fields = { { "format", "csv" } }, data = LEADS, filename = "leads.csv" }
        local id = created.result[1].batchId
        local r = sb.wait("/bulk/v1/leads/batch/" .. id .. ".json", token)
        assert.equal(3, r.numOfLeadsProcessed)
        assert.equal("Import succeeded, 3 records imported (3 members)", r.message)
        assert.equal("Complete", r.status)
    end)

    it("fails the car with the ` vin` header: missing.dedupe.fields", function()
        local token = sb.token()
        local _, created = sb.upload{ path = "/bulk/v1/customobjects/car_c/import.json",
            token = token, fields = { { "format", "csv" } }, data = CARS }
        local id = created.result[1].batchId
        local r = sb.wait("/bulk/v1/customobjects/car_c/import/" .. id .. "/status.json", token)
        assert.equal("Complete", r.status)
        assert.equal(0, r.numOfObjectsProcessed)
        assert.equal(1, r.numOfRowsFailed)
        local status, body, headers = sb.api_get("/bulk/v1/customobjects/car_c/import/" .. id
            .. "/failures.json", token)
        assert.equal(200, status)
        assert.equal("text/csv;charset=UTF-8", headers["content-type"])
        assert.equal(CAR_FAILURES, body)
    end)

    it("runs both through the runner and the client library", function()
        local script = dir .. "/rehearse.lua"
        write(script, ([[
local child = require("marketo.sandbox").spawn{ config = { speed = 0 } }
local client = assert(require("marketo.client").new{ base_url = child.base_url,
    client_id = child.client_id, client_secret = child.client_secret })
local job = assert(client:import_leads{ path = %q })
local st = assert(job:wait{ timeout = 30 })
print(("LEADS %%s %%d %%s"):format(st.status, st.processed, st.message))
local cars = assert(client:import_custom_objects{ api_name = "car_c", path = %q })
st = assert(cars:wait{ timeout = 30 })
print(("CARS %%s %%d %%d"):format(st.status, st.processed, st.failed))
child.stop()
]]):format(dir .. "/leads.csv", dir .. "/cars.csv"))
        local p = assert(io.popen(os.getenv("MARKETO_BULK_BIN") .. " run " .. script
            .. " 2>&1; echo \"EXIT $?\""))
        local out = p:read("a")
        p:close()
        assert.equal("LEADS Complete 3 Import succeeded, 3 records imported (3 members)\n"
            .. "CARS Complete 0 1\nEXIT 0\n", out)
    end)
end)
