-- Every number a command is given, through the real runner: a value that
-- cannot work is a usage error (exit 2) on one line that names the flag, the
-- value and what is allowed, before anything starts. Today's alternatives
-- were a hang (no job slot ever), a traceback, or a silent other value.
local cli = require("spec.support.cli")

-- A usage error: exit 2, one line holding each of `parts`, with the way to
-- the help and no usage dump, no traceback.
local function assert_usage_line(r, command, parts)
    assert.equal(2, r.status, r.err)
    assert.equal("", r.out)
    local line = r.err:match("^([^\n]*)\n$")
    assert.is_string(line, "one line expected, got: " .. r.err)
    assert.truthy(line:find("marketo-bulk " .. command .. ": ", 1, true), line)
    for _, part in ipairs(parts) do assert.truthy(line:find(part, 1, true), line) end
    assert.truthy(line:find(("; see 'marketo-bulk %s --help'"):format(command), 1, true), line)
end

-- Refused by a number kind of marketo.commands.args: "--FLAG VALUE: want WHAT".
local function assert_refused(r, flag, value, allowed, command)
    assert_usage_line(r, command or "import", { ("%s %s: want %s"):format(flag, value, allowed) })
end

describe("marketo-bulk flags", function()
    -- One file for every case: a refused flag never gets to touch it.
    local dir = cli.tmpdir()
    local src = dir .. "/leads.csv"
    cli.leads_csv(src, 3)
    teardown(function() cli.rmdir(dir) end)

    -- --dry-run: on the old code a value let through ends in exit 0, not a hang.
    local function import(...)
        return cli.run({ "import", "leads", src, "--dry-run", ... }, { cwd = dir })
    end

    -- import refuses each of `values` for flag, wanting `allowed`, and takes `good`.
    local function wants(flag, values, allowed, good)
        for _, value in ipairs(values) do
            assert_refused(import(flag, value), flag, value, allowed)
        end
        assert.equal(0, import(flag, good).status)
    end

    describe("import's limits", function()
        for _, flag in ipairs({ "--importing", "--queued", "--uploads", "--calls",
            "--in-flight" }) do
            it(flag .. " wants a whole number of 1 or more", function()
                wants(flag, { "0", "-1", "1.5", "1e3", "0x10", "two" },
                    "a whole number of 1 or more", "3")
                assert_refused(import(flag .. "=0"), flag, "0", "a whole number of 1 or more")
            end)
        end

        it("--window wants seconds above 0", function()
            wants("--window", { "0", "-20", "0.0", "inf", "nan" }, "a number of seconds above 0",
                "0.5")
        end)
    end)

    it("--part-bytes wants whole bytes that fit in Marketo's limit, and says the limit", function()
        wants("--part-bytes", { "0", "-5", "2.5", "10485761", "99999999999999999999" },
            "a number of bytes from 1 to 10485760", "10485760")
    end)

    -- Ids are checked by the object registry (marketo.objects), in its words.
    it("--list-id wants a positive whole number", function()
        for _, value in ipairs({ "abc", "0", "-3", "1.5", "1e3" }) do
            assert_usage_line(import("--list-id", value), "import",
                { "--list-id", "'" .. value .. "'", "a positive whole number" })
        end
        assert.equal(0, import("--list-id", "42").status)
    end)

    it("a program id is a positive whole number", function()
        for _, id in ipairs({ "abc", "-5", "1e3", "0x10", "1.5", "0" }) do
            local r = cli.run({ "import", "program_members", id, src, "--status", "On List",
                "--dry-run" }, { cwd = dir })
            assert_usage_line(r, "import", { "PROGRAM_ID", "'" .. id .. "'",
                "a positive whole number" })
        end
        local r = cli.run({ "import", "program_members", "1001", src, "--status", "On List",
            "--dry-run" }, { cwd = dir })
        assert.equal(0, r.status, r.err)
    end)

    it("a batch id is a positive whole number, checked before anything is asked", function()
        for _, command in ipairs({ "status", "failures", "warnings" }) do
            for _, id in ipairs({ "abc", "0", "-2", "1.5" }) do
                local r = cli.run({ command, "leads", id })
                assert_refused(r, "BATCH_ID", id, "a whole number of 1 or more", command)
            end
        end
    end)

    it("resume checks its limits the same way, before it starts anything", function()
        -- No journal there: on the old code the flag passed and the run went on.
        local journal = dir .. "/none.journal"
        local count, seconds = "a whole number of 1 or more", "a number of seconds above 0"
        for _, case in ipairs({ { "--importing", "0", count }, { "--calls", "-4", count },
            { "--window", "0", seconds }, { "--in-flight", "2.5", count } }) do
            local r = cli.run({ "resume", journal, case[1], case[2] })
            assert_refused(r, case[1], case[2], case[3], "resume")
            assert.is_nil(r.err:find("sandbox", 1, true))
        end
    end)

    describe("sandbox", function()
        -- --max-lifetime 1: on the old code, a value let through serves for a
        -- second and exits 0, instead of for ever.
        local function sandbox(...)
            return cli.run({ "sandbox", "--max-lifetime", "1", ... })
        end

        it("wants a port from 0 to 65535", function()
            for _, value in ipairs({ "99999", "65536", "-1", "80.5", "http" }) do
                assert_refused(sandbox("--port", value), "--port", value,
                    "a port number from 0 to 65535", "sandbox")
            end
        end)

        it("refuses limits that would never let a call or a job through", function()
            for _, case in ipairs({ { "--rate-limit", "0" }, { "--max-in-flight", "0" },
                { "--max-importing", "0" }, { "--max-queue", "0" },
                { "--max-file-bytes", "0" } }) do
                assert_refused(sandbox(case[1], case[2]), case[1], case[2],
                    "a whole number of 1 or more", "sandbox")
            end
            assert_refused(sandbox("--token-ttl", "0"), "--token-ttl", "0",
                "a number of seconds above 0", "sandbox")
            assert_refused(sandbox("--rate-window", "0"), "--rate-window", "0",
                "a number of seconds above 0", "sandbox")
            assert_refused(sandbox("--error-rate", "1.5"), "--error-rate", "1.5",
                "a share from 0 to 1", "sandbox")
        end)

        it("checks a --config file's values too, naming the file", function()
            local conf = dir .. "/sandbox.json"
            cli.write(conf, '{"port": 70000}')
            local r = cli.run({ "sandbox", "--config", conf, "--max-lifetime", "1" })
            assert.equal(2, r.status)
            assert.equal(("marketo-bulk sandbox: %s: port 70000: want a port number from 0 "
                .. "to 65535 (0: any free port)\n"):format(conf), r.err)
        end)
    end)
end)
