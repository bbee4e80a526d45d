local progress = require("marketo.pipeline.progress")
local json = require("marketo.json")

local function sink()
    local s = { text = "" }
    function s.write(_, ...)
        for _, v in ipairs({ ... }) do s.text = s.text .. v end
    end
    return s
end

describe("marketo.pipeline.progress", function()
    it("redraws one line on a terminal: rows uploaded, parts, rows/s, ETA", function()
        local now = 0
        local out = sink()
        local on_event, close = progress.new({ out = out, tty = true,
            clock = function() return now end })
        on_event({ ev = "planned", rows = 1000, parts = 4 })
        on_event({ ev = "sending", part = 1 })
        on_event({ ev = "uploaded", part = 1, rows = 250, status = "Queued" })
        on_event({ ev = "uploaded", part = 2, rows = 250, status = "Queued" })
        now = 10
        on_event({ ev = "status", part = 1, status = "Importing", processed = 100 })
        on_event({ ev = "finished", part = 2, rows = 250 })
        local line = out.text:match("([^\r]*)$")
        assert.equal("\27[K500/1000 rows uploaded | parts: 1 importing, 0 queued, 1/4 done"
            .. " | 35 rows/s | ETA 00:19", line)
        close()
        assert.matches("\n$", out.text)
    end)

    it("writes one JSON line per event elsewhere", function()
        local out = sink()
        local on_event = progress.new({ out = out, tty = false })
        on_event({ ev = "uploaded", part = 3, batch = 1003 })
        on_event({ ev = "finished", part = 3, status = "Complete" })
        local lines = {}
        for l in out.text:gmatch("[^\n]+") do lines[#lines + 1] = json.decode(l) end
        assert.equal(2, #lines)
        assert.equal(1003, lines[1].batch)
        assert.equal("Complete", lines[2].status)
    end)
end)
