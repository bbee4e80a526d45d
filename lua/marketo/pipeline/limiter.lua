--- marketo.pipeline.limiter: keeps an instance's shared API budget. Wraps a transport
-- (anything with :request(req)) into one that never sends more than `calls`
-- requests in any rolling `window` seconds nor more than `in_flight` at once,
-- waiting (in a loop task: yielding) until a request may go. It also counts
-- the calls by kind, for the report: Marketo's budget is shared by every
-- integration of the instance, so users want to know what an import spent.
--
--   local limited = limiter.wrap(transport, { calls = 100, window = 20, in_flight = 10 })
--   limited:request{...}        -- same interface as the transport
--   limited:counts()            -- { identity = 1, import = 3, status = 12, ... }
local options = require("marketo.options")

local M = {}

local DEFAULTS = { calls = 100, window = 20, in_flight = 10, margin = 0.25 }

local COUNT = { "number", integer = true, min = 1 }
--- The options of wrap, as marketo.options rules.
M.OPTIONS = { calls = COUNT, window = { "number", positive = true }, in_flight = COUNT,
    margin = { "number", min = 0 }, clock = "function", sleep = "function" }

local Limited = {}
Limited.__index = Limited

--- The kind of a Marketo call, from its method and URL.
function M.kind_of(method, url)
    local path = url:match("^%a+://[^/]+(/[^?#]*)") or url
    if path:find("^/identity/") then return "identity" end
    if path:find("/failures%.json$") then return "failures" end
    if path:find("/warnings%.json$") then return "warnings" end
    if method == "POST" and path:find("^/bulk/v1/") then return "import" end
    if path:find("^/bulk/v1/") then return "status" end
    return "other"
end

local function with_defaults(opts)
    local out = {}
    for k, v in pairs(opts) do out[k] = v end
    for k, v in pairs(DEFAULTS) do
        if out[k] == nil then out[k] = v end
    end
    return out
end

--- wrap(transport, opts): opts.calls, opts.window (seconds), opts.in_flight,
-- opts.margin (seconds added to the window: the server stamps a call when it
-- arrives, later than we do), opts.clock, opts.sleep (for specs).
function M.wrap(transport, opts)
    if type(transport) ~= "table" or type(transport.request) ~= "function" then
        options.fail("limiter.wrap", "transport expected", 2)
    end
    opts = with_defaults(options.check(opts, M.OPTIONS, "limiter.wrap", 2, 2))
    return setmetatable({
        inner = transport,
        calls = opts.calls, window = opts.window + opts.margin, max_in_flight = opts.in_flight,
        clock = opts.clock or require("marketo.core").monotonic,
        sleep = opts.sleep or require("marketo.loop").sleep,
        stamps = {}, first = 1, last = 0, in_flight = 0, by_kind = {},
    }, Limited)
end

-- Stamps older than the window no longer count. They are a queue from
-- `first` to `last` (explicit indexes: `#` is undefined on a table with holes).
function Limited:_live(now)
    local stamps, first = self.stamps, self.first
    while first <= self.last and stamps[first] <= now - self.window do
        stamps[first] = nil
        first = first + 1
    end
    self.first = first
    return self.last - first + 1
end

-- How long until a request may go: 0 when it may go now.
function Limited:_delay(now)
    local live = self:_live(now)
    if live >= self.calls then
        return self.stamps[self.first] + self.window - now
    end
    if self.in_flight >= self.max_in_flight then
        return 0.02 -- a slot frees when a transfer ends; look again shortly
    end
    return 0
end

function Limited:acquire()
    local delay = self:_delay(self.clock())
    while delay > 0 do
        self.sleep(delay)
        delay = self:_delay(self.clock())
    end
    self.last = self.last + 1
    self.stamps[self.last] = self.clock()
    self.in_flight = self.in_flight + 1
end

function Limited:release()
    self.in_flight = self.in_flight - 1
end

function Limited:request(req)
    local kind = M.kind_of(req.method or "GET", req.url or "")
    self:acquire()
    self.by_kind[kind] = (self.by_kind[kind] or 0) + 1
    local ok, res, msg, code = pcall(self.inner.request, self.inner, req)
    self:release()
    if not ok then error(res, 0) end
    return res, msg, code
end

--- counts() -> { kind = calls } for every call that went out, and the total.
function Limited:counts()
    local out, total = {}, 0
    for k, n in pairs(self.by_kind) do
        out[k] = n
        total = total + n
    end
    return out, total
end

return M
