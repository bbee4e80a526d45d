/* csv_keys_parallel.c - the keys of a plan's parts hashed on every core
 * (marketo.pipeline.keys). Once the plan is cut, its parts are row-aligned
 * byte ranges of a source (or mapped files): threads read the parts queued
 * and hash each row's key into an array per part, while the calling thread
 * takes the parts in the order queued and puts their hashes in the keyset,
 * exactly as keys:scan would have, part by part. Only a window of parts is
 * in flight, so memory stays bounded whatever the file's size.
 *
 *   core.csv_keys_job(keyset, threads) -> job (its window: threads + 1 parts)
 *   job:add(reader, columns, code [, lines, at, rows]) -> true: the rows left in
 *       a fresh reader (header read) queued; their lines are the reader's,
 *       or those of the lines file `lines` from byte `at` (a mapped part's;
 *       core.csv_line_offsets finds it); rows: how many it holds, if known. The reader is the job's until take() hands it back: keep
 *       it referenced, do not touch it.
 *   job:take() -> events | nil, msg, code: the oldest part queued, its
 *       hashes put in the keyset; events as keys:scan returns them
 *   job:room() -> parts that can be queued now
 *   job:close(): waits for the threads (a job not taken from is dropped)
 *
 * A part whose read fails (I/O, a bad record: none in a planned part unless
 * the file changed under us) fails its take() with the reader's message. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sys/types.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_keys.h"

#define JOB_MT "marketo.csv_keys_job"
#define MAX_THREADS 16
#define WINDOW (MAX_THREADS + 1)

enum { QUEUED, RUNNING, DONE };

typedef struct item {
    marketo_csv_reader *r;
    int ref;                 /* registry ref to r: alive while a thread reads it */
    int col[MAX_FIELDS], nf;
    int32_t code;
    char *lines;             /* the lines file, or NULL: the reader's lines */
    long long at;            /* its byte offset there */
    size_t expect;           /* rows the part holds: room made for them at once */
    int state;
    uint64_t *hash;
    long long *line;
    size_t n, cap;
    int st;                  /* CSV_ROW: done well; else what failed */
    int err;                 /* errno of an I/O failure */
} item;

typedef struct job {
    int open;
    int ks_ref;              /* registry ref to the keyset */
    keyset *ks;
    pthread_t threads[MAX_THREADS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    item q[WINDOW];
    int head, count, window, next; /* next: the first item not yet started */
    int stop;
} job;

static int push_row(item *it, uint64_t hash, long long line)
{
    if (it->n == it->cap) {
        size_t cap = it->cap ? it->cap * 2 : it->expect > 0 ? it->expect : 4096;
        uint64_t *h = realloc(it->hash, cap * sizeof *h);
        long long *l;

        if (h == NULL)
            return -1;
        it->hash = h;
        if ((l = realloc(it->line, cap * sizeof *l)) == NULL)
            return -1;
        it->line = l;
        it->cap = cap;
    }
    it->hash[it->n] = hash;
    it->line[it->n++] = line;
    return 0;
}

/* The rows of a part hashed, as marketo_csv_reader_next reads them (clean
 * records found fast, the rest by csv_scan_next) but with no Lua: a record
 * the strict reader would fail on stops the part, for take() to report. */
static void hash_part(item *it, char **tmp, size_t *tmpcap)
{
    marketo_csv_reader *r = it->r;
    csv_scan *s = &r->s;
    FILE *lf = NULL;
    it->st = CSV_ROW;
    if (it->lines != NULL) {
        if ((lf = fopen(it->lines, "rb")) == NULL) {
            it->st = CSV_IOERR;
            it->err = errno;
            return;
        }
        if (fseeko(lf, (off_t)it->at, SEEK_SET) != 0) {
            it->st = CSV_IOERR;
            it->err = errno;
            fclose(lf);
            return;
        }
    }
    for (;;) {
        uint64_t hash;
        long long line;

        if (r->bi < r->bn) {
            const csv_rec *rec = &r->batch[r->bi++];
            const unsigned char *p = s->buf + (rec->off - s->base);
            size_t n = (size_t)(rec->end - rec->off) - 1; /* it ends with a LF */

            if (n > 0 && p[n - 1] == '\r')
                n--;
            if (n > *tmpcap) {
                char *t = realloc(*tmp, n);

                if (t == NULL) {
                    it->st = CSV_NOMEM;
                    break;
                }
                *tmp = t;
                *tmpcap = n;
            }
            hash = marketo_key_of_clean(p, n, s->delim, it->col, it->nf, *tmp);
            line = rec->line;
        } else if ((r->bi = 0, r->bn = csv_scan_fast(s, r->batch, (int)(sizeof r->batch
                                                     / sizeof r->batch[0]))) > 0) {
            continue;
        } else {
            int st = csv_scan_next(s, 1);

            if (st == CSV_END)
                break;
            if (st != CSV_ROW) {
                it->st = st;
                it->err = s->io_errno;
                break;
            }
            hash = marketo_key_of_fields(s, it->col, it->nf);
            line = s->rec_line;
        }
        if (lf != NULL && (line = marketo_next_line(lf)) < 0) {
            it->st = -1; /* the lines file is short */
            break;
        }
        if (push_row(it, hash, line) != 0) {
            it->st = CSV_NOMEM;
            break;
        }
    }
    if (lf != NULL)
        fclose(lf);
}

static void *worker(void *arg)
{
    job *j = (job *)arg;
    char *tmp = NULL;
    size_t tmpcap = 0;

    pthread_mutex_lock(&j->mu);
    for (;;) {
        item *it;

        while (!j->stop && j->next == j->count)
            pthread_cond_wait(&j->work, &j->mu);
        if (j->stop)
            break;
        it = &j->q[(j->head + j->next++) % WINDOW];
        it->state = RUNNING;
        pthread_mutex_unlock(&j->mu);
        hash_part(it, &tmp, &tmpcap);
        pthread_mutex_lock(&j->mu);
        it->state = DONE;
        pthread_cond_broadcast(&j->done);
    }
    pthread_mutex_unlock(&j->mu);
    free(tmp);
    return NULL;
}

static void drop_item(lua_State *L, item *it)
{
    if (it->r != NULL)
        marketo_unref(L, &it->ref);
    free(it->hash);
    free(it->line);
    free(it->lines);
    memset(it, 0, sizeof *it);
    it->ref = LUA_NOREF;
}

static job *check_job(lua_State *L)
{
    job *j = (job *)luaL_checkudata(L, 1, JOB_MT);

    if (!j->open)
        luaL_error(L, "attempt to use a closed %s", JOB_MT);
    return j;
}

static void close_job(lua_State *L, job *j)
{
    int i;

    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_broadcast(&j->work);
    pthread_mutex_unlock(&j->mu);
    for (i = 0; i < j->nthreads; i++)
        pthread_join(j->threads[i], NULL);
    for (i = 0; i < WINDOW; i++)
        drop_item(L, &j->q[i]);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->work);
    pthread_cond_destroy(&j->done);
    marketo_unref(L, &j->ks_ref);
    j->open = 0;
}

static int job_close(lua_State *L)
{
    job *j = (job *)luaL_checkudata(L, 1, JOB_MT);

    if (j->open)
        close_job(L, j);
    return 0;
}

static int job_add(lua_State *L)
{
    job *j = check_job(L);
    marketo_csv_reader *r = marketo_csv_check_reader(L, 2);
    int col[MAX_FIELDS], nf = marketo_key_columns(L, 3, col);
    lua_Integer code = marketo_tointeger_in(L, 4, -INT32_MAX, INT32_MAX, -(lua_Integer)INT32_MAX - 1);
    const char *lines = luaL_optstring(L, 5, NULL);
    long long at = marketo_optsize(L, 6, 0), rows = marketo_optsize(L, 7, 0);
    item *it;

    luaL_argcheck(L, code != -(lua_Integer)INT32_MAX - 1, 4, "whole number in range expected");
    luaL_argcheck(L, r->fd >= 0 && r->hdr != NULL && r->fail_code[0] == '\0', 2,
                  "an open reader with a header");
    luaL_argcheck(L, j->count < j->window, 1, "no room: take() first");
    it = &j->q[(j->head + j->count) % WINDOW];
    memset(it, 0, sizeof *it);
    if (lines != NULL && (it->lines = strdup(lines)) == NULL)
        return luaL_error(L, "%s: out of memory", JOB_MT);
    it->r = r;
    lua_pushvalue(L, 2);
    it->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    memcpy(it->col, col, sizeof col);
    it->nf = nf;
    it->code = (int32_t)code;
    it->at = at;
    it->expect = rows < (1LL << 26) ? (size_t)rows : 0;
    it->state = QUEUED;
    pthread_mutex_lock(&j->mu);
    j->count++;
    pthread_cond_signal(&j->work);
    pthread_mutex_unlock(&j->mu);
    lua_pushboolean(L, 1);
    return 1;
}

/* What failed in a part, as the reader would have said it. */
static int push_failure(lua_State *L, const item *it)
{
    const marketo_csv_reader *r = it->r;
    const csv_scan *s = &r->s;

    switch (it->st) {
    case CSV_IOERR:
        return marketo_push_errno(L, it->lines != NULL && s->io_errno == 0 ? it->lines
                                  : r->path, it->err);
    case CSV_NOMEM:
        return luaL_error(L, "%s: out of memory", JOB_MT);
    case -1:
        return marketo_push_fail(L, "READ_ERROR", "%s has fewer lines than %s has rows",
                                 it->lines, r->path);
    default:
        return marketo_push_fail(L, csv_err_code(s->err), "%s:%lld:%lld: %s", r->path,
                                 s->err_line, s->err_col, s->err_detail);
    }
}

/* The oldest part done with: its slot free for another. */
static void pop_item(lua_State *L, job *j, item *it)
{
    pthread_mutex_lock(&j->mu);
    drop_item(L, it);
    j->head = (j->head + 1) % WINDOW;
    j->count--;
    j->next--;
    pthread_mutex_unlock(&j->mu);
}

static int job_take(lua_State *L)
{
    job *j = check_job(L);
    item *it;
    size_t i;

    luaL_argcheck(L, j->count > 0, 1, "nothing queued");
    luaL_argcheck(L, j->ks->slots != NULL, 1, "the keyset is closed");
    it = &j->q[j->head];
    pthread_mutex_lock(&j->mu);
    while (it->state != DONE)
        pthread_cond_wait(&j->done, &j->mu);
    pthread_mutex_unlock(&j->mu);
    if (it->st != CSV_ROW) {
        int n = push_failure(L, it);

        pop_item(L, j, it);
        return n;
    }
    j->ks->nev = 0;
    for (i = 0; i < it->n; i += 64) {
        int n = it->n - i < 64 ? (int)(it->n - i) : 64;

        if (marketo_keyset_see_batch(j->ks, it->hash + i, it->line + i, n, it->code) != 0)
            return luaL_error(L, "%s: out of memory", KEYSET_MT);
    }
    pop_item(L, j, it);
    lua_pushinteger(L, (lua_Integer)j->ks->nev);
    return 1;
}

static int job_room(lua_State *L)
{
    job *j = check_job(L);

    lua_pushinteger(L, j->window - j->count);
    return 1;
}

static int job_tostring(lua_State *L)
{
    job *j = (job *)luaL_checkudata(L, 1, JOB_MT);

    if (!j->open)
        return marketo_tostring(L, JOB_MT, NULL);
    lua_pushfstring(L, "%d threads, %d parts queued", j->nthreads, j->count);
    return marketo_tostring(L, JOB_MT, lua_tostring(L, -1));
}

static int job_new(lua_State *L)
{
    keyset *ks = marketo_keyset_check(L, 1);
    lua_Integer n = marketo_tointeger_in(L, 2, 1, MAX_THREADS, 0);
    job *j;
    int i;

    luaL_argcheck(L, n >= 1, 2, "1 to 16 threads expected");
    j = (job *)marketo_newudata(L, sizeof *j);
    memset(j, 0, sizeof *j);
    j->ks_ref = LUA_NOREF;
    luaL_getmetatable(L, JOB_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, 1);
    j->ks_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* the keyset outlives the job */
    j->ks = ks;
    j->window = (int)n + 1;
    csv_fast_init(); /* before any thread uses it */
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->work, NULL);
    pthread_cond_init(&j->done, NULL);
    j->open = 1;
    for (i = 0; i < n; i++) {
        if (pthread_create(&j->threads[i], NULL, worker, j) != 0)
            break;
        j->nthreads++;
    }
    if (j->nthreads == 0) {
        close_job(L, j);
        return luaL_error(L, "%s: cannot start a thread", JOB_MT);
    }
    return 1;
}

void marketo_csv_keys_parallel_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add", job_add},
        {"room", job_room},
        {"take", job_take},
        {NULL, NULL}
    };
    marketo_new_class(L, JOB_MT, job_close, job_tostring, NULL, methods, "csv_keys_job",
                      job_new);
}
