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
local budget = require("marketo.pipeline.budget")

local M = {}

local COUNT = { "number", integer = true, min = 1 }
--- The options of wrap, as marketo.options rules.
M.OPTIONS = { calls = COUNT, window = { "number", positive = true }, in_flight = COUNT,
    margin = { "number", min = 0 }, clock = "function", sleep = "function",
    budget = "table", quota = "table" }

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

--- wrap(transport, opts): opts.budget (a marketo.pipeline.budget, shared with
-- the scheduler), or a budget of this process alone from opts.calls,
-- opts.window (seconds), opts.in_flight, opts.margin (seconds added to the
-- window: the server stamps a call when it arrives, later than we do),
-- opts.clock, opts.sleep (for specs); opts.quota (a marketo.pipeline.quota:
-- every call but the identity's counted in the day's quota first).
function M.wrap(transport, opts)
    if type(transport) ~= "table" or type(transport.request) ~= "function" then
        options.fail("limiter.wrap", "transport expected", 2)
    end
    opts = options.check(opts, M.OPTIONS, "limiter.wrap", 2, 2)
    local b = opts.budget or budget.new({ clock = opts.clock, sleep = opts.sleep,
        limits = { calls = opts.calls, window = opts.window, in_flight = opts.in_flight,
            margin = opts.margin } })
    return setmetatable({ inner = transport, budget = b, quota = opts.quota, by_kind = {} },
        Limited)
end

-- A call in flight, then a stamp in the window; without the stamp the call
-- gives its place in flight back while it waits.
function Limited:acquire()
    local b = self.budget
    while true do
        local permit, msg, code = b:acquire("in_flight")
        if not permit then return nil, msg, code end
        local stamped, wait
        stamped, wait, code = b:try("call")
        if stamped then return permit end
        b:release("in_flight", permit)
        if stamped == nil then return nil, wait, code end
        b.sleep(wait)
    end
end

function Limited:request(req)
    local kind = M.kind_of(req.method or "GET", req.url or "")
    -- Marketo does not count the identity calls against the day's quota
    if self.quota and kind ~= "identity" then
        local counted, msg, code = self.quota:count()
        if not counted then return nil, msg, code end
    end
    local permit, why, code0 = self:acquire()
    if not permit then return nil, why, code0 end
    self.by_kind[kind] = (self.by_kind[kind] or 0) + 1
    local ok, res, msg, code = pcall(self.inner.request, self.inner, req)
    self.budget:release("in_flight", permit)
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
