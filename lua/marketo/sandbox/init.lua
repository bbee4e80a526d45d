--- marketo.sandbox: a faithful local Marketo (Identity + Bulk Import) on
-- 127.0.0.1. See doc/sandbox.md.
--
--   local sandbox = require("marketo.sandbox")
--   local sb = sandbox.new{ speed = 0, token_ttl = 5 }   -- options: config.lua
--   sb:handle(req)             -- the HTTP handler, usable without a socket
--   sb:serve{ on_ready = function(base_url) end }        -- until stopped
--   local child = sandbox.spawn{ config = { speed = 100 } }  -- a child process
local config = require("marketo.sandbox.config")
local envelope = require("marketo.sandbox.envelope")
local identity_mod = require("marketo.sandbox.identity")
local limits_mod = require("marketo.sandbox.limits")
local faults_mod = require("marketo.sandbox.faults")
local clock_mod = require("marketo.sandbox.clock")
local schema_mod = require("marketo.sandbox.schema")
local store_mod = require("marketo.sandbox.store")
local queue_mod = require("marketo.sandbox.queue")
local inspect = require("marketo.sandbox.inspect")
local bulk = require("marketo.sandbox.bulk")
local spawn = require("marketo.sandbox.spawn")
local source = require("marketo.sandbox.source")
local socket = require("socket")

local has_core, core = pcall(require, "marketo.core")
if not has_core then core = nil end

local M = {}
local Sandbox = {}
Sandbox.__index = Sandbox

local function fresh_stats()
    return { requests = 0, max_importing = 0, max_queue_depth = 0, max_in_flight = 0,
             max_connections = 0, answered_1016 = 0, answered_606 = 0, answered_607 = 0,
             answered_615 = 0, faults = 0, dropped = 0, lost = 0, jobs_complete = 0,
             jobs_failed = 0, codes = {} }
end

--- new(opts): opts holds option values (config.lua names), and optionally
-- clock (monotonic seconds), wall (epoch seconds) and schema (a decoded
-- schema table, as the schema file holds). Returns the sandbox, or nil and
-- a message.
function M.new(opts)
    opts = opts or {}
    local conf = config.defaults()
    local changes = {}
    for k, v in pairs(opts) do
        if k ~= "clock" and k ~= "wall" and not (k == "schema" and type(v) == "table") then
            changes[k] = v
        end
    end
    local ok, msg = config.apply(conf, changes)
    if not ok then return nil, msg end
    local schema = schema_mod.new()
    if conf.schema ~= "" then
        ok, msg = schema:load(conf.schema)
        if not ok then return nil, msg end
    end
    if type(opts.schema) == "table" then
        ok, msg = pcall(schema.extend, schema, opts.schema)
        if not ok then return nil, msg end
    end
    local real_clock = opts.clock or (core and core.monotonic) or socket.gettime
    local real_wall = opts.wall or socket.gettime
    local time = clock_mod.new{ clock = real_clock, wall = real_wall }
    local self = setmetatable({
        conf = conf, schema = schema, time = time, real_clock = real_clock,
        clock = function() return time:now() end,
        wall = function() return time:wall() end,
    }, Sandbox)
    -- tokens: unguessable across runs, so seeded from the real time
    local seed, drawn = math.floor(real_wall() * 1000) % 2147483647, 0
    self.random = function(n)
        drawn = drawn + 1
        return math.floor(faults_mod.float(seed, "token", drawn, 0) * n) + 1
    end
    self.request_id = envelope.request_ids()
    self.identity = identity_mod.new{ conf = conf, clock = self.clock, random = self.random }
    self.limits = limits_mod.new{ conf = conf, clock = self.clock, wall = self.wall }
    self.faults = faults_mod.new(conf)
    self.store = store_mod.new()
    self.stats = fresh_stats()
    self.queue = queue_mod.new{ conf = conf, faults = self.faults, store = self.store,
                                stats = self.stats }
    self.log = inspect.new_log(function() return conf.log_size end)
    return self
end

--- Changes options at runtime (all or nothing). Returns true or nil, message.
function Sandbox:configure(changes)
    for _, fixed in ipairs({ "port", "schema", "parent_pid" }) do
        if changes[fixed] ~= nil then
            return nil, ("option '%s' cannot change at runtime"):format(fixed)
        end
    end
    return config.apply(self.conf, changes)
end

--- Forgets records, jobs, tokens' use, the log and the counters; keeps config.
function Sandbox:reset()
    self.store:reset()
    self.queue:reset()
    self.limits:reset()
    self.log.clear()
    local stats = fresh_stats()
    for k in pairs(self.stats) do self.stats[k] = nil end
    for k, v in pairs(stats) do self.stats[k] = v end
    self.faults:reset()
    self.time:thaw()
end

function Sandbox:counters()
    local s = self.stats
    local out = {}
    for k, v in pairs(s) do out[k] = v end
    out.csv_engine = source.engine()
    out.importing = #self.queue.importing
    out.queued = #self.queue.waiting
    local lim = self.limits:snapshot()
    out.in_window, out.in_flight, out.quota_used = lim.in_window, lim.in_flight, lim.quota_used
    if next(out.codes) == nil then out.codes = nil end
    return out
end

-- Redacted path of a request for the log: the query shown without secrets.
local function log_entry(self, req, query)
    return { time = math.floor(self.wall() * 1000), method = req.method, path = req.path,
             query = next(query) and inspect.scrub(query) or nil,
             bytes = req.body and #req.body or 0 }
end

--- The HTTP handler: status, headers, body (or the server's DROP).
function Sandbox:handle(req)
    req.path = req.path or (req.target or "/"):match("^[^?]*")
    if req.path:sub(1, #inspect.PREFIX + 1) == inspect.PREFIX .. "/" then
        return inspect.handle(self, req)
    end
    local call = bulk.new_call(self, req)
    local entry = log_entry(self, req, call.query)
    self.stats.requests = self.stats.requests + 1
    local status, headers, body
    if req.path == "/identity/oauth/token" then
        entry.auth = "identity"
        status, headers, body = self.identity:token(req)
    else
        status, headers, body = bulk.handle(self, req, call, entry)
    end
    entry.status = type(status) == "number" and status or "dropped"
    entry.code, entry.batchId, entry.fault = call.code, call.batch_id, call.fault
    if call.code then
        self.stats.codes[call.code] = (self.stats.codes[call.code] or 0) + 1
    end
    self.log.add(entry)
    if not self.conf.quiet then
        io.stderr:write(("sandbox: %s %s -> %s%s\n"):format(req.method, req.path,
            tostring(entry.status), call.code and (" " .. call.code) or ""))
    end
    return status, headers, body
end

-- Whether the process that asked for this sandbox is gone (or a zombie).
local function parent_gone(pid)
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if not f then return true end
    local stat = f:read("l") or ""
    f:close()
    return stat:match("^%d+ %b() (%a)") == "Z"
end

--- The largest body the HTTP layer should take in: the file limit plus room
-- for the multipart framing, so the 413 comes from the Marketo logic.
function Sandbox:max_body()
    return self.conf.max_file_bytes + 1024 * 1024
end

--- Serves until a stop request (SIGINT/SIGTERM via marketo.core, opts.stop()
-- returning true, the parent gone, or max_lifetime). on_ready(base_url) is
-- called once the socket accepts connections. Returns true, or nil, message.
function Sandbox:serve(opts)
    opts = opts or {}
    local Server = require("marketo.sandbox.http")
    local server, msg = Server.new{ host = "127.0.0.1", port = self.conf.port,
        max_body = self:max_body(), handler = function(req) return self:handle(req) end,
        log = function(m) io.stderr:write("sandbox: ", m, "\n") end }
    if not server then return nil, msg end
    self.server = server
    self.base_url = ("http://127.0.0.1:%d"):format(server:port())
    if opts.on_ready then opts.on_ready(self.base_url) end
    local started, next_check = self.real_clock(), 0
    local stop = opts.stop or function() return core and core.stop_requested() end
    while not stop() and not server.stopped do
        -- while time stands still a job at `speed` rows/s has nothing to do
        local busy = self.queue:tick(self.clock())
            and not (self.time:frozen() and self.conf.speed > 0)
        server.max_body = self:max_body()
        server:step(busy and 0.002 or 0.05)
        if server.count > self.stats.max_connections then
            self.stats.max_connections = server.count
        end
        local now = self.real_clock()
        if now >= next_check then
            next_check = now + 1
            if self.conf.parent_pid > 0 and parent_gone(self.conf.parent_pid) then break end
            if self.conf.max_lifetime > 0 and now - started > self.conf.max_lifetime then break end
        end
    end
    server:close()
    return true
end

M.spawn = spawn.spawn

return M
