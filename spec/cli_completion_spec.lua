-- Bash completion, made by the runner from its commands' own flags: what
-- bash offers is what each command takes, through a real bash.
local cli = require("spec.support.cli")
local files = require("spec.support.files")

local BIN = os.getenv("MARKETO_BULK_BIN")

-- What bash's completion offers for `words` (the last one being completed).
local function offered(words)
    local quoted = {}
    for i, w in ipairs(words) do quoted[i] = files.q(w) end
    local script = ("source <(%s completion bash); COMP_WORDS=(marketo-bulk %s); "
        .. "COMP_CWORD=%d; _marketo_bulk; printf '%%s\\n' \"${COMPREPLY[@]}\"")
        :format(files.q(BIN), table.concat(quoted, " "), #words)
    local p = assert(io.popen("bash -c " .. files.q(script)))
    local out = {}
    for line in p:lines() do out[#out + 1] = line end
    p:close()
    return out
end

local function set(list)
    local s = {}
    for _, v in ipairs(list) do s[v] = true end
    return s
end

describe("marketo-bulk completion bash", function()
    it("offers the commands", function()
        assert.same({ "import" }, offered({ "imp" }))
        assert.is_true(set(offered({ "" })).completion)
    end)

    it("offers each command's own flags, and never --client-secret", function()
        local import = set(offered({ "import", "--" }))
        for _, flag in ipairs({ "--restart", "--keep-unmapped", "--encoding", "--profile",
            "--map", "--lenient", "--status" }) do
            assert.is_true(import[flag], flag)
        end
        assert.is_nil(import["--client-secret"])
        assert.same({ "--output" }, offered({ "failures", "--out" }))
        assert.is_nil(set(offered({ "status", "--" }))["--map"])
        assert.is_true(set(offered({ "sandbox", "--" }))["--error-rate"])
    end)

    it("offers the object kinds after import, status, failures and warnings", function()
        assert.same({ "custom_objects" }, offered({ "status", "cust" }))
        assert.same({ "program_members" }, offered({ "import", "program_m" }))
    end)

    it("is a usage error for another shell", function()
        local r = cli.run({ "completion", "zsh" })
        assert.equal(2, r.status)
        assert.equal("marketo-bulk completion: bash expected (the one shell it knows); see "
            .. "'marketo-bulk completion --help'\n", r.err)
    end)
end)
