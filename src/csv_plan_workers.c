/* csv_plan_workers.c - the planner's workers: threads that scan segments of
 * a file into runs of clean rows (see csv_plan.c for how the main thread
 * takes them). No Lua here: nothing a worker does may raise. Workers read by
 * pread(2), so a file cut short under them is an error, not a SIGBUS. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csv_plan.h"

#define PROBES 8                 /* line starts tried for a worker's start */
#define PROBE_ROWS 16            /* rows from a start that must be clean */
#define WORKER_CHUNK (64 * 1024) /* a worker reads twice this at a time */

static ssize_t pread_fn(void *ctx, void *buf, size_t n)
{
    pread_src *src = (pread_src *)ctx;
    ssize_t k = pread(src->fd, buf, n, (off_t)src->off);

    if (k > 0)
        src->off += k;
    return k;
}

int csv_par_scan_open(const par *pp, csv_scan *s, pread_src *src, size_t chunk)
{
    src->fd = pp->fd;
    src->off = 0;
    if (csv_scan_init(s, pread_fn, src, pp->delim, chunk, pp->max_row, pp->lenient) != 0)
        return -1;
    s->started = 1;
    s->expect = pp->expect;
    return 0;
}

void csv_par_seek(csv_scan *s, pread_src *src, long long off, long long line)
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
    r->off = r->end = csv_scan_at(s);
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

    if (csv_par_scan_open(pp, &s, &src, WORKER_CHUNK) != 0)
        return NULL;
    csv_par_seek(&s, &src, w->from, 1);
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
            at = csv_scan_at(&s);
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
                if (st != CSV_ROW || csv_scan_at(&s) >= w->stop)
                    goto done;
                if ((cur = new_run(w, &s, rows)) == NULL)
                    goto done;
                prev_end = -1;
                next_ck = csv_scan_at(&s) + pp->ck_bytes;
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
    cur->end = csv_scan_at(&s);
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

    csv_par_seek(s, src, at, 1);
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

void csv_par_stop(par *pp)
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

par *csv_par_start(const csv_scan *rs, int fd, long long max, long long hlen, int threads,
                   long long segment)
{
    long long data = csv_scan_at(rs), nseg, prev;
    struct stat st;
    csv_scan probe_s;
    pread_src src;
    par *pp;
    int k;

    if (threads < 2 || max - hlen < 1 || fstat(fd, &st) != 0
        || !S_ISREG(st.st_mode) || (long long)st.st_size <= data)
        return NULL;

    nseg = ((long long)st.st_size - data) / (segment > 0 ? segment : 1);
    if (nseg > threads)
        nseg = threads;
    if (nseg < 2 || (pp = calloc(1, sizeof *pp)) == NULL)
        return NULL;
    pp->fd = fd;
    pp->delim = rs->delim;
    pp->lenient = rs->lenient;
    pp->expect = rs->expect;
    pp->max_row = rs->max_row;
    if ((long long)pp->max_row > max - hlen)
        pp->max_row = (size_t)(max - hlen);
    pp->size = (long long)st.st_size;
    pp->ck_bytes = max / 8;
    pp->ck_bytes = pp->ck_bytes < 4096 ? 4096 : pp->ck_bytes > 65536 ? 65536 : pp->ck_bytes;
    if (pthread_mutex_init(&pp->mu, NULL) != 0) {
        free(pp);
        return NULL;
    }
    if (csv_par_scan_open(pp, &probe_s, &src, WALK_CHUNK) != 0) {
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
