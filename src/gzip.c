/* gzip.c - gunzip(src, dst): a gzip file (every member of it) decompressed
 * to dst, created 0600 (it holds people's data), through zlib; so that
 * `import leads export.csv.gz` reads the rows, not the compressed bytes. A
 * file cut short or damaged is an error naming it, and dst is removed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "marketo.h"

#define CHUNK (1 << 16)

/* gunzip(src, dst) -> bytes written | fail ("GZIP: src: unexpected end of file"). */
int marketo_gzip_gunzip(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    unsigned char *buf = (unsigned char *)marketo_newudata(L, CHUNK);
    long long total = 0;
    gzFile in;
    FILE *out;
    int n, err = 0, zerr = Z_OK;
    const char *why = NULL;

    if ((in = gzopen(src, "rb")) == NULL)
        return marketo_push_errno(L, src, errno ? errno : ENOMEM);
    if ((out = marketo_create_file(dst)) == NULL) {
        err = errno;
        gzclose(in);
        return marketo_push_errno(L, dst, err);
    }
    while ((n = gzread(in, buf, CHUNK)) > 0) {
        if (fwrite(buf, 1, (size_t)n, out) != (size_t)n) {
            err = errno;
            break;
        }
        total += n;
    }
    why = gzerror(in, &zerr); /* a file cut short ends in 0 and Z_BUF_ERROR */
    if (n >= 0 && zerr == Z_OK)
        why = NULL;
    if (fclose(out) != 0 && err == 0)
        err = errno;
    if (why != NULL) {
        lua_pushstring(L, why); /* gzerror's text lives in `in` */
        gzclose(in);
        unlink(dst);
        return marketo_push_fail(L, "GZIP", "%s: not a whole gzip file (%s)", src,
                                 lua_tostring(L, -1));
    }
    gzclose(in);
    if (err != 0) {
        unlink(dst);
        return marketo_push_errno(L, dst, err);
    }
    marketo_pushsize(L, total);
    return 1;
}
