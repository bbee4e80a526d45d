/* loop.c - marketo.loop: transfers in flight on one libcurl multi handle,
 * driven from one thread. add() starts a request without blocking, wait()
 * drives every transfer and sleeps in curl_multi_poll until one finishes, the
 * timeout passes (timers) or a stop is requested, and returns what finished. */
#include <string.h>

#include "transport.h"

#define POLL_SLICE_MS 200 /* bounds how late a stop request can be seen */

static marketo_loop *check_loop(lua_State *L, int idx)
{
    return (marketo_loop *)luaL_checkudata(L, idx, MARKETO_LOOP_MT);
}

static marketo_loop *check_open_loop(lua_State *L, int idx)
{
    marketo_loop *lp = check_loop(L, idx);
    if (lp->multi == NULL)
        luaL_error(L, "attempt to use a closed %s", MARKETO_LOOP_MT);
    return lp;
}

static void unlink_request(marketo_loop *lp, marketo_request *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        lp->active = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->loop = NULL;
    lp->count--;
}

/* Sets anchor[lightuserdata(r)] = the value at the top (popped). */
static void set_anchor(lua_State *L, marketo_loop *lp, marketo_request *r)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->anchor_ref); /* v anchor */
    lua_pushlightuserdata(L, (void *)r);               /* v anchor key */
    lua_pushvalue(L, -3);                              /* v anchor key v */
    lua_rawset(L, -3);                                 /* v anchor */
    lua_pop(L, 2);
}

void marketo_loop_detach(lua_State *L, marketo_request *r)
{
    marketo_loop *lp = r->loop;

    curl_multi_remove_handle(lp->multi, r->curl);
    unlink_request(lp, r);
    lua_pushnil(L);
    set_anchor(L, lp, r);
}

/* add(request) -> true | fail, msg, code: the transfer starts at the next wait. */
static int loop_add(lua_State *L)
{
    marketo_loop *lp = check_open_loop(L, 1);
    marketo_request *r = marketo_request_check_idle(L, 2);
    CURLMcode mc;

    luaL_argcheck(L, !lp->busy, 1, "cannot add inside the loop's wait");
    if (!marketo_request_start(L, r))
        return 3;
    if ((mc = curl_multi_add_handle(lp->multi, r->curl)) != CURLM_OK) {
        marketo_request_finish(r, CURLE_FAILED_INIT);
        return luaL_error(L, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    }
    r->loop = lp;
    r->prev = NULL;
    r->next = lp->active;
    if (lp->active != NULL)
        lp->active->prev = r;
    lp->active = r;
    lp->count++;
    lua_pushvalue(L, 2);
    set_anchor(L, lp, r); /* in flight, the loop keeps it alive */
    lua_pushboolean(L, 1);
    return 1;
}

/* remove(request): abandons its transfer (result ABORTED_BY_CALLBACK). */
static int loop_remove(lua_State *L)
{
    marketo_loop *lp = check_open_loop(L, 1);
    marketo_request *r = (marketo_request *)luaL_checkudata(L, 2, MARKETO_REQUEST_MT);

    luaL_argcheck(L, r->loop == lp, 2, "request is not in this loop");
    luaL_argcheck(L, !lp->busy, 1, "cannot remove inside the loop's wait");
    marketo_loop_detach(L, r);
    marketo_request_finish(r, CURLE_ABORTED_BY_CALLBACK);
    lua_pushboolean(L, 1);
    return 1;
}

static void set_thread(marketo_loop *lp, lua_State *L)
{
    marketo_request *r;

    for (r = lp->active; r != NULL; r = r->next)
        r->L = L;
}

/* Moves every transfer libcurl reports done to the done queue. */
static void collect_done(lua_State *L, marketo_loop *lp)
{
    CURLMsg *msg;
    int left, n;
    char *priv;
    marketo_request *r;

    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->done_ref);      /* done */
    n = (int)marketo_rawlen(L, -1);
    while ((msg = curl_multi_info_read(lp->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        r = (marketo_request *)(void *)priv;
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->anchor_ref); /* done anchor */
        lua_pushlightuserdata(L, (void *)r);
        lua_rawget(L, -2);                                 /* done anchor req */
        lua_rawseti(L, -3, ++n);                           /* done anchor */
        lua_pop(L, 1);                                     /* done */
        marketo_request_finish(r, msg->data.result);
        marketo_loop_detach(L, r);
    }
    lua_pop(L, 1);
}

static int has_parked_error(const marketo_loop *lp)
{
    const marketo_request *r;

    for (r = lp->active; r != NULL; r = r->next)
        if (r->err_ref != LUA_NOREF)
            return 1;
    return 0;
}

/* Pushes the first error a callback parked and returns 1; else 0. */
static int take_parked_error(lua_State *L, marketo_loop *lp)
{
    marketo_request *r;

    for (r = lp->active; r != NULL; r = r->next)
        if (marketo_request_take_error(L, r))
            return 1;
    return 0;
}

/* Drives the transfers until one is done, a callback failed, the deadline
 * passed or a stop request arrived during this wait. With nothing in flight
 * it just sleeps, which is how the Lua loop waits for its timers. */
static CURLMcode drive(marketo_loop *lp, double timeout)
{
    double deadline = marketo_monotonic() + timeout, left;
    int stopped = marketo_stop_requested(), running, ms;
    CURLMcode mc;

    while ((mc = curl_multi_perform(lp->multi, &running)) == CURLM_OK) {
        if (running < lp->count || has_parked_error(lp))
            break;
        left = deadline - marketo_monotonic();
        if (left <= 0 || (!stopped && marketo_stop_requested()))
            break;
        ms = left * 1000 < POLL_SLICE_MS ? (int)(left * 1000) + 1 : POLL_SLICE_MS;
        if ((mc = curl_multi_poll(lp->multi, NULL, 0, ms, NULL)) != CURLM_OK)
            break;
    }
    return mc;
}

/* Returns the done queue as an array and starts a new one. */
static void push_done(lua_State *L, marketo_loop *lp)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->done_ref); /* done */
    luaL_unref(L, LUA_REGISTRYINDEX, lp->done_ref);
    lua_newtable(L);
    lp->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* wait(timeout_s) -> array of the requests that finished (maybe empty); each
 * then has result(). Re-raises an error a callback raised. */
static int loop_wait(lua_State *L)
{
    marketo_loop *lp = check_open_loop(L, 1);
    double timeout = lua_isnoneornil(L, 2) ? 0 : marketo_checkseconds(L, 2);
    CURLMcode mc;
    int raise;

    luaL_argcheck(L, !lp->busy, 1, "wait() is not re-entrant");
    lp->busy = 1;
    set_thread(lp, L); /* callbacks run on the calling coroutine */
    mc = drive(lp, timeout);
    set_thread(lp, NULL);
    lp->busy = 0;
    raise = take_parked_error(L, lp);                  /* [err] */
    collect_done(L, lp);
    if (raise)
        return lua_error(L);
    if (mc != CURLM_OK)
        return luaL_error(L, "curl_multi: %s", curl_multi_strerror(mc));
    push_done(L, lp);
    return 1;
}

/* count() -> number of requests in flight. */
static int loop_count(lua_State *L)
{
    marketo_loop *lp = check_open_loop(L, 1);

    lua_pushinteger(L, lp->count);
    return 1;
}

/* close(), __gc and __close: abandons what is in flight; idempotent. */
static int loop_close(lua_State *L)
{
    marketo_loop *lp = check_loop(L, 1);

    if (lp->busy)
        return luaL_error(L, "cannot close %s inside its own wait", MARKETO_LOOP_MT);
    while (lp->active != NULL) {
        marketo_request *r = lp->active;
        marketo_loop_detach(L, r);
        marketo_request_finish(r, CURLE_ABORTED_BY_CALLBACK);
    }
    if (lp->multi != NULL) {
        curl_multi_cleanup(lp->multi);
        lp->multi = NULL;
    }
    marketo_unref(L, &lp->anchor_ref);
    marketo_unref(L, &lp->done_ref);
    lua_pushboolean(L, 1);
    return 1;
}

static int loop_tostring(lua_State *L)
{
    marketo_loop *lp = check_loop(L, 1);

    return marketo_tostring_at(L, MARKETO_LOOP_MT, lp->multi == NULL ? NULL : (void *)lp);
}

/* loop() -> a new marketo.loop. */
static int loop_new(lua_State *L)
{
    marketo_loop *lp = (marketo_loop *)marketo_newudata(L, sizeof *lp);

    memset(lp, 0, sizeof *lp); /* born closed */
    lp->anchor_ref = lp->done_ref = LUA_NOREF;
    luaL_getmetatable(L, MARKETO_LOOP_MT);
    lua_setmetatable(L, -2);                        /* loop */
    lua_newtable(L);
    lp->anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    lp->done_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if ((lp->multi = curl_multi_init()) == NULL)
        return luaL_error(L, "curl_multi_init failed");
    return 1;
}

void marketo_loop_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", loop_add},
        {"count", loop_count},
        {"remove", loop_remove},
        {"wait", loop_wait},
        {NULL, NULL}
    };
    marketo_new_class(L, MARKETO_LOOP_MT, loop_close, loop_tostring, NULL, methods, "loop",
                      loop_new);
}
