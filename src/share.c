/* share.c - the CURLSH every marketo.request joins: one per Lua state (not
 * per process), so that connections, DNS answers and TLS sessions are reused
 * by every transfer of the state, blocking or in a loop. A state is used by
 * one thread at a time, so the share needs no lock callbacks. */
#include "transport.h"

#define SHARE_KEY "marketo.share" /* registry field and metatable name */

static int share_gc(lua_State *L)
{
    CURLSH **share = (CURLSH **)lua_touserdata(L, 1);

    /* IN_USE means an easy handle outlived the state's close: leak, never crash */
    if (*share != NULL && curl_share_cleanup(*share) == CURLSHE_OK)
        *share = NULL;
    return 0;
}

CURLSH *marketo_share_get(lua_State *L)
{
    CURLSH **share;

    lua_getfield(L, LUA_REGISTRYINDEX, SHARE_KEY); /* share */
    share = (CURLSH **)lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (share == NULL || *share == NULL)
        luaL_error(L, "marketo.core: no connection share (was luaopen skipped?)");
    return *share;
}

/* Created when the core is opened, so before any request: finalizers run in
 * reverse order of creation, so the share is cleaned up after every request
 * and loop, even when the state closes. */
void marketo_share_open(lua_State *L)
{
    CURLSH **share;

    lua_getfield(L, LUA_REGISTRYINDEX, SHARE_KEY);
    if (!lua_isnil(L, -1)) { /* the core was opened before in this state */
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    share = (CURLSH **)marketo_newudata(L, sizeof *share); /* share */
    *share = NULL;
    luaL_newmetatable(L, SHARE_KEY);                        /* share mt */
    lua_pushcfunction(L, share_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);                                /* share */
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, SHARE_KEY);          /* share */
    if ((*share = curl_share_init()) == NULL)
        luaL_error(L, "curl_share_init failed");
    curl_share_setopt(*share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(*share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(*share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    lua_pop(L, 1);                                          /* (empty) */
}
