/* process.c - what marketo.core knows of its own process: the stop request
 * that SIGINT and SIGTERM raise once catch_signals() was called, the pid, and
 * the path of the running executable (so the runner can start itself as the
 * sandbox); and the worker processes that map a file on every core (fork,
 * wait, exit_now), since Lua functions can run in one thread per state only. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
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

int marketo_process_catch_signals(lua_State *L)
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
int marketo_process_stop_requested(lua_State *L)
{
    switch (stop_signal) {
    case 0: lua_pushboolean(L, 0); break;
    case SIGINT: lua_pushliteral(L, "SIGINT"); break;
    case SIGTERM: lua_pushliteral(L, "SIGTERM"); break;
    default: lua_pushliteral(L, "SIGNAL"); break;
    }
    return 1;
}

int marketo_process_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* self_exe() -> absolute path of the running executable, or the fail triple. */
int marketo_process_self_exe(lua_State *L)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);

    if (n < 0)
        return marketo_push_errno(L, "/proc/self/exe", errno);
    lua_pushlstring(L, path, (size_t)n);
    return 1;
}

/* isatty(fd) -> boolean: whether progress can redraw a line (fd 1 or 2). */
int marketo_process_isatty(lua_State *L)
{
    lua_Integer fd = luaL_checkinteger(L, 1);

    luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0, 1 or 2 expected");
    lua_pushboolean(L, isatty((int)fd));
    return 1;
}

/* cpus() -> the processors online (at least 1). */
int marketo_process_cpus(lua_State *L)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    lua_pushinteger(L, n > 0 ? (lua_Integer)n : 1);
    return 1;
}

/* fork() -> pid in the parent, 0 in the child | fail triple. Buffered output
 * is flushed first, or both processes would write it. The child takes the
 * default action on SIGINT/SIGTERM: a worker has nothing to finish, and its
 * parent sees it end and tells the user. It also ends with its parent: a
 * runner killed with -9 must not leave workers burning the cores and holding
 * the journal's lock (which they share) against the resume. */
int marketo_process_fork(lua_State *L)
{
    pid_t pid, parent = getpid();

    fflush(NULL);
    if ((pid = fork()) < 0)
        return marketo_push_errno(L, "fork", errno);
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        stop_signal = 0;
#ifdef __linux__
        /* the parent may have died before the request was made */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(128 + SIGKILL);
#endif
    }
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

/* A child's pid, checked before it is narrowed to a pid_t. */
static pid_t check_pid(lua_State *L, int arg)
{
    lua_Integer pid = luaL_checkinteger(L, arg);

    luaL_argcheck(L, pid > 0 && pid <= INT_MAX, arg, "a child's pid expected");
    return (pid_t)pid;
}

/* wait(pid) -> "exited", status | "signaled", signal number | fail triple.
 * Blocks; a signal that interrupts it does not end the wait (the child gets
 * the same signal from the terminal, or is killed by the caller). */
int marketo_process_wait(lua_State *L)
{
    pid_t pid = check_pid(L, 1);
    int status;

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return marketo_push_errno(L, "waitpid", errno);
    }
    if (WIFSIGNALED(status)) {
        lua_pushliteral(L, "signaled");
        lua_pushinteger(L, WTERMSIG(status));
    } else {
        lua_pushliteral(L, "exited");
        lua_pushinteger(L, WEXITSTATUS(status));
    }
    return 2;
}

/* kill(pid) -> true | fail triple: ends a worker at once (SIGKILL). */
int marketo_process_kill(lua_State *L)
{
    pid_t pid = check_pid(L, 1);

    if (kill(pid, SIGKILL) != 0 && errno != ESRCH)
        return marketo_push_errno(L, "kill", errno);
    lua_pushboolean(L, 1);
    return 1;
}

/* exit_now(status): a worker's end. _exit, not exit: the parent's atexit
 * handlers and its buffers are not the child's to run or flush. */
int marketo_process_exit_now(lua_State *L)
{
    lua_Integer status = luaL_checkinteger(L, 1);

    luaL_argcheck(L, status >= 0 && status <= 255, 1, "0 to 255");
    fflush(NULL);
    _exit((int)status);
    return 0;
}
