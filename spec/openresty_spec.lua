-- The OpenResty example end to end: nginx (one worker) runs the admin app of
-- examples/openresty, which imports a file into a sandbox on cosockets, while
-- this spec keeps firing requests at /ping on the same worker.
local socket = require("socket")
local sandbox = require("spec.support.sandbox")
local nginx = require("spec.support.nginx")

local ROWS = 3000
local SPEED = 1000        -- rows per second per job: the import takes a few seconds
local PART_BYTES = 30000  -- about 800 rows a part: four jobs, two at a time

local function build_luajit_core()
    local ok = os.execute(("make -s -C '%s' LUA=luajit build/luajit/marketo/core.so")
        :format(nginx.ROOT))
    assert(ok == true, "could not build build/luajit/marketo/core.so")
end

local function write_leads(dir)
    local f = assert(io.open(dir .. "/leads.csv", "wb"))
    f:write("email,firstName,lastName\n")
    for i = 1, ROWS do f:write(("lead%d@example.com,First%d,Last%d\n"):format(i, i, i)) end
    f:close()
end

local function progress(n, id)
    -- A worker that the import blocks does not answer this either.
    local status, body = n.request("GET", "/imports/" .. id, 10)
    assert(status == 200, ("GET /imports/%s: %s %s"):format(id, tostring(status), body))
    return sandbox.decode(body)
end

-- Pings until the import ends; a ping counts as answered during the import
-- when a progress request sent after its answer still shows the import going.
local function ping_while_importing(n, id, deadline)
    local counts = { during = 0, failed = 0, polls = 0 }
    local pending = 0
    while true do
        local status = n.request("GET", "/ping", 10)
        if status == 200 then pending = pending + 1 else counts.failed = counts.failed + 1 end
        local p = progress(n, id)
        counts.polls = counts.polls + 1
        if p.state ~= "planning" and p.state ~= "running" then return counts, p end
        counts.during, pending = counts.during + pending, 0
        assert(socket.gettime() < deadline, "the import did not end in time")
    end
end

local function stored_emails(sb)
    local body, status = sb.get("/__sandbox/records/leads")
    assert.equal(200, status)
    local seen = {}
    for _, lead in ipairs(sandbox.decode(body)) do seen[lead.email] = true end
    return seen
end

describe("examples/openresty in nginx", function()
    local sb, dir

    setup(function()
        build_luajit_core()
        sb = sandbox.start{ speed = SPEED }
        dir = os.tmpname()
        os.remove(dir)
        -- Journals and reports are written by the worker, which runs as
        -- nobody when the spec runs as root.
        assert(os.execute("mkdir -p '" .. dir .. "/work' && chmod 0777 '" .. dir .. "/work'"))
        write_leads(dir)
    end)

    teardown(function()
        if sb then sb.stop() end
        if dir then os.execute("rm -rf '" .. dir .. "'") end
    end)

    it("imports a file in the background while the worker keeps answering", function()
        local n = nginx.start{ env = {
            MARKETO_BASE_URL = sb.base_url, MARKETO_CLIENT_ID = sb.client_id,
            MARKETO_CLIENT_SECRET = sb.client_secret, MARKETO_IMPORT_DIR = dir,
            MARKETO_WORK_DIR = dir .. "/work",
        } }
        finally(function()
            n.stop()
            os.execute("rm -rf '" .. n.prefix .. "'")
        end)
        local started = socket.gettime()
        local status, body = n.request("POST", ("/imports?file=leads.csv&lookupField=email"
            .. "&part_bytes=%d&poll=0.2"):format(PART_BYTES))
        assert.equal(202, status, body)
        local id = sandbox.decode(body).id

        local counts, p = ping_while_importing(n, id, started + 60)
        local took = socket.gettime() - started
        print(("openresty: %d /ping answered during the %.1f s import (%d progress polls), "
            .. "%d failed; %d rows in %d parts"):format(counts.during, took, counts.polls,
            counts.failed, p.processed, p.parts))

        assert.equal("done", p.state, p.error or n.log())
        assert.equal(0, counts.failed)
        -- A worker blocked by the import answers none until it ends (or one
        -- between blocking calls); a free one answers hundreds a second.
        assert.is_true(counts.during >= 100, "only " .. counts.during .. " answered")
        assert.is_true(took >= 1, "no import window: " .. took .. " s")
        assert.is_true(p.parts >= 3, p.parts .. " parts")
        assert.same({ parts_done = p.parts, rows = ROWS, processed = ROWS, failed = 0 },
            { parts_done = p.parts_done, rows = p.rows, processed = p.processed,
              failed = p.failed })

        local seen = stored_emails(sb)
        local missing = {}
        for i = 1, ROWS do
            local email = ("lead%d@example.com"):format(i)
            if not seen[email] then missing[#missing + 1] = email end
        end
        assert.same({}, missing)
        assert.is_nil(n.log():find("%[error%]"), n.log())
    end)
end)
