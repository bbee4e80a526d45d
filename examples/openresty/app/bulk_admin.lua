--- bulk_admin: the admin endpoints of the example (see nginx.conf).
--
--   POST /imports?file=leads.csv[&lookup_field=email][&part_bytes=N][&poll=S]
--        [&calls=N&window=S]   (the call budget: N calls per S seconds)
--        [&worker=K]           (only worker K, ngx.worker.id(), starts it; 400
--                              unless 0 <= K < worker_processes)
--        -> 202 { "id": 1 }   (the import runs in the background)
--        -> 421 { "worker": J } when worker=K was given and worker J answered
--   GET  /imports     -> 200 { "worker": pid, "imports": [ progress records ] }
--   GET  /imports/1   -> 200 the progress record (bulk_import.progress)
--   POST /imports/1/stop -> 202: no new part starts
--
-- The budget (Marketo's limits, shared or not) is $MARKETO_BUDGET's: unset or
-- "local", each import keeps its own; shdict:NAME shares it between the workers
-- of this nginx, redis://HOST:PORT/DB with every runner and host using that
-- Redis. It is the deployment's setting, not a request's: an HTTP caller never
-- chooses which Redis the worker talks to.
--
-- Files are taken only from the directory in $MARKETO_IMPORT_DIR, by name,
-- and a symbolic link there that leads out of it is refused (403): an admin
-- endpoint that uploads any path it is given would ship any file the worker
-- can read to whoever holds the Marketo credentials. Journals,
-- reports and work files go to $MARKETO_WORK_DIR (default: the import
-- directory), which the worker's user must be able to write.
local cjson = require("cjson.safe")
local bulk_import = require("bulk_import")

local M = {}

local function reply(status, value)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(value))
    return ngx.exit(status)
end

local function dict()
    return ngx.shared.marketo_imports
end

-- realpath(3) through the FFI: the path with every symbolic link resolved.
local ffi = require("ffi")
pcall(ffi.cdef, "char *realpath(const char *path, char *resolved_path);")
pcall(ffi.cdef, "void free(void *ptr);")

local function realpath(path)
    local p = ffi.C.realpath(path, nil)
    if p == nil then return nil end
    local s = ffi.string(p)
    ffi.C.free(p)
    return s
end

-- The file's real path, or nil, why, and the HTTP status to answer with. The
-- name is resolved, symbolic links and all, and must still lie inside the
-- directory: a link placed there must not ship a file from elsewhere.
local function source(name)
    local dir = os.getenv("MARKETO_IMPORT_DIR")
    if not dir or dir == "" then return nil, "MARKETO_IMPORT_DIR is not set", 500 end
    if type(name) ~= "string" or not name:match("^[%w][%w._-]*$") then
        return nil, "file: a plain file name in MARKETO_IMPORT_DIR expected", 400
    end
    local real_dir = realpath(dir)
    local real = real_dir and realpath(dir .. "/" .. name)
    if not real then
        return nil, ("file: no file '%s' in MARKETO_IMPORT_DIR"):format(name), 400
    end
    if real:sub(1, #real_dir + 1) ~= real_dir .. "/" then
        return nil, ("file: '%s' is a symbolic link out of MARKETO_IMPORT_DIR; copy the file "
            .. "into the directory instead"):format(name), 403
    end
    return real
end

-- A parameter given twice comes as a table, one without a value as true:
-- either is the caller's mistake, not the server's.
local function bad_args(args)
    for k, v in pairs(args) do
        if type(v) == "table" then
            return ("%s: given %d times; give it once"):format(k, #v)
        elseif v == true then
            return ("%s: a value is expected (%s=...)"):format(k, k)
        end
    end
end

local function start()
    local args = ngx.req.get_uri_args()
    local err = bad_args(args)
    if err then return reply(400, { error = err }) end
    -- Connections go to whichever worker accepts them (reuseport: by a hash of
    -- the client's address and port): a caller spreading imports over the
    -- workers asks again on a new connection until worker K answers.
    if args.worker then
        local k, last = tonumber(args.worker), ngx.worker.count() - 1
        if not k or k < 0 or k > last or k % 1 ~= 0 then
            return reply(400, { error = ("worker: a number from 0 to %d"):format(last) })
        end
        if k ~= ngx.worker.id() then
            return reply(421, { error = "another worker answered", worker = ngx.worker.id() })
        end
    end
    local path, status
    path, err, status = source(args.file)
    if not path then return reply(status, { error = err }) end
    local id
    local work_dir = os.getenv("MARKETO_WORK_DIR")
    id, err = bulk_import.start(dict(), {
        path = path, lookup_field = args.lookup_field or "email",
        work_dir = (work_dir and work_dir ~= "") and work_dir or os.getenv("MARKETO_IMPORT_DIR"),
        part_bytes = tonumber(args.part_bytes), poll = tonumber(args.poll),
        calls = tonumber(args.calls), window = tonumber(args.window),
        budget = os.getenv("MARKETO_BUDGET"),
    })
    if not id then return reply(500, { error = err }) end
    return reply(202, { id = id })
end

--- Serves one admin request (content_by_lua).
function M.handle()
    local method, uri = ngx.req.get_method(), ngx.var.uri
    if method == "POST" and uri == "/imports" then return start() end
    if method == "GET" and uri == "/imports" then
        return reply(200, { worker = ngx.worker.pid(), imports = bulk_import.list(dict()) })
    end
    local id, rest = uri:match("^/imports/(%d+)(.*)$")
    local p = id and (rest == "" or rest == "/stop") and bulk_import.progress(dict(), id)
    if not p then return reply(404, { error = "no such import" }) end
    if method == "GET" and rest == "" then return reply(200, p) end
    if method == "POST" and rest == "/stop" then
        bulk_import.stop(dict(), id)
        return reply(202, { id = p.id, stopping = true })
    end
    return reply(405, { error = "method not allowed" })
end

return M
