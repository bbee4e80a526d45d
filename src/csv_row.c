/* csv_row.c - the row a mapping function sees: one read-only table for all
 * rows of a reader, whose fields are those of the reader's current record,
 * made Lua strings only when a function asks (row.email, row[3], pairs).
 * Pushing all ten fields of a row as strings costs more than most mapping
 * functions do, and most read two or three. */
#define _POSIX_C_SOURCE 200809L
#include "csv_core.h"

/* The field i (0-based) of the current record, or nothing. */
static int push_field(lua_State *L, const marketo_csv_reader *r, lua_Integer i)
{
    size_t len;
    const char *p;

    if (r->fd < 0 || i < 0 || i >= r->s.nf)
        return 0;
    p = csv_field(&r->s, (int)i, &len);
    lua_pushlstring(L, p, len);
    return 1;
}

/* row[name] or row[column]. Upvalues: the reader, name -> column, strict. */
static int row_index(lua_State *L)
{
    const marketo_csv_reader *r =
        (const marketo_csv_reader *)lua_touserdata(L, lua_upvalueindex(1));

    if (lua_type(L, 2) == LUA_TNUMBER)
        return push_field(L, r, marketo_tointeger_in(L, 2, 1, r->s.nf, 0) - 1);
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(2));
    if (lua_isnil(L, -1)) {
        if (lua_toboolean(L, lua_upvalueindex(3)))
            return luaL_error(L, "the source has no column '%s'", lua_tostring(L, 2));
        return 0; /* as a plain table would answer */
    }
    return push_field(L, r, lua_tointeger(L, -1) - 1);
}

/* A write would stick to the table and show in every later row. */
static int row_newindex(lua_State *L)
{
    return luaL_error(L, "the source row is read-only ('%s'): return the new value instead",
                      lua_tostring(L, 2));
}

/* The iterator of pairs(row): header names in order, with their fields.
 * Upvalues: the reader, name -> column, the names. */
static int row_next(lua_State *L)
{
    const marketo_csv_reader *r =
        (const marketo_csv_reader *)lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer i = 0;

    if (!lua_isnil(L, 2)) {
        lua_pushvalue(L, 2);
        lua_rawget(L, lua_upvalueindex(2));
        i = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (i == 0)
            return 0;
    }
    for (; i < r->s.nf && i < r->s.expect; i++) {
        lua_rawgeti(L, lua_upvalueindex(3), (int)i + 1);
        if (push_field(L, r, i))
            return 2;
        lua_pop(L, 1);
    }
    return 0;
}

static int row_pairs(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int row_tostring(lua_State *L)
{
    lua_pushliteral(L, "marketo.csv row");
    return 1;
}

void marketo_csv_push_row(lua_State *L, int reader, int strict)
{
    const marketo_csv_reader *r = marketo_csv_check_reader(L, reader);
    int i, mt, index, names;

    if (reader < 0)
        reader = lua_gettop(L) + reader + 1; /* the rows go on the stack */
    luaL_argcheck(L, r->names != LUA_NOREF, reader, "the reader has no header");
    lua_newtable(L);                                    /* row */
    lua_createtable(L, 0, 5);
    mt = lua_gettop(L);
    lua_createtable(L, 0, r->s.expect);
    index = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->names);
    names = lua_gettop(L);
    for (i = 1; i <= r->s.expect; i++) {
        lua_rawgeti(L, names, i);
        lua_pushinteger(L, i);
        lua_rawset(L, index);
    }
    lua_pushvalue(L, reader);
    lua_pushvalue(L, index);
    lua_pushboolean(L, strict);
    lua_pushcclosure(L, row_index, 3);
    lua_setfield(L, mt, "__index");
    lua_pushcfunction(L, row_newindex);
    lua_setfield(L, mt, "__newindex");
    lua_pushcfunction(L, row_tostring);
    lua_setfield(L, mt, "__tostring");
    lua_pushvalue(L, reader);
    lua_pushvalue(L, index);
    lua_pushvalue(L, names);
    lua_pushcclosure(L, row_next, 3);
    lua_pushcclosure(L, row_pairs, 1);
    lua_setfield(L, mt, "__pairs");
    lua_settop(L, mt);                                  /* row mt */
    lua_setmetatable(L, -2);                            /* row */
}
