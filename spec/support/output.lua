-- A busted output handler: one TAP-like line per test, failures in full, and
-- a closing "N passed, N failed" line that CI reads. With MARKETO_TEST_COUNTS
-- set, the counts are also written there so several runs can be totalled.
-- With MARKETO_TEST_TIMES set, each spec file's wall time is printed as it
-- ends ("# time 12.34 s spec/x_spec.lua") and, slowest first, after the
-- counts; a path in MARKETO_TEST_TIMES (not "1") also gets them, one a line.
-- A test that takes half a second or more gets a "# slow" line too.
local times_to = os.getenv("MARKETO_TEST_TIMES")

local function now()
    local socket_ok, socket = pcall(require, "socket")
    if socket_ok then return socket.gettime() end
    return os.time()
end

return function(options)
    local busted = require("busted")
    local handler = require("busted.outputHandlers.base")()
    local pretty = require("pl.pretty")
    local counter = 0
    local file_started, times = {}, {}

    local function file_start(element)
        file_started[element.name] = now()
        return nil, true
    end

    local function file_end(element)
        local started = file_started[element.name]
        if times_to and started then
            local took = now() - started
            times[#times + 1] = { name = element.name, took = took }
            print(("# time %.2f s %s"):format(took, element.name))
        end
        return nil, true
    end

    local function write_times()
        table.sort(times, function(a, b) return a.took > b.took end)
        local lines, total = {}, 0
        for _, t in ipairs(times) do
            total = total + t.took
            lines[#lines + 1] = ("%8.2f %s"):format(t.took, t.name)
        end
        lines[#lines + 1] = ("%8.2f total"):format(total)
        print("# " .. table.concat(lines, "\n# "))
        if times_to ~= "1" then
            local f = assert(io.open(times_to, "w"))
            f:write(table.concat(lines, "\n"), "\n")
            f:close()
        end
    end

    local function show_failure(t, kind)
        local message = t.message
        if type(message) ~= "string" then message = pretty.write(message) end
        print(("not ok %d - %s"):format(counter, t.name))
        local where = t.element.trace or t.trace or {}
        print(("# %s: %s @ %s"):format(kind, tostring(where.short_src),
            tostring(where.currentline)))
        print("# " .. tostring(message):gsub("\n", "\n# "))
        if t.trace and t.trace.traceback and options.verbose then
            print("# " .. t.trace.traceback:gsub("\n", "\n# "))
        end
    end

    local test_started

    local function test_start()
        test_started = now()
        return nil, true
    end

    handler.testEnd = function(element, _, status)
        counter = counter + 1
        local took = test_started and now() - test_started or 0
        if times_to and took >= 0.5 then
            print(("# slow %.2f s %s"):format(took, handler.getFullName(element)))
        end
        if status == "success" then
            print(("ok %d - %s"):format(counter, handler.successes[#handler.successes].name))
        elseif status == "pending" then
            local t = handler.pendings[#handler.pendings]
            print(("ok %d - # SKIP %s"):format(counter, t.message or t.name))
        elseif status == "failure" then
            show_failure(handler.failures[#handler.failures], "failure")
        elseif status == "error" then
            show_failure(handler.errors[#handler.errors], "error")
        end
        io.stdout:flush()
        return nil, true
    end

    -- Errors outside any test (a spec file that does not load, a failing
    -- before_each) count as failures too, so they can never pass silently.
    handler.error = function(element, _, message)
        if element.descriptor ~= "it" then
            counter = counter + 1
            print(("not ok %d - %s %s"):format(counter, element.descriptor,
                tostring(element.name or "")))
            print("# " .. tostring(message):gsub("\n", "\n# "))
        end
        return nil, true
    end

    handler.suiteEnd = function()
        local passed = handler.successesCount
        local failed = handler.failuresCount + handler.errorsCount
        local skipped = handler.pendingsCount
        local line = ("%d passed, %d failed"):format(passed, failed)
        if skipped > 0 then line = line .. (", %d skipped"):format(skipped) end
        print(line)
        local path = os.getenv("MARKETO_TEST_COUNTS")
        if path then
            local f = assert(io.open(path, "w"))
            f:write(("%d %d %d\n"):format(passed, failed, skipped))
            f:close()
        end
        if times_to then write_times() end
        return nil, true
    end

    busted.subscribe({ "file", "start" }, file_start)
    busted.subscribe({ "test", "start" }, test_start)
    busted.subscribe({ "file", "end" }, file_end)
    busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
    busted.subscribe({ "error" }, handler.error)
    busted.subscribe({ "failure" }, handler.error)
    busted.subscribe({ "suite", "end" }, handler.suiteEnd)
    return handler
end
