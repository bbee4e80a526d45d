--- marketo.resty.redis: marketo.redis's interface on lua-resty-redis (Debian's
-- lua-nginx-redis: nginx.redis; OpenResty's resty.redis), for the shared budget
-- in nginx: cosockets, so a wait for Redis yields the light thread.
--
--   local conn, msg, code = require("marketo.resty.redis").connect(url, { timeout = 5 })
--   conn:call("EVALSHA", sha, 1, key, ...)  -- reply | nil, msg, code (as marketo.redis)
--
-- A cosocket serves one light thread at a time: the threads of an import
-- sharing the connection take turns.
local redis = require("marketo.redis")

local M = {}

local function driver()
    local ok, mod = pcall(require, "resty.redis")
    if ok then return mod end
    return require("nginx.redis")
end

local Conn = {}
Conn.__index = Conn

local fail = redis.fail

function Conn:_open()
    local red = driver():new()
    red:set_timeout(self.timeout * 1000)
    local ok, err = red:connect(self.host, self.port)
    if not ok then return fail(self, "is unreachable: " .. tostring(err)) end
    self.red = red
    return redis.greet(self)
end

--- connect(url, opts) -> conn | nil, msg, code. opts.timeout (seconds, 5).
function M.connect(url, opts)
    return redis.open(Conn, url, { timeout = (opts or {}).timeout or 5 })
end

-- ngx.null (a nil bulk) as false, in arrays too.
local function plain(v)
    if v == ngx.null then return false end
    if type(v) == "table" then
        for i = 1, #v do v[i] = plain(v[i]) end
    end
    return v
end

function Conn:_call(cmd, ...)
    if not self.red then
        local opened, msg, code = self:_open()
        if not opened then return nil, msg, code end
    end
    local res, err = self.red[cmd:lower()](self.red, ...)
    if res == false and err then return nil, "REDIS: " .. err, "REDIS" end
    if res == nil then
        self:close() -- the stream is unusable: the next call opens another
        return fail(self, "went away: " .. tostring(err))
    end
    return plain(res)
end

function Conn:call(...)
    return redis.take_turns(self, ngx.sleep, ...)
end

function Conn:close()
    if self.red then self.red:close() end
    self.red = nil
end

return M
