/* csv_mapper.c - csv_map(reader, writer, spec): a mapping that only renames,
 * reorders, drops columns or sets constants, run from reader to writer in C
 * with no Lua call per row. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "csv_core.h"

typedef struct map_col {
    int src;           /* 0-based source field, or -1 for a constant */
    const char *value; /* the constant, anchored by the spec table */
    size_t len;
    int clean;         /* the constant needs no quotes */
} map_col;

/* spec[i] is a source column number (1-based) or a constant string. */
static map_col *compile(lua_State *L, int spec, int delim, int *ncols)
{
    int i, n = (int)marketo_rawlen(L, spec);
    map_col *cols;

    luaL_argcheck(L, n > 0, 3, "empty mapping");
    cols = (map_col *)marketo_newudata(L, (size_t)n * sizeof *cols); /* GC frees it */
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, spec, i + 1);
        if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Integer k = lua_tointeger(L, -1);
            luaL_argcheck(L, k >= 1 && k <= 1000000, 3, "column number out of range");
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

/* csv_map(reader, writer, spec) -> rows written | nil, msg, code */
static int map_run(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    marketo_csv_writer *w = marketo_csv_check_writer(L, 2);
    const csv_scan *s = &r->s;
    /* An unquoted source field holds no delimiter of the same kind, no quote
     * and no line end, so it needs no check when the delimiters agree. */
    int same = s->delim == w->delim, n, i;
    long long rows = 0;
    map_col *cols;

    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    cols = compile(L, 3, w->delim, &n);
    for (;;) {
        int st = marketo_csv_reader_next(L, r, 1);
        if (st < 0)
            return 3;
        if (st == CSV_END)
            break;
        for (i = 0; i < n; i++) {
            const map_col *c = &cols[i];
            size_t len;
            if (c->src < 0) {
                marketo_csv_writer_field(L, w, c->value, c->len, c->clean);
            } else if (c->src < s->nf) {
                const char *p = csv_field(s, c->src, &len);
                marketo_csv_writer_field(L, w, p, len,
                                         same && !s->fquoted[c->src] && !s->rec_cr);
            } else {
                marketo_csv_writer_field(L, w, "", 0, 1);
            }
        }
        if (marketo_csv_writer_end(L, w, s->rec_line) != 0)
            return 3;
        rows++;
    }
    marketo_pushsize(L, rows);
    return 1;
}

void marketo_csv_mapper_open(lua_State *L)
{
    lua_pushcfunction(L, map_run);
    lua_setfield(L, -2, "csv_map");
}
