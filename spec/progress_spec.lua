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
        assert.equal("\27[K500/1000 rows uploaded | parts: 1 importing, 0 finishing, 0 queued, "
            .. "1/4 done | 35 rows/s | ETA 00:19", line)
        close()
        assert.matches("\n$", out.text)
    end)

    it("shows a part Marketo has ended as finishing until its rows are fetched", function()
        local out = sink()
        local now = 0 -- a second a look: every event redraws
        local on_event, close = progress.new({ out = out, tty = true,
            clock = function() now = now + 1; return now end })
        local function line() return out.text:match("([^\r]*)$") end
        on_event({ ev = "planned", rows = 20, parts = 2 })
        on_event({ ev = "uploaded", part = 1, rows = 10, status = "Queued" })
        on_event({ ev = "uploaded", part = 2, rows = 10, status = "Queued" })
        on_event({ ev = "status", part = 1, status = "Complete", processed = 10 })
        assert.matches("1 finishing, 1 queued, 0/2 done", line(), 1, true)
        on_event({ ev = "finished", part = 1, status = "Complete", rows = 10 })
        assert.matches("0 importing, 1 finishing, 1 queued, 0/2 done", line(), 1, true)
        on_event({ ev = "fetched", part = 1 })
        assert.matches("0 finishing, 1 queued, 1/2 done", line(), 1, true)
        -- the end of the import ends the line, once, whoever closes it
        on_event({ ev = "ended", ended = "stopped" })
        assert.matches("1/2 done | [^\n]*\n$", out.text)
        close()
        assert.matches("[^\n]\n$", out.text)
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
