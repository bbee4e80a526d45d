--- spec/support/sleeps.lua: the check of a function that sleeps for real
-- (core.sleep, and marketo.loop's sleep outside a loop): it returns true
-- after about as long as asked. Loads on Lua 5.1/LuaJIT (the core specs run
-- there).
--
--   require("spec.support.sleeps")(core.sleep)
local luassert = require("luassert")
local core = require("marketo.core")

return function(sleep)
    local t0 = core.monotonic()
    luassert.is_true(sleep(0.02))
    luassert.is_true(core.monotonic() - t0 >= 0.019)
end
