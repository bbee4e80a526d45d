/* main.c - marketo-bulk: Lua 5.4 with marketo.core linked in and the Lua modules
 * of lua/marketo/ compiled in, so one binary runs an import script with no
 * LUA_PATH set-up. All command-line logic lives in marketo.cli (Lua). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "runner.h"

int luaopen_marketo_core(lua_State *L);

/* package.preload loader for an embedded module: upvalue 1 is its index. */
static int load_embedded(lua_State *L)
{
    const marketo_embedded_module *m = &marketo_embedded[lua_tointeger(L, lua_upvalueindex(1))];

    if (luaL_loadbuffer(L, (const char *)m->source, m->size, m->chunkname) != LUA_OK)
        return lua_error(L);
    lua_pushstring(L, m->name);
    lua_call(L, 1, 1);
    return 1;
}

/* Embedded modules are preloaded, so they win over files on package.path:
 * the binary always runs the Lua it was built with. MARKETO_LUA_DEV=1 turns
 * that off, for working on lua/ without rebuilding. */
static void preload_modules(lua_State *L)
{
    lua_Integer i;
    const char *dev = getenv("MARKETO_LUA_DEV");

    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* preload */
    lua_pushcfunction(L, luaopen_marketo_core);
    lua_setfield(L, -2, "marketo.core");
    if (dev == NULL || dev[0] != '1') {
        for (i = 0; marketo_embedded[i].name != NULL; i++) {
            lua_pushinteger(L, i);
            lua_pushcclosure(L, load_embedded, 1);
            lua_setfield(L, -2, marketo_embedded[i].name);
        }
    }
    lua_pop(L, 1);
}

/* Message handlers: the error as a string, with or without the traceback. */
static int message_only(lua_State *L)
{
    if (lua_tostring(L, 1) == NULL)
        luaL_tolstring(L, 1, NULL);
    return 1;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);

    if (msg == NULL)
        msg = luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* marketo.cli catches a command's errors; what reaches here (a module that
 * does not load, no memory) is a bug too. --debug before the command or
 * MARKETO_BULK_DEBUG=1 asks for the traceback, as in marketo.cli. */
static int debug_wanted(int argc, char **argv)
{
    const char *env = getenv("MARKETO_BULK_DEBUG");

    return (env != NULL && strcmp(env, "1") == 0)
        || (argc > 1 && strcmp(argv[1], "--debug") == 0);
}

/* Runs require("marketo.cli").main(argv) and returns its exit status. */
static int run_cli(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int i;

    luaL_openlibs(L);
    preload_modules(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "marketo.cli");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 1);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    lua_call(L, 1, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    int status = 1;
    int debug;

    if (L == NULL) {
        fputs("marketo-bulk: not enough memory\n", stderr);
        return 1;
    }
    debug = debug_wanted(argc, argv);
    lua_pushcfunction(L, debug ? traceback : message_only);
    lua_pushcfunction(L, run_cli);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    if (lua_pcall(L, 2, 1, 1) != LUA_OK) {
        fprintf(stderr, "marketo-bulk: internal error: %s%s\n", lua_tostring(L, -1),
                debug ? "" : " (run again with --debug for the traceback, and report it)");
    } else if (lua_isinteger(L, -1)) {
        status = (int)lua_tointeger(L, -1);
    }
    fflush(stdout);
    lua_close(L);
    return status;
}
