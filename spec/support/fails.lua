--- spec/support/fails.lua: the house's runtime failure, checked in one place.
--
--   local fails = require("spec.support.fails")
--   assert.matches("missing", fails("ENOENT", csv.open(path)))
--
-- fails(code, ...) asserts that ... is nil, a message naming the code, the
-- code; returns the message and any values after the code. Loads on Lua
-- 5.1/LuaJIT (the core specs run there).
local luassert = require("luassert")

return function(code, value, msg, got, ...)
    luassert.is_nil(value, "a failure expected")
    luassert.equal(code, got, msg)
    luassert.is_string(msg)
    luassert.is_truthy(msg:find(code, 1, true), "the message does not name " .. code .. ": " .. msg)
    return msg, ...
end
