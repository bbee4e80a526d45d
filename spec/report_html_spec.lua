-- REPORT.html through the real runner against the real sandbox, opened in
-- headless Chromium (Debian's chromium, from tools/ensure-deps.sh): the page
-- renders without a console message (an error, a blocked request), asks for
-- nothing from the network, and shows the numbers of the JSON report.
local cli = require("spec.support.cli")
local json = require("marketo.json")
local files = require("spec.support.files")

local function chromium()
    local p = io.popen("command -v chromium 2>/dev/null")
    local path = p:read("l")
    p:close()
    return path
end

-- The page's DOM after its script ran, and what Chromium logged.
local function open_page(dir, page)
    local out, err = dir .. "/dom.html", dir .. "/chromium.log"
    local ok = os.execute(("timeout 120 chromium --headless --disable-gpu --no-sandbox "
        .. "--user-data-dir=%s --enable-logging=stderr --v=0 --dump-dom %s >%s 2>%s")
        :format(files.q(dir .. "/profile"), files.q("file://" .. page), files.q(out),
            files.q(err)))
    assert(ok, "chromium failed: " .. tostring(files.read(err)))
    return files.read(out), files.read(err)
end

describe("the HTML report", function()
    local ctx = cli.sandboxed({ speed = 20000 })

    it("renders in Chromium with the JSON report's numbers, offline", function()
        if not chromium() then
            pending("chromium is not installed (tools/ensure-deps.sh installs it)")
            return
        end
        local dir = ctx.dir
        local src = dir .. "/leads.csv"
        cli.leads_csv(src, 1200, { bad_every = 97, warn_every = 101 })
        local f = assert(io.open(src, "ab"))
        f:write("broken@example.com,only two\n")
        f:close()
        -- rows Marketo fails (--no-schema: not stopped before they reach it)
        local r = cli.run({ "import", "leads", src, "--no-schema", "--lenient", "--quiet",
            "--part-bytes", "20000" }, { env = cli.env_of(ctx.sb) })
        assert.equal(3, r.status, r.err)
        local doc = cli.read_json(src .. ".report.json")
        local page = src .. ".report.html"
        assert.equal(page, doc.files.html)
        assert.matches("; for people: " .. page .. "\n", r.out, 1, true)
        assert.equal("600", cli.mode_of(page))
        -- self-contained: nothing to fetch, and a policy that forbids fetching
        local text = assert(files.read(page))
        assert.is_nil(text:find("%ssrc%s*="), "an external resource")
        assert.is_nil(text:find("%shref%s*="), "a link")
        assert.is_nil(text:find("url%("), "a CSS resource")
        assert.matches("Content-Security-Policy\" content=\"default-src 'none'", text, 1, true)
        local dom, log = open_page(dir, page)
        assert.is_nil(log:find(":CONSOLE", 1, true), log)
        local rendered = assert(json.decode(dom:match('<pre id="rendered"[^>]*>(.-)</pre>')))
        assert.same(doc.rows, rendered.rows)
        assert.same(doc.api_calls, rendered.calls)
        assert.equal(#doc.parts, rendered.parts)
        assert.is_true(#doc.parts >= 4)
        assert.same({ failed = doc.rows.failed, warned = doc.rows.warned, rejected = 1 },
            rendered.reasons)
        assert.is_true(doc.rows.failed > 0 and doc.rows.warned > 0)
        -- each part on the timeline: queued from its upload, importing to its end
        for _, part in ipairs(doc.parts) do
            assert.is_true(part.sent_at <= part.uploaded_at, "sent before uploaded")
            assert.is_true(part.uploaded_at <= part.finished_at, "uploaded before finished")
        end
    end)
end)
