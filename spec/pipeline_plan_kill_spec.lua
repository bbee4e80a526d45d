-- A crash while the plan is being journalled never passes for a whole plan:
-- the runner dies at every line of its plan (and half-way through lines),
-- and whatever comes next, a rerun of the command or `resume`, stores every
-- row exactly once, with no exit 0 before that.
--
-- The moment is set by the journal's content, to the byte: the runner runs
-- under a file size limit (prlimit --fsize) and takes the kernel's default
-- action for SIGXFSZ, so it dies, as under kill -9, at the write that would
-- cross the limit, after exactly that many bytes of journal. (A kill from
-- outside cannot aim: a whole plan is journalled in a few milliseconds.)
local cli = require("spec.support.cli")
local sandbox = require("spec.support.sandbox")
local files = require("spec.support.files")

local ROWS = 160       -- 8 parts of ~1000 bytes
local SIGXFSZ = 25

local read, inspect = cli.read, cli.inspect

-- Where each line of a journal ends: ends[k] = bytes of its first k lines.
local function line_ends(text)
    local ends, at = { [0] = 0 }, 0
    for line in text:gmatch("[^\n]*\n") do
        at = at + #line
        ends[#ends + 1] = at
    end
    return ends
end

local function assert_all_stored_once(sb, parts)
    local leads = inspect(sb, "records/leads")
    assert.equal(ROWS, #leads)
    local seen = {}
    for _, rec in ipairs(leads) do
        local i = tonumber(rec.email:match("^lead(%d+)@"))
        assert.is_nil(seen[i])
        seen[i] = true
        assert.equal("First" .. i, rec.firstName)
    end
    assert.equal(parts, #inspect(sb, "jobs")) -- each part sent once
end

describe("a crash while the plan is journalled", function()
    local fx = sandbox.fixture({ speed = 0, error_rate = 0, drop_rate = 0, job_fail_rate = 0,
        rate_limit = 10000, rate_window = 20 })
    local dir, src, journal, argv, under_limit
    setup(function()
        fx.start()
        dir = cli.tmpdir()
        src = dir .. "/leads.csv"
        journal = src .. ".journal"
        cli.leads_csv(src, ROWS)
        argv = { "import", "leads", src, "--part-bytes", "1000", "--calls", "10000", "--quiet" }
        -- the runner, killed once its files reach $CUT_AT bytes (the journal
        -- is the only file it writes while planning, but for a 2-byte rejects file)
        under_limit = dir .. "/under-limit"
        -- (not exec'd: the shell running the spec would report the signal)
        files.write(under_limit, '#!/bin/sh\nprlimit --fsize="$CUT_AT" --core=0 "$BIN" "$@"\n')
        assert(os.execute("chmod +x " .. files.q(under_limit)))
    end)
    teardown(function()
        fx.stop()
        cli.rmdir(dir)
    end)

    local function env(extra)
        local e = cli.env_of(fx.sb)
        for k, v in pairs(extra or {}) do e[k] = v end
        return e
    end

    local function clean()
        fx.fresh()
        os.execute("rm -rf " .. files.q(journal) .. " " .. files.q(journal .. ".work") .. " "
            .. files.q(src .. ".report.json"))
    end

    local function killed_at(bytes, command)
        local r = cli.run(command or argv, { bin = under_limit, env = env({ CUT_AT = bytes,
            BIN = os.getenv("MARKETO_BULK_BIN") }) })
        assert.equal(128 + SIGXFSZ, r.status, r.out .. r.err)
        assert.equal(bytes, #(read(journal) or ""))
        return r
    end

    -- The journal of a whole run: where its lines end, and how many parts.
    local ends, parts
    local function reference()
        if ends then return end
        clean()
        local r = cli.run(argv, { env = env() })
        assert.equal(0, r.status, r.err)
        local text = read(journal)
        ends = line_ends(text)
        local _, n = text:gsub('"ev":"planned"', "")
        parts = n
        assert.is_true(parts >= 8, parts)
    end

    -- What status says of a journal whose plan never closed.
    local function assert_status_incomplete()
        local st = cli.run({ "status", journal }, { env = env() })
        assert.equal(1, st.status)
        assert.equal("", st.out)
        assert.is_truthy(st.err:find("PLAN_INCOMPLETE", 1, true)
            or st.err:find("JOURNAL_EMPTY", 1, true), st.err)
        if st.err:find("PLAN_INCOMPLETE", 1, true) then
            assert.matches("nothing was sent, no row is imported", st.err, 1, true)
        end
    end

    it("at each of its lines and half-way through them: a rerun or resume stores every row "
        .. "once", function()
        reference()
        -- 0 bytes .. the plan closed: whole lines (k = 0 .. parts + 2) and torn ones
        local cuts = {}
        for k = 0, parts + 2 do
            cuts[#cuts + 1] = { bytes = ends[k], lines = k }
            if k <= parts + 1 then
                cuts[#cuts + 1] = { bytes = ends[k] + math.floor((ends[k + 1] - ends[k]) / 2),
                    lines = k, torn = true }
            end
        end
        local during_plan = 0
        for i, cut in ipairs(cuts) do
            clean()
            killed_at(cut.bytes)
            local closed = cut.lines >= parts + 2
            if not closed then during_plan = during_plan + 1 end
            -- nothing is sent before the plan closes
            assert.equal(0, #inspect(fx.sb, "jobs"))
            if not closed then assert_status_incomplete() end
            -- then, taking turns, resume or the same command first, the other after
            local first = i % 2 == 0 and { "resume", journal, "--quiet" } or argv
            local second = first == argv and { "resume", journal, "--quiet" } or argv
            local stored = false
            for _, command in ipairs({ first, second }) do
                local r = cli.run(command, { env = env() })
                local what = ("%s after a cut at %d bytes (%d whole lines%s)"):format(command[1],
                    cut.bytes, cut.lines, cut.torn and " and a torn one" or "")
                if r.status == 0 and stored then -- nothing sent again
                    assert.equal(parts, #inspect(fx.sb, "jobs"), what)
                elseif r.status == 0 then
                    assert_all_stored_once(fx.sb, parts)
                    stored = true
                elseif command[1] == "resume" and cut.lines == 0 then
                    -- no run record: nothing to plan from; the command plans
                    assert.equal(4, r.status, what .. ": " .. r.err)
                    assert.matches("nothing was sent; run the original command or script again",
                        r.err, 1, true)
                    assert.equal(0, #inspect(fx.sb, "jobs"))
                else
                    error(what .. " ended " .. r.status .. ": " .. r.out .. r.err)
                end
            end
            assert.is_true(stored)
            local doc = cli.read_json(src .. ".report.json")
            assert.is_true(doc.reconciled, doc.reconcile_error)
            assert.equal(ROWS, doc.rows.imported)
        end
        assert.is_true(during_plan >= 20, during_plan)
    end)

    it("with a mapping in Lua: resume sends nothing and says to run the script again",
        function()
            reference()
            local script = dir .. "/import.lua"
            files.write(script, ([[
                local result, msg = require("marketo.import").run{
                    object = "leads", source = %q, part_bytes = 1000,
                    limits = { calls = 10000 },
                    mapping = { email = "email", firstName = function(row)
                        return row.firstName end },
                }
                if not result then io.stderr:write(msg, "\n"); return 4 end
                return result.exit
            ]]):format(src))
            clean()
            local whole = cli.run({ "run", script }, { env = env() })
            assert.equal(0, whole.status, whole.err)
            local text = read(journal)
            local _, mapped_parts = text:gsub('"ev":"planned"', "")
            -- after the run record and 3 parts (the mapped parts went to the
            -- work folder before, each under the limit)
            local cut = line_ends(text)[4]
            clean()
            killed_at(cut, { "run", script })
            -- the parts this journal holds whole (its time stamps' digits vary a
            -- little from the reference run's, so the cut may fall a line short)
            local _, held = read(journal):gsub('"ev":"planned"[^\n]*\n', "")
            assert.is_true(held >= 2 and held <= 3, held)
            local r = cli.run({ "resume", journal }, { env = env() })
            assert.equal(4, r.status, r.err)
            assert.matches(("PLAN_INCOMPLETE: %s: the plan is incomplete (%d parts journaled, no "
                .. "closing record)"):format(journal, held), r.err, 1, true)
            assert.matches("nothing was sent", r.err, 1, true)
            assert.matches("run the original command or script again", r.err, 1, true)
            assert.equal(0, #inspect(fx.sb, "jobs"))
            r = cli.run({ "run", script }, { env = env() })
            assert.equal(0, r.status, r.err)
            assert_all_stored_once(fx.sb, mapped_parts)
        end)
end)
