-- The pipeline on a budget shared through a real redis-server: the real
-- runner, the real sandbox, the real Redis.
local cli = require("spec.support.cli")
local server = require("spec.support.redis")
local redis = require("marketo.redis")

local function script(path, src, budget)
    cli.write(path, ([[
        local result, msg, code = require("marketo.import").run{
            object = "leads", source = %q, part_bytes = 30000, lookup_field = "email",
            budget = %q,
        }
        if not result then
            io.stderr:write(msg, "\n", code, "\n")
            return require("marketo.import").exit_for(code, false)
        end
        return result.exit
    ]]):format(src, budget))
end

-- one redis-server for the file
local r
setup(function() r = server.start() end)
teardown(function() r.stop() end)

describe("the import pipeline on a Redis budget", function()
    local ctx = cli.sandboxed({ speed = 0 })

    -- A file of n leads in the test's folder; the sandbox's keys in the budget.
    local function leads(n)
        local src = ctx.dir .. "/leads.csv"
        cli.leads_csv(src, n)
        local host = cli.env_of(ctx.sb).MARKETO_BASE_URL:match("^%a+://([^/]+)")
        return src, "marketo-bulk:{" .. host .. "}:"
    end

    it("takes every slot and call from Redis and gives the slots back", function()
        local dir, sb = ctx.dir, ctx.sb
        local src, prefix = leads(3000)
        script(dir .. "/import.lua", src, r.url)
        local res = cli.run({ "run", dir .. "/import.lua" }, { env = cli.env_of(sb) })
        assert.equal(0, res.status, res.err)
        local doc = cli.read_json(dir .. "/leads.csv.report.json")
        assert.equal(3000, doc.rows.imported)
        assert.is_true(#doc.parts > 3)

        local conn = assert(redis.connect(r.url))
        for _, what in ipairs({ "queued", "importing", "in_flight" }) do
            assert.equal(0, conn:call("ZCARD", prefix .. what), what .. " still held")
        end
        -- every call the report counts is in the shared window
        local total = 0
        for _, n in pairs(doc.api_calls) do total = total + n end
        assert.equal(total, conn:call("ZCARD", prefix .. "calls"))
        assert.equal(cli.calls(sb, "^/"), total)
        conn:close()
    end)

    it("marketo-bulk import --budget, or MARKETO_BUDGET, shares it", function()
        local sb = ctx.sb
        local src, prefix = leads(500)
        local conn = assert(redis.connect(r.url))
        local key = prefix .. "calls"
        conn:call("DEL", key)
        local res = cli.run({ "import", "leads", src, "--budget", r.url, "--quiet" },
            { env = cli.env_of(sb) })
        assert.equal(0, res.status, res.err)
        local first = conn:call("ZCARD", key)
        assert.is_true(first >= 3, tostring(first))
        local env = cli.env_of(sb)
        env.MARKETO_BUDGET = r.url
        res = cli.run({ "import", "leads", src, "--restart", "--quiet" }, { env = env })
        assert.equal(0, res.status, res.err)
        assert.is_true(conn:call("ZCARD", key) > first)
        conn:close()
    end)

    it("refuses a budget that is not a Redis URL, without showing its password", function()
        local sb = ctx.sb
        local src = leads(10)
        local res = cli.run({ "import", "leads", src, "--budget", "redis:/:s3cret@host" },
            { env = cli.env_of(sb) })
        assert.equal(2, res.status, res.err)
        assert.matches("--budget: ", res.err, 1, true)
        assert.matches("expected redis://HOST:PORT/DB", res.err, 1, true)
        assert.is_nil(res.err:find("s3cret", 1, true), res.err)
        assert.equal(0, cli.calls(sb, "^/"))
    end)

    it("stops before sending when Redis is out of reach, saying so", function()
        local dir, sb = ctx.dir, ctx.sb
        local src = leads(100)
        local closed = require("socket").bind("127.0.0.1", 0)
        local _, port = closed:getsockname()
        closed:close()
        script(dir .. "/import.lua", src, ("redis://127.0.0.1:%d/0"):format(port))
        local res = cli.run({ "run", dir .. "/import.lua" }, { env = cli.env_of(sb) })
        assert.equal(4, res.status, res.err) -- run again once Redis is back
        assert.matches("BUDGET: Redis at 127.0.0.1:" .. port .. " is unreachable", res.err, 1,
            true)
        assert.equal(0, cli.calls(sb, "^/bulk/"))
    end)
end)

describe("runners sharing a Redis budget", function()
    -- slow enough that the parts wait their turn in Marketo's queue
    local ctx = cli.sandboxed({ speed = 3000 })

    -- Another runner holding 8 of the instance's 10 queue slots while ours imports
    -- 3000 rows in 6 parts: the most ours may have in the queue is 2.
    local function import_beside_another(budget_url)
        local dir, sb = ctx.dir, ctx.sb
        local host = cli.env_of(sb).MARKETO_BASE_URL:match("^%a+://([^/]+)")
        local other = assert(require("marketo.pipeline.budget").new({ url = r.url,
            instance = host, lease = 60 }))
        local held = {}
        for i = 1, 8 do held[i] = assert(other:try("queued")) end
        local src = dir .. "/leads.csv"
        cli.leads_csv(src, 3000)
        script(dir .. "/import.lua", src, budget_url)
        local res = cli.run({ "run", dir .. "/import.lua" }, { env = cli.env_of(sb) })
        for _, p in ipairs(held) do other:release("queued", p) end
        other:close()
        assert.equal(0, res.status, res.err)
        local doc = cli.read_json(dir .. "/leads.csv.report.json")
        assert.equal(3000, doc.rows.imported)
        assert.is_true(#doc.parts >= 6, #doc.parts .. " parts")
        local depth = cli.inspect(sb, "counters").max_queue_depth
        print(("budget %s: %d parts, at most %d of ours in the queue at once")
            :format(budget_url:match("^%a+"), #doc.parts, depth))
        return depth
    end

    it("leave one another the instance's queue slots", function()
        local depth = import_beside_another(r.url)
        assert.is_true(depth <= 2, "our jobs queued at once: " .. depth)
    end)

    it("(each on a budget of its own, ours would take more)", function()
        local depth = import_beside_another("local")
        assert.is_true(depth > 2, "our jobs queued at once: " .. depth)
    end)
end)
