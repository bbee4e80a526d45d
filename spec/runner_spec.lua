-- The marketo-bulk runner for real (the binary `make build` makes, named by
-- MARKETO_BULK_BIN), and marketo.cli.main called in this process.
local BIN = os.getenv("MARKETO_BULK_BIN")
local runner = require("spec.support.cli")
local files = require("spec.support.files")
local script, quote = files.temp_file, files.q

-- Runs the runner, checking its exit status; returns stdout, stderr.
local function run(args, status)
    local r = runner.run(args)
    assert.equal(status, r.status, r.err)
    return r.out, r.err
end

local function exists(path)
    local f = io.open(path, "r")
    if f then f:close() end
    return f ~= nil
end

local function wait_for_file(path)
    local core = require("marketo.core")
    local deadline = core.monotonic() + 10
    while not exists(path) do
        assert(core.monotonic() < deadline, "timed out waiting for " .. path)
        core.sleep(0.01)
    end
end

describe("marketo-bulk", function()
    local temp
    before_each(function() temp = {} end)
    after_each(function() for _, p in ipairs(temp) do os.remove(p) end end)
    local function tmp(path) temp[#temp + 1] = path return path end

    it("is built and named by MARKETO_BULK_BIN", function()
        assert.is_string(BIN)
        assert.is_true(exists(BIN))
    end)

    describe("run", function()
        it("passes the arguments as arg and as ...", function()
            local path = tmp(script([[
                local n = select("#", ...)
                print(arg[0], arg[1], arg[2], #arg, n, (...), (select(2, ...)))
            ]]))
            local out, err = run({ "run", path, "one", "two words" }, 0)
            assert.equal(("%s\tone\ttwo words\t2\t2\tone\ttwo words\n"):format(path), out)
            assert.equal("", err)
        end)

        it("exits with a whole number the script returns", function()
            run({ "run", tmp(script("return 7")) }, 7)
            run({ "run", tmp(script("return 'seven'")) }, 0)
        end)

        it("exits 1 with the message when the script raises", function()
            local out, err = run({ "run", tmp(script("error('kaput')")) }, 1)
            assert.equal("", out)
            assert.matches("^marketo%-bulk run: .*:1: kaput\n$", err)
        end)

        it("exits 1 when the script does not exist or does not compile", function()
            local _, err = run({ "run", "/nonexistent/script.lua" }, 1)
            assert.matches("cannot open /nonexistent/script.lua", err, 1, true)
            _, err = run({ "run", tmp(script("local = 1")) }, 1)
            assert.matches("^marketo%-bulk run: .*:1: <name> expected near '='\n$", err)
        end)

        it("prints its usage for --help and exits 2 without a script", function()
            local out = run({ "run", "--help" }, 0)
            assert.matches("^usage: marketo%-bulk run SCRIPT %[ARGS%.%.%.%]\n.*\nExamples:\n", out)
            local out2, err2 = run({ "run" }, 2)
            assert.equal("", out2)
            assert.equal("marketo-bulk run: SCRIPT expected; see 'marketo-bulk run --help'\n", err2)
        end)
    end)

    describe("command line", function()
        it("prints the versions of marketo-bulk, Lua and libcurl", function()
            local out = run({ "--version" }, 0)
            local v = require("marketo.core").versions()
            assert.equal(("marketo-bulk %s\n%s\nlibcurl %s (%s)\n")
                :format(require("marketo")._VERSION, v.lua, v.curl, v.ssl), out)
            assert.matches("^Lua 5%.4%.%d+$", v.lua)
        end)

        it("prints the commands for --help", function()
            local out, err = run({ "--help" }, 0)
            assert.matches("^usage: marketo%-bulk COMMAND", out)
            assert.matches("\n  run +run an import script", out)
            assert.equal("", err)
        end)

        it("exits 2 with the usage on stderr without a command", function()
            local out, err = run({}, 2)
            assert.equal("", out)
            assert.matches("^usage: marketo%-bulk COMMAND", err)
        end)

        it("exits 2 for an unknown command", function()
            local out, err = run({ "frobnicate" }, 2)
            assert.equal("", out)
            assert.equal("marketo-bulk: unknown command 'frobnicate'; see 'marketo-bulk --help'\n",
                err)
        end)
    end)

    describe("signals", function()
        -- The script announces itself through a file, so the signal arrives only
        -- once the runner has installed its handlers.
        local LOOP = [[
            local core = require("marketo.core")
            io.open(arg[1], "w"):close()
            local deadline = core.monotonic() + 10
            while not core.stop_requested() do
                if core.monotonic() > deadline then return 3 end
                core.sleep(0.02)
            end
            print("stopping on " .. core.stop_requested())
            if arg[2] == "stubborn" then
                io.open(arg[1] .. ".saw", "w"):close()
                while core.monotonic() < deadline do core.sleep(0.02) end
                return 4
            end
        ]]

        -- Starts the script in the background, signals it once per entry of
        -- `signals` (waiting for the file `waits[i]` first); returns status, stdout.
        local function signalled(signals, stubborn)
            local ready = tmp(os.tmpname())
            os.remove(ready)
            tmp(ready .. ".saw")
            local path = tmp(script(LOOP))
            local p = assert(io.popen(("%s run %s %s %s & echo $!; wait $!; echo \"status $?\"")
                :format(quote(BIN), quote(path), quote(ready), stubborn and "stubborn" or ""), "r"))
            local pid = assert(tonumber(p:read("*l")))
            for i, sig in ipairs(signals) do
                wait_for_file(i == 1 and ready or ready .. ".saw")
                os.execute(("kill -%s %d"):format(sig, pid))
            end
            local out = p:read("*a")
            p:close()
            return tonumber(out:match("status (%d+)\n$")), out:gsub("status %d+\n$", "")
        end

        it("turns SIGTERM into a stop request the script sees", function()
            local status, out = signalled({ "TERM" })
            assert.equal(0, status)
            assert.equal("stopping on SIGTERM\n", out)
        end)

        it("turns SIGINT into a stop request the script sees", function()
            local status, out = signalled({ "INT" })
            assert.equal(0, status)
            assert.equal("stopping on SIGINT\n", out)
        end)

        it("exits at once with 128 + signal on a second signal", function()
            local status, out = signalled({ "INT", "INT" }, true)
            assert.equal(130, status)
            assert.equal("stopping on SIGINT\n", out)
            status = signalled({ "TERM", "TERM" }, true)
            assert.equal(143, status)
        end)

        it("takes its forked workers with it when killed with -9", function()
            -- Each worker writes its pid, then would run for two minutes: long past
            -- the spec's wait, so a worker that outlives its runner fails it.
            local dir = tmp(os.tmpname())
            os.remove(dir)
            assert(require("marketo.core").mkdir(dir))
            local path = tmp(script([[
                local core = require("marketo.core")
                require("marketo.pipeline.workers").run(2, function(k)
                    local f = io.open(arg[1] .. "/" .. k .. ".tmp", "w")
                    f:write(core.getpid())
                    f:close()
                    os.rename(arg[1] .. "/" .. k .. ".tmp", arg[1] .. "/" .. k)
                    local deadline = core.monotonic() + 120
                    while core.monotonic() < deadline do core.sleep(0.05) end
                    return {}
                end)
            ]]))
            local job = runner.start({ "run", path, dir })
            local pids = {}
            for k = 1, 2 do
                wait_for_file(dir .. "/" .. k)
                local f = assert(io.open(dir .. "/" .. k))
                pids[k] = assert(tonumber(f:read("a")))
                f:close()
                os.remove(dir .. "/" .. k)
            end
            finally(function()
                for _, pid in ipairs(pids) do os.execute("kill -9 " .. pid .. " 2>/dev/null") end
                os.remove(dir)
            end)
            job:signal("KILL")
            job:wait()
            local proc = require("spec.support.proc")
            for _, pid in ipairs(pids) do
                runner.await(function()
                    local state = proc.state(pid)
                    return state == "gone" or state == "Z"
                end, "worker " .. pid .. " ended with its runner")
            end
        end)
    end)
end)

describe("marketo.cli.main", function()
    local cli = require("marketo.cli")

    local function sink()
        local s = { text = "" }
        function s.write(self, ...)
            self.text = self.text .. table.concat({ ... })
            return self
        end
        return s
    end

    -- cli.main(argv) in process, checking its exit status: what it wrote to
    -- out and err.
    local function main(argv, status)
        local out, err = sink(), sink()
        assert.equal(status, cli.main(argv, out, err))
        return out.text, err.text
    end

    it("writes the versions to out and returns EXIT_OK", function()
        local out, err = main({ "--version" }, cli.EXIT_OK)
        assert.matches("^marketo%-bulk %d+%.%d+%.%d+\nLua 5%.4%.%d+\nlibcurl ", out)
        assert.equal("", err)
    end)

    it("returns EXIT_USAGE for an unknown command, one line on err", function()
        local out, err = main({ "no-such" }, cli.EXIT_USAGE)
        assert.equal("", out)
        assert.equal("marketo-bulk: unknown command 'no-such'; see 'marketo-bulk --help'\n", err)
    end)

    it("refuses a command name that is not a plain word", function()
        local _, err = main({ "../cli" }, cli.EXIT_USAGE)
        assert.matches("unknown command '%.%./cli'", err)
    end)

    it("hands run --help to the run command", function()
        local out, err = main({ "run", "--help" }, 0)
        assert.equal(require("marketo.commands.run").usage, out)
        assert.equal("", err)
    end)
end)
