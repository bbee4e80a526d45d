-- --verbose and --debug through the real runner against the real sandbox: each
-- HTTP exchange on stderr (method, path, status, requestId, time, bytes), with
-- --debug its headers, and never a secret or a token.
local cli = require("spec.support.cli")
local trace = require("marketo.commands.trace")

-- The exchange lines of a run's stderr, by "METHOD path".
local function exchanges(err)
    local out = {}
    for method, path, rest in err:gmatch("\nhttp: (%u+) (%S+) ([^\n]*)") do
        out[#out + 1] = { call = method .. " " .. path, rest = rest }
    end
    return out
end

describe("--verbose and --debug", function()
    local ctx = cli.sandboxed()

    local function import(flag)
        local src = ctx.dir .. "/leads.csv"
        cli.leads_csv(src, 50)
        -- the import's own exchanges: no describe, no usage call before it (but
        -- the one that starts the day's count of calls: marketo.pipeline.quota)
        local r = cli.run({ flag, "import", "leads", src, "--no-schema", "--ignore-quota",
            "--quiet" },
            { env = cli.env_of(ctx.sb) })
        assert.equal(0, r.status, r.err)
        return r
    end

    it("--verbose shows each exchange on one line, without headers", function()
        local r = import("--verbose")
        local calls = exchanges("\n" .. r.err)
        assert.same({ "POST /identity/oauth/token", "GET /rest/v1/stats/usage.json",
            "POST /bulk/v1/leads.json?format=csv" }, { calls[1].call, calls[2].call,
            calls[3].call })
        assert.matches("^200 requestId %S+ %d+%.%d%d%d s, sent %d+%.%d kB, received %d+ B$",
            calls[3].rest)
        assert.matches("^GET /bulk/v1/leads/batch/%d+%.json$", calls[4].call)
        assert.equal(4, #calls) -- identity, usage, import, one status: no failures or warnings
        assert.is_nil(r.err:find("\n  > ", 1, true))
        assert.is_nil(r.err:find(ctx.sb.client_secret, 1, true))
    end)

    it("--debug adds the headers, with the token masked", function()
        local r = import("--debug")
        assert.equal(4, #exchanges("\n" .. r.err))
        assert.matches("\n  > Authorization: Bearer %*%*%*\n", r.err)
        assert.matches("\n  < content%-type: application/json", r.err)
        assert.is_nil(r.err:find("Bearer [^*]"))
        assert.is_nil(r.err:find("access_token", 1, true))
        assert.is_nil(r.err:find(ctx.sb.client_secret, 1, true))
    end)

    it("masks credentials wherever an exchange could show them", function()
        local lines = trace.lines({ method = "GET",
            url = "https://x.mktorest.com/identity/oauth/token?grant_type=client_credentials"
                .. "&client_id=abc&client_secret=s3cr3t-value&access_token=tok-123456",
            status = 200, seconds = 0.5, sent = 0, received = 2048,
            request_headers = { "Authorization: Bearer tok-123456", "Cookie: id=tok-123456" },
            response_headers = { ["set-cookie"] = "BIGipServer=tok-123456" } }, true)
        local text = table.concat(lines, "\n")
        assert.is_nil(text:find("s3cr3t", 1, true), text)
        assert.is_nil(text:find("tok-123456", 1, true), text)
        assert.matches("client_secret=***", text, 1, true)
        assert.matches("> Authorization: Bearer ***\n  > Cookie: ***\n  < set-cookie: ***",
            text, 1, true)
        assert.matches("received 2.0 kB", lines[1], 1, true)
    end)
end)
