/* compat.h - the one file that knows which Lua we are compiled against.
 * Other files call marketo_* names; we never define lua_* or luaL_* symbols
 * of our own, because LuaJIT 2.1 already ships part of the 5.2 API while
 * reporting LUA_VERSION_NUM 501. */
#ifndef MARKETO_COMPAT_H
#define MARKETO_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 502
#define marketo_setfuncs(L, reg) luaL_setfuncs((L), (reg), 0)
#define marketo_rawlen(L, i)     lua_rawlen((L), (i))
#else /* Lua 5.1 and LuaJIT */
#define marketo_rawlen(L, i)     lua_objlen((L), (i))
static inline void marketo_setfuncs(lua_State *L, const luaL_Reg *reg)
{
    for (; reg->name != NULL; reg++) {
        lua_pushcfunction(L, reg->func);
        lua_setfield(L, -2, reg->name);
    }
}
#endif

#if LUA_VERSION_NUM >= 504
#define marketo_newudata(L, size) lua_newuserdatauv((L), (size), 0)
#else
#define marketo_newudata(L, size) lua_newuserdata((L), (size))
#endif

#ifdef luaL_pushfail
#define marketo_pushfail(L) luaL_pushfail(L)
#else
#define marketo_pushfail(L) lua_pushnil(L)
#endif

/* 64-bit sizes: integers where Lua has them, doubles (exact to 2^53) before. */
#if LUA_VERSION_NUM >= 503
#define marketo_pushsize(L, n)  lua_pushinteger((L), (lua_Integer)(n))
#define marketo_checksize(L, i) ((long long)luaL_checkinteger((L), (i)))
#define marketo_optsize(L, i, d) ((long long)luaL_optinteger((L), (i), (d)))
#else
#define marketo_pushsize(L, n)  lua_pushnumber((L), (lua_Number)(n))
/* As Lua 5.4 does: a number with no integer value (a fraction, NaN, beyond
 * 64 bits) raises, rather than meet a cast that is undefined for it. */
static inline long long marketo_checksize(lua_State *L, int i)
{
    lua_Number n = luaL_checknumber(L, i);

    if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0) || n != (long long)n)
        luaL_argerror(L, i, "number has no integer representation");
    return (long long)n;
}
#define marketo_optsize(L, i, d) (lua_isnoneornil((L), (i)) ? (long long)(d) \
                                  : marketo_checksize((L), (i)))
#endif

#endif
