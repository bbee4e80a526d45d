/* journal.c - marketo.journal: an append-only file for the import journal.
 * Each line is written whole and fsync'd before append() returns, so a crash
 * never leaves a record half-written on disk, and the file is created 0600
 * (it names files and batches; it never holds secrets, but it is nobody
 * else's business). Also hash_range(), which names a part of a source file
 * by its bytes so a resumed run can tell that the file has not changed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "marketo.h"

#define MARKETO_JOURNAL_MT "marketo.journal"

typedef struct marketo_journal {
    int fd; /* -1 once closed */
} marketo_journal;

static marketo_journal *check_open_journal(lua_State *L)
{
    marketo_journal *j = (marketo_journal *)luaL_checkudata(L, 1, MARKETO_JOURNAL_MT);

    if (j->fd < 0)
        luaL_error(L, "attempt to use a closed %s", MARKETO_JOURNAL_MT);
    return j;
}

/* journal_open(path) -> journal | fail triple */
static int journal_open(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    marketo_journal *j = (marketo_journal *)marketo_newudata(L, sizeof *j);

    j->fd = -1; /* born closed: __gc is safe whatever happens next */
    luaL_getmetatable(L, MARKETO_JOURNAL_MT);
    lua_setmetatable(L, -2);
    j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (j->fd < 0)
        return marketo_push_errno(L, path, errno);
    if (fchmod(j->fd, 0600) != 0) { /* an older file may have been made wider */
        int err = errno;
        close(j->fd);
        j->fd = -1;
        return marketo_push_errno(L, path, err);
    }
    return 1;
}

/* journal:append(line) -> true | fail triple; the line must end in "\n". */
static int journal_append(lua_State *L)
{
    marketo_journal *j = check_open_journal(L);
    size_t len, done = 0;
    const char *line = luaL_checklstring(L, 2, &len);

    luaL_argcheck(L, len > 0 && line[len - 1] == '\n', 2, "a journal line ends in a newline");
    while (done < len) {
        ssize_t n = write(j->fd, line + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return marketo_push_errno(L, "journal write", errno);
        }
        done += (size_t)n;
    }
    if (fsync(j->fd) != 0)
        return marketo_push_errno(L, "journal fsync", errno);
    lua_pushboolean(L, 1);
    return 1;
}

static int journal_close(lua_State *L)
{
    marketo_journal *j = (marketo_journal *)luaL_checkudata(L, 1, MARKETO_JOURNAL_MT);

    if (j->fd >= 0) {
        close(j->fd);
        j->fd = -1;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int journal_tostring(lua_State *L)
{
    marketo_journal *j = (marketo_journal *)luaL_checkudata(L, 1, MARKETO_JOURNAL_MT);

    if (j->fd < 0)
        lua_pushfstring(L, "%s (closed)", MARKETO_JOURNAL_MT);
    else
        lua_pushfstring(L, "%s (%p)", MARKETO_JOURNAL_MT, (void *)j);
    return 1;
}

/* hash_range(path, offset, length) -> 16 hex digits (64-bit FNV-1a) | fail.
 * Not cryptographic: it tells a changed source file from an unchanged one. */
static int journal_hash_range(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    long long offset = marketo_checksize(L, 2), left = marketo_checksize(L, 3);
    unsigned char buf[1 << 16];
    uint64_t h = UINT64_C(14695981039346656037);
    char hex[17];
    int fd;

    luaL_argcheck(L, offset >= 0, 2, "negative offset");
    luaL_argcheck(L, left >= 0, 3, "negative length");
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return marketo_push_errno(L, path, errno);
    while (left > 0) {
        size_t want = left < (long long)sizeof buf ? (size_t)left : sizeof buf;
        ssize_t n = pread(fd, buf, want, (off_t)offset), i;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : 0;
            close(fd);
            return err ? marketo_push_errno(L, path, err)
                       : marketo_push_fail(L, "SHORT_FILE", "%s ends before the range", path);
        }
        for (i = 0; i < n; i++)
            h = (h ^ buf[i]) * UINT64_C(1099511628211);
        offset += n;
        left -= n;
    }
    close(fd);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    lua_pushstring(L, hex);
    return 1;
}

void marketo_journal_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"append", journal_append},
        {"close", journal_close},
        {NULL, NULL}
    };
    static const luaL_Reg metamethods[] = {
        {"__close", journal_close},
        {"__gc", journal_close},
        {"__tostring", journal_tostring},
        {NULL, NULL}
    };
    static const luaL_Reg funcs[] = {
        {"hash_range", journal_hash_range},
        {"journal_open", journal_open},
        {NULL, NULL}
    };

    luaL_newmetatable(L, MARKETO_JOURNAL_MT); /* core mt */
    marketo_setfuncs(L, metamethods);
    lua_newtable(L);                          /* core mt methods */
    marketo_setfuncs(L, methods);
    lua_setfield(L, -2, "__index");           /* core mt */
    lua_pop(L, 1);                            /* core */
    marketo_setfuncs(L, funcs);
}
