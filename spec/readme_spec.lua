-- Every code block of the README runs, exactly as written, through the real
-- runner (an example that rotted is worse than none): the shell blocks from the
-- repository's root, the Lua ones as scripts of `marketo-bulk run`. Blocks
-- without a language (a synopsis, an output) are text. What the examples write
-- goes under build/, never into examples/.
local cli = require("spec.support.cli")
local files = require("spec.support.files")

local q = files.q
local ROOT = assert(os.getenv("PWD"))

local function blocks()
    local text = assert(files.read("README.md"))
    local out = {}
    for lang, body in text:gmatch("\n```(%a+)\n(.-)```") do
        out[#out + 1] = { lang = lang, body = body }
    end
    return out
end

-- What git sees changed or new under examples/ (nothing, after any example).
local function examples_status()
    local p = assert(io.popen("git status --porcelain --untracked-files=all -- examples/"))
    local s = p:read("a")
    p:close()
    return s
end

-- A shell block, run with `sh -e` from the root, MARKETO_* pointing at `sb`.
local function run_sh(body, sb)
    local path = os.tmpname()
    files.write(path, body)
    local r = cli.run({ "-e", path }, { bin = "sh", cwd = ROOT, env = sb and cli.env_of(sb) })
    os.remove(path)
    return r
end

describe("README.md", function()
    local ctx = cli.sandboxed()
    local all = blocks()
    local ran = {}

    local function block(lang, pattern)
        for i, b in ipairs(all) do
            if b.lang == lang and b.body:find(pattern) then
                ran[i] = true
                return b.body
            end
        end
        error("no " .. lang .. " block matching " .. pattern)
    end

    local before
    setup(function() before = examples_status() end)

    it("opens with the two commands, and `make demo` runs", function()
        local body = block("sh", "^make demo")
        assert.matches("\nmake test", body)
        -- `make test` is what runs this spec: the one line left to the suite itself
        local demo = body:match("^(make demo[^\n]*)\n")
        local r = run_sh(demo .. "\n")
        assert.equal(0, r.status, r.out .. r.err)
        assert.matches("complete: 3001 rows read: 2973 imported", r.out, 1, true)
        assert.matches("the JSON report: build/demo/crm-leads.report.json", r.out, 1, true)
    end)

    it("runs the first import as written, into build/", function()
        os.execute("rm -f " .. q(ROOT .. "/build/contacts.csv") .. "*")
        local r = run_sh(block("sh", "import leads contacts.csv %-%-dry%-run"), ctx.sb)
        assert.equal(0, r.status, r.out .. r.err)
        assert.matches("dry run: 40 rows read, 0 filtered, 0 rejected; 1 parts, nothing sent",
            r.out, 1, true)
        assert.matches("\ncomplete: 40 rows read: 40 imported", r.out)
        assert.truthy(files.read(ROOT .. "/build/contacts.csv.report.html"))
        os.execute("rm -rf " .. q(ROOT .. "/build/contacts.csv") .. "*")
    end)

    it("shows examples/crm-leads.lua as it is, and it runs as written", function()
        local body = block("lua", "^%-%- A CRM export into Marketo leads")
        assert.equal(assert(files.read(ROOT .. "/examples/crm-leads.lua")), body)
        local script = ctx.dir .. "/crm-leads.lua"
        files.write(script, body)
        local env = cli.env_of(ctx.sb)
        env.MARKETO_DEMO_DIR = ctx.dir .. "/out"
        local r = cli.run({ "run", script }, { cwd = ROOT, env = env })
        assert.equal(3, r.status, r.err) -- some rows fail on purpose
        assert.matches("6 failed, 12 filtered out, 1 rejected as malformed", r.out, 1, true)
        assert.matches("for people: " .. ctx.dir .. "/out/crm-leads.report.html", r.out, 1, true)
    end)

    it("runs the Lua API example as written", function()
        local body = block("lua", "^local marketo = require%(\"marketo\"%)")
        cli.leads_csv(ctx.dir .. "/leads.csv", 3, { bad_every = 2 })
        local script = ctx.dir .. "/api.lua"
        files.write(script, body)
        local r = cli.run({ "run", script }, { cwd = ctx.dir, env = cli.env_of(ctx.sb) })
        assert.equal(0, r.status, r.err)
        assert.equal("3\tInvalid data type in field Lead Score\n", r.out)
    end)

    it("runs the fields examples as written", function()
        local path = os.tmpname()
        files.write(path, block("sh", "fields leads"))
        local r = cli.run({ "-e", path }, { bin = "sh", cwd = ROOT,
            env = cli.env_cached(ctx.sb, ctx.dir .. "/cache") })
        os.remove(path)
        assert.equal(0, r.status, r.out .. r.err)
        assert.matches("\nemail +Email Address +email +255 +yes +yes\n", r.out)
        assert.matches("custom object car_c on ", r.out, 1, true)
        assert.matches("statuses of program 1001 ", r.out, 1, true)
        assert.matches('\n{"', r.out) -- the JSON line
    end)

    it("has no code block the spec does not run, and no example wrote into examples/",
        function()
            for i, b in ipairs(all) do
                assert.is_true(ran[i] ~= nil, "README block " .. i .. " (" .. b.lang
                    .. ") is not run:\n" .. b.body)
            end
            assert.equal(before, examples_status())
        end)
end)
