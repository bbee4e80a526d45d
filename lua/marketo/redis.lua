--- marketo.redis: a small Redis client (RESP2) for the shared budget.
--
--   local conn, msg, code = redis.connect("redis://127.0.0.1:6379/0", { sleep = rt.sleep })
--   conn:call("EVALSHA", sha, 1, key, ...)  -- reply | nil, msg, code
--   conn:close()
--
-- The socket is LuaSocket's, never left blocking: while Redis has not
-- answered, the client waits with opts.sleep (in a marketo.loop task that
-- yields to the other tasks, so transfers in flight go on) and looks again.
-- Failures are nil, "BUDGET: Redis at HOST:PORT ...", "BUDGET" (an error
-- reply: "REDIS"); the URL's password never appears in them.
local M = {}

local Conn = {}
Conn.__index = Conn

-- Between looks at a socket with nothing to read: at first only a turn for the
-- other tasks (a Redis nearby answers in tens of microseconds), then 1 ms.
local SPINS, POLL = 50, 0.001
local function pause(self, looks)
    self.sleep(looks <= SPINS and 0 or POLL)
end

-- The options a budget URL may carry after "?", each a number of seconds:
-- lease (how long a permit outlives a holder that stopped renewing it) and
-- wait (how long an import paused by Redis gone waits for it before stopping).
M.URL_OPTIONS = { lease = { min = 1 }, wait = { min = 0 } }

local function url_options(query)
    local out = {}
    for pair in query:gmatch("[^&]+") do
        local k, v = pair:match("^(%w+)=([%d.]+)$")
        local rule = k and M.URL_OPTIONS[k]
        if not (rule and tonumber(v) and tonumber(v) >= rule.min) then
            return nil, ("'%s' in the URL's options: expected lease=SECONDS (>= 1) or "
                .. "wait=SECONDS (>= 0)"):format(pair:gsub("[^%w.=_-]", "?"))
        end
        out[k] = tonumber(v)
    end
    return out
end

--- parse(url) -> { host, port, db, password, lease, wait } | nil, msg:
-- redis://[:PASSWORD@]HOST[:PORT][/DB][?lease=SECONDS&wait=SECONDS]
function M.parse(url)
    local rest = type(url) == "string" and url:match("^redis://(.+)$")
    if not rest then
        return nil, ("%s is not a Redis URL: expected redis://HOST:PORT/DB"):format(
            type(url) == "string" and ("'" .. url:gsub(":[^:@/]*@", ":***@") .. "'")
            or tostring(url))
    end
    local password
    local auth, after = rest:match("^([^@/]*)@(.*)$")
    if auth then password, rest = auth:match("^:?(.*)$"), after end
    local query
    rest, query = rest:match("^([^?]*)%??(.*)$")
    local host, port, db = rest:match("^([^:/]+):?(%d*)/?(%d*)$")
    if not host then
        return nil, ("redis://%s: expected redis://HOST:PORT/DB"):format(
            rest:gsub("[^%w.:/-]", "?"))
    end
    local opts, msg = url_options(query)
    if not opts then return nil, ("redis://%s: %s"):format(rest, msg) end
    return { host = host, port = tonumber(port) or 6379, db = tonumber(db) or 0,
        password = password ~= "" and password or nil, lease = opts.lease, wait = opts.wait }
end

--- fail(conn, msg) -> nil, "BUDGET: Redis at HOST:PORT msg", "BUDGET"
function M.fail(self, msg)
    return nil, ("BUDGET: Redis at %s:%d %s"):format(self.host, self.port, msg), "BUDGET"
end
local fail = M.fail

--- greet(conn) -> true | nil, msg, code: AUTH and SELECT as the URL says, on
-- a connection just opened (conn:_call sends one command).
function M.greet(self)
    if self.password then
        local _, msg, code = self:_call("AUTH", self.password)
        if code then self:close(); return nil, msg, code end
    end
    if self.db ~= 0 then
        local _, msg, code = self:_call("SELECT", self.db)
        if code then self:close(); return nil, msg, code end
    end
    return true
end

--- open(class, url, fields) -> conn | nil, msg, code: a connection of `class`
-- (with _open) to the URL's server, `fields` added.
function M.open(class, url, fields)
    local where, msg = M.parse(url)
    if not where then return nil, "BUDGET: " .. msg, "BUDGET" end
    local self = setmetatable(fields, class)
    self.host, self.port, self.db, self.password = where.host, where.port, where.db,
        where.password
    local ok, code
    ok, msg, code = self:_open()
    if not ok then return nil, msg, code end
    return self
end

--- take_turns(conn, sleep, ...) -> conn:_call(...) once no other task is in one.
function M.take_turns(self, sleep, ...)
    while self.busy do sleep(0.001) end
    self.busy = true
    local reply, msg, code = self:_call(...)
    self.busy = false
    return reply, msg, code
end

-- A new socket, authenticated and on the URL's database. The connection is
-- made without blocking too: a Redis host that drops packets costs the
-- import its timeout, never the other tasks their turns.
function Conn:_open()
    local socket = require("socket")
    local sock = socket.tcp()
    sock:settimeout(0)
    local deadline, looks = self.clock() + self.timeout, 0
    local ok, err = sock:connect(self.host, self.port)
    while not ok do
        -- under way: writable once it is made or has failed, and a second
        -- connect says which (asked before that, LuaSocket may say "made")
        if err == "timeout" then
            local _, writable = socket.select(nil, { sock }, 0)
            if writable[1] then
                ok, err = sock:connect(self.host, self.port)
                ok = ok or err == "already connected"
            end
        end
        if not ok and err ~= "timeout" then
            sock:close()
            return fail(self, "is unreachable: " .. tostring(err))
        end
        if not ok and self.clock() > deadline then
            sock:close()
            return fail(self, ("is unreachable: no connection in %g s"):format(self.timeout))
        end
        if not ok then
            looks = looks + 1
            pause(self, looks)
            err = "timeout"
        end
    end
    sock:setoption("tcp-nodelay", true)
    self.sock, self.buf = sock, ""
    return M.greet(self)
end

--- connect(url, opts) -> conn | nil, msg, code. opts.sleep (the runtime's),
-- opts.clock, opts.timeout (seconds for the connection and each answer, 5).
-- A connection lost later is opened again by the next call.
function M.connect(url, opts)
    opts = opts or {}
    return M.open(Conn, url, { sleep = opts.sleep or require("marketo.loop").sleep,
        clock = opts.clock or require("marketo.core").monotonic,
        timeout = opts.timeout or 5, buf = "" })
end

local function encode(args)
    local out = { "*" .. #args .. "\r\n" }
    for i, a in ipairs(args) do
        a = tostring(a)
        out[i + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    return table.concat(out)
end

function Conn:_send(data)
    local i, deadline, looks = 1, self.clock() + self.timeout, 0
    while i <= #data do
        local last, err, partial = self.sock:send(data, i)
        last = last or partial
        if last and last >= i then i = last + 1 end
        if i <= #data then
            if err and err ~= "timeout" then return fail(self, "went away: " .. err) end
            if self.clock() > deadline then return fail(self, "took the command too slowly") end
            looks = looks + 1
            pause(self, looks)
        end
    end
    return true
end

-- More bytes into the buffer, waiting (sleep) while none have come.
function Conn:_fill(deadline)
    local looks = 0
    while true do
        local data, err, partial = self.sock:receive(65536)
        data = data or partial
        if data and #data > 0 then
            self.buf = self.buf .. data
            return true
        end
        if err ~= "timeout" then return fail(self, "went away: " .. tostring(err)) end
        if self.clock() > deadline then
            return fail(self, ("did not answer in %g s"):format(self.timeout))
        end
        looks = looks + 1
        pause(self, looks)
    end
end

function Conn:_line(deadline)
    while true do
        local at = self.buf:find("\r\n", 1, true)
        if at then
            local line = self.buf:sub(1, at - 1)
            self.buf = self.buf:sub(at + 2)
            return line
        end
        local ok, msg, code = self:_fill(deadline)
        if not ok then return nil, msg, code end
    end
end

function Conn:_bytes(n, deadline)
    while #self.buf < n + 2 do
        local ok, msg, code = self:_fill(deadline)
        if not ok then return nil, msg, code end
    end
    local s = self.buf:sub(1, n)
    self.buf = self.buf:sub(n + 3)
    return s
end

-- One reply: a Redis error is returned as { err = "..." } so that an array
-- holding one is read whole.
function Conn:_reply(deadline)
    local line, msg, code = self:_line(deadline)
    if not line then return nil, msg, code end
    local kind, rest = line:sub(1, 1), line:sub(2)
    if kind == "+" then return rest end
    if kind == "-" then return { err = rest } end
    if kind == ":" then return tonumber(rest) end
    if kind == "$" then
        local n = tonumber(rest)
        if n < 0 then return false end
        return self:_bytes(n, deadline)
    end
    if kind == "*" then
        local n, out = tonumber(rest), {}
        if n < 0 then return false end
        for i = 1, n do
            local v
            v, msg, code = self:_reply(deadline)
            if v == nil then return nil, msg, code end
            out[i] = v
        end
        return out
    end
    self:close()
    return fail(self, "answered something that is not Redis: " .. line:sub(1, 40))
end

--- call(cmd, ...) -> reply | nil, msg, code: strings, integers, arrays;
-- a nil bulk is false; an error reply is nil, "REDIS: ...", "REDIS". The
-- tasks of a loop share the connection one command at a time: a reply goes
-- to the task that sent its command.
function Conn:call(...)
    return M.take_turns(self, self.sleep, ...)
end

function Conn:_call(...)
    if not self.sock then
        local opened, msg, code = self:_open()
        if not opened then return nil, msg, code end
    end
    local ok, msg, code = self:_send(encode({ ... }))
    if ok then
        local reply
        reply, msg, code = self:_reply(self.clock() + self.timeout)
        if reply ~= nil then
            if type(reply) == "table" and reply.err then
                return nil, "REDIS: " .. reply.err, "REDIS"
            end
            return reply
        end
    end
    -- a half-read answer leaves the stream unusable: the next call opens another
    self:close()
    return nil, msg, code
end

function Conn:close()
    if self.sock then self.sock:close() end
    self.sock, self.buf = nil, ""
end

return M
