-- The cost of an import before it is sent (issue 13): the dry run's estimate,
-- and a real run refused when it may spend more calls than today leaves.
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")
local cost = require("marketo.pipeline.cost")

describe("the quota and the cost", function()
    local sb, dir
    setup(function() sb = sandbox.start({ speed = 0 }) end)
    teardown(function() sb.stop() end)
    before_each(function()
        sb.reset()
        dir = cli.tmpdir()
        cli.leads_csv(dir .. "/leads.csv", 300)
    end)
    after_each(function() cli.rmdir(dir) end)

    local function run(...)
        return cli.run({ "import", "leads", "leads.csv", "--part-bytes", "4000", ... },
            { env = cli.env_cached(sb, dir .. "/cache"), cwd = dir })
    end

    it("a dry run prints the calls and the time it predicts", function()
        local r = run("--dry-run")
        assert.equal(0, r.status, r.err)
        assert.matches("cost: %d+ to %d+ API calls %(%d+ creates, %d+ to %d+ status polls, "
            .. "up to %d+ result files, tokens%)\ntime: .* to .*, at 200 to 2,000 rows/s per "
            .. "job, 2 jobs at once\n", r.out)
        assert.equal(0, cli.calls(sb, "^/bulk/"))
    end)

    it("refuses a run that may spend more than today leaves, exit 1, nothing sent", function()
        local _, status = sb.post("/__sandbox/usage", '{"total": 49990}')
        assert.equal(200, status)
        local r = run("--quiet")
        assert.equal(1, r.status, r.err)
        assert.matches("QUOTA: this import may spend up to %d+ API calls, and the instance has "
            .. "%d+ left today %(49,99%d of 50,000 used; %-%-daily%-quota%)", r.err)
        assert.matches("--ignore-quota", r.err, 1, true)
        assert.equal(0, cli.calls(sb, "^/bulk/"))
        assert.is_nil(io.open(dir .. "/leads.csv.journal.work/part-0001.results.json"))
    end)

    it("sends with --ignore-quota, or with a larger --daily-quota", function()
        -- 15 calls left: fewer than the most this import may spend (so refused
        -- up front), more than it spends (the calls are counted as it goes:
        -- --ignore-quota does not lift --daily-quota, see quota_day_spec.lua)
        sb.post("/__sandbox/usage", '{"total": 49000}')
        local r = run("--quiet", "--daily-quota", "49015")
        assert.equal(1, r.status)
        assert.matches("QUOTA", r.err, 1, true)
        r = run("--quiet", "--ignore-quota", "--daily-quota", "49015")
        assert.equal(0, r.status, r.err)
        assert.equal(300, cli.inspect(sb, "records").leads)
    end)

    it("estimates from the plan: more parts, more creates; slower, more time", function()
        local one = cost.estimate({ 1000 })
        local four = cost.estimate({ 1000, 1000, 1000, 1000 })
        assert.equal(1, one.creates)
        assert.equal(4, four.creates)
        assert.equal(8, four.files)
        assert.is_true(four.seconds[2] > four.seconds[1])
        assert.is_true(four.calls[2] >= four.calls[1])
        -- two jobs at once: four equal parts take twice as long as two
        local two = cost.estimate({ 1000, 1000 })
        assert.near(2 * two.seconds[1], four.seconds[1], 1e-6)
        assert.is_nil(cost.quota(four, 0, 50000))
        assert.matches("QUOTA", cost.quota(four, 49999, 50000))
    end)
end)
