/* clock.c - the monotonic clock and sleep (Lua 5.1 has neither). A sleep is
 * cut short by a stop request (see process.c). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <time.h>

#include "marketo.h"

double marketo_monotonic(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int marketo_clock_monotonic(lua_State *L)
{
    lua_pushnumber(L, marketo_monotonic());
    return 1;
}

/* The largest time_t, which is signed and 32 or 64 bits wide. */
#define TIME_T_MAX (sizeof(time_t) >= sizeof(long long) ? LLONG_MAX : INT_MAX)

/* sleep(seconds): returns true, or false when a stop request cut it short.
 * math.huge sleeps as long as a timespec can say (until a signal). */
int marketo_clock_sleep(lua_State *L)
{
    double s = marketo_checkseconds(L, 1);
    struct timespec req, rem;

    req.tv_sec = (time_t)marketo_clamp(s, TIME_T_MAX);
    req.tv_nsec = s < (double)TIME_T_MAX ? (long)((s - (double)req.tv_sec) * 1e9) : 0;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        if (marketo_stop_requested()) {
            lua_pushboolean(L, 0);
            return 1;
        }
        req = rem;
    }
    lua_pushboolean(L, 1);
    return 1;
}
