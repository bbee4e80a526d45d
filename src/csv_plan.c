/* csv_plan.c - csv_plan(reader, max_bytes): parts of a file under a byte
 * limit, cut only between rows, each the header plus one byte range of the
 * source. Nothing is copied: the transport streams each range from disk. */
#define _POSIX_C_SOURCE 200809L
#include "csv_core.h"

typedef struct plan_part {
    long long offset, end, rows, first_line, last_line;
} plan_part;

static void push_part(lua_State *L, const plan_part *p, long long hlen, int n)
{
    lua_createtable(L, 0, 6);
    marketo_pushsize(L, p->offset);
    lua_setfield(L, -2, "offset");
    marketo_pushsize(L, p->end - p->offset);
    lua_setfield(L, -2, "length");
    marketo_pushsize(L, hlen + p->end - p->offset);
    lua_setfield(L, -2, "bytes");
    marketo_pushsize(L, p->rows);
    lua_setfield(L, -2, "rows");
    marketo_pushsize(L, p->first_line);
    lua_setfield(L, -2, "first_line");
    marketo_pushsize(L, p->last_line);
    lua_setfield(L, -2, "last_line");
    lua_rawseti(L, -2, n);
}

static void set_size(lua_State *L, const char *k, long long v)
{
    marketo_pushsize(L, v);
    lua_setfield(L, -2, k);
}

/* csv_plan(reader, max_bytes) -> plan | nil, msg, code. The reader must be
 * fresh (header read, no row yet); it is read to the end. */
static int plan_new(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    long long max = marketo_checksize(L, 2), hlen = (long long)r->hlen;
    const csv_scan *s = &r->s;
    plan_part p = {0, 0, 0, 0, 0};
    int n = 0;

    luaL_argcheck(L, r->hdr != NULL, 1, "the reader has no header");
    luaL_argcheck(L, r->rows == 0 && r->rejected == 0, 1, "the reader has read rows");
    luaL_argcheck(L, max > 0, 2, "positive");
    lua_settop(L, 2);
    lua_newtable(L); /* r max parts */
    for (;;) {
        long long rejected = r->rejected;
        int st = marketo_csv_reader_next(L, r, 0);

        if (st < 0)
            return 3;
        if (p.rows > 0 && (st == CSV_END || r->rejected != rejected
                           || hlen + s->rec_end - p.offset > max)) {
            push_part(L, &p, hlen, ++n); /* a reject ends the part before it */
            p.rows = 0;
        }
        if (st == CSV_END)
            break;
        if (hlen + s->rec_end - s->rec_off > max)
            return marketo_push_fail(L, "CSV_ROW_TOO_LARGE", "%s:%lld: the row takes %lld "
                                     "bytes, with the header %lld, over the part limit of "
                                     "%lld; raise max_bytes or shorten the row", r->path,
                                     s->rec_line, s->rec_end - s->rec_off,
                                     hlen + s->rec_end - s->rec_off, max);
        if (p.rows == 0) {
            p.offset = s->rec_off;
            p.first_line = s->rec_line;
        }
        p.end = s->rec_end;
        p.last_line = s->rec_line;
        p.rows++;
    }
    lua_createtable(L, 0, 8); /* r max parts plan */
    lua_insert(L, -2);        /* r max plan parts */
    lua_setfield(L, -2, "parts");
    lua_pushlstring(L, r->hdr, r->hlen);
    lua_setfield(L, -2, "header");
    set_size(L, "header_offset", r->hdr_off);
    set_size(L, "rows", r->rows);
    set_size(L, "rejected", r->rejected);
    set_size(L, "blank", s->blank);
    set_size(L, "max_bytes", max);
    lua_pushboolean(L, s->bom);
    lua_setfield(L, -2, "bom");
    return 1;
}

void marketo_csv_plan_open(lua_State *L)
{
    lua_pushcfunction(L, plan_new);
    lua_setfield(L, -2, "csv_plan");
}
