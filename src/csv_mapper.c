/* csv_mapper.c - csv_map(reader, writer, spec): a mapping that only renames,
 * reorders, drops columns or sets constants, run from reader to writer in C
 * with no Lua call per row; csv_map_lua: the same loop calling a mapping's
 * Lua functions, with fields made Lua strings only when a function asks;
 * csv_copy: rows copied byte for byte, without the ones rejected. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "csv_core.h"

typedef struct map_col {
    int src;           /* 0-based source field, or -1 for a constant */
    const char *value; /* the constant, anchored by the spec table */
    size_t len;
    int clean;         /* the constant needs no quotes */
} map_col;

/* spec[i] is a source column number (1-based; 0 for none) or a constant. */
static map_col *compile(lua_State *L, int spec, int delim, int *ncols)
{
    int i, n = (int)marketo_rawlen(L, spec);
    map_col *cols;

    luaL_argcheck(L, n > 0, 3, "empty mapping");
    cols = (map_col *)marketo_newudata(L, (size_t)n * sizeof *cols); /* GC frees it */
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, spec, i + 1);
        if (lua_type(L, -1) == LUA_TNUMBER && marketo_tointeger_in(L, -1, 0, 0, -1) == 0) {
            cols[i].src = -1; /* no source: an empty field, or nil to a function */
            cols[i].value = "";
            cols[i].len = 0;
            cols[i].clean = 1;
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Integer k = marketo_tointeger_in(L, -1, 1, 1000000, 0);
            luaL_argcheck(L, k >= 1, 3, "column number out of range");
            cols[i].src = (int)k - 1;
            cols[i].value = NULL;
        } else if (lua_type(L, -1) == LUA_TSTRING) {
            cols[i].src = -1;
            cols[i].value = lua_tolstring(L, -1, &cols[i].len);
            cols[i].clean = !csv_needs_quote(cols[i].value, cols[i].len, delim);
        } else {
            luaL_argerror(L, 3, "entries must be column numbers or strings");
        }
        lua_pop(L, 1);
    }
    *ncols = n;
    return cols;
}

/* Whether the mapping keeps every column in place (a pure rename): rows
 * then go out as they came in, only the header changes. */
static int keeps_rows(const marketo_csv_reader *r, const marketo_csv_writer *w,
                      const map_col *cols, int n)
{
    int i;

    if (r->s.delim != w->delim || n != r->s.expect || r->bi < r->bn)
        return 0; /* rows already batched by read() go the general way */
    for (i = 0; i < n; i++)
        if (cols[i].src != i)
            return 0;
    return 1;
}

/* Writes one row as it is in the source: with its own line end (as_is), or
 * with the writer's. */
static int copy_row(lua_State *L, marketo_csv_writer *w, const char *p, size_t len,
                    size_t term, long long line, int as_is)
{
    if (as_is)
        return marketo_csv_writer_as_is(L, w, p, len, line);
    return marketo_csv_writer_raw(L, w, p, len - term, line);
}

/* Copies the rows, checked by the scanner, as they are in the source (the
 * line end too if as_is, else the writer's); clean ones are found by
 * csv_scan_fast; rows a lenient reader rejects are left out. */
static int copy_rows(lua_State *L, marketo_csv_reader *r, marketo_csv_writer *w, int as_is)
{
    csv_scan *s = &r->s;
    csv_rec recs[1024];

    for (;;) {
        int i, st, k = csv_scan_fast(s, recs, 1024);

        for (i = 0; i < k; i++) {
            const char *p = (const char *)s->buf + (recs[i].off - s->base);
            size_t len = (size_t)(recs[i].end - recs[i].off); /* ends with LF */
            size_t term = len > 1 && p[len - 2] == '\r' ? 2 : 1;
            if (copy_row(L, w, p, len, term, recs[i].line, as_is) != 0)
                return -1;
        }
        r->rows += k;
        if (k > 0)
            continue;
        if ((st = marketo_csv_reader_next(L, r, 0)) < 0)
            return -1;
        if (st == CSV_END)
            return 0;
        if (copy_row(L, w, (const char *)s->buf + (s->rec_off - s->base),
                     (size_t)(s->rec_end - s->rec_off), (size_t)s->term_len, s->rec_line,
                     as_is) != 0)
            return -1;
    }
}

/* csv_copy(reader, writer) -> rows | nil, msg, code: the reader's header and
 * rows as they are in the source, line ends and all, to a writer opened
 * without a header; the rows a lenient reader rejects are left out. */
int marketo_copy_run(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    marketo_csv_writer *w = marketo_csv_check_writer(L, 2);

    luaL_argcheck(L, r->hdr != NULL && r->bi == r->bn, 1, "a reader with a header");
    luaL_argcheck(L, w->hdr == NULL && w->rows == 0 && w->delim == r->s.delim, 2,
                  "a writer of the same format, with no header and no row yet");
    lua_settop(L, 2);
    if (marketo_csv_writer_header(L, w, r->hdr, r->hlen) != 0 || copy_rows(L, r, w, 1) != 0)
        return 3;
    marketo_pushsize(L, r->rows);
    return 1;
}

/* Writes output column c of the current record. */
static void put_col(lua_State *L, marketo_csv_writer *w, const csv_scan *s, const map_col *c,
                    int same)
{
    size_t len;

    if (c->src < 0) {
        marketo_csv_writer_field(L, w, c->value, c->len, c->clean);
    } else if (c->src < s->nf) {
        /* An unquoted source field holds no delimiter of the same kind, no
         * quote and no line end, so it needs no check when delimiters agree. */
        const char *p = csv_field(s, c->src, &len);
        marketo_csv_writer_field(L, w, p, len, same && !s->fquoted[c->src] && !s->rec_cr);
    } else {
        marketo_csv_writer_field(L, w, "", 0, 1);
    }
}

/* Writes the value a mapping function returned (at the stack top). */
static void put_value(lua_State *L, marketo_csv_writer *w, int col)
{
    size_t len = 0;
    const char *p = "";
    int t = lua_type(L, -1);

#if LUA_VERSION_NUM >= 503
    if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
        /* lua_tolstring would go through snprintf and make a string */
        char buf[24], *e = buf + sizeof buf, *q = e;
        lua_Integer v = lua_tointeger(L, -1);
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        do
            *--q = (char)('0' + u % 10);
        while ((u /= 10) != 0);
        if (v < 0)
            *--q = '-';
        marketo_csv_writer_field(L, w, q, (size_t)(e - q), 1);
        lua_pop(L, 1);
        return;
    }
#endif
    if (t == LUA_TSTRING || t == LUA_TNUMBER)
        p = lua_tolstring(L, -1, &len);
    else if (t != LUA_TNIL)
        luaL_error(L, "the function of output column %d returned a %s (string, number or "
                   "nil expected)", col, luaL_typename(L, -1));
    marketo_csv_writer_field(L, w, p, len, 0);
    lua_pop(L, 1);
}

/* Calls filter(row, line) (at index 5); if it drops the row, on_filter
 * (line, row) (at 6) hears of it. 1 if dropped. */
static int drops(lua_State *L, int row, long long line)
{
    int keep;

    if (lua_isnil(L, 5))
        return 0;
    lua_pushvalue(L, 5);
    lua_pushvalue(L, row);
    marketo_pushsize(L, line);
    lua_call(L, 2, 1);
    keep = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (!keep && !lua_isnil(L, 6)) {
        lua_pushvalue(L, 6);
        marketo_pushsize(L, line);
        lua_pushvalue(L, row);
        lua_call(L, 2, 0);
    }
    return !keep;
}

/* Output column i of marketo_map_lua: its function (at stack index fn, nil for
 * none) with the source value and the row, or the column as csv_map would
 * write it. */
static void put_mapped(lua_State *L, marketo_csv_writer *w, const csv_scan *s,
                       const map_col *c, int i, int fn, int row, int same)
{
    size_t len;

    if (lua_isnil(L, fn)) {
        put_col(L, w, s, c, same);
        return;
    }
    lua_pushvalue(L, fn);
    if (c->src >= 0 && c->src < s->nf) {
        const char *p = csv_field(s, c->src, &len);
        lua_pushlstring(L, p, len);
    } else {
        lua_pushnil(L);
    }
    lua_pushvalue(L, row);
    lua_call(L, 2, 1);
    put_value(L, w, i + 1);
}

/* Writes the rows left through the n columns. with_fns: marketo_map_lua's, whose
 * stack holds the filter (5), on_filter (6), the row (8) and the columns'
 * functions (9..). The rows the filter dropped, or -1 with the failure
 * triple pushed. */
static long long map_rows(lua_State *L, marketo_csv_reader *r, marketo_csv_writer *w,
                          const map_col *cols, int n, int with_fns)
{
    const csv_scan *s = &r->s;
    int same = s->delim == w->delim, i;
    long long filtered = 0;

    for (;;) {
        int st = marketo_csv_reader_next(L, r, 1);
        if (st < 0)
            return -1;
        if (st == CSV_END)
            return filtered;
        if (with_fns && drops(L, 8, s->rec_line)) {
            filtered++;
            continue;
        }
        for (i = 0; i < n; i++) {
            if (with_fns)
                put_mapped(L, w, s, &cols[i], i, 9 + i, 8, same);
            else
                put_col(L, w, s, &cols[i], same);
        }
        if (marketo_csv_writer_end(L, w, s->rec_line) != 0)
            return -1;
    }
}

/* csv_map(reader, writer, spec) -> rows read | nil, msg, code */
int marketo_map_run(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    marketo_csv_writer *w = marketo_csv_check_writer(L, 2);
    int n;
    map_col *cols;

    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    cols = compile(L, 3, w->delim, &n);
    if (keeps_rows(r, w, cols, n)) {
        if (copy_rows(L, r, w, 0) != 0)
            return 3;
    } else if (map_rows(L, r, w, cols, n, 0) < 0) {
        return 3;
    }
    marketo_pushsize(L, r->rows);
    return 1;
}

/* csv_map_lua(reader, writer, spec, fns, filter, on_filter) -> rows read,
 * filtered | nil, msg, code. fns[i] is the function of output column i (it
 * gets the value of spec[i], or nil if spec[i] is 0, and the row); filter
 * (row, line) keeps a row when truthy; on_filter(line, row) hears of the
 * others. row is one table for all rows whose fields are read on demand. */
int marketo_map_lua(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    marketo_csv_writer *w = marketo_csv_check_writer(L, 2);
    int n, i;
    long long filtered;
    map_col *cols;

    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 6);
    luaL_argcheck(L, r->names != LUA_NOREF, 1, "the reader has no header");
    cols = compile(L, 3, w->delim, &n); /* at 7 */
    marketo_csv_push_row(L, 1, 1);      /* at 8 */
    /* the functions at 9.., so each call takes them from the stack, not fns */
    luaL_checkstack(L, n + LUA_MINSTACK, "too many output columns");
    for (i = 0; i < n; i++)
        lua_rawgeti(L, 4, i + 1);
    if ((filtered = map_rows(L, r, w, cols, n, 1)) < 0)
        return 3;
    marketo_pushsize(L, r->rows);
    marketo_pushsize(L, filtered);
    return 2;
}
