/* csv_plan.c - csv_plan(reader, max_bytes [, threads, segment_bytes]):
 * parts of a file under a byte limit, cut only between rows, each the header
 * plus one byte range of the source. Nothing is copied: the transport
 * streams each range from disk.
 *
 * On a large file the scan runs on several cores, and the plan is still the
 * one a single scan makes, byte for byte. The rows after the header are cut
 * into segments; worker k (a thread; no Lua) scans segment k from a line
 * start X_k near its nominal start, as if a record had just ended there, and
 * keeps runs: stretches of clean rows that fit a part, between two places
 * where its scan is between records (it stops at X_{k+1}). A run ends at a
 * record that is not clean (a bad row, or one too large for a part); in
 * lenient mode a new one starts after the next good row, where the reader's
 * next call (rejects, then that row) leaves the scan. Only the counts, the
 * last row and a checkpoint every few KiB are kept.
 *
 * The main thread plans segment 0 itself, as a single scan would. When its
 * scan is between records exactly where a run starts, the scan from there
 * on is the worker's (a scan depends only on where it starts, not on how it
 * got there), so the run is taken whole: rows and blank lines added, lines
 * shifted by the difference, parts packed as add_row packs them, each cut
 * found by scanning again from the last checkpoint before it. Anywhere else
 * (a bad row, an X_k inside a quoted field, a run ended early) the main scan
 * goes on by itself, calling on_reject and failing exactly as before, until
 * it meets the start of a run again. Workers read by pread(2): a file cut
 * short under them is an error, not a SIGBUS. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv_core.h"

#define MAX_THREADS 64
#define DEFAULT_THREADS 8        /* at most, by default: the online CPUs */
#define SEGMENT_BYTES (32LL << 20) /* least bytes a segment gets by default */
#define PROBES 8                 /* line starts tried for a worker's start */
#define PROBE_ROWS 16            /* rows from a start that must be clean */
#define WORKER_CHUNK (64 * 1024) /* a worker reads twice this at a time */
#define WALK_CHUNK (8 * 1024)

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

/* A stretch of clean rows a worker found. Lines are the worker's (its start
 * is line 1), rows its count, blank its scanner's. */
typedef struct run {
    long long off, line, blank, row;         /* where it starts */
    long long end, end_line, end_blank, end_row; /* where it ends */
    long long last_end, last_line;           /* its last row, if any */
} run;

/* A row of a run, to scan again from: where and on which line it starts,
 * its index, and the end and line of the row before it in the run. */
typedef struct ckpt {
    long long off, line, row, prev_end, prev_line;
} ckpt;

typedef struct par par;

enum { W_IDLE = 0, W_RUNNING, W_DONE };

typedef struct worker {
    par *pp;
    long long from, stop;    /* scans rows starting in [from, stop) */
    pthread_t th;
    int state;
    run *runs;
    int nruns, rcap;
    ckpt *ck;
    long long nck, ckcap;
} worker;

typedef struct pread_src {
    int fd;
    long long off;
} pread_src;

struct par {
    int fd, delim, lenient, expect;
    size_t max_row;          /* the reader's, or less: what fits a part */
    long long size, ck_bytes;
    pthread_mutex_t mu;
    int cancel;
    worker w[MAX_THREADS];
    int nw;
    /* scans a run again to find where its parts end (main thread) */
    csv_scan ws;
    pread_src wsrc;
    int ws_open, wi, wn;
    csv_rec wrec[256];
};

typedef struct planner {
    plan_part p;
    long long max, hlen;
    int n;
    marketo_csv_reader *r;
    par *pp;
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

static long long scan_at(const csv_scan *s)
{
    return s->base + (long long)s->pos;
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
        long long rejected = r->rejected;
        int i, st, k = csv_scan_fast_until(&r->s, recs, 1024, stop);

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
        if (stop != LLONG_MAX && csv_scan_skip_blank(&r->s, stop))
            return 0;
        if ((st = marketo_csv_reader_next(L, r, 0)) < 0)
            return -1;
        if (pl->p.rows > 0 && (st == CSV_END || r->rejected != rejected)) {
            push_part(L, &pl->p, pl->hlen, ++pl->n); /* a reject ends the part before it */
            pl->p.rows = 0;
        }
        if (st == CSV_END)
            return 1;
        if (add_row(L, pl, r->s.rec_off, r->s.rec_end, r->s.rec_line) != 0)
            return -1;
    }
}

/* ---- the workers: no Lua from here to the main thread's part ---- */

static ssize_t pread_fn(void *ctx, void *buf, size_t n)
{
    pread_src *src = (pread_src *)ctx;
    ssize_t k = pread(src->fd, buf, n, (off_t)src->off);

    if (k > 0)
        src->off += k;
    return k;
}

/* A scanner as the reader's is after its header, reading by pread. */
static int scan_open(const par *pp, csv_scan *s, pread_src *src, size_t chunk)
{
    src->fd = pp->fd;
    src->off = 0;
    if (csv_scan_init(s, pread_fn, src, pp->delim, chunk, pp->max_row, pp->lenient) != 0)
        return -1;
    s->started = 1;
    s->expect = pp->expect;
    return 0;
}

static void scan_seek(csv_scan *s, pread_src *src, long long off, long long line)
{
    if (csv_scan_seek(s, off, line))
        src->off = off;
}

static int cancelled(par *pp)
{
    int c;

    pthread_mutex_lock(&pp->mu);
    c = pp->cancel;
    pthread_mutex_unlock(&pp->mu);
    return c;
}

static run *new_run(worker *w, const csv_scan *s, long long row)
{
    run *r;

    if (w->nruns == w->rcap) {
        int cap = w->rcap ? 2 * w->rcap : 16;
        run *p = realloc(w->runs, (size_t)cap * sizeof *p);
        if (p == NULL)
            return NULL;
        w->runs = p;
        w->rcap = cap;
    }
    r = &w->runs[w->nruns++];
    memset(r, 0, sizeof *r);
    r->off = r->end = scan_at(s);
    r->line = r->end_line = s->line;
    r->blank = r->end_blank = s->blank;
    r->row = r->end_row = row;
    r->last_end = -1;
    return r;
}

/* Scans [from, stop) into runs. A run is only ever closed at a place the
 * scan is between records, with the line and blank count of that place. */
static void *work(void *arg)
{
    worker *w = (worker *)arg;
    par *pp = w->pp;
    csv_scan s;
    pread_src src;
    csv_rec recs[1024];
    long long rows = 0, next_ck = 0, prev_end = -1, prev_line = 0;
    run *cur = NULL;

    if (scan_open(pp, &s, &src, WORKER_CHUNK) != 0)
        return NULL;
    scan_seek(&s, &src, w->from, 1);
    if ((cur = new_run(w, &s, 0)) == NULL)
        goto done;
    next_ck = w->from + pp->ck_bytes;
    for (;;) {
        long long at, line, blank;
        int i, k, st;

        if (cancelled(pp))
            break;
        k = csv_scan_fast_until(&s, recs, 1024, w->stop);
        if (k == 0) {
            if (csv_scan_skip_blank(&s, w->stop))
                break;
            at = scan_at(&s);
            line = s.line;
            blank = s.blank;
            st = csv_scan_next(&s, 0);
            if (st == CSV_END)
                break;
            if (st != CSV_ROW) {
                /* not clean: the run ends where the record starts */
                cur->end = at;
                cur->end_line = line;
                cur->end_blank = blank;
                cur->end_row = rows;
                cur->last_end = prev_end;
                cur->last_line = prev_line;
                cur = NULL;
                if (st != CSV_BAD || !pp->lenient)
                    goto done;
                /* the reader rejects it and the bad rows after it, and
                 * returns the next good row: a run starts after that one */
                do
                    st = csv_scan_next(&s, 0);
                while (st == CSV_BAD && !cancelled(pp));
                if (st != CSV_ROW || scan_at(&s) >= w->stop)
                    goto done;
                if ((cur = new_run(w, &s, rows)) == NULL)
                    goto done;
                prev_end = -1;
                next_ck = scan_at(&s) + pp->ck_bytes;
                continue;
            }
            recs[0].off = s.rec_off;
            recs[0].end = s.rec_end;
            recs[0].line = s.rec_line;
            k = 1;
        }
        for (i = 0; i < k; i++) {
            if (recs[i].off >= next_ck && prev_end >= 0) {
                if (w->nck == w->ckcap) {
                    long long cap = w->ckcap ? 2 * w->ckcap : 256;
                    ckpt *c = realloc(w->ck, (size_t)cap * sizeof *c);
                    if (c == NULL) {
                        next_ck = LLONG_MAX; /* fewer checkpoints, more to scan again */
                        goto add;
                    }
                    w->ck = c;
                    w->ckcap = cap;
                }
                w->ck[w->nck].off = recs[i].off;
                w->ck[w->nck].line = recs[i].line;
                w->ck[w->nck].row = rows;
                w->ck[w->nck].prev_end = prev_end;
                w->ck[w->nck].prev_line = prev_line;
                w->nck++;
                next_ck = recs[i].off + pp->ck_bytes;
            }
        add:
            prev_end = recs[i].end;
            prev_line = recs[i].line;
            rows++;
        }
    }
    cur->end = scan_at(&s);
    cur->end_line = s.line;
    cur->end_blank = s.blank;
    cur->end_row = rows;
    cur->last_end = prev_end;
    cur->last_line = prev_line;
done:
    csv_scan_free(&s);
    return NULL;
}

/* The offset after the first line feed at from or after; -1 if none. */
static long long next_line(const par *pp, long long from)
{
    unsigned char buf[16384];

    while (from < pp->size) {
        ssize_t n = pread(pp->fd, buf, sizeof buf, (off_t)from);
        const unsigned char *lf;
        if (n <= 0)
            return -1;
        if ((lf = memchr(buf, '\n', (size_t)n)) != NULL)
            return from + (lf - buf) + 1;
        from += n;
    }
    return -1;
}

/* Whether the first rows from a line start scan clean: a line start inside
 * a quoted field seldom does. Only a guess: a wrong one costs time only. */
static int probe(csv_scan *s, pread_src *src, long long at)
{
    int i;

    scan_seek(s, src, at, 1);
    for (i = 0; i < PROBE_ROWS; i++) {
        int st = csv_scan_next(s, 0);
        if (st == CSV_END)
            return 1;
        if (st != CSV_ROW)
            return 0;
    }
    return 1;
}

/* Where a worker starts near `from`: the first of a few line starts whose
 * rows scan clean, or the first line start. -1 if none. */
static long long pick_start(const par *pp, csv_scan *s, pread_src *src, long long from)
{
    long long first = -1, at = from;
    int i;

    for (i = 0; i < PROBES; i++) {
        if ((at = next_line(pp, at)) < 0 || at >= pp->size)
            break;
        if (first < 0)
            first = at;
        if (probe(s, src, at))
            return at;
    }
    return first;
}

static void par_stop(par *pp)
{
    int i;

    if (pp == NULL)
        return;
    pthread_mutex_lock(&pp->mu);
    pp->cancel = 1;
    pthread_mutex_unlock(&pp->mu);
    for (i = 0; i < pp->nw; i++) {
        if (pp->w[i].state == W_RUNNING)
            pthread_join(pp->w[i].th, NULL);
        free(pp->w[i].runs);
        free(pp->w[i].ck);
    }
    if (pp->ws_open)
        csv_scan_free(&pp->ws);
    pthread_mutex_destroy(&pp->mu);
    free(pp);
}

/* Starts the workers, or returns NULL to plan with one scan: one thread,
 * a small file, or one that cannot be read at any offset. */
static par *par_start(planner *pl, int threads, long long segment)
{
    const csv_scan *rs = &pl->r->s;
    long long data = scan_at(rs), nseg, prev;
    struct stat st;
    csv_scan probe_s;
    pread_src src;
    par *pp;
    int k;

    if (threads < 2 || pl->max - pl->hlen < 1 || fstat(pl->r->fd, &st) != 0
        || !S_ISREG(st.st_mode) || (long long)st.st_size <= data)
        return NULL;
    /* the main scan must be able to go to any offset: a mapped file, or
     * all of it in the buffer */
    if (rs->map_fd < 0 && !(rs->eof && rs->base + (long long)rs->len == (long long)st.st_size))
        return NULL;

    nseg = ((long long)st.st_size - data) / (segment > 0 ? segment : 1);
    if (nseg > threads)
        nseg = threads;
    if (nseg < 2 || (pp = calloc(1, sizeof *pp)) == NULL)
        return NULL;
    pp->fd = pl->r->fd;
    pp->delim = rs->delim;
    pp->lenient = rs->lenient;
    pp->expect = rs->expect;
    pp->max_row = rs->max_row;
    if ((long long)pp->max_row > pl->max - pl->hlen)
        pp->max_row = (size_t)(pl->max - pl->hlen);
    pp->size = (long long)st.st_size;
    pp->ck_bytes = pl->max / 8;
    pp->ck_bytes = pp->ck_bytes < 4096 ? 4096 : pp->ck_bytes > 65536 ? 65536 : pp->ck_bytes;
    if (pthread_mutex_init(&pp->mu, NULL) != 0) {
        free(pp);
        return NULL;
    }
    if (scan_open(pp, &probe_s, &src, WALK_CHUNK) != 0) {
        pthread_mutex_destroy(&pp->mu);
        free(pp);
        return NULL;
    }
    prev = data;
    for (k = 1; k < nseg; k++) {
        long long at = pick_start(pp, &probe_s, &src, data + (pp->size - data) / nseg * k);
        if (at > prev && at < pp->size) {
            pp->w[pp->nw].pp = pp;
            pp->w[pp->nw++].from = prev = at;
        }
    }
    csv_scan_free(&probe_s);
    for (k = 0; k < pp->nw; k++)
        pp->w[k].stop = k + 1 < pp->nw ? pp->w[k + 1].from : LLONG_MAX;
    csv_fast_init(); /* before any thread uses it */
    for (k = 0; k < pp->nw; k++)
        if (pthread_create(&pp->w[k].th, NULL, work, &pp->w[k]) == 0)
            pp->w[k].state = W_RUNNING;
    return pp;
}

/* ---- the main thread takes the runs ---- */

static int changed(lua_State *L, const planner *pl)
{
    return marketo_push_fail(L, "IO_ERROR", "%s: the file changed while it was planned",
                             pl->r->path);
}

static void walk_to(par *pp, long long off, long long line)
{
    scan_seek(&pp->ws, &pp->wsrc, off, line);
    pp->wi = pp->wn = 0;
}

/* The next row of the run being walked: 0, or -1 if it is not clean now. */
static int walk_next(par *pp, csv_rec *rec)
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
static const ckpt *ckpt_before(const worker *w, long long off)
{
    long long lo = 0, hi = w->nck; /* the answer is below hi */

    while (lo < hi) {
        long long mid = lo + (hi - lo) / 2;
        if (w->ck[mid].off <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 ? &w->ck[lo - 1] : NULL;
}

/* Takes the rows of run R, the scan being between records where it starts,
 * on a line dl more than the worker's: packed as add_row would pack them. */
static int adopt(lua_State *L, planner *pl, const worker *w, const run *R, long long dl)
{
    par *pp = pl->pp;
    plan_part *p = &pl->p;
    long long i = R->row, room = pl->max - pl->hlen;
    int walking = 0;
    csv_rec rec;

    if (i == R->end_row)
        return 0;
    if (!pp->ws_open) {
        if (scan_open(pp, &pp->ws, &pp->wsrc, WALK_CHUNK) != 0)
            return luaL_error(L, "csv_plan: out of memory");
        pp->ws_open = 1;
    }
    if (p->rows == 0) { /* the part starts with the run */
        walk_to(pp, R->off, R->line);
        walking = 1;
        if (walk_next(pp, &rec) != 0)
            return changed(L, pl);
        if (add_row(L, pl, rec.off, rec.end, rec.line + dl) != 0)
            return -1;
        i++;
    }
    while (i < R->end_row) {
        long long fit = p->offset + room; /* rows that end here or before fit */
        const ckpt *c;

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
    par *pp = pl->pp;
    long long at = scan_at(&r->s), line = r->s.line;
    int k = 0, ri = 0, moved = 0;

    for (;;) {
        long long target = LLONG_MAX;
        const run *R = NULL;
        worker *w = NULL;
        int st;

        while (k < pp->nw) { /* the next run that starts at `at` or later */
            w = &pp->w[k];
            if (w->state == W_RUNNING) {
                if (at < w->from) {
                    target = w->from; /* where its first run starts */
                    break;
                }
                pthread_join(w->th, NULL);
                w->state = W_DONE;
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
            csv_scan_seek(&r->s, at, line); /* mapped, or all in the buffer */
            moved = 0;
        }
        if ((st = plan_until(L, pl, target)) != 0)
            return st < 0 ? -1 : 0;
        at = scan_at(&r->s);
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
    return 1;
}

static int plan_protected(lua_State *L)
{
    planner *pl = (planner *)lua_touserdata(L, 1);

    lua_settop(L, 0);
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

/* csv_plan(reader, max_bytes [, threads [, segment_bytes]]) -> plan | nil,
 * msg, code. The reader must be fresh (header read, no row yet); it is read
 * to the end. threads: at most this many scans at once (default: the online
 * CPUs, up to 8); a segment gets segment_bytes at least (32 MiB). */
static int plan_new(lua_State *L)
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
    luaL_argcheck(L, threads >= 1 && threads <= MAX_THREADS, 3, "1 to 64");
    luaL_argcheck(L, segment > 0, 4, "positive");
    lua_settop(L, 4);
    csv_scan_map(&pl.r->s, pl.r->fd); /* the planner copies nothing, nor should reading */
    if ((pl.pp = par_start(&pl, (int)threads, segment)) == NULL)
        return plan_run(L, &pl);
    /* on_reject may raise, and Lua may run out of memory: the workers are
     * stopped and freed whatever happens, then the error goes on */
    top = lua_gettop(L);
    lua_pushcfunction(L, plan_protected);
    lua_pushlightuserdata(L, &pl);
    ok = lua_pcall(L, 1, LUA_MULTRET, 0) == 0;
    par_stop(pl.pp);
    if (!ok)
        return lua_error(L);
    return lua_gettop(L) - top;
}

void marketo_csv_plan_open(lua_State *L)
{
    lua_pushcfunction(L, plan_new);
    lua_setfield(L, -2, "csv_plan");
}
