/* journal.c - marketo.journal: an append-only file for the import journal.
 * Each line is written whole and fsync'd before append() returns, and an
 * append that fails part-way (a full disk, an I/O error) is cut back to the
 * size before it, so a journal is always whole lines plus, after a power
 * loss, at most one torn tail, which the Lua side cuts off (truncate())
 * before appending again. The file is created 0600 (it names files and
 * batches; it never holds secrets, but it is nobody else's business).
 *
 * One run per journal: a handle opened to append holds flock() on the file
 * for its life. flock, not a POSIX record lock, because the process drops
 * every POSIX lock of a file when it closes ANY descriptor of it (a reader's
 * io.open would free the journal for a second run). The holder also takes a
 * POSIX lock, which F_GETLK reads back as the holder's pid for the "in use"
 * message; it only names the holder, so losing it to such a close costs the
 * pid in the message, never the exclusion (and append() takes it again).
 * A forked worker shares the flock (not the POSIX lock): while a killed run's
 * workers still map, the journal stays in use, so a rerun cannot plan into
 * the work files they are writing.
 *
 * A journal is a regular file: anything else (/dev/full, a pipe) would be read
 * or written without end. Also hash_range(), which names a part of a source
 * file by its bytes so a resumed run can tell that the file has not changed. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* flock */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "marketo.h"

#define MARKETO_JOURNAL_MT "marketo.journal"
#define READ_CHUNK (1 << 16)

typedef struct marketo_journal {
    int fd;       /* -1 once closed */
    int locked;   /* opened to append: holds the flock */
    char path[];
} marketo_journal;

static marketo_journal *check_open_journal(lua_State *L)
{
    marketo_journal *j = (marketo_journal *)luaL_checkudata(L, 1, MARKETO_JOURNAL_MT);

    if (j->fd < 0)
        luaL_error(L, "attempt to use a closed %s", MARKETO_JOURNAL_MT);
    return j;
}

static marketo_journal *check_locked_journal(lua_State *L)
{
    marketo_journal *j = check_open_journal(L);

    if (!j->locked)
        luaL_error(L, "%s opened to read: it cannot be written", MARKETO_JOURNAL_MT);
    return j;
}

static void release(marketo_journal *j)
{
    if (j->fd >= 0) {
        close(j->fd); /* frees the flock (once no forked worker shares it) */
        j->fd = -1;
    }
}

/* The pid-reporting lock; failing to take it only costs the pid in a message. */
static void name_holder(int fd)
{
    struct flock fl;

    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    (void)fcntl(fd, F_SETLK, &fl);
}

static long holder_pid(int fd)
{
    struct flock fl;

    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK)
        return 0;
    return (long)fl.l_pid;
}

static const char *kind_of(mode_t mode)
{
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISFIFO(mode)) return "a pipe";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

/* Checks what was opened and takes the lock; on failure closes fd and
 * pushes the fail triple (returns 3), else returns 0. */
static int settle(lua_State *L, marketo_journal *j, int fd, int lock)
{
    struct stat st;
    int err;

    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        return marketo_push_fail(L, "JOURNAL", "%s: %s", j->path, strerror(err));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return marketo_push_fail(L, "JOURNAL", "%s is a directory", j->path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return marketo_push_fail(L, "JOURNAL", "%s is %s; a journal must be a regular file",
                                 j->path, kind_of(st.st_mode));
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        err = errno;
        close(fd);
        return marketo_push_fail(L, "JOURNAL", "%s: %s", j->path, strerror(err));
    }
    if (!lock)
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        long pid;
        err = errno;
        pid = err == EWOULDBLOCK ? holder_pid(fd) : 0;
        close(fd);
        if (err != EWOULDBLOCK)
            return marketo_push_fail(L, "JOURNAL", "%s: cannot lock it: %s", j->path,
                                     strerror(err));
        if (pid > 0)
            return marketo_push_fail(L, "JOURNAL_BUSY", "%s is in use by pid %ld (another run "
                                     "of its import); nothing was sent", j->path, pid);
        return marketo_push_fail(L, "JOURNAL_BUSY", "%s is in use by another run of its "
                                 "import (or by the workers of one that was killed, until "
                                 "they end); nothing was sent", j->path);
    }
    if (fchmod(fd, 0600) != 0) { /* an older file may have been made wider */
        err = errno;
        close(fd);
        return marketo_push_fail(L, "JOURNAL", "%s: %s", j->path, strerror(err));
    }
    name_holder(fd);
    return 0;
}

/* journal_open(path [, mode]) -> journal | fail triple. mode: "a" (default)
 * to append, creating the file; "w" to append to an existing file; "r" to
 * read only (no lock: `status` reads a journal while a run holds it). */
static int journal_open(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    const char *mode = luaL_optstring(L, 2, "a");
    int lock = strcmp(mode, "r") != 0, flags = O_CLOEXEC | O_NOCTTY | O_NONBLOCK, fd;
    marketo_journal *j;

    luaL_argcheck(L, !strcmp(mode, "a") || !strcmp(mode, "w") || !lock, 2,
                  "mode must be \"a\", \"w\" or \"r\"");
    flags |= lock ? O_RDWR | O_APPEND : O_RDONLY;
    if (!strcmp(mode, "a"))
        flags |= O_CREAT;
    j = (marketo_journal *)marketo_newudata(L, sizeof *j + len + 1);
    j->fd = -1; /* born closed: __gc is safe whatever happens next */
    j->locked = 0;
    memcpy(j->path, path, len + 1);
    luaL_getmetatable(L, MARKETO_JOURNAL_MT);
    lua_setmetatable(L, -2);
    /* O_NONBLOCK: opening a pipe must not wait for a writer (settle refuses it) */
    if ((fd = open(path, flags, 0600)) < 0) {
        int err = errno;
        if (err == EISDIR)
            return marketo_push_fail(L, "JOURNAL", "%s is a directory", path);
        return marketo_push_fail(L, err == ENOENT ? "JOURNAL_MISSING" : "JOURNAL", "%s: %s",
                                 path, strerror(err));
    }
    if (settle(L, j, fd, lock))
        return 3;
    j->fd = fd;
    j->locked = lock;
    return 1;
}

/* Cuts the file back to `size` bytes, durably. */
static int cut_back(int fd, off_t size)
{
    while (ftruncate(fd, size) != 0) {
        if (errno != EINTR)
            return -1;
    }
    return fsync(fd);
}

/* journal:append(line) -> true | fail triple; the line must end in "\n". A
 * write or fsync that fails leaves the file as it was before the call. */
static int journal_append(lua_State *L)
{
    marketo_journal *j = check_locked_journal(L);
    size_t len, done = 0;
    const char *line = luaL_checklstring(L, 2, &len);
    struct stat st;
    int err = 0;

    luaL_argcheck(L, len > 0 && line[len - 1] == '\n', 2, "a journal line ends in a newline");
    if (fstat(j->fd, &st) != 0)
        return marketo_push_fail(L, "JOURNAL_WRITE", "%s: %s", j->path, strerror(errno));
    while (done < len && !err) {
        ssize_t n = write(j->fd, line + done, len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n == 0)
            err = EIO;
        else if (errno != EINTR)
            err = errno;
    }
    if (!err && fsync(j->fd) != 0)
        err = errno;
    if (err) {
        if (cut_back(j->fd, st.st_size) != 0)
            return marketo_push_fail(L, "JOURNAL_WRITE", "%s: %s; and it could not be cut back "
                                     "to its last whole line: %s", j->path, strerror(err),
                                     strerror(errno));
        return marketo_push_fail(L, "JOURNAL_WRITE", "%s: %s", j->path, strerror(err));
    }
    name_holder(j->fd); /* again: a reader's close() in this process dropped it */
    lua_pushboolean(L, 1);
    return 1;
}

/* journal:read(offset) -> up to 64 KiB from offset ("" at the end) | fail. */
static int journal_read(lua_State *L)
{
    marketo_journal *j = check_open_journal(L);
    long long offset = marketo_checksize(L, 2);
    char buf[READ_CHUNK];
    ssize_t n;

    luaL_argcheck(L, offset >= 0, 2, "negative offset");
    while ((n = pread(j->fd, buf, sizeof buf, (off_t)offset)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return marketo_push_fail(L, "JOURNAL", "%s: %s", j->path, strerror(errno));
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

/* journal:truncate(size) -> true | fail: drops a torn tail, durably. */
static int journal_truncate(lua_State *L)
{
    marketo_journal *j = check_locked_journal(L);
    long long size = marketo_checksize(L, 2);

    luaL_argcheck(L, size >= 0, 2, "negative size");
    if (cut_back(j->fd, (off_t)size) != 0)
        return marketo_push_fail(L, "JOURNAL_WRITE", "%s: %s", j->path, strerror(errno));
    lua_pushboolean(L, 1);
    return 1;
}

static int journal_close(lua_State *L)
{
    release((marketo_journal *)luaL_checkudata(L, 1, MARKETO_JOURNAL_MT));
    lua_pushboolean(L, 1);
    return 1;
}

static int journal_tostring(lua_State *L)
{
    marketo_journal *j = (marketo_journal *)luaL_checkudata(L, 1, MARKETO_JOURNAL_MT);

    return marketo_tostring(L, MARKETO_JOURNAL_MT, j->fd < 0 ? NULL : j->path);
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
        {"read", journal_read},
        {"truncate", journal_truncate},
        {NULL, NULL}
    };
    static const luaL_Reg funcs[] = {
        {"hash_range", journal_hash_range},
        {NULL, NULL}
    };
    marketo_new_class(L, MARKETO_JOURNAL_MT, journal_close, journal_tostring, NULL, methods,
                      "journal_open", journal_open);
    marketo_setfuncs(L, funcs);
}
