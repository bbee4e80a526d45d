/* clock.c - the monotonic clock, sleep, and the stop request that SIGINT and
 * SIGTERM raise once catch_signals() was called (Lua 5.1 has none of these). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "marketo.h"

static volatile sig_atomic_t stop_signal = 0;

double marketo_monotonic(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int marketo_stop_requested(void)
{
    return stop_signal != 0;
}

/* The first signal asks the program to stop at a safe point; a second one
 * means the user will not wait, so leave at once with the shell's code. */
static void on_signal(int sig)
{
    if (stop_signal != 0)
        _exit(128 + sig);
    stop_signal = sig;
}

static int clock_monotonic(lua_State *L)
{
    lua_pushnumber(L, marketo_monotonic());
    return 1;
}

/* sleep(seconds): returns true, or false when a stop request cut it short. */
static int clock_sleep(lua_State *L)
{
    double s = luaL_checknumber(L, 1);
    struct timespec req, rem;

    luaL_argcheck(L, s >= 0, 1, "negative duration");
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (double)req.tv_sec) * 1e9);
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        if (stop_signal != 0) {
            lua_pushboolean(L, 0);
            return 1;
        }
        req = rem;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int clock_catch_signals(lua_State *L)
{
    struct sigaction sa;

    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a signal should cut waits short */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* stop_requested() -> false, or the name of the signal that asked. */
static int clock_stop_requested(lua_State *L)
{
    switch (stop_signal) {
    case 0: lua_pushboolean(L, 0); break;
    case SIGINT: lua_pushliteral(L, "SIGINT"); break;
    case SIGTERM: lua_pushliteral(L, "SIGTERM"); break;
    default: lua_pushliteral(L, "SIGNAL"); break;
    }
    return 1;
}

/* getpid() -> integer; the sandbox and journal use it to name things. */
static int clock_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

void marketo_clock_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"catch_signals", clock_catch_signals},
        {"getpid", clock_getpid},
        {"monotonic", clock_monotonic},
        {"sleep", clock_sleep},
        {"stop_requested", clock_stop_requested},
        {NULL, NULL}
    };
    marketo_setfuncs(L, funcs);
}
