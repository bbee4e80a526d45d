/* csv_writer.c - marketo.csv_writer: writes rows in csv/tsv/ssv with the
 * quoting of csv_scan.c, to one file or to numbered parts that each start
 * with the header and stay under a byte limit (a mapped import is written
 * once, part by part). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv_core.h"

marketo_csv_writer *marketo_csv_check_writer(lua_State *L, int idx)
{
    marketo_csv_writer *w = (marketo_csv_writer *)luaL_checkudata(L, idx, MARKETO_CSV_WRITER_MT);
    if (!w->open)
        luaL_error(L, "attempt to use a closed %s", MARKETO_CSV_WRITER_MT);
    return w;
}

/* The path of part n; writer_new keeps prefix and suffix short enough. */
static void part_path(const marketo_csv_writer *w, int n, char *out, size_t len)
{
    int k;

    if (w->width < 0)
        k = snprintf(out, len, "%s", w->prefix);
    else
        k = snprintf(out, len, "%s%0*d%s", w->prefix, w->width, n, w->suffix);
    if (k < 0 || (size_t)k >= len)
        out[len - 1] = '\0';
}

static int write_all(marketo_csv_writer *w, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(w->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            w->err = errno;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int flush_out(marketo_csv_writer *w)
{
    size_t n = w->olen;

    w->olen = 0;
    return write_all(w, w->out, n);
}

static int put(marketo_csv_writer *w, const char *p, size_t n)
{
    if (n == 0) /* p may be NULL then (no header), which memcpy must not see */
        return 0;
    if (w->olen + n > CSV_CHUNK && flush_out(w) != 0)
        return -1;
    if (n >= CSV_CHUNK) /* larger than the buffer: straight through */
        return write_all(w, p, n);
    memcpy(w->out + w->olen, p, n);
    w->olen += n;
    return 0;
}

static int end_part(marketo_csv_writer *w)
{
    int rc = 0;

    if (w->fd < 0)
        return 0;
    if (flush_out(w) != 0)
        rc = -1;
    if (close(w->fd) != 0 && rc == 0) {
        w->err = errno;
        rc = -1;
    }
    w->fd = -1;
    return rc;
}

static int start_part(marketo_csv_writer *w)
{
    char path[4096];
    marketo_csv_part *p;

    if ((p = marketo_grow(w->parts, &w->pcap, (size_t)w->nparts + 1, sizeof *p)) == NULL) {
        w->err = ENOMEM;
        return -1;
    }
    w->parts = p;
    w->cur_part = w->nparts + 1;
    part_path(w, w->cur_part, path, sizeof path);
    if ((w->fd = marketo_create(path)) < 0) {
        w->err = errno;
        return -1;
    }
    p = &w->parts[w->nparts++];
    p->bytes = (long long)w->hlen;
    p->rows = p->first_line = p->last_line = 0;
    return put(w, w->hdr, w->hlen);
}

static int push_io_error(lua_State *L, marketo_csv_writer *w)
{
    char path[4096];

    part_path(w, w->cur_part, path, sizeof path);
    return marketo_push_errno(L, path, w->err);
}

static void row_reserve(lua_State *L, marketo_csv_writer *w, size_t more)
{
    if (marketo_buffer_reserve(&w->row, more) != 0)
        luaL_error(L, "%s: out of memory", MARKETO_CSV_WRITER_MT);
}

int marketo_csv_writer_field(lua_State *L, marketo_csv_writer *w,
                             const char *p, size_t n, int clean)
{
    row_reserve(L, w, 2 * n + 3);
    if (w->rfields++ > 0)
        w->row.data[w->row.len++] = (char)w->delim;
    w->row.len += csv_encode_field(w->row.data + w->row.len, p, n,
                                !clean && csv_needs_quote(p, n, w->delim));
    return 0;
}

/* Sends a row of len bytes (p, then the line end eol, eol_len bytes) to the
 * current part, or to a new one when it would push the part over the limit. */
static int emit(lua_State *L, marketo_csv_writer *w, const char *p, size_t len,
                const char *eol_bytes, size_t eol, long long line)
{
    size_t total = len + eol;
    marketo_csv_part *part;

    if (w->max_bytes > 0 && (long long)(w->hlen + total) > w->max_bytes) {
        marketo_push_fail(L, "CSV_ROW_TOO_LARGE", "the row from line %lld takes %lld bytes "
                          "with the header, over the part limit of %lld; raise max_bytes",
                          line, (long long)(w->hlen + total), w->max_bytes);
        return -1;
    }
    if (w->err) {
        push_io_error(L, w);
        return -1;
    }
    if (w->fd < 0 || (w->max_bytes > 0 && w->parts[w->nparts - 1].bytes
                      + (long long)total > w->max_bytes)) {
        if (end_part(w) != 0 || start_part(w) != 0) {
            push_io_error(L, w);
            return -1;
        }
    }
    part = &w->parts[w->nparts - 1];
    if (part->rows++ == 0)
        part->first_line = line;
    part->last_line = line;
    part->bytes += (long long)total;
    w->rows++;
    if (w->lines != NULL && fprintf(w->lines, "%lld\n", line) < 0 && !w->err)
        w->err = errno ? errno : EIO;
    if (put(w, p, len) != 0 || put(w, eol_bytes, eol) != 0) {
        push_io_error(L, w);
        return -1;
    }
    return 0;
}

/* Ends the row built field by field. A lone empty field is written "" so
 * that the line is not blank (readers skip blank lines). */
int marketo_csv_writer_end(lua_State *L, marketo_csv_writer *w, long long line)
{
    size_t len;

    row_reserve(L, w, 2);
    if (w->rfields == 1 && w->row.len == 0) {
        w->row.data[w->row.len++] = '"';
        w->row.data[w->row.len++] = '"';
    }
    len = w->row.len;
    w->row.len = 0;
    w->rfields = 0;
    return emit(L, w, w->row.data, len, w->crlf ? "\r\n" : "\n", w->crlf ? 2 : 1, line);
}

int marketo_csv_writer_raw(lua_State *L, marketo_csv_writer *w, const char *p, size_t len,
                           long long line)
{
    return emit(L, w, p, len, w->crlf ? "\r\n" : "\n", w->crlf ? 2 : 1, line);
}

int marketo_csv_writer_as_is(lua_State *L, marketo_csv_writer *w, const char *p, size_t len,
                             long long line)
{
    return emit(L, w, p, len, "", 0, line);
}

int marketo_csv_writer_header(lua_State *L, marketo_csv_writer *w, const char *p, size_t len)
{
    if ((w->hdr = malloc(len + 1)) == NULL)
        return luaL_error(L, "%s: out of memory", MARKETO_CSV_WRITER_MT);
    memcpy(w->hdr, p, len);
    w->hlen = len;
    if (w->fd < 0) /* numbered parts: each starts with it */
        return 0;
    w->parts[w->nparts - 1].bytes += (long long)len;
    if (put(w, p, len) != 0) {
        push_io_error(L, w);
        return -1;
    }
    return 0;
}

static int writer_close(lua_State *L)
{
    marketo_csv_writer *w = (marketo_csv_writer *)luaL_checkudata(L, 1, MARKETO_CSV_WRITER_MT);
    int rc = 0;

    if (w->open) {
        w->open = 0;
        rc = end_part(w) != 0 || w->err != 0;
        if (w->lines != NULL && fclose(w->lines) != 0 && !rc) {
            w->err = errno;
            rc = 1;
        }
        w->lines = NULL;
    }
    free(w->out);
    marketo_buffer_free(&w->row);
    free(w->hdr);
    w->out = w->hdr = NULL;
    if (rc)
        return push_io_error(L, w);
    lua_pushboolean(L, 1);
    return 1;
}

static int writer_gc(lua_State *L)
{
    marketo_csv_writer *w = (marketo_csv_writer *)luaL_checkudata(L, 1, MARKETO_CSV_WRITER_MT);

    writer_close(L);
    free(w->parts); /* parts() works after close(), so these go only here */
    free(w->prefix);
    w->parts = NULL;
    w->prefix = NULL;
    w->nparts = 0;
    return 0;
}

static int writer_tostring(lua_State *L)
{
    marketo_csv_writer *w = (marketo_csv_writer *)luaL_checkudata(L, 1, MARKETO_CSV_WRITER_MT);

    if (!w->open || w->prefix == NULL)
        return marketo_tostring(L, MARKETO_CSV_WRITER_MT, NULL);
    lua_pushfstring(L, "%s%s", w->prefix, w->width < 0 ? "" : "...");
    return marketo_tostring(L, MARKETO_CSV_WRITER_MT, lua_tostring(L, -1));
}

/* Encodes the fields of table t (ncols of them, or #t) as one row. */
static void encode_table(lua_State *L, marketo_csv_writer *w, int t, int ncols)
{
    int i, n = ncols > 0 ? ncols : (int)marketo_rawlen(L, t);

    luaL_argcheck(L, n > 0, t, "a row needs at least one field");
    for (i = 1; i <= n; i++) {
        size_t len = 0;
        const char *p = "";
        lua_rawgeti(L, t, i);
        if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
            p = lua_tolstring(L, -1, &len);
        else if (!lua_isnil(L, -1)) {
            w->row.len = 0;
            w->rfields = 0;
            luaL_error(L, "field %d is a %s (string or number expected)", i,
                       luaL_typename(L, -1));
        }
        marketo_csv_writer_field(L, w, p, len, 0);
        lua_pop(L, 1);
    }
}

/* write(row [, line]) -> true | nil, msg, code */
static int writer_write(lua_State *L)
{
    marketo_csv_writer *w = marketo_csv_check_writer(L, 1);
    long long line = marketo_optsize(L, 3, 0);

    luaL_checktype(L, 2, LUA_TTABLE);
    encode_table(L, w, 2, w->ncols);
    if (marketo_csv_writer_end(L, w, line) != 0)
        return 3;
    lua_pushboolean(L, 1);
    return 1;
}

/* parts() -> { { path, bytes, rows, first_line, last_line }, ... } */
static int writer_parts(lua_State *L)
{
    marketo_csv_writer *w = (marketo_csv_writer *)luaL_checkudata(L, 1, MARKETO_CSV_WRITER_MT);
    int i;

    lua_createtable(L, w->nparts, 0);
    for (i = 0; i < w->nparts; i++) {
        char path[4096];
        const marketo_csv_part *p = &w->parts[i];
        part_path(w, i + 1, path, sizeof path);
        lua_createtable(L, 0, 5);
        lua_pushstring(L, path);
        lua_setfield(L, -2, "path");
        marketo_set_size(L, "bytes", p->bytes);
        marketo_set_size(L, "rows", p->rows);
        marketo_set_size(L, "first_line", p->first_line);
        marketo_set_size(L, "last_line", p->last_line);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static char *dup_cat(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);

    if (s != NULL) {
        memcpy(s, a, la + 1);
        memcpy(s + la + 1, b, lb + 1);
    }
    return s;
}

/* csv_writer(prefix, width, suffix, delim, crlf, max_bytes [, header [, lines]])
 *   -> writer | nil, msg, code. width < 0: one file named prefix, created
 *   now; otherwise parts prefix..%0<width>d..suffix, created as rows come.
 *   lines: a file to get the source line of every row written, in order, so
 *   a part's failed rows can be tied back to the source. */
static int writer_new(lua_State *L)
{
    const char *prefix = luaL_checkstring(L, 1);
    lua_Integer width = luaL_checkinteger(L, 2);
    const char *suffix = luaL_checkstring(L, 3);
    size_t dlen;
    const char *delim = luaL_checklstring(L, 4, &dlen);
    int crlf = lua_toboolean(L, 5);
    long long max_bytes = marketo_checksize(L, 6);
    marketo_csv_writer *w;

    luaL_argcheck(L, width >= -1 && width < 10, 2, "-1 (one file) or 0 to 9 digits");
    luaL_argcheck(L, strlen(prefix) + strlen(suffix) < 4000, 1, "path too long");
    luaL_argcheck(L, dlen == 1 && strchr("\"\r\n", delim[0]) == NULL && delim[0] != '\0',
                  4, "one byte, not a quote or line end");
    luaL_argcheck(L, max_bytes >= 0, 6, "not negative");
    luaL_argcheck(L, width >= 0 || max_bytes == 0, 6, "a limit needs numbered parts");
    if (!lua_isnoneornil(L, 7))
        luaL_checktype(L, 7, LUA_TTABLE);
    if (!lua_isnoneornil(L, 8))
        luaL_checktype(L, 8, LUA_TSTRING);
    lua_settop(L, 8);
    w = (marketo_csv_writer *)marketo_newudata(L, sizeof *w);
    memset(w, 0, sizeof *w); /* born closed */
    w->fd = -1;
    luaL_getmetatable(L, MARKETO_CSV_WRITER_MT);
    lua_setmetatable(L, -2);
    w->delim = (unsigned char)delim[0];
    w->crlf = crlf;
    w->width = (int)width;
    w->max_bytes = max_bytes;
    w->prefix = dup_cat(prefix, suffix);
    w->out = malloc(CSV_CHUNK);
    if (!w->prefix || !w->out || marketo_buffer_reserve(&w->row, 256) != 0)
        return luaL_error(L, "%s: out of memory", MARKETO_CSV_WRITER_MT);
    w->suffix = w->prefix + strlen(prefix) + 1;
    w->prefix[strlen(prefix)] = '\0';
    w->open = 1;
    if (!lua_isnil(L, 7)) {
        w->ncols = (int)marketo_rawlen(L, 7);
        encode_table(L, w, 7, w->ncols);
        row_reserve(L, w, 2);
        if (w->crlf)
            w->row.data[w->row.len++] = '\r';
        w->row.data[w->row.len++] = '\n';
        w->rfields = 0;
        if ((w->hdr = malloc(w->row.len)) == NULL)
            return luaL_error(L, "%s: out of memory", MARKETO_CSV_WRITER_MT);
        memcpy(w->hdr, w->row.data, w->row.len);
        w->hlen = w->row.len;
        w->row.len = 0;
    }
    if (!lua_isnil(L, 8) && (w->lines = marketo_create_file(lua_tostring(L, 8))) == NULL)
        return marketo_push_errno(L, lua_tostring(L, 8), errno);
    if (width < 0 && start_part(w) != 0)
        return push_io_error(L, w);
    return 1;
}

void marketo_csv_writer_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"parts", writer_parts},
        {"write", writer_write},
        {NULL, NULL}
    };
    static const luaL_Reg meta[] = {
        {"__gc", writer_gc}, /* the parts outlive close() */
        {NULL, NULL}
    };
    marketo_new_class(L, MARKETO_CSV_WRITER_MT, writer_close, writer_tostring, meta, methods,
                      "csv_writer", writer_new);
}
