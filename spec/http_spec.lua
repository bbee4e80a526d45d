-- marketo.http: the transport, blocking and inside marketo.loop tasks,
-- against the loopback echo server.
local http = require("marketo.http")
local Loop = require("marketo.loop")
local core = require("marketo.core")
local server = require("spec.support.server")
local app = require("spec.support.echo_app")
local json = require("cjson")

local temp_file = require("spec.support.files").temp_file

describe("marketo.http", function()
    local echo = server.fixture("spec.support.echo_app")
    setup(echo.start)
    teardown(echo.stop)

    local t
    before_each(function() t = http.new{ timeout = 30 } end)

    describe("new", function()
        it("rejects unknown options and wrong types", function()
            assert.has_error(function() http.new{ verfy = false } end,
                "bad argument #1 to 'new' (unknown option 'verfy')")
            assert.has_error(function() http.new{ timeout = "30" } end,
                "bad argument #1 to 'new' (option 'timeout': number expected, got string)")
        end)
    end)

    describe("request", function()
        it("GETs with headers and returns the response table", function()
            local res = assert(t:request{ url = echo.url .. "/echo?q=1",
                                          headers = { Authorization = "Bearer tok" } })
            assert.equal(200, res.status)
            assert.equal("application/json", res.headers["content-type"])
            local body = json.decode(res.body)
            assert.equal("GET", body.method)
            assert.equal("Bearer tok", body.headers.authorization)
            assert.equal("marketo-bulk/" .. http._VERSION, body.headers["user-agent"])
            assert.is_number(res.time)
        end)

        it("POSTs a body, and a status is data", function()
            local res = assert(t:request{ url = echo.url .. "/echo", body = "a=1",
                                          headers = { ["Content-Type"] = "text/plain" } })
            local body = json.decode(res.body)
            assert.equal("POST", body.method)
            assert.equal("a=1", body.body)
            assert.equal("text/plain", body.headers["content-type"])
            assert.equal(3, res.uploaded)
            local missing = assert(t:request{ method = "DELETE", url = echo.url .. "/status/404" })
            assert.equal(404, missing.status)
        end)

        it("uploads a multipart part from a byte range with a prefix", function()
            local data = app.pattern(100000)
            local path = temp_file(data)
            finally(function() os.remove(path) end)
            local sent, progress = nil, 0
            local res = assert(t:request{
                url = echo.url .. "/multipart/file",
                multipart = { fields = { { "format", "csv" } },
                              file = { name = "file", filename = "part-0001.csv",
                                       content_type = "text/csv", path = path,
                                       offset = 10, length = 50000, prefix = "email\n" } },
                on_progress = function(s) sent = s; progress = progress + 1 end,
            })
            assert.equal(200, res.status)
            assert.is_true("email\n" .. data:sub(11, 50010) == res.body)
            assert.is_true(progress > 0)
            assert.equal(res.uploaded, sent)
        end)

        it("streams the body to a file", function()
            local path = os.tmpname()
            finally(function() os.remove(path) end)
            local res = assert(t:request{ url = echo.url .. "/bytes?n=5000", output = path })
            assert.is_nil(res.body)
            local f = assert(io.open(path, "rb"))
            assert.equal(app.pattern(5000), f:read("*a"))
            f:close()
        end)

        it("returns transport failures as triples", function()
            local res, msg, code = t:request{ url = "http://127.0.0.1:1/" }
            assert.is_nil(res)
            assert.equal("COULDNT_CONNECT", code)
            assert.matches("^COULDNT_CONNECT: ", msg)
            res, msg, code = t:request{ url = echo.url .. "/slow?ms=3000", timeout = 0.2 }
            assert.is_nil(res)
            assert.equal("OPERATION_TIMEDOUT", code)
            assert.matches("^OPERATION_TIMEDOUT: ", msg)
        end)

        it("fails clearly when the upload file is missing", function()
            local res, _, code = t:request{ url = echo.url .. "/multipart",
                multipart = { file = { name = "file", path = "/nonexistent/big.csv" } } }
            assert.is_nil(res)
            assert.equal("ENOENT", code)
        end)

        it("re-raises an error raised in on_progress", function()
            assert.has_error(function()
                t:request{ url = echo.url .. "/echo", body = "x",
                           on_progress = function() error("progress failed", 0) end }
            end, "progress failed")
        end)

        it("rejects unknown options and bad values", function()
            assert.has_error(function() t:request{ url = echo.url, methd = "GET" } end,
                "bad argument #1 to 'request' (unknown option 'methd')")
            assert.has_error(function()
                t:request{ url = echo.url, multipart = { file = { name = "f", path = "p",
                                                                  size = 1 } } }
            end, "bad argument #1 to 'request' (unknown option 'multipart.file.size')")
            assert.has_error(function() t:request{ url = echo.url, body = "", multipart = {} } end,
                "bad argument #1 to 'request' (body and multipart exclude each other)")
            assert.has_error(function() t:request{ headers = {} } end,
                "bad argument #1 to 'request' (url is required)")
            assert.has_error(function()
                t:request{ url = echo.url, headers = { X = "a\r\nEvil: 1" } }
            end)
        end)
    end)

    describe("inside a marketo.loop task", function()
        it("runs transfers concurrently", function()
            local loop = Loop.new()
            local times = {}
            for i = 1, 10 do
                loop:spawn(function()
                    local res = assert(t:request{ url = echo.url .. "/slow?ms=300" })
                    times[i] = json.decode(res.body)
                end)
            end
            loop:run()
            assert.equal(10, #times)
            local last_start, first_end = -math.huge, math.huge
            for _, s in ipairs(times) do
                last_start = math.max(last_start, s.start)
                first_end = math.min(first_end, s["end"])
            end
            assert.is_true(last_start < first_end)
        end)

        it("mixes timers and transfers", function()
            -- real time: a 50 ms timer must end while a 200 ms transfer is in flight
            local loop = Loop.new()
            local order = {}
            loop:spawn(function()
                assert(t:request{ url = echo.url .. "/slow?ms=200" })
                order[#order + 1] = "transfer"
            end)
            loop:spawn(function()
                Loop.sleep(0.05)
                order[#order + 1] = "timer"
            end)
            loop:run()
            assert.same({ "timer", "transfer" }, order)
        end)

        it("returns failures to the task and re-raises callback errors from run", function()
            local loop = Loop.new()
            local code
            loop:spawn(function()
                code = select(3, t:request{ url = "http://127.0.0.1:1/" })
            end)
            loop:run()
            assert.equal("COULDNT_CONNECT", code)
            loop:spawn(function()
                t:request{ url = echo.url .. "/slow?ms=100",
                           on_progress = function() error("in a task", 0) end }
            end)
            assert.has_error(function() loop:run() end, "in a task")
        end)

        it("reuses connections between requests", function()
            local first = core.request():set_url(echo.url .. "/echo")
            finally(function() first:close() end)
            assert.is_true(first:perform())
            local loop = Loop.new()
            local res
            loop:spawn(function() res = assert(t:request{ url = echo.url .. "/echo" }) end)
            loop:run()
            assert.equal(0, res.connects)
        end)
    end)
end)
