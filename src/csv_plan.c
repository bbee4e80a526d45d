/* csv_plan.c - csv_plan(reader, max_bytes): parts of a file under a byte
 * limit, cut only between rows, each the header plus one byte range of the
 * source. Nothing is copied: the transport streams each range from disk. */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "csv_core.h"

typedef struct plan_part {
    long long offset, end, rows, first_line, last_line;
} plan_part;

static void push_part(lua_State *L, const plan_part *p, long long hlen, int n)
{
    lua_createtable(L, 0, 6);
    marketo_set_size(L, "offset", p->offset);
    marketo_set_size(L, "length", p->end - p->offset);
    marketo_set_size(L, "bytes", hlen + p->end - p->offset);
    marketo_set_size(L, "rows", p->rows);
    marketo_set_size(L, "first_line", p->first_line);
    marketo_set_size(L, "last_line", p->last_line);
    lua_rawseti(L, -2, n);
}

typedef struct planner {
    plan_part p;
    long long max, hlen;
    int n;
    marketo_csv_reader *r;
} planner;

/* Adds one row: a new part when it does not fit the current one. 0, or -1
 * with the failure triple pushed (the parts table is at -1 before). */
static int add_row(lua_State *L, planner *pl, long long off, long long end, long long line)
{
    plan_part *p = &pl->p;

    if (pl->hlen + end - off > pl->max) {
        marketo_push_fail(L, "CSV_ROW_TOO_LARGE", "%s:%lld: the row takes %lld bytes, with "
                          "the header %lld, over the part limit of %lld; raise max_bytes or "
                          "shorten the row", pl->r->path, line, end - off,
                          pl->hlen + end - off, pl->max);
        return -1;
    }
    if (p->rows > 0 && pl->hlen + end - p->offset > pl->max) {
        push_part(L, p, pl->hlen, ++pl->n);
        p->rows = 0;
    }
    if (p->rows == 0) {
        p->offset = off;
        p->first_line = line;
    }
    p->end = end;
    p->last_line = line;
    p->rows++;
    return 0;
}

/* Rows go through csv_scan_fast while they are plainly clean, through the
 * reader (all checks, rejects) otherwise. */
static int plan_rows(lua_State *L, planner *pl)
{
    marketo_csv_reader *r = pl->r;
    csv_rec recs[1024];

    for (;;) {
        long long rejected = r->rejected;
        int i, st, k = csv_scan_fast(&r->s, recs, 1024);

        if (k > 0) {
            plan_part *p = &pl->p;
            r->rows += k;
            for (i = 0; i < k; i++) {
                /* most rows just extend the part (which then fits them) */
                if (p->rows > 0 && pl->hlen + recs[i].end - p->offset <= pl->max) {
                    p->end = recs[i].end;
                    p->last_line = recs[i].line;
                    p->rows++;
                } else if (add_row(L, pl, recs[i].off, recs[i].end, recs[i].line) != 0) {
                    return -1;
                }
            }
            continue;
        }
        if ((st = marketo_csv_reader_next(L, r, 0)) < 0)
            return -1;
        if (pl->p.rows > 0 && (st == CSV_END || r->rejected != rejected)) {
            push_part(L, &pl->p, pl->hlen, ++pl->n); /* a reject ends the part before it */
            pl->p.rows = 0;
        }
        if (st == CSV_END)
            return 0;
        if (add_row(L, pl, r->s.rec_off, r->s.rec_end, r->s.rec_line) != 0)
            return -1;
    }
}

/* csv_plan(reader, max_bytes) -> plan | nil, msg, code. The reader must be
 * fresh (header read, no row yet); it is read to the end. */
static int plan_new(lua_State *L)
{
    planner pl;

    memset(&pl, 0, sizeof pl);
    pl.r = marketo_csv_check_reader(L, 1);
    pl.max = marketo_checksize(L, 2);
    pl.hlen = (long long)pl.r->hlen;
    luaL_argcheck(L, pl.r->hdr != NULL, 1, "the reader has no header");
    luaL_argcheck(L, pl.r->rows == 0 && pl.r->rejected == 0, 1, "the reader has read rows");
    luaL_argcheck(L, pl.max > 0, 2, "positive");
    lua_settop(L, 2);
    csv_scan_map(&pl.r->s, pl.r->fd); /* the planner copies nothing, nor should reading */
    lua_newtable(L); /* r max parts */
    if (plan_rows(L, &pl) != 0)
        return 3;
    lua_createtable(L, 0, 8); /* r max parts plan */
    lua_insert(L, -2);        /* r max plan parts */
    lua_setfield(L, -2, "parts");
    lua_pushlstring(L, pl.r->hdr, pl.r->hlen);
    lua_setfield(L, -2, "header");
    marketo_set_size(L, "header_offset", pl.r->hdr_off);
    marketo_set_size(L, "rows", pl.r->rows);
    marketo_set_size(L, "rejected", pl.r->rejected);
    marketo_set_size(L, "blank", pl.r->s.blank);
    marketo_set_size(L, "max_bytes", pl.max);
    lua_pushboolean(L, pl.r->s.bom);
    lua_setfield(L, -2, "bom");
    return 1;
}

void marketo_csv_plan_open(lua_State *L)
{
    lua_pushcfunction(L, plan_new);
    lua_setfield(L, -2, "csv_plan");
}
