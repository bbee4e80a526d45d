/* csv_reader.c - marketo.csv_reader: streams a delimited file record by
 * record (never whole) and hands rows to Lua as arrays or by header name,
 * with the source line and byte offset where each row starts. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv_core.h"

static ssize_t fd_read(void *ctx, void *buf, size_t n)
{
    marketo_csv_reader *r = (marketo_csv_reader *)ctx;
    ssize_t got;

    if (r->limit >= 0 && (long long)n > r->limit)
        n = (size_t)r->limit;
    if (n == 0)
        return 0;
    got = read(r->fd, buf, n);
    if (got > 0 && r->limit >= 0)
        r->limit -= got;
    return got;
}

marketo_csv_reader *marketo_csv_check_reader(lua_State *L, int idx)
{
    marketo_csv_reader *r = (marketo_csv_reader *)luaL_checkudata(L, idx, MARKETO_CSV_READER_MT);
    if (r->fd < 0)
        luaL_error(L, "attempt to use a closed %s", MARKETO_CSV_READER_MT);
    return r;
}

static int reader_close(lua_State *L)
{
    marketo_csv_reader *r = (marketo_csv_reader *)luaL_checkudata(L, 1, MARKETO_CSV_READER_MT);

    if (r->fd >= 0) {
        close(r->fd);
        r->fd = -1;
    }
    csv_scan_free(&r->s);
    free(r->path);
    free(r->hdr);
    r->path = r->hdr = NULL;
    marketo_unref(L, &r->on_reject);
    marketo_unref(L, &r->names);
    lua_pushboolean(L, 1);
    return 1;
}

static int reader_tostring(lua_State *L)
{
    marketo_csv_reader *r = (marketo_csv_reader *)luaL_checkudata(L, 1, MARKETO_CSV_READER_MT);

    return marketo_tostring(L, MARKETO_CSV_READER_MT, r->fd < 0 ? NULL : r->path);
}

/* "path:line:col: detail" for the scanner's last problem, into out. */
static void describe(const marketo_csv_reader *r, char *out, size_t n)
{
    snprintf(out, n, "%s:%lld:%lld: %s", r->path, r->s.err_line, r->s.err_col,
             r->s.err_detail);
}

static int push_sticky(lua_State *L, const marketo_csv_reader *r)
{
    marketo_pushfail(L);
    lua_pushfstring(L, "%s: %s", r->fail_code, r->fail);
    lua_pushstring(L, r->fail_code);
    return -1;
}

/* Lenient mode: on_reject(code, message, line, column, offset, raw). raw is
 * nil for a row too large to keep. The callback may raise: the scanner is
 * already past the row, so the reader stays usable. */
static void reject(lua_State *L, marketo_csv_reader *r)
{
    char msg[512];
    const csv_scan *s = &r->s;

    r->rejected++;
    describe(r, msg, sizeof msg);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->on_reject);
    lua_pushstring(L, csv_err_code(s->err));
    lua_pushstring(L, msg);
    marketo_pushsize(L, s->rec_line);
    marketo_pushsize(L, s->err_col);
    marketo_pushsize(L, s->rec_off);
    if (s->discard || s->rec_off < s->base)
        lua_pushnil(L);
    else
        lua_pushlstring(L, (const char *)s->buf + (s->rec_off - s->base),
                        (size_t)(s->rec_end - s->rec_off));
    lua_call(L, 6, 0);
}

/* The next clean record of the batch, fields captured. The batch points into
 * the scanner's buffer, which stays put until the batch is used up. */
static int take_batched(lua_State *L, marketo_csv_reader *r)
{
    csv_scan *s = &r->s;
    const csv_rec *rec = &r->batch[r->bi++];
    const unsigned char *p = s->buf + (rec->off - s->base);
    size_t n = (size_t)(rec->end - rec->off) - 1; /* it ends with a LF */

    if (n > 0 && p[n - 1] == '\r')
        n--;
    if (csv_scan_split(s, p, n) != 0)
        luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
    s->rec_off = rec->off;
    s->rec_end = rec->end;
    s->rec_line = rec->line;
    r->rows++;
    return CSV_ROW;
}

int marketo_csv_reader_next(lua_State *L, marketo_csv_reader *r, int capture)
{
    if (capture && r->fail_code[0] == '\0') {
        if (r->bi < r->bn)
            return take_batched(L, r);
        r->bi = 0;
        r->bn = csv_scan_fast(&r->s, r->batch, (int)(sizeof r->batch / sizeof r->batch[0]));
        if (r->bn > 0)
            return take_batched(L, r);
    }
    for (;;) {
        int st;

        if (r->fail_code[0] != '\0')
            return push_sticky(L, r);
        st = csv_scan_next(&r->s, capture);
        switch (st) {
        case CSV_ROW:
            r->rows++;
            return CSV_ROW;
        case CSV_END:
            return CSV_END;
        case CSV_IOERR:
            marketo_push_errno(L, r->path, r->s.io_errno);
            return -1;
        case CSV_NOMEM:
            luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
            return -1;
        default:
            if (!r->s.lenient) {
                describe(r, r->fail, sizeof r->fail);
                snprintf(r->fail_code, sizeof r->fail_code, "%s", csv_err_code(r->s.err));
                return push_sticky(L, r);
            }
            reject(L, r);
            break;
        }
    }
}

/* Whether the file's first line ends in a bare CR (line ends of an old Mac):
 * such a file reads as one long line, and a CR is never part of a column's
 * name. Looks at what is buffered from where the header starts. */
static int cr_line_ends(const csv_scan *s)
{
    long long from = s->rec_off > s->base ? s->rec_off : s->base;
    const unsigned char *p, *cr, *lf;
    size_t n;

    if (from >= s->base + (long long)s->len)
        return 0;
    p = s->buf + (from - s->base);
    n = s->len - (size_t)(from - s->base);
    if ((cr = memchr(p, '\r', n)) == NULL)
        return 0;
    lf = memchr(p, '\n', n);
    return lf == NULL || lf > cr + 1;
}

static int push_cr_line_ends(lua_State *L, const marketo_csv_reader *r)
{
    return marketo_push_fail(L, "CSV_CR_LINE_ENDINGS", "%s: uses CR-only line endings (old "
                             "Mac format), so it reads as one line; convert them to LF "
                             "first, e.g. tr '\\r' '\\n' < in.csv > out.csv", r->path);
}

/* The first record names the columns: it must be well-formed in any mode,
 * and names must be unique, so that reading by name is never ambiguous. */
static int read_header(lua_State *L, marketo_csv_reader *r)
{
    csv_scan *s = &r->s;
    int i, st, lenient = s->lenient;

    s->lenient = 0;
    st = marketo_csv_reader_next(L, r, 1);
    s->lenient = (unsigned char)lenient;
    r->rows = 0;
    if (st == CSV_END)
        return marketo_push_fail(L, "CSV_NO_HEADER", "%s: the file is empty; it needs a "
                                 "header row naming the columns", r->path);
    if (st < 0) {
        if (!cr_line_ends(s))
            return 3;
        lua_pop(L, 3);
        return push_cr_line_ends(L, r);
    }
    if (s->rec_cr && cr_line_ends(s))
        return push_cr_line_ends(L, r);
    r->hdr_off = s->rec_off;
    r->hlen = (size_t)(s->rec_end - s->rec_off);
    if ((r->hdr = malloc(r->hlen + 1)) == NULL)
        return luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
    memcpy(r->hdr, s->buf + (s->rec_off - s->base), r->hlen);
    lua_createtable(L, s->nf, 0); /* names */
    lua_createtable(L, 0, s->nf); /* names seen */
    for (i = 0; i < s->nf; i++) {
        size_t n;
        const char *p = csv_field(s, i, &n);
        lua_pushlstring(L, p, n);             /* names seen name */
        lua_pushvalue(L, -1);                 /* names seen name name */
        lua_rawget(L, -3);                    /* names seen name prev */
        if (!lua_isnil(L, -1))
            return marketo_push_fail(L, "CSV_DUPLICATE_HEADER", "%s:%lld: column %d repeats "
                                     "the name \"%s\" of column %d; rename one of them",
                                     r->path, s->rec_line, i + 1, lua_tostring(L, -2),
                                     (int)lua_tointeger(L, -1));
        lua_pop(L, 1);                        /* names seen name */
        lua_pushvalue(L, -1);                 /* names seen name name */
        lua_rawseti(L, -4, i + 1);            /* names seen name */
        lua_pushinteger(L, i + 1);            /* names seen name i */
        lua_rawset(L, -3);                    /* names seen */
    }
    lua_pop(L, 1);                            /* names */
    r->names = luaL_ref(L, LUA_REGISTRYINDEX);
    s->expect = s->nf;
    return 0;
}

/* csv_reader(path, delim, lenient, max_row, header, on_reject)
 *   -> reader | nil, msg, code */
static int reader_new(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t dlen;
    const char *delim = luaL_checklstring(L, 2, &dlen);
    int lenient = lua_toboolean(L, 3);
    long long max_row = marketo_checksize(L, 4);
    int header = lua_toboolean(L, 5);
    marketo_csv_reader *r;

    luaL_argcheck(L, dlen == 1 && strchr("\"\r\n", delim[0]) == NULL && delim[0] != '\0',
                  2, "one byte, not a quote or line end");
    luaL_argcheck(L, max_row > 0 && max_row <= (1LL << 30), 4, "1 to 2^30 bytes");
    if (lenient)
        luaL_checktype(L, 6, LUA_TFUNCTION);
    lua_settop(L, 6);
    r = (marketo_csv_reader *)marketo_newudata(L, sizeof *r);
    memset(r, 0, sizeof *r); /* born closed: fd -1, no buffers, no refs */
    r->fd = -1;
    r->limit = -1;
    r->on_reject = r->names = LUA_NOREF;
    luaL_getmetatable(L, MARKETO_CSV_READER_MT);
    lua_setmetatable(L, -2);
    if ((r->path = malloc(strlen(path) + 1)) == NULL)
        return luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
    strcpy(r->path, path);
    /* close-on-exec: a child we start (the sandbox, curl) has no use for it */
    if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return marketo_push_errno(L, path, errno);
    if (csv_scan_init(&r->s, fd_read, r, delim[0], CSV_CHUNK, (size_t)max_row, lenient) != 0)
        return luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
    if (lenient) {
        lua_pushvalue(L, 6);
        r->on_reject = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (header && read_header(L, r) != 0)
        return 3;
    lua_settop(L, 7);
    return 1;
}

static void fill_row(lua_State *L, marketo_csv_reader *r, int t, int named)
{
    const csv_scan *s = &r->s;
    int i;

    if (named)
        lua_rawgeti(L, LUA_REGISTRYINDEX, r->names);  /* names */
    for (i = 0; i < s->nf; i++) {
        size_t n;
        const char *p = csv_field(s, i, &n);
        if (named) {
            lua_rawgeti(L, -1, i + 1);                /* names key */
            lua_pushlstring(L, p, n);                 /* names key value */
            lua_rawset(L, t);                         /* names */
        } else {
            lua_pushlstring(L, p, n);
            lua_rawseti(L, t, i + 1);
        }
    }
    if (named)
        lua_pop(L, 1);
    for (i = s->nf; i < r->last_n && !named; i++) { /* a shorter row in a reused table */
        lua_pushnil(L);
        lua_rawseti(L, t, i + 1);
    }
    if (!named)
        r->last_n = s->nf;
}

/* read([t [, named]]) -> t, line, offset | nil at the end | nil, msg, code */
static int reader_read(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    int named = lua_toboolean(L, 3), st;

    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_createtable(L, named ? 0 : r->s.expect, named ? r->s.expect : 0);
    } else {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_settop(L, 2);
    }
    if (named && r->names == LUA_NOREF)
        return luaL_argerror(L, 3, "the reader has no header to name fields by");
    st = marketo_csv_reader_next(L, r, 1);
    if (st < 0)
        return 3;
    if (st == CSV_END) {
        lua_pushnil(L);
        return 1;
    }
    fill_row(L, r, 2, named);
    marketo_pushsize(L, r->s.rec_line);
    marketo_pushsize(L, r->s.rec_off);
    return 3;
}

/* range(offset, length, line) -> reader | fail triple: from here on, reads
 * only the bytes [offset, offset + length), which must start a row, at the
 * given source line; the end of the range is the end of the file. One worker
 * of a parallel map reads its share of a file this way, its header from the
 * top. Only before the first row. */
static int reader_range(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    long long off = marketo_checksize(L, 2), len = marketo_checksize(L, 3);
    long long line = marketo_checksize(L, 4);
    csv_scan *s = &r->s;

    luaL_argcheck(L, r->hdr != NULL && r->rows == 0 && r->rejected == 0 && r->bi == r->bn
                  && r->limit < 0, 1, "a fresh reader with a header");
    luaL_argcheck(L, off >= r->hdr_off + (long long)r->hlen, 2, "past the header");
    luaL_argcheck(L, len >= 0, 3, "not negative");
    luaL_argcheck(L, line >= 1, 4, "positive");
    lua_settop(L, 1);
    if (lseek(r->fd, (off_t)off, SEEK_SET) < 0)
        return marketo_push_errno(L, r->path, errno);
    r->limit = len;
    s->base = s->rec_off = s->line_start = off;
    s->pos = s->len = 0;
    s->eof = 0;
    s->line = line;
    return 1;
}

/* next() -> line, offset | nil at the end | nil, msg, code: the next row,
 * its fields left in the reader for row() to hand out one by one. */
static int reader_next(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    int st = marketo_csv_reader_next(L, r, 1);

    if (st < 0)
        return 3;
    if (st == CSV_END) {
        lua_pushnil(L);
        return 1;
    }
    marketo_pushsize(L, r->s.rec_line);
    marketo_pushsize(L, r->s.rec_off);
    return 2;
}

/* row([strict]) -> the reader's row: the fields of the record the last
 * next() (or read()) found, by name or column number (see csv_row.c). */
static int reader_row(lua_State *L)
{
    marketo_csv_check_reader(L, 1);
    marketo_csv_push_row(L, 1, lua_toboolean(L, 2));
    return 1;
}

/* header() -> a fresh array of the column names, or nil without a header */
static int reader_header(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    int i, n;

    if (r->names == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->names);
    n = (int)marketo_rawlen(L, -1);
    lua_createtable(L, n, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, -2, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

/* stats() -> { rows, rejected, blank, line, offset, bom, crlf } so far */
static int reader_stats(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);

    lua_createtable(L, 0, 7);
    marketo_set_size(L, "rows", r->rows);
    marketo_set_size(L, "rejected", r->rejected);
    marketo_set_size(L, "blank", r->s.blank);
    marketo_set_size(L, "line", r->s.line);
    marketo_set_size(L, "offset", r->s.base + (long long)r->s.pos);
    lua_pushboolean(L, r->s.bom);
    lua_setfield(L, -2, "bom");
    lua_pushboolean(L, r->s.crlf);
    lua_setfield(L, -2, "crlf");
    return 1;
}

void marketo_csv_reader_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"header", reader_header},
        {"next", reader_next},
        {"range", reader_range},
        {"read", reader_read},
        {"row", reader_row},
        {"stats", reader_stats},
        {NULL, NULL}
    };
    marketo_new_class(L, MARKETO_CSV_READER_MT, reader_close, reader_tostring, NULL, methods,
                      "csv_reader", reader_new);
}
