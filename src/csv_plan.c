/* csv_plan.c - csv_plan(reader, max_bytes [, threads, segment_bytes]): parts
 * of a file under a byte limit, cut only between rows, each the header plus
 * one byte range of the source. Nothing is copied: the transport streams each
 * range from disk. In lenient mode rejected rows do not end a part: they are
 * holes in it, which its size does not count, and the caller copies such a
 * part without them (csv_copy), so that bad rows never multiply the parts.
 *
 * On a large file the scan runs on several cores, and the plan is still the
 * one a single scan makes, byte for byte. The rows after the header are cut
 * into segments; worker k (a thread, csv_plan_workers.c) scans segment k from
 * a line start X_k near its nominal start, as if a record had just ended
 * there, and keeps runs: stretches of clean rows that fit a part, between two
 * places where its scan is between records (it stops at X_{k+1}). A run ends
 * at a record that is not clean (a bad row, or one too large for a part); in
 * lenient mode a new one starts after the next good row, where the reader's
 * next call (rejects, then that row) leaves the scan. Only the counts, the
 * last row and a checkpoint every few KiB are kept.
 *
 * With the values' checks (types: csv_types.h, one pass over the file on
 * every core), a row with a value that fails is not clean either: its run
 * ends where it starts, and in lenient mode a new one starts right after it,
 * where the main scan is once it has rejected it. The main scan checks the
 * rows it scans itself, and fails on such a row (strict) or rejects it with
 * the reason types.failure gives (lenient: a hole, like a malformed row's).
 * The emails that do not look like one are counted per run (the first one
 * kept), and added up in file order as the runs are taken.
 *
 * The main thread plans segment 0 itself, as a single scan would. When its
 * scan is between records exactly where a run starts, the scan from there on
 * is the worker's (a scan depends only on where it starts, not on how it got
 * there), so the run is taken whole: rows and blank lines added, lines
 * shifted by the difference, parts packed as add_row packs them, each cut
 * found by scanning again from the last checkpoint before it. Anywhere else
 * (a bad row, an X_k inside a quoted field, a run ended early) the main scan
 * goes on by itself, calling on_reject and failing exactly as before, until
 * it meets the start of a run again. The reader reads by read(2) and the
 * workers by pread(2): a file cut short under them is an error, not a
 * SIGBUS. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "csv_core.h"
#include "csv_plan.h"
#include "csv_types.h"

#define DEFAULT_THREADS 8        /* at most, by default: the online CPUs */
#define SEGMENT_BYTES (32LL << 20) /* least bytes a segment gets by default */

/* A part: rows from offset to end. In lenient mode it may have holes, the
 * bytes between two of its rows where rows were rejected: gap bytes in all,
 * which its size does not count (the part is copied without them). */
typedef struct plan_part {
    long long offset, end, rows, first_line, last_line, gap, rejected;
} plan_part;

static void push_part(lua_State *L, const plan_part *p, long long hlen, int n)
{
    lua_createtable(L, 0, 7);
    marketo_set_size(L, "offset", p->offset);
    marketo_set_size(L, "length", p->end - p->offset);
    marketo_set_size(L, "bytes", hlen + p->end - p->offset - p->gap);
    marketo_set_size(L, "rows", p->rows);
    marketo_set_size(L, "first_line", p->first_line);
    marketo_set_size(L, "last_line", p->last_line);
    marketo_set_size(L, "rejected", p->rejected);
    lua_rawseti(L, -2, n);
}

typedef struct planner {
    plan_part p;
    long long max, hlen;
    long long pending;       /* rows rejected since the last row planned */
    int n;
    marketo_csv_reader *r;
    csv_par *pp;
    const csv_types *types;  /* the values' checks, or NULL */
    int failure;             /* stack index of types.failure */
    csv_email_note note;
} planner;

/* Adds one row, after the rows just rejected (pending): a new part when it
 * does not fit the current one. The rejects are a hole in the current part
 * if the row joins it, and between two parts if not. 0, or -1 with the
 * failure triple pushed (the parts table is at -1 before). */
static int add_row(lua_State *L, planner *pl, long long off, long long end, long long line)
{
    plan_part *p = &pl->p;
    long long rejected = pl->pending;
    long long gap = p->gap + (rejected > 0 ? off - p->end : 0);

    if (pl->hlen + end - off > pl->max) {
        marketo_push_fail(L, "CSV_ROW_TOO_LARGE", "%s:%lld: the row takes %lld bytes, with "
                          "the header %lld, over the part limit of %lld; raise max_bytes or "
                          "shorten the row", pl->r->path, line, end - off,
                          pl->hlen + end - off, pl->max);
        return -1;
    }
    if (p->rows > 0 && pl->hlen + end - p->offset - gap > pl->max) {
        push_part(L, p, pl->hlen, ++pl->n);
        p->rows = 0;
    }
    if (p->rows == 0) {
        p->offset = off;
        p->first_line = line;
        p->gap = p->rejected = 0;
    } else {
        p->gap = gap;
        p->rejected += rejected;
    }
    p->end = end;
    p->last_line = line;
    p->rows++;
    pl->pending = 0;
    return 0;
}

/* Checks the values of the reader's record [off, end) on line: 1 if they
 * pass (its emails that do not look like one noted), 0 if one fails and
 * lenient mode rejects the row, -1 with the failure triple pushed (strict
 * mode, or the reader out of memory). The failure's reason is the Lua
 * checks' (types.failure(column, value)), the row's bytes are in the
 * reader's buffer. */
static int check_row(lua_State *L, planner *pl, long long off, long long end, long long line)
{
    marketo_csv_reader *r = pl->r;
    csv_scan *s = &r->s;
    const char *what, *p, *v;
    size_t n, vn;
    int col;

    p = csv_rec_bytes(s, off, end, &n);
    if (csv_types_quick(pl->types, p, n, csv_rec_room(s, p), s->delim))
        return 1;
    if (csv_scan_split(s, (const unsigned char *)p, n) != 0)
        return luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
    if ((col = csv_types_failure(pl->types, s, &what)) < 0) {
        csv_types_note(pl->types, s, line, &pl->note);
        return 1;
    }
    v = csv_field(s, col, &vn);
    lua_pushvalue(L, pl->failure);
    lua_pushinteger(L, col + 1);
    lua_pushlstring(L, v, vn);
    lua_call(L, 2, 1); /* the reason */
    if (!s->lenient) {
        marketo_push_fail(L, "INVALID_ROW", "%s:%lld:%d: %s; fix the row, or pass lenient "
                          "mode to reject it", r->path, line, col + 1, lua_tostring(L, -1));
        lua_remove(L, -4);
        return -1;
    }
    r->rejected++;
    pl->pending++;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->on_reject);
    lua_pushstring(L, "INVALID_ROW");
    lua_pushvalue(L, -3);
    marketo_pushsize(L, line);
    marketo_pushsize(L, col + 1);
    marketo_pushsize(L, off);
    lua_pushlstring(L, (const char *)s->buf + (off - s->base), (size_t)(end - off));
    lua_call(L, 6, 0);
    lua_pop(L, 1);
    return 0;
}

/* Plans rows until the scan is between records at stop or past it: 0, 1 at
 * the end of the file, -1 with the failure triple pushed. Rows go through
 * csv_scan_fast while they are plainly clean, through the reader (all
 * checks, rejects) otherwise. */
static int plan_until(lua_State *L, planner *pl, long long stop)
{
    marketo_csv_reader *r = pl->r;
    csv_rec recs[1024];

    for (;;) {
        long long rejected;
        int i, st, k = csv_scan_fast_until(&r->s, recs, 1024, stop);

        if (k > 0) {
            plan_part *p = &pl->p;
            for (i = 0; i < k; i++) {
                if (pl->types != NULL
                    && (st = check_row(L, pl, recs[i].off, recs[i].end, recs[i].line)) != 1) {
                    if (st < 0)
                        return -1;
                    continue;
                }
                r->rows++;
                /* most rows just extend the part (which then fits them) */
                if (p->rows > 0 && pl->pending == 0
                    && pl->hlen + recs[i].end - p->offset - p->gap <= pl->max) {
                    p->end = recs[i].end;
                    p->last_line = recs[i].line;
                    p->rows++;
                } else if (add_row(L, pl, recs[i].off, recs[i].end, recs[i].line) != 0) {
                    return -1;
                }
            }
            continue;
        }
        if (stop != LLONG_MAX && csv_scan_skip_blank(&r->s, stop))
            return 0;
        rejected = r->rejected;
        if ((st = marketo_csv_reader_next(L, r, 0)) < 0)
            return -1;
        if (st == CSV_END) {
            if (pl->p.rows > 0)
                push_part(L, &pl->p, pl->hlen, ++pl->n);
            return 1;
        }
        pl->pending += r->rejected - rejected;
        if (pl->types != NULL) {
            r->rows--; /* counted again if it passes */
            if ((st = check_row(L, pl, r->s.rec_off, r->s.rec_end, r->s.rec_line)) < 0)
                return -1;
            if (st == 0)
                continue;
            r->rows++;
        }
        if (add_row(L, pl, r->s.rec_off, r->s.rec_end, r->s.rec_line) != 0)
            return -1;
    }
}

/* ---- the main thread takes the runs ---- */

static int changed(lua_State *L, const planner *pl)
{
    return marketo_push_fail(L, "IO_ERROR", "%s: the file changed while it was planned",
                             pl->r->path);
}

static void walk_to(csv_par *pp, long long off, long long line)
{
    csv_par_seek(&pp->ws, &pp->wsrc, off, line);
    pp->wi = pp->wn = 0;
}

/* The next row of the run being walked: 0, or -1 if it is not clean now. */
static int walk_next(csv_par *pp, csv_rec *rec)
{
    if (pp->wi == pp->wn) {
        pp->wi = pp->wn = 0;
        if ((pp->wn = csv_scan_fast(&pp->ws, pp->wrec, 256)) == 0) {
            if (csv_scan_next(&pp->ws, 0) != CSV_ROW)
                return -1;
            rec->off = pp->ws.rec_off;
            rec->end = pp->ws.rec_end;
            rec->line = pp->ws.rec_line;
            return 0;
        }
    }
    *rec = pp->wrec[pp->wi++];
    return 0;
}

/* The last checkpoint of w at or before off, or NULL. */
static const csv_ckpt *ckpt_before(const csv_worker *w, long long off)
{
    size_t lo = 0, hi = w->nck; /* the answer is below hi */

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->ck[mid].off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 ? &w->ck[lo - 1] : NULL;
}

/* Takes the rows of run R, the scan being between records where it starts,
 * on a line dl more than the worker's: packed as add_row would pack them. */
static int adopt(lua_State *L, planner *pl, const csv_worker *w, const csv_run *R, long long dl)
{
    csv_par *pp = pl->pp;
    plan_part *p = &pl->p;
    long long i = R->row, room = pl->max - pl->hlen;
    int walking = 0;
    csv_rec rec;

    if (i == R->end_row)
        return 0;
    if (!pp->ws_open) {
        if (csv_par_scan_open(pp, &pp->ws, &pp->wsrc, CSV_WALK_CHUNK) != 0)
            return luaL_error(L, "csv_plan: out of memory");
        pp->ws_open = 1;
    }
    if (R->note >= 0)
        csv_types_merge(&pl->note, &w->notes[R->note], dl);
    if (p->rows == 0 || pl->pending > 0) { /* a part or a hole's end starts with the run */
        walk_to(pp, R->off, R->line);
        walking = 1;
        if (walk_next(pp, &rec) != 0)
            return changed(L, pl);
        if (add_row(L, pl, rec.off, rec.end, rec.line + dl) != 0)
            return -1;
        i++;
    }
    while (i < R->end_row) {
        long long fit = p->offset + p->gap + room; /* rows that end here or before fit */
        const csv_ckpt *c;

        if (R->last_end <= fit) {
            p->rows += R->end_row - i;
            p->end = R->last_end;
            p->last_line = R->last_line + dl;
            return 0;
        }
        if ((c = ckpt_before(w, fit)) != NULL && c->row > i) {
            /* the rows before the checkpoint end before it: all fit */
            p->rows += c->row - i;
            p->end = c->prev_end;
            p->last_line = c->prev_line + dl;
            i = c->row;
            walk_to(pp, c->off, c->line);
            walking = 1;
        } else if (!walking) {
            walk_to(pp, R->off, R->line);
            walking = 1;
        }
        for (;;) {
            if (i >= R->end_row || walk_next(pp, &rec) != 0)
                return changed(L, pl);
            i++;
            if (rec.end > fit)
                break;
            p->rows++;
            p->end = rec.end;
            p->last_line = rec.line + dl;
        }
        if (add_row(L, pl, rec.off, rec.end, rec.line + dl) != 0)
            return -1; /* a new part starts with this row */
    }
    return 0;
}

/* Plans with the workers' runs where the scan meets them. */
static int plan_par(lua_State *L, planner *pl)
{
    marketo_csv_reader *r = pl->r;
    csv_par *pp = pl->pp;
    long long at = csv_scan_at(&r->s), line = r->s.line;
    int k = 0, moved = 0;
    size_t ri = 0;

    for (;;) {
        long long target = LLONG_MAX;
        const csv_run *R = NULL;
        csv_worker *w = NULL;
        int st;

        while (k < pp->nw) { /* the next run that starts at `at` or later */
            w = &pp->w[k];
            if (w->state == CSV_W_RUNNING) {
                if (at < w->from) {
                    target = w->from; /* where its first run starts */
                    break;
                }
                pthread_join(w->th, NULL);
                w->state = CSV_W_DONE;
            }
            while (ri < w->nruns && w->runs[ri].off < at)
                ri++;
            if (ri < w->nruns) {
                R = &w->runs[ri];
                target = R->off;
                break;
            }
            k++;
            ri = 0;
        }
        if (R != NULL && R->off == at) {
            long long dl = line - R->line;
            if (adopt(L, pl, w, R, dl) != 0)
                return -1;
            r->rows += R->end_row - R->row;
            r->s.blank += R->end_blank - R->blank;
            at = R->end;
            line = R->end_line + dl;
            moved = 1;
            ri++;
            continue;
        }
        if (moved) {
            /* past what the reader buffered, it reads its fd on from `at` */
            if (csv_scan_seek(&r->s, at, line) && lseek(r->fd, (off_t)at, SEEK_SET) < 0) {
                marketo_push_errno(L, r->path, errno);
                return -1;
            }
            moved = 0;
        }
        if ((st = plan_until(L, pl, target)) != 0)
            return st < 0 ? -1 : 0;
        at = csv_scan_at(&r->s);
        line = r->s.line;
    }
}

/* Plans; leaves the plan, or the failure triple, on top of the stack. */
static int plan_run(lua_State *L, planner *pl)
{
    marketo_csv_reader *r = pl->r;
    int st;

    lua_newtable(L); /* parts */
    st = pl->pp != NULL ? plan_par(L, pl) : plan_until(L, pl, LLONG_MAX) < 0 ? -1 : 0;
    if (st != 0)
        return 3;
    lua_createtable(L, 0, 8); /* parts plan */
    lua_insert(L, -2);        /* plan parts */
    lua_setfield(L, -2, "parts");
    lua_pushlstring(L, r->hdr, r->hlen);
    lua_setfield(L, -2, "header");
    marketo_set_size(L, "header_offset", r->hdr_off);
    marketo_set_size(L, "rows", r->rows);
    marketo_set_size(L, "rejected", r->rejected);
    marketo_set_size(L, "blank", r->s.blank);
    marketo_set_size(L, "max_bytes", pl->max);
    lua_pushboolean(L, r->s.bom);
    lua_setfield(L, -2, "bom");
    if (pl->note.count > 0) {
        lua_createtable(L, 0, 4);
        marketo_set_size(L, "count", pl->note.count);
        marketo_set_size(L, "line", pl->note.line);
        marketo_set_size(L, "column", pl->note.column);
        lua_pushlstring(L, pl->note.value, pl->note.len);
        lua_setfield(L, -2, "value");
        lua_setfield(L, -2, "emails");
    }
    return 1;
}

static int plan_protected(lua_State *L)
{
    planner *pl = (planner *)lua_touserdata(L, 1);

    lua_remove(L, 1);
    pl->failure = 1; /* passed along: the caller's stack is not this one's */
    return plan_run(L, pl);
}

static int default_threads(void)
{
    long n = 1;

#if defined(_SC_NPROCESSORS_ONLN)
    n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n < 1 ? 1 : n > DEFAULT_THREADS ? DEFAULT_THREADS : (int)n;
}

/* The values' checks of types (a table at idx: kinds, lengths, failure;
 * see marketo.csv.plan), pushed with failure; or NULL, nothing pushed. */
static const csv_types *plan_types(lua_State *L, planner *pl, int idx)
{
    const csv_types *t;

    if (lua_isnoneornil(L, idx))
        return NULL;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "kinds");
    lua_getfield(L, idx, "lengths");
    lua_getfield(L, idx, "failure");
    luaL_argcheck(L, lua_istable(L, -3) && lua_istable(L, -2) && lua_isfunction(L, -1), idx,
                  "types: kinds, lengths and failure expected");
    pl->failure = lua_gettop(L);
    t = csv_types_new(L, pl->failure - 2, pl->failure - 1, pl->r->s.expect);
    return t->last >= 0 ? t : NULL;
}

/* csv_plan(reader, max_bytes [, threads [, segment_bytes [, types]]]) -> plan
 * | nil, msg, code. The reader must be fresh (header read, no row yet); it is
 * read to the end. threads: at most this many scans at once (default: the
 * online CPUs, up to 8); a segment gets segment_bytes at least (32 MiB);
 * types: the values' checks (marketo.csv.plan). */
int marketo_plan_new(lua_State *L)
{
    planner pl;
    long long threads, segment;
    int top, ok;

    memset(&pl, 0, sizeof pl);
    pl.r = marketo_csv_check_reader(L, 1);
    pl.max = marketo_checksize(L, 2);
    pl.hlen = (long long)pl.r->hlen;
    threads = lua_isnoneornil(L, 3) ? default_threads() : marketo_checksize(L, 3);
    segment = lua_isnoneornil(L, 4) ? SEGMENT_BYTES : marketo_checksize(L, 4);
    luaL_argcheck(L, pl.r->hdr != NULL, 1, "the reader has no header");
    luaL_argcheck(L, pl.r->rows == 0 && pl.r->rejected == 0, 1, "the reader has read rows");
    luaL_argcheck(L, pl.max > 0, 2, "positive");
    luaL_argcheck(L, threads >= 1 && threads <= CSV_MAX_THREADS, 3, "1 to 64");
    luaL_argcheck(L, segment > 0, 4, "positive");
    lua_settop(L, 5);
    pl.types = plan_types(L, &pl, 5);
    /* a range (one share of a file) is read by a single scan */
    if (pl.r->limit >= 0)
        threads = 1;
    if ((pl.pp = csv_par_start(&pl.r->s, pl.r->fd, pl.max, pl.hlen, (int)threads,
                                  segment, pl.types)) == NULL)
        return plan_run(L, &pl);
    /* on_reject and types.failure may raise, and Lua may run out of memory:
     * the workers are stopped and freed whatever happens, then the error
     * goes on (the types stay on this stack until then) */
    top = lua_gettop(L);
    lua_pushcfunction(L, plan_protected);
    lua_pushlightuserdata(L, &pl);
    if (pl.types != NULL)
        lua_pushvalue(L, pl.failure);
    else
        lua_pushnil(L);
    ok = lua_pcall(L, 2, LUA_MULTRET, 0) == 0;
    csv_par_stop(pl.pp);
    if (!ok)
        return lua_error(L);
    return lua_gettop(L) - top;
}
