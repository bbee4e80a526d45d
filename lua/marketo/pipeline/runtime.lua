--- marketo.pipeline.runtime: the runtime the pipeline runs its concurrent work on
-- (see doc/internals.md), built on marketo.loop: coroutine tasks in one
-- thread, libcurl transfers in flight together, timers on the monotonic clock.
-- OpenResty has its own (marketo.resty.runtime) with the same five functions.
local core = require("marketo.core")
local Loop = require("marketo.loop")

local M = {}

--- loop([opts]) -> runtime. opts.clock/opts.sleep fake time for specs;
-- opts.stop_requested replaces the signal check (a spec's own stop button).
function M.loop(opts)
    opts = opts or {}
    local loop = Loop.new({ clock = opts.clock, sleep = opts.sleep })
    local clock = opts.clock or core.monotonic
    return {
        loop = loop,
        spawn = function(fn, ...) return loop:spawn(fn, ...) end,
        run = function() return loop:run() end,
        sleep = Loop.sleep,
        now = clock,
        stop_requested = opts.stop_requested or function()
            return core.stop_requested() ~= false
        end,
    }
end

return M
