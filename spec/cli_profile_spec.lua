-- Profiles and the instance flags, through the real runner and sandbox: a
-- profile names an instance (its secret inline or in a file of its own);
-- --profile or MARKETO_PROFILE picks it; files others can read are refused
-- with the chmod that fixes them; the secret never goes on the command line.
local cli = require("spec.support.cli")
local files = require("spec.support.files")

describe("marketo-bulk profiles", function()
    local ctx = cli.sandboxed()
    local sb, dir, src, conf
    before_each(function()
        sb, dir = ctx.sb, ctx.dir
        src = dir .. "/leads.csv"
        cli.leads_csv(src, 3)
        conf = dir .. "/conf/marketo-bulk"
        os.execute("mkdir -p " .. files.q(conf))
        cli.write(conf .. "/profiles", ([[
            ; two instances
            [other]
            munchkin_id = 000-AAA-000
            client_id = nobody
            client_secret = nothing

            [local]
            base_url = %s
            client_id = %s
            client_secret_file = local.secret
        ]]):format(sb.base_url, sb.client_id))
        cli.write(conf .. "/local.secret", sb.client_secret .. "\n")
        os.execute("chmod 600 " .. files.q(conf .. "/profiles") .. " "
            .. files.q(conf .. "/local.secret"))
    end)

    local function import(args, env)
        env = env or {}
        env.XDG_CONFIG_HOME = dir .. "/conf"
        local argv = { "import", "leads", src, "--quiet" }
        for _, a in ipairs(args) do argv[#argv + 1] = a end
        return cli.run(argv, { env = env })
    end

    it("--profile names the instance, its secret read from its file", function()
        local r = import({ "--profile", "local" })
        assert.equal(0, r.status, r.out .. r.err)
        assert.not_matches("embedded sandbox", r.err, 1, true)
        assert.equal(3, #cli.inspect(sb, "records/leads"))
    end)

    it("MARKETO_PROFILE does the same, and a flag wins over it", function()
        local r = import({}, { MARKETO_PROFILE = "local" })
        assert.equal(0, r.status, r.out .. r.err)
        r = import({ "--restart", "--client-id", "someone-else" }, { MARKETO_PROFILE = "local" })
        assert.equal(1, r.status, r.out .. r.err)
        assert.matches("AUTH_FAILED", r.out .. r.err, 1, true) -- (the schema is asked first)
    end)

    it("refuses a profiles file or a secret file others can read, naming the chmod", function()
        for _, file in ipairs({ "profiles", "local.secret" }) do
            local path = conf .. "/" .. file
            os.execute("chmod 640 " .. files.q(path))
            local r = import({ "--profile", "local" })
            assert.equal(1, r.status, r.err)
            assert.equal(("marketo-bulk: profile 'local': %s can be read by others (mode 640): "
                .. "run `chmod 600 %s`\n"):format(path, path), r.err)
            os.execute("chmod 600 " .. files.q(path))
        end
        assert.equal(0, #cli.inspect(sb, "log"))
    end)

    it("names the profiles a file has when asked for another", function()
        local r = import({ "--profile", "prod" })
        assert.equal(1, r.status, r.err)
        assert.equal(("marketo-bulk: profile 'prod' is not in %s/profiles (it has: local, "
            .. "other)\n"):format(conf), r.err)
    end)

    it("takes --base-url and --client-id, and never a secret on the command line", function()
        local r = import({ "--base-url", sb.base_url, "--client-id", sb.client_id },
            { MARKETO_CLIENT_SECRET = sb.client_secret })
        assert.equal(0, r.status, r.out .. r.err)
        r = import({ "--client-secret", "s3cr3t-value" })
        assert.equal(2, r.status, r.err)
        assert.matches("^marketo%-bulk import: %-%-client%-secret: a secret on the command line "
            .. "shows in `ps`", r.err)
        assert.not_matches("s3cr3t-value", r.err, 1, true)
    end)
end)
