-- TLS has no off switch anywhere in the Lua API (a private or test CA is
-- trusted by naming it), and a token never travels over plain http except to
-- this machine.
local http = require("marketo.http")
local client = require("marketo.client")
local config = require("marketo.config")
local cli = require("spec.support.cli")

local CREDS = { client_id = "id", client_secret = "very-secret-value" }

local function new_client(base_url)
    local o = { base_url = base_url, transport = { request = function() error("no call") end } }
    for k, v in pairs(CREDS) do o[k] = v end
    return client.new(o)
end

describe("TLS verification", function()
    it("cannot be switched off in marketo.http: verify is misuse", function()
        for _, value in ipairs({ false, true }) do
            local ok, msg = pcall(function() http.new{ verify = value } end)
            assert.is_false(ok)
            assert.matches("^spec/tls_spec%.lua:%d+: bad argument #1 to 'new' %(verify: TLS "
                .. "verification is always on; to trust a private or test CA, give ca_path",
                msg)
        end
        assert.is_table(http.new{ ca_path = "/etc/ssl/certs" })
    end)

    it("cannot be switched off through a client's http options", function()
        local ok, msg = pcall(function()
            client.new{ base_url = "https://x.example", client_id = "id",
                client_secret = "s", http = { verify = false } }
        end)
        assert.is_false(ok)
        assert.matches("^spec/tls_spec%.lua:%d+: bad argument #1 to 'client.new' %(http.verify: "
            .. "TLS verification is always on", msg)
    end)

    it("cannot be switched off in the OpenResty transport either", function()
        local transport = require("marketo.resty.transport")
        local ok, msg = pcall(transport.new, { verify = false })
        assert.is_false(ok)
        assert.matches("verification is always on; to trust a private or test CA, name it in "
            .. "nginx's lua_ssl_trusted_certificate", msg, 1, true)
    end)
end)

describe("a plain http:// base URL", function()
    it("is refused for a host that is not loopback, as CONFIG", function()
        for _, url in ipairs({ "http://example.com", "http://example.com:80/rest",
            "http://localhost.example.com", "http://10.0.0.1:8080", "http://127.0.0.1.example.com",
            "http://127.0.0.1@example.com", "http://[::2]:80" }) do
            local c, msg, code = new_client(url)
            assert.is_nil(c, url)
            assert.equal("CONFIG", code, url)
            assert.truthy(msg:find(url, 1, true), msg)
        end
        local _, msg = new_client("http://example.com")
        assert.equal('base URL "http://example.com": plain http is only for loopback '
            .. "(127.0.0.1, ::1, localhost); use https://", msg)
    end)

    it("is accepted for loopback (the sandbox), and https for any host", function()
        for url, base in pairs({ ["http://127.0.0.1:8080/rest"] = "http://127.0.0.1:8080",
            ["http://127.1.2.3"] = "http://127.1.2.3",
            ["http://localhost:9/"] = "http://localhost:9",
            ["http://[::1]:8080"] = "http://[::1]:8080",
            ["https://123-ABC-456.mktorest.com/rest"] = "https://123-ABC-456.mktorest.com" }) do
            local c = assert(new_client(url))
            assert.equal(base, c.base_url)
        end
        assert.equal("http://127.0.0.1", config.normalize_base_url("http://127.0.0.1"))
    end)

    it("is refused before a script's client sends anything, in the runner", function()
        local dir = cli.tmpdir()
        finally(function() cli.rmdir(dir) end)
        cli.write(dir .. "/client.lua", [[
            local c, msg, code = require("marketo.client").new()
            print(c, code, msg)
        ]])
        local r = cli.run({ "run", dir .. "/client.lua" }, { env = {
            MARKETO_BASE_URL = "http://example.com", MARKETO_CLIENT_ID = "id",
            MARKETO_CLIENT_SECRET = "very-secret-value" } })
        assert.equal(0, r.status, r.err)
        assert.equal('nil\tCONFIG\tbase URL "http://example.com": plain http is only for '
            .. "loopback (127.0.0.1, ::1, localhost); use https://\n", r.out)
    end)

    it("stops a command before it starts", function()
        local r = cli.run({ "status", "leads", "5" }, { env = {
            MARKETO_BASE_URL = "http://example.com", MARKETO_CLIENT_ID = "id",
            MARKETO_CLIENT_SECRET = "very-secret-value" } })
        assert.equal(1, r.status)
        assert.equal('marketo-bulk: base URL "http://example.com": plain http is only for '
            .. "loopback (127.0.0.1, ::1, localhost); use https://\n", r.err)
    end)
end)
