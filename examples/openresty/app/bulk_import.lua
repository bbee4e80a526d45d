--- bulk_import: imports of CSV files of leads, run in the background of an
-- nginx worker, with their progress in a lua_shared_dict.
--
--   local bulk_import = require("bulk_import")
--   local id = bulk_import.start(dict, { path = "/data/leads.csv", lookup_field = "email",
--                                        work_dir = "/var/lib/marketo" })
--   bulk_import.progress(dict, id) -- { state, parts, parts_done, rows, processed, ... }
--
-- The import is marketo.import's whole pipeline (plan, journal, scheduler,
-- report) on the OpenResty runtime: its tasks are ngx.thread light threads,
-- its waits ngx.sleep, its HTTP calls cosockets, all in an ngx.timer. The
-- worker keeps serving its other requests meanwhile.
local cjson = require("cjson.safe")
local import = require("marketo.import")
local runtime = require("marketo.resty.runtime")
local transport = require("marketo.resty.transport")

local M = {}

local LEVELS = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }

local function log(level, msg)
    ngx.log(LEVELS[level] or ngx.INFO, msg)
end

-- The progress record is one JSON value per import: its fields change
-- together, and only the import's own timer writes it.
local function save(dict, id, p)
    local ok, err = dict:set("import:" .. id, cjson.encode(p))
    if not ok then ngx.log(ngx.ERR, "import ", id, ": progress not saved: ", err) end
end

--- progress(dict, id) -> the record, or nil for an unknown id.
function M.progress(dict, id)
    local text = dict:get("import:" .. tostring(id))
    return text and cjson.decode(text) or nil
end

-- Folds the pipeline's events (marketo.pipeline.scheduler) into the progress record.
local function tracker(dict, id, p)
    local handlers = {
        planned = function(ev)
            p.state, p.rows, p.parts, p.parts_done = "running", ev.rows, ev.parts, ev.parts_done
        end,
        uploaded = function(ev)
            p.uploaded = p.uploaded + (ev.rows or 0)
            p.jobs[#p.jobs + 1] = ev.batch
        end,
        finished = function(ev)
            p.processed = p.processed + (ev.processed or 0)
            p.failed = p.failed + (ev.failed or 0)
            p.warned = p.warned + (ev.warned or 0)
        end,
        fetched = function() p.parts_done = p.parts_done + 1 end,
        error = function(ev) p.error = ev.message end,
        stopping = function() p.state = "stopping" end,
    }
    return function(ev)
        local handle = handlers[ev.ev]
        if handle then
            handle(ev)
            save(dict, id, p)
        end
    end
end

local function run(dict, id, opts, p)
    local rt = runtime.new{ stop_requested = function() return dict:get("stop:" .. id) end }
    -- A journal name of its own: ids start again at 1 when nginx restarts, and a
    -- journal that already exists would resume that older import instead.
    local base = ("%s/%s.%d-%d"):format(opts.work_dir, opts.path:match("[^/]+$"),
        ngx.time(), id)
    return import.run{
        object = "leads", lookup_field = opts.lookup_field, source = opts.path,
        journal = base .. ".journal", part_bytes = opts.part_bytes,
        runtime = rt, transport = transport.new{ timeout = 600 },
        -- The client's waits (retries, token) must yield too, on the same clock.
        client = { sleep = rt.sleep, clock = rt.now, log = log },
        limits = { poll_first = opts.poll, calls = opts.calls, window = opts.window },
        budget = opts.budget ~= "" and opts.budget or nil,
        on_event = tracker(dict, id, p),
    }
end

local function background(premature, dict, id, opts)
    if premature then return end
    local p = M.progress(dict, id)
    p.worker = ngx.worker.pid() -- the timer runs in the worker that took the POST
    save(dict, id, p)
    local ok, result, msg = pcall(run, dict, id, opts, p)
    if not ok or not result then
        p.state, p.error = "failed", tostring(ok and msg or result)
        ngx.log(ngx.ERR, "import ", id, " failed: ", p.error)
    else
        p.state = result.ended == "complete" and "done" or result.ended
        p.exit, p.report, p.summary = result.exit, result.report_path, result.summary
        p.journal = result.journal
        p.error = p.error or result.message
    end
    ngx.update_time()
    p.finished = ngx.now()
    save(dict, id, p)
end

--- list(dict) -> every import's progress record, oldest first.
function M.list(dict)
    local out = {}
    for id = 1, dict:get("imports") or 0 do out[#out + 1] = M.progress(dict, id) end
    return out
end

--- start(dict, opts) -> id | nil, err. opts: path, lookup_field, work_dir (the
-- journal, report and work files; writable by the worker), part_bytes (default
-- marketo.csv.PART_BYTES), poll (first poll interval, s), calls and window
-- (the call budget), budget (marketo.import.run's: "local", shdict:NAME or
-- redis://HOST:PORT/DB; nil or "" for local).
function M.start(dict, opts)
    local id = dict:incr("imports", 1, 0)
    if not id then return nil, "shared dict full" end
    save(dict, id, { id = id, state = "planning", file = opts.path, parts = 0,
        parts_done = 0, rows = 0, uploaded = 0, processed = 0, failed = 0, warned = 0,
        jobs = {}, started = ngx.now() })
    local ok, err = ngx.timer.at(0, background, dict, id, opts)
    if not ok then return nil, "cannot start the timer: " .. tostring(err) end
    return id
end

--- stop(dict, id): no new part starts; what is in flight finishes its journal
-- line (marketo.import resumes it from the journal).
function M.stop(dict, id)
    return dict:set("stop:" .. tostring(id), true)
end

return M
