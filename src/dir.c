/* dir.c - mkdir(path): a folder and its missing parents, made with mkdir(2),
 * so that no path (one starting with '-', one with quotes or spaces) is ever
 * read as a flag or reaches a shell. Made 0700: a work folder holds parts of
 * people's data. An existing folder is fine; anything else in the way is an
 * error naming the path. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "marketo.h"

static int is_folder(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Makes path[0..len) if it is missing: 0, or an errno. */
static int make_one(char *path, size_t len)
{
    char saved = path[len];
    int err = 0;

    path[len] = '\0';
    if (len > 0 && mkdir(path, 0700) != 0 && !(errno == EEXIST && is_folder(path)))
        err = errno == EEXIST ? ENOTDIR : errno;
    path[len] = saved;
    return err;
}

/* mkdir(path) -> true | fail triple ("ENOENT: path: No such file ..."). */
int marketo_dir_mkdir(lua_State *L)
{
    size_t len, i;
    const char *path = luaL_checklstring(L, 1, &len);
    char *copy;
    int err = 0;

    if (len == 0 || strlen(path) != len)
        return luaL_argerror(L, 1, "a path without NUL bytes expected");
    copy = (char *)marketo_newudata(L, len + 1); /* freed by the GC, even on error */
    memcpy(copy, path, len + 1);
    for (i = 1; i <= len && err == 0; i++) {
        if (i == len || copy[i] == '/')
            err = make_one(copy, i);
    }
    if (err != 0)
        return marketo_push_errno(L, path, err);
    lua_pushboolean(L, 1);
    return 1;
}
