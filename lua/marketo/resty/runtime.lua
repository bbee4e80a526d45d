--- marketo.resty.runtime: the runtime interface (doc/internals.md) on ngx_lua's
-- light threads, for a pipeline running in a request handler or a timer.
--
--   local runtime = require("marketo.resty.runtime").new{
--       stop_requested = function() return dict:get("stop") end }   -- optional
--   runtime.spawn(fn, ...)   -- fn(...) in an ngx.thread
--   runtime.run()            -- waits for every spawned fn; re-raises the first error
--   runtime.sleep(s)         -- ngx.sleep: yields, never blocks the worker
--   runtime.now()            -- seconds (ngx.now after ngx.update_time)
--   runtime.stop_requested() -- opts.stop_requested(), or true after runtime.stop()
--
-- ngx.thread.wait only waits for the caller's own children, so each spawned
-- fn is wrapped: after fn returns, the wrapper waits for whatever fn spawned.
-- run() waits for the threads its own coroutine spawned, and so, through the
-- wrappers, for all of them. On an error the others are killed (as far as
-- ngx.thread.kill reaches: the caller's children) and the error is raised.
local options = require("marketo.options")

local M = { _VERSION = "0.1.0" }

local function now()
    ngx.update_time()
    return ngx.now()
end

local function sleep(s)
    if type(s) ~= "number" or s < 0 then
        error(("bad argument #1 to 'sleep' (non-negative number expected, got %s)")
            :format(tostring(s)), 2)
    end
    -- ngx.sleep(0) yields to nginx once: the other light threads get a turn.
    ngx.sleep(s)
end

local function traceback(err)
    if type(err) ~= "string" then return err end
    return debug.traceback(err, 2)
end

--- new(opts) -> runtime. opts.stop_requested: a function (e.g. reading a
-- lua_shared_dict flag an admin endpoint sets).
function M.new(opts)
    opts = options.check(opts, { stop_requested = "function" }, "new", 2)
    local children = setmetatable({}, { __mode = "k" }) -- coroutine -> { threads }
    local stopped = false
    local rt = { sleep = sleep, now = now }

    -- Waits for the threads the running coroutine spawned: true, or false, err.
    local function wait_children()
        local list = children[coroutine.running()]
        local i = 1
        while list and i <= #list do -- fn may spawn more while we wait
            local ok, fine, err = ngx.thread.wait(list[i])
            if not ok or not fine then
                for j = i + 1, #list do ngx.thread.kill(list[j]) end
                children[coroutine.running()] = nil
                if not ok then return false, fine end
                return false, err
            end
            i = i + 1
        end
        children[coroutine.running()] = nil
        return true
    end

    local function task(fn, ...)
        local ok, err = xpcall(fn, traceback, ...)
        local waited, werr = wait_children()
        if not ok then return false, err end
        return waited, werr
    end

    function rt.spawn(fn, ...)
        if type(fn) ~= "function" then
            error(("bad argument #1 to 'spawn' (function expected, got %s)"):format(type(fn)), 2)
        end
        local co = coroutine.running()
        local th, err = ngx.thread.spawn(task, fn, ...)
        if not th then error("marketo.resty.runtime: cannot spawn: " .. tostring(err), 2) end
        local list = children[co] or {}
        children[co] = list
        list[#list + 1] = th
        return th
    end

    function rt.run()
        local ok, err = wait_children()
        if not ok then error(err, 0) end
        return true
    end

    function rt.stop() stopped = true end

    function rt.stop_requested()
        if stopped then return true end
        return opts.stop_requested ~= nil and opts.stop_requested() and true or false
    end

    return rt
end

return M
