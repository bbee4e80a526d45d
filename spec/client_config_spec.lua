local config = require("marketo.config")
local client = require("marketo.client")

local transport = { request = function() error("no call expected") end }

describe("marketo.config", function()
    describe("normalize_base_url", function()
        it("drops a trailing /rest and slashes", function()
            assert.equal("https://123-ABC-456.mktorest.com",
                config.normalize_base_url("https://123-ABC-456.mktorest.com/rest"))
            assert.equal("https://h.example", config.normalize_base_url("https://h.example/rest/"))
            assert.equal("http://127.0.0.1:8080",
                config.normalize_base_url("http://127.0.0.1:8080/"))
        end)
        it("refuses what is not a base URL", function()
            assert.is_nil(config.normalize_base_url("ftp://h"))
            assert.is_nil(config.normalize_base_url("https://h/other/path"))
        end)
    end)

    describe("resolve", function()
        it("reads the environment", function()
            local s = assert(config.resolve{ env = { MARKETO_BASE_URL = "https://x.example/rest",
                MARKETO_CLIENT_ID = "id", MARKETO_CLIENT_SECRET = "sec" } })
            assert.equal("https://x.example", s.base_url)
            assert.equal("id", s.client_id)
            assert.equal("sec", s.client_secret)
        end)
        it("builds the base URL from a munchkin id", function()
            local s = assert(config.resolve{ env = { MARKETO_MUNCHKIN_ID = "123-ABC-456",
                MARKETO_CLIENT_ID = "id", MARKETO_CLIENT_SECRET = "sec" } })
            assert.equal("https://123-ABC-456.mktorest.com", s.base_url)
        end)
        it("lets options win over the environment", function()
            local s = assert(config.resolve{ base_url = "https://o.example", client_id = "o",
                env = { MARKETO_BASE_URL = "https://e.example", MARKETO_CLIENT_ID = "e",
                    MARKETO_CLIENT_SECRET = "sec" } })
            assert.equal("https://o.example", s.base_url)
            assert.equal("o", s.client_id)
        end)
        it("names what is missing", function()
            local ok, msg, code = config.resolve{ env = {} }
            assert.is_nil(ok)
            assert.equal("CONFIG", code)
            assert.matches("MARKETO_BASE_URL", msg)
            ok, msg, code = config.resolve{ env = { MARKETO_BASE_URL = "https://x.example",
                MARKETO_CLIENT_ID = "id" } }
            assert.is_nil(ok)
            assert.equal("CONFIG", code)
            assert.matches("MARKETO_CLIENT_SECRET", msg)
        end)
    end)
end)

describe("marketo.client", function()
    describe("new", function()
        local env = { MARKETO_BASE_URL = "https://x.example/rest", MARKETO_CLIENT_ID = "my-id",
            MARKETO_CLIENT_SECRET = "very-secret-value" }

        it("rejects unknown and mistyped options", function()
            assert.has_error(function() client.new{ client_secert = "x" } end,
                "bad argument #1 to 'client.new' (unknown option 'client_secert')")
            assert.has_error(function() client.new{ timeout = "10" } end,
                "bad argument #1 to 'client.new' (option 'timeout': number expected, got string)")
            assert.has_error(function() client.new{ classes = { ["1003"] = "soon" } } end)
        end)

        it("points misuse errors at the script's line", function()
            local c = assert(client.new{ env = env, transport = transport })
            local cases = {
                function() c:import_leads{ path = "x", lookupField = "email" } end,
                function() c:import_custom_objects{ path = "x" } end,
                function() c:import("contacts", { path = "x" }) end,
                function() c:job("custom_objects", 1) end,
                function() c:job("leads", 1):wait{ every = 1 } end,
                function() client.new{ secret = "x" } end,
            }
            for i, f in ipairs(cases) do
                local ok, msg = pcall(f)
                assert.is_false(ok)
                assert.matches("client_config_spec%.lua:%d+: bad argument", msg, 1, false,
                    "case " .. i)
            end
        end)

        it("returns CONFIG when settings are missing", function()
            local c, _, code = client.new{ env = {}, transport = transport }
            assert.is_nil(c)
            assert.equal("CONFIG", code)
        end)

        it("shows the base URL and client id, never the secret", function()
            local c = assert(client.new{ env = env, transport = transport })
            assert.equal("marketo.client(https://x.example, client id my-id)", tostring(c))
            local seen = {}
            local function walk(v)
                if type(v) == "string" then assert.not_matches("very%-secret", v) end
                if type(v) ~= "table" or seen[v] then return end
                seen[v] = true
                for k, x in pairs(v) do walk(k); walk(x) end
            end
            walk(c)
        end)
    end)
end)
