/* csv_plan.h - the planner on several cores: the workers' scans (threads,
 * csv_plan_workers.c, no Lua) and what they hand to the main thread, which
 * takes their runs into the plan (csv_plan.c). */
#ifndef MARKETO_CSV_PLAN_H
#define MARKETO_CSV_PLAN_H

#include <pthread.h>

#include "csv.h"
#include "csv_types.h"
#include "grow.h"

#define CSV_MAX_THREADS 64
#define CSV_WALK_CHUNK (8 * 1024) /* what a scan that walks a run reads at a time */

/* The file offset a scan is at. */
static inline long long csv_scan_at(const csv_scan *s)
{
    return s->base + (long long)s->pos;
}

/* A stretch of clean rows a worker found (well-formed, and with the type
 * checks, every value passing). Lines are the worker's (its start is line
 * 1), rows its count, blank its scanner's. */
typedef struct csv_run {
    long long off, line, blank, row;         /* where it starts */
    long long end, end_line, end_blank, end_row; /* where it ends */
    long long last_end, last_line;           /* its last row, if any */
    long long note;          /* its emails that do not look like one: the
                              * worker's notes[note], or -1: none */
} csv_run;

/* A row of a run, to scan again from: where and on which line it starts,
 * its index, and the end and line of the row before it in the run. */
typedef struct csv_ckpt {
    long long off, line, row, prev_end, prev_line;
} csv_ckpt;

typedef struct csv_par csv_par;

enum { CSV_W_IDLE = 0, CSV_W_RUNNING, CSV_W_DONE };

typedef struct csv_worker {
    csv_par *pp;
    long long from, stop;    /* scans rows starting in [from, stop) */
    pthread_t th;
    int state;
    csv_run *runs;
    size_t nruns, rcap;
    csv_ckpt *ck;
    size_t nck, ckcap;
    csv_email_note *notes;
    size_t nnotes, ncap;
} csv_worker;

typedef struct csv_pread_src {
    int fd;
    long long off;
} csv_pread_src;

struct csv_par {
    int fd, delim, lenient, expect;
    size_t max_row;          /* the reader's, or less: what fits a part */
    const csv_types *types;  /* the values' checks, or NULL */
    long long size, ck_bytes, min_run;
    pthread_mutex_t mu;
    int cancel;
    csv_worker w[CSV_MAX_THREADS];
    int nw;
    /* scans a run again to find where its parts end (main thread) */
    csv_scan ws;
    csv_pread_src wsrc;
    int ws_open, wi, wn;
    csv_rec wrec[256];
};


/* Starts the workers over the file the scan rs (past the header) reads from
 * fd, for parts of max bytes with a header of hlen, checking the values with
 * types (NULL: none; it must outlive the workers); or returns NULL to plan
 * with one scan: one thread, a small file, or one that cannot be read at any
 * offset. */
csv_par *csv_par_start(const csv_scan *rs, int fd, long long max, long long hlen, int threads,
                   long long segment, const csv_types *types);
/* Stops the workers (they may still be running), joins them, frees all. */
void csv_par_stop(csv_par *pp);
/* A scanner as the reader's is after its header, reading by pread. */
int csv_par_scan_open(const csv_par *pp, csv_scan *s, csv_pread_src *src, size_t chunk);
void csv_par_seek(csv_scan *s, csv_pread_src *src, long long off, long long line);
/* The line feeds among the bytes [from, to) of s's buffer. */
long long csv_lf_count(const csv_scan *s, long long from, long long to);

#endif
