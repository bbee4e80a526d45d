--- spec/support/sandbox.lua: a real sandbox child for a spec file.
--
--   local sandbox = require("spec.support.sandbox")
--   local sb = sandbox.start{ speed = 0, token_ttl = 60 }  -- options as in doc/sandbox.md
--   teardown(sb.stop)
--   sb.base_url, sb.client_id, sb.client_secret, sb.pid
--   sb.control{ rate_limit = 5 }      -- POST /__sandbox/config; raises if refused
--   sb.reset()                        -- POST /__sandbox/reset
--   sb.get("/__sandbox/counters")     -- body, status (through curl)
--
-- Time, instead of sleeping (everything that ages in the sandbox - tokens,
-- the rate window, the daily quota, jobs at `speed` rows/s - reads its clock):
--   sb.advance(61)                    -- time jumps 61 s ahead (a token expires)
--   sb.freeze()                       -- time stands still: a job at speed > 0
--                                     -- stays Importing until advance/thaw
--   sb.thaw()                         -- time runs again (reset() thaws too)
--   sb.clock()                        -- { now, wall, frozen }; the three above
--                                     -- return it too (with lua-cjson)
-- Calls that change the sandbox send Content-Type: application/json, as it
-- requires (and no Origin header, which it refuses).
--
-- It runs `$MARKETO_BULK_BIN sandbox --port 0 --parent-pid <this process>
-- --max-lifetime 900`, so the child stops by itself if the specs die. Plain
-- Lua 5.1 (io.popen, os.execute, curl): LuaJIT specs can use it too.
-- For Lua 5.4 specs with lua-socket, sb.http(...) and friends (below) make
-- raw requests, so a spec controls every byte a client sends.
local spawn = require("marketo.sandbox.spawn")

local M = {}

local function load_json()
    local ok, cjson = pcall(require, "cjson")
    return ok and cjson or nil
end

-- lua-cjson decodes every number as a float under 5.3+; whole numbers become
-- integers again so that 1001 prints and concatenates as "1001".
local tointeger = rawget(math, "tointeger")

local function whole(v)
    if type(v) == "table" then
        for k, x in pairs(v) do v[k] = whole(x) end
    elseif type(v) == "number" and tointeger then
        return tointeger(v) or v
    end
    return v
end

--- JSON text -> value, with whole numbers as integers (raises on bad JSON).
function M.decode(text)
    return whole(load_json().decode(text))
end

-- A multipart/form-data body: fields is a list of { name, value }, file is
-- { name = "file", filename = "leads.csv", content_type = "text/csv", data = "..." }.
function M.multipart(fields, file, boundary)
    boundary = boundary or "sandboxspecboundary7MA4YWxkTrZu0gW"
    local out = {}
    for _, f in ipairs(fields or {}) do
        out[#out + 1] = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\""
            .. f[1] .. "\"\r\n\r\n" .. f[2] .. "\r\n"
    end
    if file then
        out[#out + 1] = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\""
            .. (file.name or "file") .. "\"; filename=\"" .. (file.filename or "data.csv")
            .. "\"\r\nContent-Type: " .. (file.content_type or "text/csv") .. "\r\n\r\n"
            .. file.data .. "\r\n"
    end
    out[#out + 1] = "--" .. boundary .. "--\r\n"
    return table.concat(out), "multipart/form-data; boundary=" .. boundary
end

-- The HTTP helpers need lua-socket; they are attached to the child table.
local function add_http(sb)
    local cjson = { decode = M.decode }

    --- sb.http{ method, path, headers, body } -> status, headers, body
    -- (nil, "closed" when the sandbox dropped the connection).
    function sb.http(req)
        local http = require("socket.http")
        local ltn12 = require("ltn12")
        local chunks = {}
        local headers = {}
        for k, v in pairs(req.headers or {}) do headers[k] = v end
        if req.body then headers["content-length"] = tostring(#req.body) end
        local ok, status, rheaders = http.request{
            url = sb.base_url .. req.path, method = req.method or "GET", headers = headers,
            source = req.body and ltn12.source.string(req.body) or nil,
            sink = ltn12.sink.table(chunks),
        }
        if not ok then return nil, status end
        return status, rheaders, table.concat(chunks)
    end

    --- A fresh access token (the identity call, GET with query parameters).
    function sb.token()
        local status, _, body = sb.http{ path = "/identity/oauth/token?grant_type="
            .. "client_credentials&client_id=" .. sb.client_id .. "&client_secret="
            .. sb.client_secret }
        assert(status == 200, "token: HTTP " .. tostring(status) .. " " .. tostring(body))
        return cjson.decode(body).access_token
    end

    --- GET with the bearer token; returns status, decoded JSON (or raw
    -- body when not JSON), headers.
    function sb.api_get(path, token)
        local status, headers, body = sb.http{ path = path,
            headers = { authorization = "Bearer " .. (token or sb.token()) } }
        local ok, value = pcall(cjson.decode, body or "")
        return status, ok and value or body, headers
    end

    --- Upload to an import endpoint: opts = { path, fields, data, filename,
    -- token, headers }. Returns status, decoded JSON (or raw body), headers.
    function sb.upload(opts)
        local body, ctype = M.multipart(opts.fields, opts.data and {
            data = opts.data, filename = opts.filename or "data.csv" })
        local headers = { ["content-type"] = ctype }
        if opts.token ~= false then
            headers.authorization = "Bearer " .. (opts.token or sb.token())
        end
        for k, v in pairs(opts.headers or {}) do headers[k] = v end
        local status, rheaders, rbody = sb.http{ method = "POST", path = opts.path,
            headers = headers, body = opts.body or body }
        local ok, value = pcall(cjson.decode, rbody or "")
        return status, ok and value or rbody, rheaders
    end

    --- An inspection endpoint, decoded.
    function sb.inspect(path)
        local status, _, body = sb.http{ path = "/__sandbox/" .. path }
        assert(status == 200, "inspect " .. path .. ": " .. tostring(status))
        return cjson.decode(body)
    end

    --- Polls a status path until the job is Complete or Failed.
    function sb.wait(path, token, timeout)
        local deadline = os.time() + (timeout or 30)
        while true do
            local _, res = sb.api_get(path, token)
            local r = type(res) == "table" and res.result and res.result[1]
            if r and (r.status == "Complete" or r.status == "Failed") then return r end
            assert(os.time() <= deadline, "job did not finish: " .. tostring(path))
            require("socket").sleep(0.02)
        end
    end
end

--- start(config) -> the child (see above). config: option names of
-- doc/sandbox.md (e.g. speed, token_ttl, rate_limit).
function M.start(config, opts)
    opts = opts or {}
    local sb = spawn.spawn{ bin = opts.bin or os.getenv("MARKETO_BULK_BIN"), config = config,
                            max_lifetime = opts.max_lifetime or 900, quiet = opts.quiet }
    local function set_clock(change)
        local body = sb.set_clock(change)
        return load_json() and M.decode(body) or body
    end
    function sb.advance(seconds) return set_clock{ advance = seconds } end
    function sb.freeze() return set_clock{ freeze = true } end
    function sb.thaw() return set_clock{ freeze = false } end
    function sb.clock()
        local body, status = sb.get("/__sandbox/clock")
        assert(status == 200, "clock: " .. tostring(status))
        return M.decode(body)
    end
    if pcall(require, "socket.http") and load_json() then add_http(sb) end
    return sb
end

--- A sandbox for a whole spec file, put back to `base` before each test.
-- The sandbox's reset clears records, jobs and the log but keeps its config,
-- so every knob a test turns must be turned back: `base` names them all.
-- fresh() also lets the clock run again and ends the live token.
--   local fx = sandbox.fixture(BASE)
--   setup(fx.start); teardown(fx.stop); before_each(fx.fresh)
--   fx.sb is the sandbox once started; fresh() also returns it.
function M.fixture(base, opts)
    local fx = {}
    function fx.start() fx.sb = M.start(base, opts); return fx.sb end
    function fx.stop() if fx.sb then fx.sb.stop() end end
    function fx.fresh()
        fx.sb.control(base)
        fx.sb.reset()
        -- a token issued under another test's token_ttl must not live on
        local _, status = fx.sb.post("/__sandbox/expire-token", "{}")
        assert(status == 200, "expire-token: " .. tostring(status))
        return fx.sb
    end
    return fx
end

--- A fixture wired into the enclosing describe block (or spec file): started in
-- setup, stopped in teardown, fresh before each test, which then gets the
-- sandbox through `each` (e.g. to take a token). Returns the fixture.
--   local sb, token
--   sandbox.each_test(BASE, function(s) sb, token = s, s.token() end)
function M.each_test(base, each, opts)
    local b = require("busted") -- its functions, which a spec file sees as globals
    local fx = M.fixture(base, opts)
    b.setup(fx.start)
    b.teardown(fx.stop)
    b.before_each(function() each(fx.fresh()) end)
    return fx
end

return M
