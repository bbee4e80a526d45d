-- Help and usage through the real runner: -h, --help and `help COMMAND` on
-- every command, each with examples that the command line really accepts; a
-- usage error is one line with the way to the help, never the whole help.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")
local files = require("spec.support.files")

local COMMANDS = require("marketo.cli").COMMANDS
local BIN = os.getenv("MARKETO_BULK_BIN")

-- The example lines of a help text, continuation lines joined.
local function examples(text)
    local block = text:match("\nExamples:\n(.*)$") or ""
    block = block:gsub("\\\n%s*", "")
    local list = {}
    for line in block:gmatch("  ([^\n]+)") do list[#list + 1] = line end
    return list
end

describe("marketo-bulk help", function()
    for _, name in ipairs(COMMANDS) do
        it(name .. ": -h, --help and `help " .. name .. "` print the same help, with examples",
            function()
                local r = cli.run({ name, "--help" })
                assert.equal(0, r.status, r.err)
                assert.equal("", r.err)
                assert.matches("^usage: marketo%-bulk " .. name, r.out)
                assert.is_true(#examples(r.out) > 0, "no examples in: " .. r.out)
                assert.same(r, cli.run({ name, "-h" }))
                assert.same(r, cli.run({ "help", name }))
            end)
    end

    it("lists the commands and `help COMMAND`, with examples", function()
        local r = cli.run({ "help" })
        assert.equal(0, r.status)
        assert.matches("help COMMAND", r.out, 1, true)
        assert.is_true(#examples(r.out) > 0)
        -- the modules the commands share are not commands
        for _, name in ipairs({ "nope", "args", "target" }) do
            for _, argv in ipairs({ { "help", name }, { name } }) do
                r = cli.run(argv)
                assert.equal(2, r.status)
                assert.equal(("marketo-bulk: unknown command '%s'; see 'marketo-bulk --help'\n")
                    :format(name), r.err)
            end
        end
    end)

    describe("every example", function()
        local sb, dir
        setup(function()
            sb = sandbox.start({ speed = 0 })
            dir = cli.tmpdir()
        end)
        teardown(function() sb.stop(); cli.rmdir(dir) end)

        -- Not a usage error (2): the files they name do not exist here, and the
        -- batches are unknown to the sandbox, so 1 is the answer; the sandbox's
        -- own examples would serve for ever, so they are only parsed.
        for _, name in ipairs(COMMANDS) do
            if name ~= "sandbox" then
                it("of " .. name .. " is accepted by its command line", function()
                    local help = cli.run({ name, "--help" }).out
                    -- the lines a shell runs as marketo-bulk (not a pipe into it)
                    for _, line in ipairs(examples(help)) do
                        if not line:match("^marketo%-bulk ") then goto next end
                        local shell = line:gsub("^marketo%-bulk ", files.q(BIN) .. " ", 1)
                        local env = ""
                        for k, v in pairs(cli.env_of(sb)) do
                            env = env .. k .. "=" .. files.q(v) .. " "
                        end
                        local ok, how, code = os.execute(("cd %s && env %s %s "
                            .. ">/dev/null 2>%s/err </dev/null"):format(files.q(dir), env,
                            shell, files.q(dir)))
                        assert.is_true(how == "exit" and code ~= 2, line .. ": "
                            .. tostring(ok) .. " " .. tostring(code) .. " "
                            .. tostring(cli.read(dir .. "/err")))
                        ::next::
                    end
                end)
            end
        end
    end)
end)

describe("a usage error", function()
    local function assert_usage_line(r, command, msg)
        assert.equal(2, r.status, r.err)
        assert.equal("", r.out)
        assert.equal(("marketo-bulk %s: %s; see 'marketo-bulk %s --help'\n")
            :format(command, msg, command), r.err)
    end

    it("is one line for status, failures, warnings, resume and run with nothing", function()
        assert_usage_line(cli.run({ "status" }), "status",
            "a JOURNAL, or a kind and a BATCH_ID, expected")
        for _, name in ipairs({ "failures", "warnings" }) do
            assert_usage_line(cli.run({ name }), name,
                "leads | custom_objects API_NAME | program_members expected")
            assert_usage_line(cli.run({ name, "leads" }), name, "BATCH_ID expected")
        end
        assert_usage_line(cli.run({ "resume" }), "resume", "JOURNAL expected")
        assert_usage_line(cli.run({ "run" }), "run", "SCRIPT expected")
        assert_usage_line(cli.run({ "import" }), "import",
            "leads | custom_objects API_NAME | program_members PROGRAM_ID expected")
        assert_usage_line(cli.run({ "import", "leads", "a.csv", "--nope" }), "import",
            "unknown flag --nope")
    end)

    it("names a program member batch by its id alone, as the command takes it", function()
        local help = cli.run({ "status", "--help" }).out
        assert.matches("status {leads | custom_objects API_NAME | program_members} BATCH_ID",
            help, 1, true)
        assert_usage_line(cli.run({ "status", "program_members", "1001", "7" }), "status",
            "one BATCH_ID expected, got '7' after it")
    end)
end)
