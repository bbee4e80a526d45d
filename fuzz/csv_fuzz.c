/* csv_fuzz.c - libFuzzer harness for the CSV scanner (make fuzz). The first
 * two bytes pick the format, strict or lenient, capture or not, the buffer
 * size and how many bytes each read(2) returns, so refills fall everywhere.
 * Every good row must survive a round trip through csv_encode_field, and
 * csv_scan_fast (the planner's path) must find exactly the records, lines
 * and errors that csv_scan_next finds, reading memory or a file by read(2).
 * A scan started (csv_scan_seek) where
 * that one is between records, as the parallel planner's workers start,
 * must go on exactly as it does. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"

typedef struct mem_src {
    const uint8_t *p;
    size_t n, step;
} mem_src;

static ssize_t mem_read(void *ctx, void *buf, size_t n)
{
    mem_src *m = (mem_src *)ctx;

    if (n > m->step)
        n = m->step;
    if (n > m->n)
        n = m->n;
    memcpy(buf, m->p, n);
    m->p += n;
    m->n -= n;
    return (ssize_t)n;
}

/* Encodes the scanner's current fields as one line and scans it again. */
static void round_trip(const csv_scan *s)
{
    size_t cap = 16, len = 0, flen;
    int i;
    char *line;
    csv_scan t;
    mem_src m;

    for (i = 0; i < s->nf; i++) {
        csv_field(s, i, &flen);
        cap += 2 * flen + 3;
    }
    if ((line = malloc(cap)) == NULL)
        abort();
    for (i = 0; i < s->nf; i++) {
        const char *p = csv_field(s, i, &flen);
        if (i > 0)
            line[len++] = (char)s->delim;
        len += csv_encode_field(line + len, p, flen,
                                csv_needs_quote(p, flen, s->delim) || (s->nf == 1 && flen == 0));
    }
    line[len++] = '\n';
    m.p = (const uint8_t *)line;
    m.n = len;
    m.step = 7;
    if (csv_scan_init(&t, mem_read, &m, s->delim, 16, len + 16, 0) != 0)
        abort();
    if (csv_scan_next(&t, 1) != CSV_ROW || t.nf != s->nf || t.flen != s->flen
        || memcmp(t.fbuf, s->fbuf, s->flen) != 0)
        abort();
    for (i = 0; i < s->nf; i++)
        if (t.fend[i] != s->fend[i])
            abort();
    if (csv_scan_next(&t, 1) != CSV_END)
        abort();
    csv_scan_free(&t);
    free(line);
}

/* FNV-1a over the captured fields of the current record. */
static uint64_t fields_hash(const csv_scan *s)
{
    uint64_t h = 1469598103934665603ULL;
    int i;
    size_t k;

    for (i = 0; i < s->nf; i++) {
        size_t len;
        const char *p = csv_field(s, i, &len);
        for (k = 0; k < len; k++)
            h = (h ^ (unsigned char)p[k]) * 1099511628211ULL;
        h = (h ^ (len + 256 * (size_t)s->fquoted[i])) * 1099511628211ULL;
    }
    return h;
}

static uint64_t hashes[4096]; /* of each reference row, when captured */

static void same_record(const csv_scan *a, long long off, long long end, long long line)
{
    if (a->rec_off != off || a->rec_end != end || a->rec_line != line)
        abort();
}

/* Scans again with csv_scan_fast where it can, and compares with what
 * csv_scan_next alone found (recorded in want[], n of them). */
static void fast_agrees(const uint8_t *data, size_t size, int cfg, const csv_scan *ref,
                        const csv_scan *rows, int nrows, const int *status)
{
    static const char delims[] = ",\t;";
    csv_scan s;
    csv_rec recs[8];
    mem_src m;
    int i = 0, k, j, st;

    m.p = data + 2;
    m.n = size - 2;
    m.step = (size_t)(data[1] % 37) + 1;
    if (csv_scan_init(&s, mem_read, &m, delims[cfg % 3], (size_t)16 << ((cfg >> 4) & 3),
                      (size_t)8 << ((cfg >> 6) & 3), (cfg >> 3) & 1) != 0)
        abort();
    while (i < nrows) {
        if (i > 0 && (k = csv_scan_fast(&s, recs, 1 + (int)(data[1] % 8))) > 0) {
            for (j = 0; j < k; j++, i++) {
                if (i >= nrows || status[i] != CSV_ROW)
                    abort();
                same_record(&rows[i], recs[j].off, recs[j].end, recs[j].line);
                if ((cfg >> 2) & 1) { /* the reader's capture of a clean record */
                    const unsigned char *p = s.buf + (recs[j].off - s.base);
                    size_t n = (size_t)(recs[j].end - recs[j].off) - 1;
                    if (n > 0 && p[n - 1] == '\r')
                        n--;
                    if (csv_scan_split(&s, p, n) != 0 || fields_hash(&s) != hashes[i])
                        abort();
                }
            }
            continue;
        }
        st = csv_scan_next(&s, 0);
        if (st != status[i] || (st != CSV_END && s.err != rows[i].err))
            abort();
        if (st == CSV_END)
            break;
        /* a strict failure stops mid-record: its end is unknown */
        same_record(&rows[i], s.rec_off, st == CSV_BAD && !s.lenient ? rows[i].rec_end
                    : s.rec_end, s.rec_line);
        if (i++ == 0 && st == CSV_ROW && (cfg & 2))
            s.expect = s.nf;
        if (st == CSV_BAD && !s.lenient)
            break;
    }
    /* after a strict failure, how far the scan got depends on buffering */
    if (status[nrows - 1] == CSV_END && (s.blank != ref->blank || s.crlf != ref->crlf))
        abort();
    csv_scan_free(&s);
}

static ssize_t fd_read(void *ctx, void *buf, size_t n)
{
    return read(*(int *)ctx, buf, n);
}

/* Same code, line, column and message; only a row over max_row inside
 * quotes names the quote open when the scan noticed, which depends on how
 * far the buffer let it run in either mode (read(2) sizes, too). */
static void same_error(const csv_scan *a, const csv_scan *b)
{
    if (a->err != b->err || a->err_line != b->err_line || a->err_col != b->err_col
        || (a->err != CSV_E_TOO_LARGE && strcmp(a->err_detail, b->err_detail) != 0))
        abort();
}

/* The planner's way in (csv_scan_fast and csv_scan_next after the header,
 * reading a file by read(2)) against csv_scan_next alone on the same bytes
 * in memory: the same records, lines and errors, down to the column and the
 * message. The body is repeated past a few pages, so that reads refill the
 * buffer many times. */
static void file_agrees(const uint8_t *data, size_t size, int cfg)
{
    static const char delims[] = ",\t;";
    size_t n = size - 2, reps, total, i;
    uint8_t *big;
    static FILE *f; /* one file for all runs, rewritten each time */
    int fd, sa = CSV_END, sb, rows = 0, lenient = (cfg >> 3) & 1;
    size_t chunk = (size_t)16 << ((cfg >> 4) & 3), max_row = (size_t)8 << ((cfg >> 6) & 3);
    csv_scan a, b;
    csv_rec recs[8];
    mem_src m;

    if (n == 0)
        return;
    reps = 3 * 4096 / n + 1;
    total = n * reps;
    if ((big = malloc(total)) == NULL || (f == NULL && (f = tmpfile()) == NULL))
        abort();
    for (i = 0; i < reps; i++)
        memcpy(big + i * n, data + 2, n);
    fd = fileno(f);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, big, total, 0) != (ssize_t)total
        || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    m.p = big;
    m.n = total;
    m.step = total; /* fast_agrees tries the small reads */
    if (csv_scan_init(&a, mem_read, &m, delims[cfg % 3], chunk, max_row, lenient) != 0
        || csv_scan_init(&b, fd_read, &fd, delims[cfg % 3], chunk, max_row, lenient) != 0)
        abort();
    for (;;) {
        int k = rows > 0 ? csv_scan_fast(&b, recs, 1 + (int)(data[1] % 8)) : 0, j;

        for (j = 0; j < k; j++, rows++)
            if (csv_scan_next(&a, 0) != CSV_ROW || a.rec_off != recs[j].off
                || a.rec_end != recs[j].end || a.rec_line != recs[j].line)
                abort();
        if (k > 0)
            continue;
        sa = csv_scan_next(&a, 0);
        sb = csv_scan_next(&b, 0);
        if (sa != sb || (sa != CSV_END && (a.rec_off != b.rec_off || a.rec_line != b.rec_line)))
            abort();
        if (sa == CSV_ROW && a.rec_end != b.rec_end)
            abort();
        if (sa == CSV_BAD)
            same_error(&a, &b);
        if (sa == CSV_END || (sa == CSV_BAD && !lenient))
            break;
        if (sa != CSV_ROW && sa != CSV_BAD)
            abort();
        if (rows++ == 0 && sa == CSV_ROW && (cfg & 2))
            a.expect = b.expect = a.nf;
    }
    if (sa == CSV_END && (a.blank != b.blank || a.crlf != b.crlf || a.line != b.line))
        abort();
    csv_scan_free(&a);
    csv_scan_free(&b);
    free(big);
}

/* The parallel planner's way in: a scan put with csv_scan_seek at a line
 * start X of the input, as if a record had just ended there (line 1, the
 * header's field count), run with csv_scan_fast_until, csv_scan_skip_blank
 * and csv_scan_next up to the first place between records at or past Y.
 * Wherever the scan from the start is between two records at X, the scan
 * from X finds exactly the same records and errors, lines shifted, and
 * stops where that scan is between records again (the planner takes a
 * worker's rows on that alone). Half the time the seek stays in a buffer
 * that holds the whole input (the main scan on a small file). */
static void resume_agrees(const uint8_t *data, size_t size, int cfg)
{
    static const char delims[] = ",\t;";
    const uint8_t *body = data + 2;
    size_t n = size - 2, i;
    int lenient = (cfg >> 3) & 1, nr = 0, cap = 64, t, done = 0;
    size_t chunk = (size_t)16 << ((cfg >> 4) & 3), max_row = (size_t)8 << ((cfg >> 6) & 3);
    unsigned char *between = calloc(n + 2, 1);
    csv_scan *ref = malloc((size_t)cap * sizeof *ref);
    int *status = malloc((size_t)cap * sizeof *status);
    csv_scan a;
    mem_src m;

    if (between == NULL || ref == NULL || status == NULL)
        abort();
    m.p = body;
    m.n = n;
    m.step = n + 1;
    if (csv_scan_init(&a, mem_read, &m, delims[cfg % 3], chunk, max_row, lenient) != 0)
        abort();
    while (!done) {
        long long at = a.base + (long long)a.pos, to;
        int st = csv_scan_next(&a, 0);

        if (nr > 0) /* before the first record, the scan has not started */
            between[at] = 1;
        to = st == CSV_END ? (long long)n : a.rec_off;
        for (i = (size_t)at; nr > 0 && (long long)i < to; i++)
            if (body[i] == '\n')
                between[i + 1] = 1; /* blank lines */
        if (nr == cap) {
            cap *= 2;
            if ((ref = realloc(ref, (size_t)cap * sizeof *ref)) == NULL
                || (status = realloc(status, (size_t)cap * sizeof *status)) == NULL)
                abort();
        }
        memcpy(&ref[nr], &a, sizeof a);
        status[nr++] = st;
        if (nr == 1 && st != CSV_ROW)
            goto out; /* the planner only plans after a good header */
        if (nr == 1 && (cfg & 2))
            a.expect = a.nf;
        done = st == CSV_END || (st == CSV_BAD && !lenient);
    }
    for (t = 0; t < 4; t++) {
        size_t x = (size_t)(data[(t + 1) % size] * 131 + data[size - 1 - (size_t)t % size] * 7
                            + (size_t)t * 977) % (n + 1);
        long long stop, dl = 0, lfs = 0;
        int j = 1, k, whole = (data[1] >> (4 + t)) & 1;
        csv_scan w;
        csv_rec recs[8];
        mem_src wm;

        while (x < n && body[x] != '\n')
            x++;
        x++; /* the line start after it, or past the end */
        if (x > n || !between[x])
            continue;
        stop = (data[0] >> t) & 1 ? LLONG_MAX : (long long)(x + (size_t)data[1] % (n - x + 1));
        for (i = 0; i < x; i++)
            dl += body[i] == '\n';
        wm.p = whole ? body : body + x;
        wm.n = whole ? n : n - x;
        wm.step = (size_t)(data[1] % 37) + 1;
        if (csv_scan_init(&w, mem_read, &wm, delims[cfg % 3], chunk, max_row, lenient) != 0)
            abort();
        w.started = 1;
        w.expect = a.expect;
        if (whole && csv_scan_fill(&w, n + 1) != 0)
            abort();
        if (csv_scan_seek(&w, (long long)x, 1) != !whole)
            abort();
        while (j < nr && status[j] != CSV_END && ref[j].rec_off < (long long)x)
            j++;
        for (;;) {
            long long at;
            int st;

            k = csv_scan_fast_until(&w, recs, 1 + (int)(data[1] % 8), stop);
            for (i = 0; i < (size_t)k; i++, j++)
                if (j >= nr || status[j] != CSV_ROW)
                    abort();
                else
                    same_record(&ref[j], recs[i].off, recs[i].end, recs[i].line + dl);
            if (k > 0)
                continue;
            if (csv_scan_skip_blank(&w, stop)) {
                /* the first place at or past stop between records */
                at = w.base + (long long)w.pos;
                if (at < stop || !between[at] || (j < nr && status[j] != CSV_END
                                                  && ref[j].rec_off < at))
                    abort();
                for (i = (size_t)stop; (long long)i < at; i++)
                    if (between[i])
                        abort();
                for (i = x; (long long)i < at; i++)
                    lfs += body[i] == '\n';
                if (w.line != 1 + lfs) /* the physical line there, from x's */
                    abort();
                break;
            }
            st = csv_scan_next(&w, 0);
            if (j >= nr || st != status[j])
                abort();
            if (st == CSV_END) {
                if (w.line + dl != ref[j].line)
                    abort();
                break;
            }
            if (st != CSV_ROW && st != CSV_BAD)
                abort();
            if (w.rec_off != ref[j].rec_off || w.rec_line + dl != ref[j].rec_line
                || (!(st == CSV_BAD && !lenient) && w.rec_end != ref[j].rec_end))
                abort();
            if (st == CSV_BAD && (w.err != ref[j].err || w.err_line + dl != ref[j].err_line
                                  || w.err_col != ref[j].err_col
                                  || (w.err != CSV_E_TOO_LARGE
                                      && strcmp(w.err_detail, ref[j].err_detail) != 0)))
                abort();
            j++;
            if (st == CSV_BAD && !lenient)
                break;
        }
        csv_scan_free(&w);
    }
out:
    csv_scan_free(&a);
    free(between);
    free(ref);
    free(status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[] = ",\t;";
    csv_scan s;
    mem_src m;
    int st, cfg, capture, lenient, rows = 0;
    long long last_end = 0, last_line = 0;
    static csv_scan want[4096]; /* rec_off, rec_end, rec_line, err of each */
    static int status[4096];

    if (size < 2)
        return 0;
    cfg = data[0];
    capture = (cfg >> 2) & 1;
    lenient = (cfg >> 3) & 1;
    m.p = data + 2;
    m.n = size - 2;
    m.step = (size_t)(data[1] % 37) + 1;
    if (csv_scan_init(&s, mem_read, &m, delims[cfg % 3], (size_t)16 << ((cfg >> 4) & 3),
                      (size_t)8 << ((cfg >> 6) & 3) , lenient) != 0)
        return 0;
    for (;;) {
        st = csv_scan_next(&s, capture);
        if (rows < 4096) {
            status[rows] = st;
            want[rows].rec_off = s.rec_off;
            want[rows].rec_end = s.rec_end;
            want[rows].rec_line = s.rec_line;
            want[rows].err = s.err;
            hashes[rows] = st == CSV_ROW && capture ? fields_hash(&s) : 0;
        }
        if (st == CSV_END || (st == CSV_BAD && !lenient))
            break;
        if (st != CSV_ROW && st != CSV_BAD)
            abort(); /* memory sources never fail */
        if (s.rec_off < last_end || s.rec_end <= s.rec_off || s.rec_line < last_line
            || s.rec_last_line < s.rec_line)
            abort();
        last_end = s.rec_end;
        last_line = s.rec_line;
        if (st == CSV_ROW && capture)
            round_trip(&s);
        if (rows++ == 0 && st == CSV_ROW && (cfg & 2))
            s.expect = s.nf; /* a header fixes the field count */
    }
    if (rows < 4095)
        fast_agrees(data, size, cfg, &s, want, rows + 1, status);
    if (data[1] % 4 == 0) /* a file and its windows cost: one input in four */
        file_agrees(data, size, cfg);
    resume_agrees(data, size, cfg);
    csv_scan_free(&s);
    return 0;
}
