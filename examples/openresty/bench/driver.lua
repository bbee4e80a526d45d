--- The bench's side inside nginx (see examples/openresty/bench/run.lua): runs
-- n uploads (bulk job creations) in a timer with the transport asked for,
-- while run.lua measures how the worker answers /ping meanwhile.
--   POST /bench/start?transport=cosocket|thread|blocking&n=5&path=/abs/file.csv[&raw=1]
--   GET  /bench/result -> { done, elapsed, uploads, error }
-- raw=1 sends the file as a multipart body to /bench/sink on this same nginx
-- instead of the sandbox: the transport's own speed (not for blocking, which
-- would wait for a worker it blocks itself).
local cjson = require("cjson.safe")

local M = {}

-- One worker, one bench at a time: module state is enough.
local state = {}

local function now()
    ngx.update_time()
    return ngx.now()
end

local function transport(kind)
    if kind == "cosocket" then
        return require("marketo.resty.transport").new{ timeout = 600 }
    elseif kind == "thread" then
        return require("marketo.resty.thread").new{ http = { timeout = 600 } }
    end
    -- The baseline: libcurl's blocking perform in the worker itself.
    return require("marketo.http").new{ timeout = 600 }
end

local function run(kind, n, path)
    local client = assert(require("marketo.client").new{ transport = transport(kind),
        sleep = ngx.sleep, clock = now })
    assert(client:authenticate())
    local t0 = now()
    for _ = 1, n do
        local job, msg = client:import_leads{ path = path, lookup_field = "email" }
        if not job then error(msg, 0) end
        state.uploads = state.uploads + 1
    end
    return now() - t0
end

local function run_raw(kind, n, path, port)
    local t = transport(kind)
    local t0 = now()
    for _ = 1, n do
        local res, msg = t:request{ method = "POST", url = ("http://127.0.0.1:%d/bench/sink")
            :format(port), multipart = { file = { name = "file", filename = "big.csv",
            content_type = "text/csv", path = path } } }
        if not res or res.status ~= 200 then error(msg or ("HTTP " .. res.status), 0) end
        state.uploads = state.uploads + 1
    end
    return now() - t0
end

local function background(premature, kind, n, path, port)
    if premature then return end
    local ok, elapsed = pcall(port and run_raw or run, kind, n, path, port)
    state.elapsed = ok and elapsed or nil
    state.error = not ok and tostring(elapsed) or nil
    state.done = true
end

function M.handle()
    local args = ngx.req.get_uri_args()
    if ngx.var.uri == "/bench/sink" then
        ngx.req.read_body()
        return ngx.say("ok")
    end
    if ngx.var.uri == "/bench/start" then
        state = { done = false, uploads = 0 }
        require("marketo.resty.multipart").CHUNK = tonumber(args.chunk) or 65536
        local port = args.raw and tonumber(ngx.var.server_port) or nil
        assert(ngx.timer.at(0, background, args.transport, tonumber(args.n), args.path, port))
    end
    ngx.say(cjson.encode(state))
end

return M
