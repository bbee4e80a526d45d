--- marketo.resty.thread: the transport interface over marketo.http (libcurl),
-- each request run by ngx.run_worker_thread in a thread of an nginx thread
-- pool, so the worker's event loop is not blocked while libcurl works.
--
--   -- nginx.conf, main context:  thread_pool marketo threads=4;
--   local t = require("marketo.resty.thread").new{ pool = "marketo", http = { timeout = 300 } }
--   local res, msg, code = t:request{ ... }   -- as marketo.http's
--
-- The pool thread has a Lua VM of its own (same lua_package_path/cpath), so
-- marketo.core must be built for LuaJIT; only plain data crosses over, hence
-- no on_progress. Each request is a fresh libcurl handle: no keep-alive.
-- Measured against the cosocket transport in examples/openresty/README.md.
local check = require("marketo.resty.check")

local M = { _VERSION = "0.1.0" }

local Transport = {}
Transport.__index = Transport

--- new(opts) -> transport. opts.pool: the thread_pool's name (default
-- "marketo"); opts.http: options of marketo.http.new.
function M.new(opts)
    check.table(opts or {}, { pool = "string", http = "table" }, "new", nil, 2)
    opts = opts or {}
    return setmetatable({ pool = opts.pool or "marketo", http = opts.http or {} }, Transport)
end

--- request(opts) -> response | nil, "NAME: message", "NAME" (marketo.http's
-- interface); a failure to run the thread is "THREAD".
function Transport:request(opts)
    check.request(opts, 2)
    local plain = {}
    for k, v in pairs(opts) do
        if k ~= "on_progress" then plain[k] = v end
    end
    -- ngx_lua 0.10.21+; luacheck's ngx_lua std predates it.
    local run = ngx.run_worker_thread -- luacheck: ignore 143
    local ok, res, msg, code = run(self.pool, "marketo.resty.thread", "perform", self.http, plain)
    if not ok then return nil, "THREAD: " .. tostring(res), "THREAD" end
    return res, msg, code
end

--- Runs in the pool thread: one blocking marketo.http request.
function M.perform(http_opts, opts)
    return require("marketo.http").new(http_opts):request(opts)
end

return M
