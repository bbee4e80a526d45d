--- marketo.pipeline.workers: the same Lua function run in several processes at once.
-- A Lua state runs on one core; a mapping with Lua functions over a big file
-- is bound by the interpreter, so the file is cut into shares and each share
-- is mapped by a forked copy of this process, which has the caller's
-- functions and upvalues as they were at the fork.
--
--   workers.run(n, fn) -> { result1, ..., resultn } | nil, msg, code
--
-- fn(k) runs in worker k (1..n) and returns a table of strings, numbers,
-- booleans and such tables (no functions, no cycles), which comes back as
-- results[k]. An error raised in a worker is raised again here, the first in
-- worker order, once every worker has ended; a worker that dies (a signal)
-- gives nil, msg, "WORKER_FAILED", or "STOPPED" when SIGINT or SIGTERM asked
-- this process to stop too (Ctrl-C reaches the whole process group, and a
-- worker ends on it at once). What a worker changes in its copy of the
-- process (upvalues, globals, open files' buffers) stays in that copy.
--
-- Not for OpenResty: an nginx worker must not fork (marketo.pipeline.runtime never
-- asks for more than one there).
local core = require("marketo.core")

local M = {}

local math_type = rawget(math, "type") -- nil before 5.3: every number a float

local function serialize(v, out)
    local t = type(v)
    if t == "string" then
        out[#out + 1] = ("%q"):format(v)
    elseif t == "number" then
        if v ~= v or v == math.huge or v == -math.huge then
            error("workers: a result holds " .. tostring(v), 0)
        end
        -- integers as they are; floats with every digit, and still floats
        if math_type and math_type(v) == "integer" then
            out[#out + 1] = ("%d"):format(v)
        else
            local s = ("%.17g"):format(v)
            out[#out + 1] = (math_type and not s:find("[.e]")) and s .. ".0" or s
        end
    elseif t == "boolean" then
        out[#out + 1] = tostring(v)
    elseif t == "table" then
        out[#out + 1] = "{"
        for k, x in pairs(v) do
            out[#out + 1] = "["
            serialize(k, out)
            out[#out + 1] = "]="
            serialize(x, out)
            out[#out + 1] = ","
        end
        out[#out + 1] = "}"
    else
        error("workers: a result holds a " .. t, 0)
    end
end

local function deserialize(text)
    local chunk = load("return " .. text, "=worker result", "t", {})
    return chunk and chunk()
end

-- The worker's side: run fn, write what it gave (or its error) and leave
-- without running the parent's exit handlers.
local function work(k, fn, path)
    local ok, res = pcall(fn, k)
    local out = {}
    local sok, serr = pcall(serialize, ok and { ok = true, value = res } or
        { ok = false, error = tostring(res) }, out)
    local f = io.open(path, "wb")
    if f then
        if sok then
            f:write(table.concat(out))
        else
            f:write(("{ok=false,error=%q}"):format(serr))
        end
        f:close()
    end
    core.exit_now(f and 0 or 1)
end

--- Runs fn(k) in n workers; see the header comment.
function M.run(n, fn)
    if type(n) ~= "number" or n < 1 or math.floor(n) ~= n then
        error("bad argument #1 to 'run' (a positive whole number expected)", 2)
    end
    if type(fn) ~= "function" then
        error("bad argument #2 to 'run' (function expected)", 2)
    end
    -- garbage left now would be finalized in every worker too
    collectgarbage("collect")
    local pids, paths = {}, {}
    local failure
    for k = 1, n do
        paths[k] = os.tmpname()
        local pid, msg, code = core.fork()
        if pid == 0 then work(k, fn, paths[k]) end
        if not pid then
            failure = { msg = msg, code = code }
            for j = 1, k - 1 do core.kill(pids[j]) end
            break
        end
        pids[k] = pid
    end
    local results = {}
    for k = 1, n do
        if pids[k] then
            local how, status = core.wait(pids[k])
            local f = io.open(paths[k], "rb")
            local text = f and f:read("a")
            if f then f:close() end
            local r = how == "exited" and status == 0 and text and deserialize(text)
            if not failure then -- the first failure stands; the rest are only reaped
                local stop = how == "signaled" and core.stop_requested()
                if not r and stop then
                    -- Ctrl-C reached the workers too: the user asked for this
                    failure = { msg = ("STOPPED: %s stopped the %d workers; nothing they did "
                        .. "is kept"):format(stop, n), code = "STOPPED" }
                elseif not r then
                    failure = { msg = ("WORKER_FAILED: worker %d of %d ended %s %s; nothing "
                        .. "it did is kept"):format(k, n, how == "signaled" and "by signal"
                        or "with status", tostring(status)), code = "WORKER_FAILED" }
                elseif not r.ok then
                    failure = { raised = r.error }
                else
                    results[k] = r.value
                end
                if failure then
                    for j = k + 1, n do if pids[j] then core.kill(pids[j]) end end
                end
            end
        end
        if paths[k] then os.remove(paths[k]) end
    end
    if failure and failure.raised then error(failure.raised, 0) end
    if failure then return nil, failure.msg, failure.code end
    return results
end

return M
