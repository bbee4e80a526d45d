--- spec/support/cli.lua: run the real marketo-bulk binary from a spec.
--
--   local cli = require("spec.support.cli")
--   local r = cli.run({ "import", "leads", path }, { env = sandbox_env(sb), cwd = dir })
--   r.status, r.out, r.err
--   local job = cli.start({ ... }, opts)   -- in the background: job.pid, job:wait(),
--                                          -- job.stderr() (so far)
local files = require("spec.support.files")

local M = {}

local BIN = os.getenv("MARKETO_BULK_BIN")

local q = files.q

local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("a")
    f:close()
    return s
end

-- The schema cache (marketo.schema) of the commands a spec process runs,
-- unless `env` names one: never the developer's own ~/.cache.
local cache_folder
local function cache_dir()
    cache_folder = cache_folder or files.tmpdir()
    return cache_folder
end

-- The environment a child gets: MARKETO_* only from `env` (never the
-- developer's own credentials), plus anything else given.
local function command_line(argv, opts)
    local parts = { "env -u MARKETO_BASE_URL -u MARKETO_MUNCHKIN_ID -u MARKETO_CLIENT_ID"
        .. " -u MARKETO_CLIENT_SECRET -u MARKETO_PROFILE" }
    local names = {}
    for k in pairs(opts.env or {}) do names[#names + 1] = k end
    table.sort(names)
    for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. q(opts.env[k]) end
    if not (opts.env or {}).XDG_CACHE_HOME then
        parts[#parts + 1] = "XDG_CACHE_HOME=" .. q(cache_dir())
    end
    parts[#parts + 1] = q(opts.bin or BIN)
    for _, a in ipairs(argv) do parts[#parts + 1] = q(a) end
    local line = table.concat(parts, " ")
    if opts.cwd then line = "cd " .. q(opts.cwd) .. " && " .. line end
    return line
end

--- run(argv, opts) -> { status, out, err }. opts: env, cwd, bin.
function M.run(argv, opts)
    opts = opts or {}
    local out, err = os.tmpname(), os.tmpname()
    local ok, how, code = os.execute("(" .. command_line(argv, opts) .. ") >" .. q(out)
        .. " 2>" .. q(err) .. " </dev/null")
    local r = { out = slurp(out), err = slurp(err) }
    os.remove(out)
    os.remove(err)
    r.status = (how == "exit") and code or (128 + (code or 0))
    r.ok = ok
    return r
end

--- start(argv, opts) -> job: the command in the background. job.pid;
-- job:wait() -> { status, out, err }; job:signal(name) sends a signal.
function M.start(argv, opts)
    opts = opts or {}
    local out, err, st = os.tmpname(), os.tmpname(), os.tmpname()
    -- The subshell records the exit status, so wait() works after kill -9.
    local line = "(" .. command_line(argv, opts) .. " >" .. q(out) .. " 2>" .. q(err)
        .. " </dev/null; echo $? >" .. q(st) .. ".tmp; mv " .. q(st) .. ".tmp " .. q(st)
        .. ") & echo $!"
    os.remove(st)
    local p = assert(io.popen(line))
    local shell_pid = tonumber(p:read("l"))
    p:close()
    local job = { shell_pid = shell_pid }
    -- The runner is the shell's child; find it to signal it directly.
    for _ = 1, 200 do
        local c = io.popen("pgrep -P " .. shell_pid .. " 2>/dev/null")
        local pid = c and tonumber(c:read("l"))
        if c then c:close() end
        if pid then job.pid = pid; break end
        os.execute("sleep 0.01")
    end
    function job.signal(_, name)
        if job.pid then os.execute("kill -" .. name .. " " .. job.pid .. " 2>/dev/null") end
    end
    --- What the command wrote on stderr so far (to wait for a line it prints).
    function job.stderr() return slurp(err) end
    function job.done()
        local f = io.open(st, "r")
        if f then f:close() end
        return f ~= nil
    end
    function job.wait(_, timeout)
        local deadline = os.time() + (timeout or 120)
        while not job.done() do
            assert(os.time() <= deadline, "command did not end: " .. table.concat(argv, " "))
            os.execute("sleep 0.02")
        end
        local r = { out = slurp(out), err = slurp(err), status = tonumber(slurp(st)) }
        os.remove(out); os.remove(err); os.remove(st)
        return r
    end
    return job
end

--- The environment that points a command at a spawned sandbox.
function M.env_of(sb)
    return { MARKETO_BASE_URL = sb.base_url, MARKETO_CLIENT_ID = sb.client_id,
        MARKETO_CLIENT_SECRET = sb.client_secret }
end

--- Files and the sandbox's inspection endpoints, for the pipeline specs.
M.write, M.read, M.tmpdir, M.rmdir = files.write, files.read, files.tmpdir, files.rmdir

--- A spec file's sandbox (a spec.support.sandbox fixture) and a fresh folder
-- for each test, on the spec file's busted hooks (they are not globals):
--   local t = cli.per_test(fx, { setup, teardown, before_each, after_each })
-- t.sb and t.dir are the current test's.
function M.per_test(fx, hooks)
    local t = {}
    hooks[1](fx.start)
    hooks[2](fx.stop)
    hooks[3](function()
        t.sb = fx.fresh()
        t.dir = M.tmpdir()
    end)
    hooks[4](function() M.rmdir(t.dir) end)
    return t
end

function M.read_json(path)
    return assert(require("marketo.json").decode(assert(M.read(path))))
end

--- The sandbox and the folder of a describe block's tests: ctx.sb, started once
-- and reset before each test, and ctx.dir, a new folder for each.
function M.sandboxed(config)
    local ctx = {}
    local b = require("busted") -- its functions, which a spec file sees as globals
    local setup, teardown, before_each, after_each = b.setup, b.teardown, b.before_each,
        b.after_each
    setup(function() ctx.sb = require("spec.support.sandbox").start(config or { speed = 0 }) end)
    teardown(function() ctx.sb.stop() end)
    before_each(function()
        ctx.sb.reset()
        ctx.dir = M.tmpdir()
    end)
    after_each(function() M.rmdir(ctx.dir) end)
    return ctx
end

--- A file's permission bits, as stat prints them ("600").
function M.mode_of(path)
    local p = assert(io.popen("stat -c %a " .. q(path)))
    local m = p:read("l")
    p:close()
    return m
end

--- Waits for an event (a journal record, a file's contents): polls `cond` until
-- it returns a true value, and fails after 60 s.
function M.await(cond, what)
    local socket = require("socket")
    local deadline = socket.gettime() + 60
    while true do
        local v = cond()
        if v then return v end
        assert(socket.gettime() < deadline, "never happened: " .. what)
        socket.sleep(0.005)
    end
end

--- GET /__sandbox/PATH of a spawned sandbox, decoded (raises unless 200).
function M.inspect(sb, path)
    local body, status = sb.get("/__sandbox/" .. path)
    assert(status == 200, "inspect " .. path .. ": " .. tostring(status))
    return assert(require("marketo.json").decode(body))
end

--- How many requests in a spawned sandbox's log have a path matching
-- `pattern` (a Lua pattern): "^/bulk/" counts uploads and the calls after them,
-- "describe" the describe calls.
function M.calls(sb, pattern)
    local n = 0
    for _, e in ipairs(M.inspect(sb, "log")) do
        if e.path:find(pattern) then n = n + 1 end
    end
    return n
end

--- The environment of M.env_of with its own cache folder (the schema's).
function M.env_cached(sb, cache)
    local env = M.env_of(sb)
    env.XDG_CACHE_HOME = cache
    return env
end

--- { email = firstName } of every lead a spawned sandbox stores.
function M.first_names(sb)
    local out = {}
    for _, rec in ipairs(M.inspect(sb, "records/leads")) do out[rec.email] = rec.firstName end
    return out
end

--- n leads (email, firstName, lastName with a comma, company, leadScore);
-- o.bad_every: every so many a score Marketo refuses; o.warn_every: every so
-- many an email it warns about.
function M.leads_csv(path, n, o)
    o = o or {}
    local out = { "email,firstName,lastName,company,leadScore" }
    for i = 1, n do
        local email = ("lead%d@example.com"):format(i)
        if o.warn_every and i % o.warn_every == 0 then email = ("lead%d-at-example"):format(i) end
        local score = (o.bad_every and i % o.bad_every == 0) and "lots" or tostring(i % 100)
        out[#out + 1] = ('%s,First%d,"Last, %d",Acme %d,%s'):format(email, i, i, i % 7, score)
    end
    M.write(path, table.concat(out, "\n") .. "\n")
end

return M
