/* file.c - the files an import writes besides its journal (the report, the
 * results of each part, the rejects): written whole or not at all. Each goes
 * to a temporary name beside its target, every write is checked (a full disk
 * is an error that names the file, never a short file that looks whole), it is
 * fsync'd, then renamed over the target; created 0600, since these files hold
 * people's data. Also cwd(), so the journal can name files absolutely. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "marketo.h"

int marketo_write_whole(lua_State *L, const char *path, const void *const *data,
                        const size_t *len, int n)
{
    luaL_Buffer b;
    const char *tmp;
    int fd, i, err = 0;

    luaL_buffinit(L, &b);
    luaL_addstring(&b, path);
    luaL_addstring(&b, ".partial");
    luaL_pushresult(&b);
    tmp = lua_tostring(L, -1);
    unlink(tmp); /* a leftover of a crash may be wider than 0600 */
    fd = marketo_create(tmp);
    if (fd < 0)
        return marketo_push_errno(L, tmp, errno);
    for (i = 0; i < n && err == 0; i++) {
        const char *p = data[i];
        size_t done = 0;

        while (done < len[i] && err == 0) {
            size_t chunk = len[i] - done > ((size_t)1 << 30) ? (size_t)1 << 30 : len[i] - done;
            ssize_t w = write(fd, p + done, chunk);

            if (w < 0 && errno != EINTR)
                err = errno;
            else if (w > 0)
                done += (size_t)w;
        }
    }
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err == 0 && rename(tmp, path) != 0)
        err = errno;
    if (err != 0) {
        unlink(tmp);
        return marketo_push_errno(L, path, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* write_file(path, data) -> true | fail triple ("ENOSPC: path: No space ..."). */
int marketo_file_write(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const void *data = luaL_checklstring(L, 2, &len);

    return marketo_write_whole(L, path, &data, &len, 1);
}

/* cwd() -> the current directory's absolute path | fail triple */
int marketo_file_cwd(lua_State *L)
{
    char buf[PATH_MAX];

    if (getcwd(buf, sizeof buf) == NULL)
        return marketo_push_errno(L, "getcwd", errno);
    lua_pushstring(L, buf);
    return 1;
}
