--- marketo.sandbox.clock: the sandbox's own time. Everything that ages in the
-- sandbox (tokens, the rate window, the daily quota, jobs importing at
-- `speed` rows per second, batch ids) reads this clock, so a test can move
-- time on instead of sleeping: advance(s) jumps ahead, freeze() holds time
-- still (a job stays Importing, a token stays live) until thaw() or the
-- next advance. It never goes back. Network timeouts and the `latency` and
-- `slow_seconds` delays stay on real time: they are about sockets.
local M = {}
M.__index = M

--- new{ clock = monotonic seconds, wall = epoch seconds }
function M.new(opts)
    return setmetatable({ real = opts.clock, real_wall = opts.wall, offset = 0,
                          frozen_at = nil }, M)
end

--- Monotonic seconds on the sandbox's clock.
function M:now()
    return (self.frozen_at or self.real()) + self.offset
end

--- Epoch seconds on the sandbox's clock (the real date, moved as `now` is).
function M:wall()
    return self.real_wall() + (self:now() - self.real())
end

--- Moves time on by `seconds` (>= 0).
function M:advance(seconds)
    self.offset = self.offset + seconds
end

function M:freeze()
    if not self.frozen_at then self.frozen_at = self.real() end
end

--- Time runs again from where it stood.
function M:thaw()
    if self.frozen_at then
        self.offset = self.offset + self.frozen_at - self.real()
        self.frozen_at = nil
    end
end

function M:frozen()
    return self.frozen_at ~= nil
end

--- What GET/POST /__sandbox/clock show.
function M:view()
    return { now = self:now(), wall = self:wall(), frozen = self:frozen() }
end

return M
