-- What a user sees when something is wrong, through the real runner: a
-- condition the program can name is one line naming it, checked before
-- anything starts; a bug is one line saying so, with the traceback only on
-- request (--debug, MARKETO_BULK_DEBUG=1); a script's own error is the
-- script's, without the runner's internals.
local cli = require("spec.support.cli")
local files = require("spec.support.files")

local ROOT = assert(io.popen("pwd")):read("l")
local HINT = " (run again with --debug for the traceback, and report it)\n"

local function assert_one_line(text)
    assert.truthy(text:match("^[^\n]+\n$"), "one line expected, got: " .. text)
end

-- Nothing was started: the embedded sandbox says so on stderr when it starts.
local function assert_nothing_started(r)
    assert.is_nil(r.err:find("embedded sandbox at", 1, true), r.err)
end

-- Runs with the Lua modules read from files, ours after those in `dir`, so a
-- spec can put a broken module in front of them (MARKETO_LUA_DEV=1).
local function run_with_modules(dir, argv, env)
    env = env or {}
    env.MARKETO_LUA_DEV = "1"
    env.LUA_PATH = ("%s/?.lua;%s/lua/?.lua;%s/lua/?/init.lua;;"):format(dir, ROOT, ROOT)
    return cli.run(argv, { env = env })
end

describe("marketo-bulk errors", function()
    local dir, src
    before_each(function()
        dir = cli.tmpdir()
        src = dir .. "/leads.csv"
        cli.leads_csv(src, 3)
    end)
    after_each(function() cli.rmdir(dir) end)

    describe("a MARKETO_* variable set but empty", function()
        it("is an error naming it, not a silent fall-back to the sandbox", function()
            for _, name in ipairs({ "MARKETO_BASE_URL", "MARKETO_MUNCHKIN_ID",
                "MARKETO_CLIENT_ID", "MARKETO_CLIENT_SECRET" }) do
                local r = cli.run({ "import", "leads", src }, { env = { [name] = "" } })
                assert.equal(1, r.status, name .. ": " .. r.err)
                assert.equal(("marketo-bulk: %s is set but empty: unset it to use the embedded "
                    .. "sandbox, or give it a value\n"):format(name), r.err)
                assert.equal("", r.out)
            end
        end)

        it("is a CONFIG error for a script's client too", function()
            local script = dir .. "/client.lua"
            cli.write(script, [[
                local client, msg, code = require("marketo.client").new()
                print(client, code, msg)
            ]])
            local r = cli.run({ "run", script }, { env = { MARKETO_CLIENT_SECRET = "" } })
            assert.equal(0, r.status, r.err)
            assert.equal("nil\tCONFIG\tMARKETO_CLIENT_SECRET is set but empty: unset it to use "
                .. "the embedded sandbox, or give it a value\n", r.out)
            assert_nothing_started(r)
        end)
    end)

    describe("an internal error", function()
        before_each(function()
            os.execute("mkdir -p " .. files.q(dir .. "/marketo/commands"))
            cli.write(dir .. "/marketo/commands/boom.lua", [[
                return { summary = "a command with a bug",
                    main = function() local t; return t.field end }
            ]])
        end)

        it("is one line that says so, without a traceback", function()
            local r = run_with_modules(dir, { "boom" })
            assert.equal(1, r.status)
            assert_one_line(r.err)
            assert.truthy(r.err:find("^marketo%-bulk: internal error: .*boom%.lua:2: attempt to "
                .. "index a nil value"), r.err)
            assert.equal(HINT, r.err:sub(-#HINT))
        end)

        it("comes with its traceback after --debug or with MARKETO_BULK_DEBUG=1", function()
            for _, r in ipairs({ run_with_modules(dir, { "--debug", "boom" }),
                run_with_modules(dir, { "boom" }, { MARKETO_BULK_DEBUG = "1" }) }) do
                assert.equal(1, r.status)
                assert.truthy(r.err:find("^marketo%-bulk: internal error: .*boom%.lua:2: "), r.err)
                assert.truthy(r.err:find("\nstack traceback:\n", 1, true), r.err)
                assert.is_nil(r.err:find("run again with --debug", 1, true))
            end
        end)

        it("is one line too when the command line module itself does not load", function()
            cli.write(dir .. "/marketo/cli.lua", "error('cli is broken')\n")
            local r = run_with_modules(dir, { "--help" })
            assert.equal(1, r.status)
            assert_one_line(r.err)
            assert.truthy(r.err:find("^marketo%-bulk: internal error: .*cli is broken"), r.err)
            assert.equal(HINT, r.err:sub(-#HINT))
            r = run_with_modules(dir, { "--debug", "--help" })
            assert.truthy(r.err:find("\nstack traceback:\n", 1, true), r.err)
        end)
    end)

    describe("import's paths, checked before anything starts", function()
        it("a journal that is a folder", function()
            local r = cli.run({ "import", "leads", src, "--journal", dir })
            assert.equal(1, r.status)
            assert.equal(("marketo-bulk import: the journal %s is a folder: give a file "
                .. "name\n"):format(dir), r.err)
            assert_nothing_started(r)
        end)

        it("a report in a folder that does not exist", function()
            local report = dir .. "/nonexistent/r.json"
            local r = cli.run({ "import", "leads", src, "--report", report })
            assert.equal(1, r.status)
            assert.equal(("marketo-bulk import: the report %s: the folder %s/nonexistent does "
                .. "not exist\n"):format(report, dir), r.err)
            assert_nothing_started(r)
            assert.is_nil(cli.read(src .. ".journal")) -- nothing planned either
        end)

        it("an input file that is missing or a folder", function()
            local missing = dir .. "/missing.csv"
            local r = cli.run({ "import", "leads", src, missing })
            assert.equal(1, r.status)
            assert.equal(("marketo-bulk import: cannot read the file %s: No such file or "
                .. "directory\n"):format(missing), r.err)
            assert_nothing_started(r)
            r = cli.run({ "import", "leads", dir, "--dry-run" })
            assert.equal(1, r.status)
            assert.equal(("marketo-bulk import: cannot read the file %s: it is a folder, not a "
                .. "file\n"):format(dir), r.err)
        end)
    end)

    it("resume and status name a journal that is a folder", function()
        for _, command in ipairs({ "resume", "status" }) do
            local r = cli.run({ command, dir })
            assert.equal(1, r.status, r.err)
            assert.equal(("marketo-bulk %s: cannot read the journal %s: it is a folder, not a "
                .. "file\n"):format(command, dir), r.err)
            assert_nothing_started(r)
        end
    end)

    it("failures -o names a folder before it asks Marketo", function()
        local r = cli.run({ "failures", "leads", "7", "-o", dir })
        assert.equal(1, r.status)
        assert.equal(("marketo-bulk failures: the output file %s is a folder: give a file "
            .. "name\n"):format(dir), r.err)
        assert_nothing_started(r)
    end)

    describe("a script that raises", function()
        before_each(function()
            cli.write(dir .. "/bad.lua", "local n = 1\nlocal function f() error('kaput') end\n"
                .. "f(n)\n")
        end)

        it("prints the script's error as run's, without the runner's internals", function()
            local r = cli.run({ "run", "bad.lua" }, { cwd = dir })
            assert.equal(1, r.status)
            assert.equal("marketo-bulk run: bad.lua:2: kaput\n", r.err)
        end)

        it("with --debug, the script's traceback and none of the runner's frames", function()
            local r = cli.run({ "--debug", "run", "bad.lua" }, { cwd = dir })
            assert.equal(1, r.status)
            assert.equal("marketo-bulk run: bad.lua:2: kaput\nstack traceback:\n",
                r.err:sub(1, #"marketo-bulk run: bad.lua:2: kaput\nstack traceback:\n"))
            assert.truthy(r.err:find("bad.lua:3: in main chunk", 1, true), r.err)
            assert.is_nil(r.err:find("marketo/", 1, true), r.err)
        end)
    end)
end)
