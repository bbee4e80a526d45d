-- doc/api.md documents the public API, all of it and nothing else: every name
-- in a `###` heading exists (a module's function or constant, or an object's
-- method), every public function has its heading, and every event an import
-- hands to on_event is in its table.
local files = require("spec.support.files")
local cli = require("spec.support.cli")
local json = require("marketo.json")

-- The modules of the API; marketo.core, the pipeline's internals, marketo.auth,
-- .config and .options are the library's own.
local MODULES = { "marketo", "marketo.client", "marketo.import", "marketo.pipeline.progress",
    "marketo.csv", "marketo.mapping", "marketo.results", "marketo.retry", "marketo.errors",
    "marketo.objects", "marketo.formats", "marketo.http", "marketo.loop", "marketo.poll",
    "marketo.url", "marketo.json" }

-- Methods the library's own modules call on these objects, not part of the API.
local INTERNAL = {
    client = { attempt = true, check_file = true, check_json = true, emit = true,
        envelope_error = true, new_error = true, status_error = true, with_retries = true },
    job = { failed = true, file = true, path = true, take = true },
}

-- One of each object whose methods are documented, by the name the doc uses.
local function objects(dir)
    local marketo = require("marketo")
    local csv = require("marketo.csv")
    local Loop = require("marketo.loop")
    local client = assert(marketo.client({ base_url = "http://127.0.0.1:9",
        client_id = "id", client_secret = "secret" }))
    files.write(dir .. "/a.csv", "email\na@example.com\n")
    local loop = Loop.new()
    return {
        client = client, job = client:job("leads", 1),
        reader = assert(csv.open(dir .. "/a.csv")),
        writer = assert(csv.writer(dir .. "/b.csv", { header = { "email" } })),
        mapping = require("marketo.mapping").new({ email = "email" }),
        transport = require("marketo.http").new(), loop = loop,
        task = loop:spawn(function() end), poller = require("marketo.poll").new({ now = 0 }),
    }
end

local function methods(obj)
    local out, index = {}, getmetatable(obj).__index
    for k, v in pairs(type(index) == "table" and index or {}) do
        if type(v) == "function" and not k:match("^_") then out[#out + 1] = k end
    end
    return out
end

-- The names of the `###` headings: "marketo.csv.open", "reader:read", ...
local function documented()
    local out = {}
    for line in assert(files.read("doc/api.md")):gmatch("[^\n]+") do
        local code = line:match("^### `([^`]+)`")
        if code then out[#out + 1] = code:match("^([%w_.:]+)") end
    end
    return out
end

-- A dotted name as the longest module it starts with and a field of it.
local function resolve(name)
    local best
    for _, mod in ipairs(MODULES) do
        local field = name:sub(1, #mod + 1) == mod .. "." and name:sub(#mod + 2)
        if field and field:match("^[%w_]+$") and (not best or #mod > #best) then best = mod end
    end
    if best then return require(best), name:sub(#best + 2) end
end

describe("doc/api.md", function()
    local dir, objs
    setup(function()
        dir = files.tmpdir()
        objs = objects(dir)
    end)
    teardown(function()
        objs.reader:close()
        objs.writer:close()
        files.rmdir(dir)
    end)

    it("names nothing that does not exist", function()
        local names = documented()
        assert.is_true(#names > 80)
        for _, name in ipairs(names) do
            local obj, method = name:match("^(%w+):([%w_]+)$")
            if obj then
                assert.is_truthy(objs[obj], name .. ": no such object in the spec's list")
                assert.is_function(objs[obj][method], name .. " does not exist")
            else
                local mod, field = resolve(name)
                assert.is_truthy(mod, name .. ": no such module")
                assert.is_not_nil(mod[field], name .. " does not exist")
            end
        end
    end)

    it("documents every public function", function()
        local seen = {}
        for _, name in ipairs(documented()) do seen[name] = true end
        local missing = {}
        for _, mod in ipairs(MODULES) do
            for k, v in pairs(require(mod)) do
                if type(v) == "function" and not k:match("^_") and not seen[mod .. "." .. k] then
                    missing[#missing + 1] = mod .. "." .. k
                end
            end
        end
        for obj, o in pairs(objs) do
            for _, m in ipairs(methods(o)) do
                if not seen[obj .. ":" .. m] and not (INTERNAL[obj] or {})[m] then
                    missing[#missing + 1] = obj .. ":" .. m
                end
            end
        end
        table.sort(missing)
        assert.same({}, missing)
    end)

    describe("with the sandbox", function()
        local ctx = cli.sandboxed()
        it("lists every event an import hands to on_event", function()
            local text = assert(files.read("doc/api.md"))
            local events = text:match("### The events of an import\n(.-)\n## ")
            local src = ctx.dir .. "/leads.csv"
            cli.leads_csv(src, 300, { bad_every = 50 })
            -- rows Marketo fails (--no-schema: not stopped before they reach it)
            local r = cli.run({ "import", "leads", src, "--no-schema", "--json", "--part-bytes",
                "5000" }, { env = cli.env_of(ctx.sb) })
            assert.equal(3, r.status, r.err)
            local seen = {}
            for line in r.err:gmatch("[^\n]+") do
                local ev = line:sub(1, 1) == "{" and json.decode(line)
                if ev and not seen[ev.ev] then
                    seen[ev.ev] = true
                    assert.matches("\n| `" .. ev.ev .. "` |", events, 1, true)
                    for field in pairs(ev) do
                        if field ~= "ev" and field ~= "t" then
                            assert.matches("`" .. field .. "`",
                                events:match("\n| `" .. ev.ev .. "` |([^\n]*)"), 1, true)
                        end
                    end
                end
            end
            assert.is_true(seen.fetched and seen.ended and seen.planned)
        end)
    end)
end)
