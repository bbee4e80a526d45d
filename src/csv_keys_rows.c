/* csv_keys_rows.c - a planned part's rows read again in C for
 * marketo.pipeline.keys, with no Lua call per row: the part written again
 * without its holes (a rejected row, or one that moves to a trailing part),
 * and the row at a given line found for a repeated key's example.
 *
 *   core.csv_fill_holes(reader, writer, holes [, lines, at]) -> rows kept |
 *       nil, msg, code: each row of the reader (its line the reader's, or
 *       the next of the lines file from byte `at`, as for a mapped part) goes
 *       by holes[line]: nil, to writer; true, nowhere; a table, to its field
 *       `writer`. Rows are encoded field by field as writer:write() would.
 *   core.csv_row_at(reader, line [, lines, at]) -> true | false | nil, msg,
 *       code: the reader moved to the row at that line (false: none); its
 *       row() then holds it.
 *   core.csv_line_offsets(lines, skips) -> byte offsets (see below) */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "csv_keys.h"

long long marketo_next_line(FILE *f)
{
    long long v = 0;
    int c, any = 0;

    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (c < '0' || c > '9' || v > (LLONG_MAX - 9) / 10)
            return -1;
        v = v * 10 + (c - '0');
        any = 1;
    }
    return any ? v : -1;
}

/* The lines file at idx (or none), from the byte offset at idx + 1. */
static int open_lines(lua_State *L, int idx, FILE **out)
{
    const char *path = luaL_optstring(L, idx, NULL);
    long long at = marketo_optsize(L, idx + 1, 0);

    *out = NULL;
    if (path == NULL)
        return 0;
    if ((*out = fopen(path, "rb")) == NULL)
        return marketo_push_errno(L, path, errno);
    if (fseeko(*out, (off_t)at, SEEK_SET) != 0) {
        int err = errno;

        fclose(*out);
        *out = NULL;
        return marketo_push_errno(L, path, err);
    }
    return 0;
}

/* The line of the row just read: the reader's, or the lines file's next. */
static int line_of(lua_State *L, const marketo_csv_reader *r, FILE *lf, int lines_idx,
                   long long *line)
{
    *line = r->s.rec_line;
    if (lf != NULL && (*line = marketo_next_line(lf)) < 0)
        return marketo_push_fail(L, "READ_ERROR", "%s has fewer lines than %s has rows",
                                 lua_tostring(L, lines_idx), r->path);
    return 0;
}

/* Whether the row the scan holds is, as it is in the file, what encoding
 * its fields makes: every field quoted exactly when it needs it (a quoted
 * field's bytes then are its encoding: quotes around, inner ones doubled),
 * and every column there. A lone empty field is written "" (not a blank
 * line): its bytes are taken only when they are that. */
static int as_encoded(const csv_scan *s, int n, unsigned char delim)
{
    int i;

    if (s->nf != n)
        return 0;
    for (i = 0; i < n; i++) {
        size_t len;
        const char *p = csv_field(s, i, &len);

        if (s->fquoted[i] != (csv_needs_quote(p, len, delim) || (n == 1 && len == 0)))
            return 0;
    }
    return 1;
}

/* A row, rec[0..len) as it is in the file (line end left out), as
 * writer:write() would encode its fields: those bytes when that is what the
 * encoding makes. `split`: its fields are in the scan already; else (a
 * clean record) they are split only when its bytes hold a quote, a CR or a
 * 0xEF byte (a BOM's first): without them no field needs quoting. */
static int write_row(lua_State *L, marketo_csv_writer *w, csv_scan *s, const char *rec,
                     size_t len, int split, long long line)
{
    int i, n = w->ncols > 0 ? w->ncols : s->expect;

    if (!split && s->expect == n && memchr(rec, '"', len) == NULL
        && memchr(rec, '\r', len) == NULL && memchr(rec, 0xEF, len) == NULL)
        return marketo_csv_writer_raw(L, w, rec, len, line);
    if (!split && csv_scan_split(s, (const unsigned char *)rec, len) != 0)
        return luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
    n = w->ncols > 0 ? w->ncols : s->nf;
    if (as_encoded(s, n, w->delim))
        return marketo_csv_writer_raw(L, w, rec, len, line);
    for (i = 0; i < n; i++) {
        size_t flen = 0;
        const char *p = i < s->nf ? csv_field(s, i, &flen) : "";

        marketo_csv_writer_field(L, w, p, flen, 0);
    }
    return marketo_csv_writer_end(L, w, line);
}

/* Where holes[line] sends a row: w, another writer, or NULL (nowhere). */
static marketo_csv_writer *destination(lua_State *L, marketo_csv_writer *w, long long line)
{
    marketo_csv_writer *to = w;

    lua_rawgeti(L, 3, (lua_Integer)line);
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "writer");
        to = marketo_csv_check_writer(L, -1);
        lua_pop(L, 1);
    } else if (lua_toboolean(L, -1)) {
        to = NULL;
    }
    lua_pop(L, 1);
    return to;
}

/* The reader's rows as marketo_csv_reader_next reads them, but a clean
 * record found fast (csv_scan_fast) is not split into fields unless its
 * bytes must be looked at field by field. */
int marketo_csv_fill_holes(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    marketo_csv_writer *w = marketo_csv_check_writer(L, 2), *to;
    csv_scan *s = &r->s;
    long long kept = 0, line;
    FILE *lf;
    int n;

    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 5);
    if ((n = open_lines(L, 4, &lf)) != 0)
        return n;
    for (;;) {
        const char *rec;
        size_t len;
        int split = 0;

        if (r->bi < r->bn) {
            const csv_rec *c = &r->batch[r->bi++];

            rec = (const char *)s->buf + (c->off - s->base);
            len = (size_t)(c->end - c->off) - 1; /* it ends with a LF */
            if (len > 0 && rec[len - 1] == '\r')
                len--;
            s->rec_line = c->line;
        } else if (r->fail_code[0] == '\0' && (r->bi = 0, r->bn = csv_scan_fast(s, r->batch,
                   (int)(sizeof r->batch / sizeof r->batch[0]))) > 0) {
            continue;
        } else {
            int st = marketo_csv_reader_next(L, r, 1);

            if (st < 0)
                break;
            if (st != CSV_ROW) {
                lua_pushinteger(L, (lua_Integer)kept);
                break;
            }
            rec = (const char *)s->buf + (s->rec_off - s->base);
            len = (size_t)(s->rec_end - s->rec_off) - (size_t)s->term_len;
            split = 1;
        }
        if (line_of(L, r, lf, 4, &line) != 0)
            break;
        to = destination(L, w, line);
        if (to != NULL && write_row(L, to, s, rec, len, split, line) != 0)
            break;
        kept += to == w;
    }
    if (lf != NULL)
        fclose(lf);
    return lua_gettop(L) - 5;
}

int marketo_csv_row_at(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    long long want = marketo_checksize(L, 2), line;
    FILE *lf;
    int n;

    lua_settop(L, 4);
    if ((n = open_lines(L, 3, &lf)) != 0)
        return n;
    for (;;) {
        int st = marketo_csv_reader_next(L, r, 1);

        if (st < 0 || (st == CSV_ROW && line_of(L, r, lf, 3, &line) != 0))
            break;
        if (st != CSV_ROW || line == want) {
            lua_pushboolean(L, st == CSV_ROW);
            break;
        }
    }
    if (lf != NULL)
        fclose(lf);
    return lua_gettop(L) - 4;
}

/* csv_line_offsets(lines, skips) -> { offset, ... } | nil, msg, code: the
 * byte offset of line skips[i] + 1 of a lines file (skips ascending), so
 * that each part of a mapped source finds its first row's line at once. */
int marketo_csv_line_offsets(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    lua_Integer i, n, want, seen = 0;
    long long off = 0;
    char buf[65536];
    size_t got = 0, pos = 0;
    FILE *f;

    luaL_checktype(L, 2, LUA_TTABLE);
    n = (lua_Integer)marketo_rawlen(L, 2);
    if ((f = fopen(path, "rb")) == NULL)
        return marketo_push_errno(L, path, errno);
    lua_createtable(L, (int)n, 0);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        want = lua_tointeger(L, -1);
        lua_pop(L, 1);
        while (seen < want) {
            const char *nl;

            if (pos == got) {
                off += (long long)got;
                pos = 0;
                if ((got = fread(buf, 1, sizeof buf, f)) == 0)
                    break;
            }
            nl = memchr(buf + pos, '\n', got - pos);
            if (nl == NULL) {
                pos = got;
                continue;
            }
            pos = (size_t)(nl - buf) + 1;
            seen++;
        }
        if (seen < want) {
            fclose(f);
            return marketo_push_fail(L, "READ_ERROR", "%s has fewer lines than its parts "
                                     "have rows", path);
        }
        lua_pushinteger(L, (lua_Integer)(off + (long long)pos));
        lua_rawseti(L, -2, i);
    }
    fclose(f);
    return 1;
}
