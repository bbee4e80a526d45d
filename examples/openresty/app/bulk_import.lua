--- bulk_import: one import of a CSV file of leads, run in the background of an
-- nginx worker, with its progress in a lua_shared_dict.
--
--   local bulk_import = require("bulk_import")
--   local id = bulk_import.start(dict, { path = "/data/leads.csv", lookupField = "email" })
--   bulk_import.progress(dict, id) -- { state, parts, parts_done, rows, processed, ... }
--
-- The file is cut into parts under Marketo's 10 MB limit (marketo.csv.plan);
-- each part is one bulk job, uploaded straight from its byte range of the file
-- with the header in front, then polled until it ends. Two parts run at once
-- (Marketo imports two jobs at a time per instance). All of it runs in an
-- ngx.timer on cosockets and ngx.sleep: the worker keeps serving meanwhile.
local cjson = require("cjson.safe")
local csv = require("marketo.csv")
local marketo_client = require("marketo.client")
local runtime = require("marketo.resty.runtime")
local transport = require("marketo.resty.transport")

local M = {}

--- Parts in flight at once.
M.CONCURRENCY = 2

local LEVELS = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }

local function now()
    ngx.update_time()
    return ngx.now()
end

-- The progress record is one JSON value per import: its fields change
-- together, and only this worker's timer writes it.
local function save(dict, id, p)
    local ok, err = dict:set("import:" .. id, cjson.encode(p))
    if not ok then ngx.log(ngx.ERR, "import ", id, ": progress not saved: ", err) end
end

--- progress(dict, id) -> the record, or nil for an unknown id.
function M.progress(dict, id)
    local text = dict:get("import:" .. tostring(id))
    return text and cjson.decode(text) or nil
end

local function new_client()
    return marketo_client.new{
        transport = transport.new{ timeout = 600 },
        sleep = ngx.sleep, clock = now,
        log = function(level, msg) ngx.log(LEVELS[level] or ngx.INFO, msg) end,
    }
end

-- One part: create the job, wait for it, add its counts to the progress.
local function import_part(ctx, index, part)
    local p = ctx.progress
    local job, msg = ctx.client:import_leads{
        path = ctx.opts.path, offset = part.offset, length = part.length,
        prefix = ctx.plan.header, filename = ("part-%04d.csv"):format(index),
        lookupField = ctx.opts.lookupField,
    }
    if not job then error(("part %d: %s"):format(index, msg), 0) end
    p.jobs[index] = job.id
    save(ctx.dict, ctx.id, p)
    local info, wmsg = job:wait{ rows = part.rows, first = ctx.opts.poll or 1 }
    if not info then error(("part %d (batch %s): %s"):format(index, tostring(job.id), wmsg), 0) end
    p.parts_done = p.parts_done + 1
    p.processed = p.processed + (info.processed or 0)
    p.failed = p.failed + (info.failed or 0)
    p.warned = p.warned + (info.warned or 0)
    save(ctx.dict, ctx.id, p)
end

-- A worker of the pool: takes the next part until none is left.
local function worker(ctx)
    while ctx.next <= #ctx.plan.parts and not ctx.rt.stop_requested() do
        local index = ctx.next
        ctx.next = ctx.next + 1
        import_part(ctx, index, ctx.plan.parts[index])
    end
end

local function run(ctx)
    local plan, msg = csv.plan(ctx.opts.path, { max_bytes = ctx.opts.max_bytes })
    if not plan then error(msg, 0) end
    local client, cmsg = new_client()
    if not client then error(cmsg, 0) end
    ctx.plan, ctx.client, ctx.next = plan, client, 1
    local p = ctx.progress
    p.state, p.parts, p.rows = "running", #plan.parts, plan.rows
    save(ctx.dict, ctx.id, p)
    for _ = 1, math.min(M.CONCURRENCY, #plan.parts) do ctx.rt.spawn(worker, ctx) end
    ctx.rt.run()
end

local function background(premature, dict, id, opts)
    if premature then return end
    local ctx = { dict = dict, id = id, opts = opts, progress = M.progress(dict, id) }
    ctx.rt = runtime.new{ stop_requested = function() return dict:get("stop:" .. id) end }
    local ok, err = pcall(run, ctx)
    local p = ctx.progress
    p.state = ok and (ctx.rt.stop_requested() and "stopped" or "done") or "failed"
    p.error = not ok and tostring(err) or nil
    p.finished = now()
    save(dict, id, p)
    if not ok then ngx.log(ngx.ERR, "import ", id, " failed: ", tostring(err)) end
end

--- start(dict, opts) -> id | nil, err. opts: path, lookupField, max_bytes
-- (of a part; default marketo.csv.PART_BYTES), poll (first poll interval, s).
function M.start(dict, opts)
    local id = dict:incr("imports", 1, 0)
    if not id then return nil, "shared dict full" end
    save(dict, id, { id = id, state = "planning", file = opts.path, parts = 0, parts_done = 0,
        rows = 0, processed = 0, failed = 0, warned = 0, jobs = {}, started = now() })
    local ok, err = ngx.timer.at(0, background, dict, id, opts)
    if not ok then return nil, "cannot start the timer: " .. tostring(err) end
    return id
end

--- stop(dict, id): the running parts end, no new part starts.
function M.stop(dict, id)
    return dict:set("stop:" .. tostring(id), true)
end

return M
