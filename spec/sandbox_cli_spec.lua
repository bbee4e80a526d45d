-- `marketo-bulk sandbox` as a user runs it: help, flags, the three lines,
-- clean stops on SIGINT/SIGTERM, and stopping by itself.
local sandbox = require("spec.support.sandbox")
local socket = require("socket")

local BIN = os.getenv("MARKETO_BULK_BIN")

local files = require("spec.support.files")
local read = files.read

-- `marketo-bulk sandbox ...` to its end: { status, out, err }.
local function run(...)
    return require("spec.support.cli").run({ "sandbox", ... })
end

-- Starts the sandbox in the background; returns { pid, dir } once it printed
-- its three lines (or after 10 s).
local function start(args)
    local dir = files.tmpdir()
    os.execute(("(sh -c 'echo $$ > %s/pid; exec %s sandbox %s' > %s/out 2> %s/err;"
        .. " echo $? > %s/rc) &"):format(dir, BIN, args, dir, dir, dir))
    local deadline = socket.gettime() + 10
    while socket.gettime() < deadline do
        local out = read(dir .. "/out") or ""
        local _, lines = out:gsub("\n", "")
        if lines >= 3 or read(dir .. "/rc") then break end
        socket.sleep(0.02)
    end
    return { pid = tonumber(read(dir .. "/pid")), dir = dir }
end

local function wait_rc(proc, seconds)
    local deadline = socket.gettime() + seconds
    while socket.gettime() < deadline do
        local rc = read(proc.dir .. "/rc")
        if rc and rc ~= "" then return tonumber(rc) end
        socket.sleep(0.02)
    end
    return nil
end

local function cleanup(proc)
    if not read(proc.dir .. "/rc") and proc.pid then os.execute("kill -KILL " .. proc.pid) end
    files.rmdir(proc.dir)
end

describe("marketo-bulk sandbox", function()
    it("lists every option in --help", function()
        local r = run("--help")
        assert.equal(0, r.status)
        local out = r.out
        for _, name in ipairs({ "--port", "--client-id", "--client-secret", "--token-ttl",
            "--expires-in-zero", "--legacy-token", "--rate-limit", "--max-in-flight",
            "--daily-quota", "--speed", "--max-file-bytes", "--error-rate", "--drop-rate",
            "--slow-rate", "--job-fail-rate", "--seed", "--schema", "--parent-pid",
            "--max-lifetime" }) do
            assert.truthy(out:find("\n  " .. name .. " ", 1, true), name)
        end
    end)

    it("takes options from a JSON file given with --config, flags winning", function()
        local path = files.temp_file(
            '{"client_id": "from-file", "client_secret": "file-secret", "quiet": true}')
        local proc = start("--config " .. path .. " --port 0 --client-secret flag-secret")
        finally(function() cleanup(proc); os.remove(path) end)
        local out = read(proc.dir .. "/out")
        assert.truthy(out:find("\nMARKETO_CLIENT_ID=from-file\nMARKETO_CLIENT_SECRET=flag-secret\n",
            1, true), out)
        assert.equal("", read(proc.dir .. "/err"))
        os.execute("kill -TERM " .. proc.pid)
        assert.equal(0, wait_rc(proc, 5))
        local r = run("--config", "/nonexistent.json")
        assert.equal(2, r.status)
        assert.truthy(r.err:find("/nonexistent.json: No such file or directory", 1, true), r.err)
    end)

    it("refuses unknown flags and bad values with exit 2", function()
        local r = run("--no-such-flag", "1")
        assert.equal(2, r.status)
        assert.truthy(r.err:find("unknown option '--no-such-flag'", 1, true), r.err)
        r = run("--speed", "fast")
        assert.equal(2, r.status)
        assert.truthy(r.err:find("option speed: expected a non-negative number, got 'fast'", 1,
            true), r.err)
    end)

    it("prints the three lines with the chosen credentials and stops on SIGTERM", function()
        local proc = start("--port 0 --client-id me --client-secret s3cret --quiet")
        finally(function() cleanup(proc) end)
        local out = read(proc.dir .. "/out")
        local port = out:match("^MARKETO_BASE_URL=http://127%.0%.0%.1:(%d+)\n")
        assert.truthy(port, out)
        assert.equal(("MARKETO_BASE_URL=http://127.0.0.1:%s\nMARKETO_CLIENT_ID=me\n"
            .. "MARKETO_CLIENT_SECRET=s3cret\n"):format(port), out)
        local p = assert(io.popen("curl -s 'http://127.0.0.1:" .. port
            .. "/identity/oauth/token?grant_type=client_credentials&client_id=me"
            .. "&client_secret=s3cret'"))
        local body = p:read("a")
        p:close()
        assert.equal("bearer", sandbox.decode(body).token_type)
        os.execute("kill -TERM " .. proc.pid)
        assert.equal(0, wait_rc(proc, 5))
    end)

    it("stops cleanly on SIGINT", function()
        local proc = start("--port 0 --quiet")
        finally(function() cleanup(proc) end)
        os.execute("kill -INT " .. proc.pid)
        assert.equal(0, wait_rc(proc, 5))
    end)

    it("stops by itself when its parent is gone or its lifetime is over", function()
        -- real time: a process's lifetime (0.5 s) and its parent's death (0.3 s)
        local p = assert(io.popen("sleep 0.3 & echo $!"))
        local parent = p:read("l")
        p:close()
        local proc = start("--port 0 --quiet --parent-pid " .. parent)
        finally(function() cleanup(proc) end)
        assert.equal(0, wait_rc(proc, 5))
        local timed = start("--port 0 --quiet --max-lifetime 0.5")
        finally(function() cleanup(timed) end)
        assert.equal(0, wait_rc(timed, 5))
    end)

    it("can be started and controlled through the spec helper", function()
        local sb = sandbox.start{ token_ttl = 60 }
        finally(sb.stop)
        assert.truthy(sb.base_url:match("^http://127%.0%.0%.1:%d+$"))
        assert.equal("sandbox-client", sb.client_id)
        assert.is_number(sb.pid)
        sb.control{ token_ttl = 5 }
        local _, res = sb.api_get("/bulk/v1/leads/batch/1.json")
        assert.equal("1013", res.errors[1].code)
        local body = sb.get("/__sandbox/config")
        assert.equal(5, sandbox.decode(body).token_ttl)
        sb.stop()
        local _, status = sb.get("/__sandbox/config")
        assert.equal(0, status) -- curl's "no answer"
    end)
end)
