-- Marketo's day (marketo.day): midnight US Central, across both daylight
-- saving changes and around midnight, whatever the process's time zone.
local day = require("marketo.day")

-- Epoch seconds of some UTC times (date -u -d "... UTC" +%s).
local T = {
    ["2026-03-08 05:59"] = 1772949540, ["2026-03-08 06:00"] = 1772949600,
    ["2026-03-08 08:00"] = 1772956800, ["2026-03-09 04:59"] = 1773032340,
    ["2026-03-09 05:00"] = 1773032400, ["2026-03-10 05:00"] = 1773118800,
    ["2026-11-01 04:59"] = 1793509140, ["2026-11-01 05:00"] = 1793509200,
    ["2026-11-01 07:00"] = 1793516400, ["2026-11-02 05:59"] = 1793599140,
    ["2026-11-02 06:00"] = 1793599200, ["2026-11-03 06:00"] = 1793685600,
    ["2026-12-07 16:25"] = 1796660700, ["2026-12-08 06:00"] = 1796709600,
}

describe("marketo.day", function()
    it("turns at midnight CST (06:00 UTC) in winter", function()
        assert.equal("2026-12-07", day.of(T["2026-12-07 16:25"]))
        assert.equal(T["2026-12-08 06:00"], day.next_reset(T["2026-12-07 16:25"]))
        assert.equal("2026-12-08", day.of(T["2026-12-08 06:00"]))
        assert.equal("2026-12-07", day.of(T["2026-12-08 06:00"] - 1))
        assert.equal(T["2026-12-08 06:00"], day.start("2026-12-08"))
    end)

    it("spring forward (2026-03-08): the day starts in CST and ends in CDT, 23 hours", function()
        assert.equal("2026-03-07", day.of(T["2026-03-08 05:59"]))
        assert.equal("2026-03-08", day.of(T["2026-03-08 06:00"]))
        assert.equal(T["2026-03-08 06:00"], day.start("2026-03-08"))
        assert.equal(T["2026-03-09 05:00"], day.next_reset(T["2026-03-08 06:00"]))
        assert.equal(23 * 3600, day.start("2026-03-09") - day.start("2026-03-08"))
        assert.equal("CST", day.zone(T["2026-03-08 08:00"] - 1))
        assert.equal("CDT", day.zone(T["2026-03-08 08:00"]))
        assert.equal("2026-03-08 03:00 CDT", day.central(T["2026-03-08 08:00"]))
        assert.equal("2026-03-08", day.of(T["2026-03-09 04:59"]))
        assert.equal("2026-03-09", day.of(T["2026-03-09 05:00"]))
        assert.equal(T["2026-03-10 05:00"], day.next_reset(T["2026-03-09 05:00"]))
    end)

    it("fall back (2026-11-01): the day starts in CDT and ends in CST, 25 hours", function()
        assert.equal("2026-10-31", day.of(T["2026-11-01 04:59"]))
        assert.equal("2026-11-01", day.of(T["2026-11-01 05:00"]))
        assert.equal(T["2026-11-02 06:00"], day.next_reset(T["2026-11-01 05:00"]))
        assert.equal(25 * 3600, day.start("2026-11-02") - day.start("2026-11-01"))
        assert.equal("CDT", day.zone(T["2026-11-01 07:00"] - 1))
        assert.equal("CST", day.zone(T["2026-11-01 07:00"]))
        -- 01:00-02:00 comes twice; the day is the same
        assert.equal("2026-11-01 01:00 CST", day.central(T["2026-11-01 07:00"]))
        assert.equal("2026-11-01 01:59 CDT", day.central(T["2026-11-01 07:00"] - 60))
        assert.equal("2026-11-01", day.of(T["2026-11-02 05:59"]))
        assert.equal("2026-11-02", day.of(T["2026-11-02 06:00"]))
        assert.equal(T["2026-11-03 06:00"], day.next_reset(T["2026-11-02 06:00"]))
    end)

    it("says when the quota resets, in US Central and the user's clock", function()
        local function utc(t) return os.date("!%H:%M UTC", t) end
        assert.equal("resets at 2026-12-08 00:00 CST (06:00 UTC), in 13 h 35 min",
            day.reset_text(T["2026-12-08 06:00"], T["2026-12-07 16:25"], utc))
        assert.equal("resets at 2026-03-09 00:00 CDT (05:00 UTC), in 1 min",
            day.reset_text(T["2026-03-09 05:00"], T["2026-03-09 04:59"], utc))
        assert.equal("40 s", day.duration(40))
        assert.equal("2026-12-08", day.after("2026-12-07"))
        assert.equal("2027-01-01", day.after("2026-12-31"))
        assert.equal("2015-10-17", day.normalize("2015-10-17T00:00:00Z"))
        assert.is_nil(day.start("yesterday"))
    end)

    it("agrees with the system's tzdata for America/Chicago, from any TZ", function()
        -- a child process in Chicago time checks every half hour of 2007-2031
        local script = [[
            package.path = "lua/?.lua;" .. package.path
            local day = require("marketo.day")
            for t = 1167609600, 1167609600 + 86400 * 365 * 25, 1800 do
                if day.of(t) ~= os.date("%Y-%m-%d", t) or day.zone(t) ~= os.date("%Z", t) then
                    print("differs at " .. t) os.exit(1)
                end
            end
            print("same")
        ]]
        local p = assert(io.popen("TZ=America/Chicago lua5.4 -e '" .. script .. "'"))
        local out = p:read("a")
        p:close()
        assert.equal("same\n", out)
        -- and the module itself never reads TZ: the same answers in Tokyo
        p = assert(io.popen("TZ=Asia/Tokyo lua5.4 -e 'package.path = \"lua/?.lua;\" .. "
            .. "package.path; print(require(\"marketo.day\").of(1796660700))'"))
        assert.equal("2026-12-07\n", p:read("a"))
        p:close()
    end)
end)
