--- spec/support/lifecycle.lua: the end of a userdata's life, checked the same
-- way for every type (house style: collected open or closed, closed by a
-- <close> variable). Loads on Lua 5.1/LuaJIT (the core specs run there).
--
--   local weak = lifecycle.weak()
--   weak[1], weak[2] = core.loop(), core.loop()
--   weak[2]:close()
--   lifecycle.collected(weak)
--   assert.equal("marketo.loop (closed)", lifecycle.after_scope(core.loop())) -- 5.4 only
local luassert = require("luassert")

local M = {}

--- A table holding its values weakly: put the objects there and nowhere else.
function M.weak()
    return setmetatable({}, { __mode = "v" })
end

--- Asserts that collecting garbage empties weak: nothing (a registry
-- reference, a cycle through C) keeps its objects alive. Two cycles: the
-- first runs their __gc, the second frees what those let go.
function M.collected(weak)
    collectgarbage()
    collectgarbage()
    luassert.is_nil(next(weak))
end

--- What tostring says of x once a <close> variable that held it has left its
-- scope (Lua 5.4; load() keeps that syntax from a 5.1 parser).
function M.after_scope(x)
    return tostring(assert(load("local x <close> = ... ; return x"))(x))
end

return M
