/* core.c - luaopen_marketo_core: process-wide libcurl set-up, version
 * information, the failure triple, and the openers of every other file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "marketo.h"

int marketo_push_fail(lua_State *L, const char *name, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    marketo_pushfail(L);
    lua_pushfstring(L, "%s: %s", name, msg);
    lua_pushstring(L, name);
    return 3;
}

int marketo_push_errno(lua_State *L, const char *what, int err)
{
    const char *name = "IO_ERROR";

    switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case EACCES: name = "EACCES"; break;
    case EISDIR: name = "EISDIR"; break;
    case ENOSPC: name = "ENOSPC"; break;
    default: break;
    }
    return marketo_push_fail(L, name, "%s: %s", what, strerror(err));
}

void marketo_new_class(lua_State *L, const char *name, lua_CFunction close,
                       lua_CFunction tostring, const luaL_Reg *meta, const luaL_Reg *methods,
                       const char *ctor_name, lua_CFunction ctor)
{
    luaL_newmetatable(L, name);     /* M mt */
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close"); /* inert before Lua 5.4 */
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
    if (meta != NULL)
        marketo_setfuncs(L, meta);
    lua_newtable(L);                /* M mt methods */
    marketo_setfuncs(L, methods);
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "close");
    lua_setfield(L, -2, "__index"); /* M mt */
    lua_pop(L, 1);                  /* M */
    lua_pushcfunction(L, ctor);
    lua_setfield(L, -2, ctor_name);
}

void marketo_unref(lua_State *L, int *ref)
{
    luaL_unref(L, LUA_REGISTRYINDEX, *ref);
    *ref = LUA_NOREF;
}

int marketo_tostring(lua_State *L, const char *name, const char *what)
{
    lua_pushfstring(L, "%s (%s)", name, what != NULL ? what : "closed");
    return 1;
}

int marketo_tostring_at(lua_State *L, const char *name, void *p)
{
    if (p == NULL)
        return marketo_tostring(L, name, NULL);
    lua_pushfstring(L, "%s (%p)", name, p);
    return 1;
}

int marketo_create(const char *path)
{
    return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

FILE *marketo_create_file(const char *path)
{
    int fd = marketo_create(path), err;
    FILE *f;

    if (fd < 0)
        return NULL;
    if ((f = fdopen(fd, "wb")) == NULL) {
        err = errno;
        close(fd);
        errno = err;
    }
    return f;
}

void marketo_set_size(lua_State *L, const char *k, long long v)
{
    marketo_pushsize(L, v);
    lua_setfield(L, -2, k);
}

double marketo_checkseconds(lua_State *L, int arg)
{
    double s = luaL_checknumber(L, arg);

    luaL_argcheck(L, s == s, arg, "not a number");
    luaL_argcheck(L, s >= 0, arg, "negative duration");
    return s;
}

long long marketo_clamp(double v, long long max)
{
    /* (double)max may round up (2^63 for LLONG_MAX): v below it casts safely */
    return v >= (double)max ? max : (long long)v;
}

lua_Integer marketo_tointeger_in(lua_State *L, int idx, lua_Integer lo, lua_Integer hi,
                                 lua_Integer none)
{
    lua_Number n = lua_tonumber(L, idx);

    if (!(n >= (lua_Number)lo && n <= (lua_Number)hi))
        return none;
    return (lua_Number)(lua_Integer)n == n ? (lua_Integer)n : none;
}

/* versions() -> { marketo = "0.1.0", lua = "Lua 5.4.4", curl = "7.88.1",
 *                 ssl = "OpenSSL/3.0.x" } */
static int core_versions(lua_State *L)
{
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);

    lua_createtable(L, 0, 4);
    lua_pushliteral(L, MARKETO_VERSION);
    lua_setfield(L, -2, "marketo");
#ifdef LUA_RELEASE
    lua_pushliteral(L, LUA_RELEASE);
#else
    lua_pushliteral(L, LUA_VERSION);
#endif
    lua_setfield(L, -2, "lua");
    lua_pushstring(L, info->version);
    lua_setfield(L, -2, "curl");
    lua_pushstring(L, info->ssl_version ? info->ssl_version : "none");
    lua_setfield(L, -2, "ssl");
    return 1;
}

MARKETO_EXPORT int luaopen_marketo_core(lua_State *L); /* for -Wmissing-prototypes */

MARKETO_EXPORT int luaopen_marketo_core(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"versions", core_versions},
#define MARKETO_FUNCTION_ENTRY(name, fn) {name, fn},
        MARKETO_FUNCTIONS(MARKETO_FUNCTION_ENTRY)
#undef MARKETO_FUNCTION_ENTRY
        {NULL, NULL}
    };
    static int curl_ready = 0; /* curl_global_init once per process, never cleaned up:
                                * other modules in the process may use libcurl too */

    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return luaL_error(L, "marketo.core: curl_global_init failed");
        curl_ready = 1;
    }
    lua_newtable(L);
    marketo_setfuncs(L, funcs);
#define MARKETO_CALL_OPEN(name) marketo_##name##_open(L);
    MARKETO_MODULES(MARKETO_CALL_OPEN)
#undef MARKETO_CALL_OPEN
    lua_pushliteral(L, MARKETO_VERSION);
    lua_setfield(L, -2, "_VERSION");
    return 1;
}
