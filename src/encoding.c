/* encoding.c - to_utf8(src, dst, from): a file in another encoding (cp1252,
 * latin1, UTF-16) converted to UTF-8 with iconv(3), as a stream, to dst
 * created 0600. A byte the encoding does not have is an error naming its
 * offset, and dst is removed: a row is never sent changed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "marketo.h"

#define CHUNK (1 << 16)

typedef struct convert {
    iconv_t cd;
    FILE *in, *out;
    char inbuf[CHUNK];
    char outbuf[4 * CHUNK];
    long long offset; /* of inbuf[0] in the source */
} convert;

/* Runs the conversion: 0, or an errno (EILSEQ: c->offset names the byte). */
static int run(convert *c)
{
    size_t have = 0;
    int eof = 0;

    while (!eof || have > 0) {
        char *ip = c->inbuf, *op = c->outbuf;
        size_t got, left, room = sizeof c->outbuf, r;

        got = eof ? 0 : fread(c->inbuf + have, 1, sizeof c->inbuf - have, c->in);
        if (got == 0 && !eof) {
            if (ferror(c->in))
                return EIO;
            eof = 1;
        }
        have += got;
        left = have;
        r = iconv(c->cd, &ip, &left, &op, &room);
        if (r == (size_t)-1 && errno == EILSEQ) {
            c->offset += (long long)(ip - c->inbuf);
            return EILSEQ;
        }
        if (r == (size_t)-1 && errno == EINVAL && eof) {
            c->offset += (long long)(ip - c->inbuf);
            return EILSEQ; /* a sequence cut off by the end of the file */
        }
        if (fwrite(c->outbuf, 1, (size_t)(op - c->outbuf), c->out)
            != (size_t)(op - c->outbuf))
            return errno ? errno : EIO;
        c->offset += (long long)(ip - c->inbuf);
        memmove(c->inbuf, ip, left); /* an incomplete sequence waits for more */
        have = left;
        if (eof && have == 0)
            break;
    }
    return 0;
}

/* to_utf8(src, dst, from) -> true | fail ("ENCODING: src: byte 0x81 at offset 12 ..."). */
int marketo_encoding_to_utf8(lua_State *L)
{
    const char *src = luaL_checkstring(L, 1);
    const char *dst = luaL_checkstring(L, 2);
    const char *from = luaL_checkstring(L, 3);
    convert *c = (convert *)marketo_newudata(L, sizeof(convert));
    int err, cerr;

    memset(c, 0, sizeof *c);
    c->cd = iconv_open("UTF-8", from);
    if (c->cd == (iconv_t)-1)
        return luaL_argerror(L, 3, "an encoding iconv knows expected");
    if ((c->in = fopen(src, "rb")) == NULL) {
        err = errno;
        iconv_close(c->cd);
        return marketo_push_errno(L, src, err);
    }
    if ((c->out = marketo_create_file(dst)) == NULL) {
        err = errno;
        fclose(c->in);
        iconv_close(c->cd);
        return marketo_push_errno(L, dst, err);
    }
    err = run(c);
    cerr = fclose(c->out) != 0 ? errno : 0;
    if (err == 0)
        err = cerr;
    if (err == EILSEQ && fseek(c->in, (long)c->offset, SEEK_SET) == 0) {
        int byte = fgetc(c->in);

        fclose(c->in);
        iconv_close(c->cd);
        unlink(dst);
        return marketo_push_fail(L, "ENCODING", "%s: byte 0x%02X at offset %lld is not %s",
                                 src, byte < 0 ? 0 : byte, c->offset, from);
    }
    fclose(c->in);
    iconv_close(c->cd);
    if (err != 0) {
        unlink(dst);
        return marketo_push_errno(L, err == EILSEQ ? src : dst, err);
    }
    lua_pushboolean(L, 1);
    return 1;
}
