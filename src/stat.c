/* stat.c - what a path is, asked of the file system and not guessed from
 * what opening it does:
 *   file_mode(path): a file's permission bits, so that a profile or a secret
 *       file readable by others can be refused before the secret is used;
 *   is_folder(path) -> true | false (no folder there, or none at all). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sys/stat.h>

#include "marketo.h"

/* file_mode(path) -> the mode's permission bits (0644 as 420) | fail triple. */
int marketo_stat_file_mode(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;

    if (stat(path, &st) != 0)
        return marketo_push_errno(L, path, errno);
    lua_pushinteger(L, (lua_Integer)(st.st_mode & 07777));
    return 1;
}

int marketo_stat_is_folder(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;

    lua_pushboolean(L, stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    return 1;
}
