-- marketo.core request: one transfer over libcurl, against a loopback server.
-- Lua 5.1 syntax: this file also runs under LuaJIT and under ASan+UBSan.
local core = require("marketo.core")
local server = require("spec.support.server")
local app = require("spec.support.echo_app")
local json = require("cjson")
local fails = require("spec.support.fails")
local lifecycle = require("spec.support.lifecycle")

local it_54 = (_VERSION >= "Lua 5.4") and it or pending

local temp_file = require("spec.support.files").temp_file

local function read_file(path)
    return assert(require("spec.support.files").read(path))
end

-- req, closed when the test ends.
local function closing(req)
    finally(function() req:close() end)
    return req
end

-- req (closed when the test ends), performed: it must succeed.
local function performed(req)
    assert.is_true(closing(req):perform())
    return req
end

-- Performs req (closed when the test ends): status, decoded JSON body.
local function perform_json(req)
    performed(req)
    return req:status(), json.decode(req:body())
end

describe("marketo.core request", function()
    local echo = server.fixture("spec.support.echo_app")
    setup(echo.start)
    teardown(echo.stop)

    local function request(path)
        return core.request():set_url(echo.url .. path)
    end

    describe("perform", function()
        it("sends a GET with headers and reads status, headers and body", function()
            local req = request("/echo?a=1"):set_headers({ "X-Token: abc", "Accept: text/csv" })
            local status, body = perform_json(req)
            assert.equal(200, status)
            assert.equal("GET", body.method)
            assert.equal("a=1", body.query)
            assert.equal("abc", body.headers["x-token"])
            assert.equal("text/csv", body.headers.accept)
        end)

        it("lower-cases response header names", function()
            local req = performed(request("/echo"))
            local h = req:headers()
            assert.equal("application/json", h["content-type"])
            assert.equal(tostring(#req:body()), h["content-length"])
        end)

        it("POSTs a string body", function()
            local status, body = perform_json(request("/echo"):set_body("x=1&y=2"))
            assert.equal(200, status)
            assert.equal("POST", body.method)
            assert.equal("x=1&y=2", body.body)
        end)

        it("sends the method it is given, with or without a body", function()
            local _, put = perform_json(request("/echo"):set_method("PUT"):set_body("p"))
            assert.equal("PUT", put.method)
            assert.equal("p", put.body)
            local _, del = perform_json(request("/echo"):set_method("DELETE"))
            assert.equal("DELETE", del.method)
            local _, post = perform_json(request("/echo"):set_method("POST"))
            assert.equal("POST", post.method)
            assert.equal(0, post.body_length)
        end)

        it("never sends Expect: 100-continue, even for a large body", function()
            local _, body = perform_json(request("/echo"):set_body(("x"):rep(2 * 1024 * 1024)))
            assert.equal(2 * 1024 * 1024, body.body_length)
            assert.is_nil(body.headers.expect)
        end)

        it("returns an HTTP error status as data", function()
            local req = performed(request("/status/404"))
            assert.equal(404, req:status())
        end)

        it("does not follow redirects", function()
            local req = performed(request("/status/302"))
            assert.equal(302, req:status())
        end)

        it("streams the body to a file when given an output path", function()
            local path = os.tmpname()
            local req = request("/bytes?n=300000"):set_output(path)
            finally(function() req:close(); os.remove(path) end)
            assert.is_true(req:perform())
            assert.is_nil(req:body())
            assert.equal(app.pattern(300000), read_file(path))
            assert.equal(300000, req:info().downloaded)
        end)

        it("reports transfer information", function()
            local req = performed(request("/bytes?n=1000"):set_body("12345"))
            local info = req:info()
            assert.equal(5, info.uploaded)
            assert.equal(1000, info.downloaded)
            assert.is_true(info.time > 0)
        end)

        it("reuses the connection for the next request", function()
            local first = request("/echo")
            local second = request("/echo")
            finally(function() first:close(); second:close() end)
            assert.is_true(first:perform())
            assert.is_true(second:perform())
            assert.equal(0, second:info().connects)
            assert.equal(first:info().local_port, second:info().local_port)
        end)
    end)

    describe("multipart", function()
        local data = app.pattern(700001)
        local path

        before_each(function() path = temp_file(data) end)
        after_each(function() os.remove(path) end)

        it("streams a byte range of a file with a prefix, byte-identical", function()
            local prefix = "email,firstName\n"
            local req = request("/multipart/file")
                :add_field("format", "csv")
                :add_file("file", "part-0001.csv", "text/csv", path, 12345, 600000, prefix)
            performed(req)
            assert.equal(200, req:status())
            assert.equal("text/csv", req:headers()["content-type"])
            assert.is_true(prefix .. data:sub(12346, 12345 + 600000) == req:body())
        end)

        it("sends the fields and the part's size with a Content-Length", function()
            local req = request("/multipart")
                :add_field("format", "csv")
                :add_file("file", "p.csv", "text/csv", path, 100, 5000, "h\n")
            local status, parts = perform_json(req)
            assert.equal(200, status)
            assert.same({ name = "format", size = 3, data = "csv",
                          adler32 = app.adler32("csv") }, parts[1])
            assert.equal("p.csv", parts[2].filename)
            assert.equal(5002, parts[2].size)
            assert.equal(app.adler32("h\n" .. data:sub(101, 5100)), parts[2].adler32)
            local sent = request("/echo"):add_file("file", "p.csv", nil, path, 0, 10)
            local _, echoed = perform_json(sent)
            assert.is_string(echoed.headers["content-length"])
            assert.is_nil(echoed.headers["transfer-encoding"])
        end)

        it("sends a range past 2 GB of a sparse 3 GB file", function()
            local big = os.tmpname()
            local f = assert(io.open(big, "wb"))
            assert(f:seek("set", 3 * 2 ^ 30))
            f:write("tail")
            f:close()
            finally(function() os.remove(big) end)
            local req = request("/multipart/file")
                :add_file("file", "f.csv", nil, big, 3 * 2 ^ 30 - 1000, 1004, "h\n")
            performed(req)
            assert.equal("h\n" .. ("\0"):rep(1000) .. "tail", req:body())
        end)

        it("sends the rest of the file when no length is given", function()
            local req = performed(request("/multipart/file")
                :add_file("file", "f.csv", nil, path, 700000))
            assert.equal(data:sub(700001), req:body())
        end)

        it("fails before the transfer when the file is missing", function()
            local req = closing(request("/multipart")
                :add_file("file", "f.csv", nil, path .. ".missing"))
            local msg = fails("ENOENT", req:perform())
            assert.matches("^ENOENT: .*missing", msg)
            assert.equal(0, req:info().uploaded)
        end)

        it("fails when the range is past the end of the file", function()
            local req = closing(request("/multipart")
                :add_file("file", "f.csv", nil, path, 700000, 10))
            fails("READ_ERROR", req:perform())
        end)

        it("fails when offset + length is past the largest size, without overflowing", function()
            -- 2^63 - 1024 is exact as a double, so the same on Lua 5.4 and LuaJIT
            local req = request("/multipart"):add_file("file", "f.csv", nil, path, 700000,
                                                       2 ^ 63 - 1024)
            closing(req)
            local msg = fails("READ_ERROR", req:perform())
            assert.matches("past its end", msg)
            assert.equal(0, req:info().uploaded)
        end)

        it("calls on_progress with the bytes sent and to send", function()
            local calls, last = 0, nil
            local req = request("/multipart"):add_file("file", "f.csv", nil, path)
                :on_progress(function(sent, total)
                    calls = calls + 1
                    last = { sent, total }
                end)
            performed(req)
            assert.is_true(calls > 0)
            assert.is_true(last[2] > #data)
            assert.equal(last[2], last[1])
        end)
    end)

    describe("failures", function()
        it("returns a refused connection as a failure triple", function()
            local req = closing(core.request():set_url("http://127.0.0.1:1/"))
            local msg = fails("COULDNT_CONNECT", req:perform())
            assert.matches("^COULDNT_CONNECT: ", msg)
        end)

        it("returns a timeout as a failure triple", function()
            local req = closing(request("/slow?ms=3000"):set_timeouts(5, 0.2))
            fails("OPERATION_TIMEDOUT", req:perform())
        end)

        it("takes math.huge as no time limit", function()
            -- over a short limit: a setting that did not take would leave it in force
            local req = request("/slow?ms=300"):set_timeouts(5, 0.1)
                :set_timeouts(math.huge, math.huge)
            performed(req)
            assert.equal(200, req:status())
        end)

        it("returns a dropped connection as a failure triple", function()
            local req = closing(request("/drop"))
            fails("GOT_NOTHING", req:perform())
        end)

        it("refuses protocols other than http and https", function()
            local req = closing(core.request():set_url("file:///etc/hostname"))
            fails("UNSUPPORTED_PROTOCOL", req:perform())
        end)

        it("re-raises an error raised in a callback, then works again", function()
            local req = closing(request("/slow?ms=100")
                :on_progress(function() error("boom", 0) end))
            assert.has_error(function() req:perform() end, "boom")
            req:on_progress(nil)
            assert.is_true(req:perform())
            assert.equal(200, req:status())
        end)

        it("turns a yield from a callback into an error", function()
            local req = closing(request("/echo"):on_progress(function() coroutine.yield() end))
            local co = coroutine.create(function() return req:perform() end)
            local ok, err = coroutine.resume(co)
            assert.is_false(ok)
            assert.matches("yield", err)
        end)
    end)

    describe("misuse", function()
        it("raises on bad arguments", function()
            local req = closing(core.request())
            assert.has_error(function() req:set_method("get") end)
            assert.has_error(function() req:set_headers({ "no colon" }) end)
            assert.has_error(function() req:set_timeouts(-1) end)
            assert.has_error(function() req:set_timeouts(1, 0 / 0) end)
            assert.has_error(function() req:set_tls() end) -- never off by omission
            assert.equal(req, req:set_tls(true, "/etc/ssl/certs"))
            assert.has_error(function() req:add_file("file", nil, nil, "/x", -1) end)
            assert.has_error(function() req:result() end,
                "marketo.request has no finished transfer")
        end)

        it("raises when a body and parts are mixed", function()
            local req = closing(core.request():set_body("x"))
            assert.has_error(function() req:add_field("a", "b") end)
            local other = core.request():add_field("a", "b")
            finally(function() other:close() end)
            assert.has_error(function() other:set_body("x") end)
        end)
    end)

    describe("lifecycle", function()
        it("closes twice and raises when used after close", function()
            local req = core.request()
            assert.matches("^marketo%.request %(0x%x+%)$", tostring(req))
            assert.is_true(req:close())
            assert.is_true(req:close())
            assert.equal("marketo.request (closed)", tostring(req))
            assert.has_error(function() req:perform() end,
                "attempt to use a closed marketo.request")
            assert.has_error(function() req:set_url("http://x/") end,
                "attempt to use a closed marketo.request")
        end)

        it("is collected, open, closed or used", function()
            local weak = lifecycle.weak()
            weak[1], weak[2] = core.request(), core.request()
            weak[2]:close()
            weak[3] = request("/echo"):add_field("a", "b"):on_progress(function() end)
            assert.is_true(weak[3]:perform())
            lifecycle.collected(weak)
        end)

        it_54("is closed by a <close> variable", function()
            assert.equal("marketo.request (closed)", lifecycle.after_scope(core.request()))
        end)
    end)
end)

-- spec/support/ok_server.py over TLS, with a self-signed certificate for 127.0.0.1.
describe("marketo.core request over TLS", function()
    local dir, tls, url

    setup(function()
        dir = os.tmpname()
        os.remove(dir)
        -- exit statuses are not trusted: under `make asan` a shell may exit 23 on its own leaks
        os.execute("mkdir -m 700 " .. dir .. " && cd " .. dir .. " && openssl req -x509 "
            .. "-newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 -subj /CN=127.0.0.1 "
            .. "-addext subjectAltName=IP:127.0.0.1 2>/dev/null")
        assert(io.open(dir .. "/cert.pem"), "openssl did not make a certificate"):close()
        tls = require("spec.support.ok_server").start(dir .. "/cert.pem", dir .. "/key.pem")
        url = "https://127.0.0.1:" .. tls.port .. "/"
    end)

    teardown(function()
        if tls then tls.stop() end
        os.execute("rm -rf " .. dir)
    end)

    local function get(req)
        return closing(req):set_url(url):perform()
    end

    it("verifies the server's certificate by default", function()
        fails("PEER_FAILED_VERIFICATION", get(core.request()))
    end)

    it("trusts the CA it is given", function()
        local req = core.request():set_tls(true, dir .. "/cert.pem")
        assert.is_true(get(req))
        assert.equal("ok", req:body())
    end)

    it("skips verification only when told to", function()
        assert.is_true(get(core.request():set_tls(false)))
    end)
end)
