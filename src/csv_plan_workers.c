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
/* A run shorter than this (or than 1/1024 of a segment, so that small test
 * segments keep theirs) is not kept: taking it saves the main scan little,
 * and a file with many bad rows would otherwise keep a run per good row. */
#define MIN_RUN_BYTES (16 * 1024)

static ssize_t pread_fn(void *ctx, void *buf, size_t n)
{
    csv_pread_src *src = (csv_pread_src *)ctx;
    ssize_t k = pread(src->fd, buf, n, (off_t)src->off);

    if (k > 0)
        src->off += k;
    return k;
}

int csv_par_scan_open(const csv_par *pp, csv_scan *s, csv_pread_src *src, size_t chunk)
{
    src->fd = pp->fd;
    src->off = 0;
    if (csv_scan_init(s, pread_fn, src, pp->delim, chunk, pp->max_row, pp->lenient) != 0)
        return -1;
    s->started = 1;
    s->expect = pp->expect;
    return 0;
}

void csv_par_seek(csv_scan *s, csv_pread_src *src, long long off, long long line)
{
    if (csv_scan_seek(s, off, line))
        src->off = off;
}

long long csv_lf_count(const csv_scan *s, long long from, long long to)
{
    const char *p = (const char *)s->buf + (from - s->base), *e = p + (to - from);
    long long n = 0;

    while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

static int cancelled(csv_par *pp)
{
    int c;

    pthread_mutex_lock(&pp->mu);
    c = pp->cancel;
    pthread_mutex_unlock(&pp->mu);
    return c;
}

static csv_run *new_run(csv_worker *w, const csv_scan *s, long long row)
{
    csv_run *r;

    if ((r = marketo_grow(w->runs, &w->rcap, w->nruns + 1, sizeof *r)) == NULL)
        return NULL;
    w->runs = r;
    r = &w->runs[w->nruns++];
    memset(r, 0, sizeof *r);
    r->off = r->end = csv_scan_at(s);
    r->line = r->end_line = s->line;
    r->blank = r->end_blank = s->blank;
    r->row = r->end_row = row;
    r->last_end = -1;
    r->note = -1;
    return r;
}

/* Whether record [off, end) of s (on line) passes the type checks; its
 * emails that do not look like one are noted in run r. 0 if a value fails,
 * or if memory runs out: either way the main scan looks at it itself. */
static int row_passes(csv_worker *w, csv_scan *s, csv_run *r, long long off, long long end,
                      long long line)
{
    const csv_types *t = w->pp->types;
    const char *what, *p;
    csv_email_note *e;
    size_t n;

    p = csv_rec_bytes(s, off, end, &n);
    if (csv_types_quick(t, p, n, csv_rec_room(s, p), s->delim))
        return 1;
    if (csv_scan_split(s, (const unsigned char *)p, n) != 0 || csv_types_failure(t, s, &what) >= 0)
        return 0;
    if (r->note < 0) {
        if ((e = marketo_grow(w->notes, &w->ncap, w->nnotes + 1, sizeof *e)) == NULL)
            return 0;
        w->notes = e;
        memset(&w->notes[w->nnotes], 0, sizeof *e);
        r->note = (long long)w->nnotes++;
    }
    csv_types_note(t, s, line, &w->notes[r->note]);
    return 1;
}

/* The first of the k records of a batch that fails the type checks (the
 * emails of those before it noted in run r), or k. */
static int first_failing(csv_worker *w, csv_scan *s, csv_run *r, const csv_rec *recs, int k)
{
    int i;

    if (w->pp->types == NULL)
        return k;
    for (i = 0; i < k; i++)
        if (!row_passes(w, s, r, recs[i].off, recs[i].end, recs[i].line))
            return i;
    return k;
}

/* What a worker's scan has counted: clean rows, the last one's end and
 * line, and where the next checkpoint is due. */
typedef struct tally {
    long long rows, prev_end, prev_line, next_ck;
} tally;

/* Ends run r at the place the scan is between records (at, on line, with
 * blank lines skipped so far), after the rows counted. */
static void end_run(csv_run *r, long long at, long long line, long long blank, const tally *t)
{
    r->end = at;
    r->end_line = line;
    r->end_blank = blank;
    r->end_row = t->rows;
    r->last_end = t->prev_end;
    r->last_line = t->prev_line;
}

/* Counts k clean rows, with a checkpoint every ck_bytes or so. */
static void count_rows(csv_worker *w, const csv_par *pp, tally *t, const csv_rec *recs, int k)
{
    int i;

    for (i = 0; i < k; i++) {
        if (recs[i].off >= t->next_ck && t->prev_end >= 0) {
            csv_ckpt *c = marketo_grow(w->ck, &w->ckcap, w->nck + 1, sizeof *c);
            if (c != NULL) {
                w->ck = c;
                c = &w->ck[w->nck++];
                c->off = recs[i].off;
                c->line = recs[i].line;
                c->row = t->rows;
                c->prev_end = t->prev_end;
                c->prev_line = t->prev_line;
                t->next_ck = recs[i].off + pp->ck_bytes;
            } else {
                t->next_ck = LLONG_MAX; /* fewer checkpoints, more to scan again */
            }
        }
        t->prev_end = recs[i].end;
        t->prev_line = recs[i].line;
        t->rows++;
    }
}

/* Ends run r where a record that is not clean starts; a run too short to
 * be worth taking is dropped (the main scan reads it itself). */
static void close_run(csv_worker *w, const csv_par *pp, csv_run *r, long long at, long long line,
                      long long blank, const tally *t)
{
    end_run(r, at, line, blank, t);
    if (r->end - r->off < pp->min_run) {
        if (r->note >= 0 && (size_t)r->note + 1 == w->nnotes)
            w->nnotes--;
        w->nruns--;
    }
}

/* A run that starts where the scan is, after a record that failed the type
 * checks (lenient mode); NULL at stop or past it, or out of memory. */
static csv_run *run_after_failure(csv_worker *w, csv_par *pp, csv_scan *s, tally *t)
{
    if (csv_scan_at(s) >= w->stop)
        return NULL;
    t->prev_end = -1;
    t->next_ck = csv_scan_at(s) + pp->ck_bytes;
    return new_run(w, s, t->rows);
}

/* Past a bad record in lenient mode: the reader rejects it and the bad ones
 * after it, and returns the next good row; a run starts after that one.
 * NULL when none does before stop (or on a cancel, or out of memory). */
static csv_run *run_after_rejects(csv_worker *w, csv_par *pp, csv_scan *s, tally *t)
{
    int st;

    do
        st = csv_scan_next(s, 0);
    while (st == CSV_BAD && !cancelled(pp));
    if (st != CSV_ROW || csv_scan_at(s) >= w->stop)
        return NULL;
    t->prev_end = -1;
    t->next_ck = csv_scan_at(s) + pp->ck_bytes;
    return new_run(w, s, t->rows);
}

/* Scans [from, stop) into runs. A run is only ever closed at a place the
 * scan is between records, with the line and blank count of that place. */
static void *work(void *arg)
{
    csv_worker *w = (csv_worker *)arg;
    csv_par *pp = w->pp;
    csv_scan s;
    csv_pread_src src;
    csv_rec recs[1024];
    tally t = { 0, -1, 0, 0 };
    csv_run *cur;

    if (csv_par_scan_open(pp, &s, &src, WORKER_CHUNK) != 0)
        return NULL;
    csv_par_seek(&s, &src, w->from, 1);
    t.next_ck = w->from + pp->ck_bytes;
    if ((cur = new_run(w, &s, 0)) == NULL)
        goto done;
    for (;;) {
        long long at = csv_scan_at(&s), line = s.line, blank = s.blank;
        int k, st, bad;

        if (cancelled(pp))
            break;
        if ((k = csv_scan_fast_until(&s, recs, 1024, w->stop)) > 0) {
            const csv_rec *f;
            if ((bad = first_failing(w, &s, cur, recs, k)) == k) {
                count_rows(w, pp, &t, recs, k);
                continue;
            }
            /* the run ends where the failing record starts: the blank
             * lines before it are those between the records before it */
            count_rows(w, pp, &t, recs, bad);
            f = &recs[bad];
            for (k = 0; k <= bad; k++) {
                blank += csv_lf_count(&s, at, recs[k].off);
                at = recs[k].end;
            }
            close_run(w, pp, cur, f->off, f->line, blank, &t);
            if (!pp->lenient)
                goto done;
            /* the scan goes on right after it, as the main scan's does */
            csv_par_seek(&s, &src, f->end, f->line + csv_lf_count(&s, f->off, f->end));
            s.blank = blank;
            if ((cur = run_after_failure(w, pp, &s, &t)) == NULL)
                goto done;
            continue;
        }
        if (csv_scan_skip_blank(&s, w->stop))
            break;
        at = csv_scan_at(&s);
        line = s.line;
        blank = s.blank;
        if ((st = csv_scan_next(&s, 0)) == CSV_END)
            break;
        if (st == CSV_ROW && (pp->types == NULL
                              || row_passes(w, &s, cur, s.rec_off, s.rec_end, s.rec_line))) {
            recs[0].off = s.rec_off;
            recs[0].end = s.rec_end;
            recs[0].line = s.rec_line;
            count_rows(w, pp, &t, recs, 1);
            continue;
        }
        /* not clean: the run ends where the record starts */
        close_run(w, pp, cur, at, line, blank, &t);
        if (st == CSV_ROW) { /* a value failed */
            if (!pp->lenient || (cur = run_after_failure(w, pp, &s, &t)) == NULL)
                goto done;
            continue;
        }
        if (st != CSV_BAD || !pp->lenient || (cur = run_after_rejects(w, pp, &s, &t)) == NULL)
            goto done;
    }
    end_run(cur, csv_scan_at(&s), s.line, s.blank, &t);
done:
    csv_scan_free(&s);
    return NULL;
}

/* The offset after the first line feed at from or after; -1 if none. */
static long long next_line(const csv_par *pp, long long from)
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
static int probe(csv_scan *s, csv_pread_src *src, long long at)
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
static long long pick_start(const csv_par *pp, csv_scan *s, csv_pread_src *src, long long from)
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

void csv_par_stop(csv_par *pp)
{
    int i;

    if (pp == NULL)
        return;
    pthread_mutex_lock(&pp->mu);
    pp->cancel = 1;
    pthread_mutex_unlock(&pp->mu);
    for (i = 0; i < pp->nw; i++) {
        if (pp->w[i].state == CSV_W_RUNNING)
            pthread_join(pp->w[i].th, NULL);
        free(pp->w[i].runs);
        free(pp->w[i].ck);
        free(pp->w[i].notes);
    }
    if (pp->ws_open)
        csv_scan_free(&pp->ws);
    pthread_mutex_destroy(&pp->mu);
    free(pp);
}

csv_par *csv_par_start(const csv_scan *rs, int fd, long long max, long long hlen, int threads,
                   long long segment, const csv_types *types)
{
    long long data = csv_scan_at(rs), nseg, prev;
    struct stat st;
    csv_scan probe_s;
    csv_pread_src src;
    csv_par *pp;
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
    pp->types = types;
    pp->max_row = rs->max_row;
    if ((long long)pp->max_row > max - hlen)
        pp->max_row = (size_t)(max - hlen);
    pp->size = (long long)st.st_size;
    pp->min_run = segment / 1024 < MIN_RUN_BYTES ? segment / 1024 : MIN_RUN_BYTES;
    pp->ck_bytes = max / 8;
    pp->ck_bytes = pp->ck_bytes < 4096 ? 4096 : pp->ck_bytes > 65536 ? 65536 : pp->ck_bytes;
    if (pthread_mutex_init(&pp->mu, NULL) != 0) {
        free(pp);
        return NULL;
    }
    if (csv_par_scan_open(pp, &probe_s, &src, CSV_WALK_CHUNK) != 0) {
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
            pp->w[k].state = CSV_W_RUNNING;
    return pp;
}
