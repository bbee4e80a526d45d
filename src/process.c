/* process.c - what marketo.core knows of its own process: the stop request
 * that SIGINT and SIGTERM raise once catch_signals() was called, the pid, and
 * the path of the running executable (so the runner can start itself as the
 * sandbox). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <unistd.h>

#include "marketo.h"

static volatile sig_atomic_t stop_signal = 0;

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

static int process_catch_signals(lua_State *L)
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
static int process_stop_requested(lua_State *L)
{
    switch (stop_signal) {
    case 0: lua_pushboolean(L, 0); break;
    case SIGINT: lua_pushliteral(L, "SIGINT"); break;
    case SIGTERM: lua_pushliteral(L, "SIGTERM"); break;
    default: lua_pushliteral(L, "SIGNAL"); break;
    }
    return 1;
}

static int process_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* self_exe() -> absolute path of the running executable, or the fail triple. */
static int process_self_exe(lua_State *L)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);

    if (n < 0)
        return marketo_push_errno(L, "/proc/self/exe", errno);
    lua_pushlstring(L, path, (size_t)n);
    return 1;
}

/* isatty(fd) -> boolean: whether progress can redraw a line (fd 1 or 2). */
static int process_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);

    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0, 1 or 2 expected");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

void marketo_process_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"catch_signals", process_catch_signals},
        {"getpid", process_getpid},
        {"isatty", process_isatty},
        {"self_exe", process_self_exe},
        {"stop_requested", process_stop_requested},
        {NULL, NULL}
    };
    marketo_setfuncs(L, funcs);
}
