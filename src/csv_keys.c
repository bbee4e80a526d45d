/* csv_keys.c - the keys an import has seen (marketo.pipeline.keys), as a
 * hash set of 64-bit hashes of the normalized values, 16 bytes a slot: two
 * million keys in well under the memory two million Lua strings would take,
 * and a part's rows scanned in C with no Lua call per row. Two values with
 * one hash are taken for one key: that can only make an import more careful
 * (a row waits for another), never less.
 *
 * A value is normalized as marketo.objects.normalize_key does: spaces and
 * tabs trimmed, ASCII letters folded to lower case.
 *
 *   core.csv_keyset(examples [, expect]) -> keys (examples: how many keys seen
 *       again event() numbers, at most 16; expect: keys to make room for)
 *   keys:see(value, code, line) -> 0 (a new key, kept with code and line) |
 *       -1 (blank) | n (event n: the key was seen before); value: a string, or
 *       a list of up to 8 (a key of several fields: blank if any one is)
 *   keys:scan(reader, column, code) -> events | nil, msg, code: see() for the
 *       field `column` (or the list of columns) of every row left in the
 *       reader; events start from 1 again on each scan and see() adds to them
 *   keys:event(n) -> line, blank, code, first_line, again, example: the
 *       event's row, whether its key is blank; the code and first line its key
 *       holds now, whether an earlier event() saw it again already, and its
 *       example number (0: none). Call it once per event.
 *   keys:mark(n, code): the key of event n now holds code
 *   keys:count() -> keys held
 *   keys:close() */
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "csv_core.h"
#include "csv_keys.h"

keyset *marketo_keyset_check(lua_State *L, int idx)
{
    keyset *k = (keyset *)luaL_checkudata(L, idx, KEYSET_MT);

    if (k->slots == NULL)
        luaL_error(L, "attempt to use a closed %s", KEYSET_MT);
    return k;
}

#define HUGE ((size_t)2 << 20) /* a huge page */
#define MAX_SLOTS ((uint64_t)1 << 32) /* home() scales 32 bits */

/* FNV-1a over one field's normalized bytes, after h; *blank when there are
 * none. A byte no UTF-8 text holds goes between fields. */
static uint64_t hash_field(uint64_t h, const char *p, size_t n, int *blank)
{
    size_t i;

    while (n > 0 && (p[0] == ' ' || p[0] == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0)
        *blank = 1;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];

        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        h = (h ^ c) * 1099511628211ULL;
    }
    return (h ^ 0xffu) * 1099511628211ULL;
}

/* The hash of a key's fields, spread over the slots by a finalizer; never 0
 * (the empty slot); 0 when a field is blank. The state of --changed-only
 * (state.c) holds keys by this hash too. */
uint64_t marketo_key_hash(const char *const *p, const size_t *n, int nf)
{
    uint64_t h = 14695981039346656037ULL;
    int i, blank = 0;

    for (i = 0; i < nf; i++)
        h = hash_field(h, p[i], n[i], &blank);
    if (blank)
        return 0;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h != 0 ? h : 1;
}

uint64_t marketo_key_of_clean(const unsigned char *p, size_t n, unsigned char delim,
                              const int *col, int nf, char *tmp)
{
    const char *v[MAX_FIELDS];
    size_t len[MAX_FIELDS], i = 0;
    int k, f, want = 0;

    for (k = 0; k < nf; k++) {
        v[k] = "";
        len[k] = 0;
        if (col[k] + 1 > want)
            want = col[k] + 1;
    }
    for (f = 0; f < want; f++) {
        const char *fp;
        size_t fl;

        if (i < n && p[i] == '"') { /* up to the closing quote; "" is one quote */
            size_t from = ++i;
            int doubled = 0;

            for (;;) {
                const unsigned char *q = memchr(p + i, '"', n - i);

                i = q != NULL ? (size_t)(q - p) : n;
                if (q == NULL || i + 1 >= n || p[i + 1] != '"')
                    break;
                doubled = 1;
                i += 2;
            }
            fp = (const char *)p + from;
            fl = i - from;
            if (doubled) {
                size_t j, o = 0;

                for (j = from; j < i; j++) {
                    tmp[o++] = (char)p[j];
                    if (p[j] == '"')
                        j++;
                }
                fp = tmp;
                fl = o;
                tmp += o;
            }
            if (i < n)
                i++; /* the closing quote */
        } else {
            const unsigned char *q = memchr(p + i, delim, n - i);
            size_t end = q != NULL ? (size_t)(q - p) : n;

            fp = (const char *)p + i;
            fl = end - i;
            i = end;
        }
        for (k = 0; k < nf; k++)
            if (col[k] == f) {
                v[k] = fp;
                len[k] = fl;
            }
        if (i >= n)
            break;
        i++; /* the delimiter */
    }
    return marketo_key_hash(v, len, nf);
}

/* A key's first slot: its hash's top 32 bits scaled to the table, so the
 * table can be any size up to 2^32 slots (no power of two: 2,000,000 keys
 * take 46 MB, not 64). */
static size_t home(const keyset *k, uint64_t hash)
{
    return (size_t)(((hash >> 32) * (uint64_t)k->cap) >> 32);
}

static slot *find(const keyset *k, uint64_t hash)
{
    size_t i = home(k, hash);

    while (k->slots[i].hash != 0 && k->slots[i].hash != hash)
        i = i + 1 == k->cap ? 0 : i + 1;
    return &k->slots[i];
}

/* A table of `cap` slots, its pages touched once here, in
 * order: calloc's pages would be mapped to the zero page by find()'s first
 * read and copied on the write after it, twice the faults in random order. */
static slot *new_slots(size_t cap)
{
    slot *t;
    size_t i;

    if (cap > MAX_SLOTS || cap > SIZE_MAX / sizeof *t)
        return NULL;
    if (cap * sizeof *t < HUGE) {
        t = calloc(cap, sizeof *t);
    } else {
        void *p;

        /* huge pages where the kernel gives them on request: a random probe
         * then rarely misses the TLB, and the table takes few faults */
        if (posix_memalign(&p, HUGE, cap * sizeof *t) != 0)
            return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, cap * sizeof *t, MADV_HUGEPAGE);
#endif
        t = p;
        memset(t, 0, cap * sizeof *t);
        return t;
    }
    if (t == NULL)
        return NULL;
    for (i = 0; i < cap; i += 4096 / sizeof *t)
        ((volatile slot *)t)[i].code = 0;
    return t;
}

static int grow(keyset *k)
{
    slot *old = k->slots, *fresh;
    size_t i, cap = k->cap;

    if (cap > SIZE_MAX / 2 || (fresh = new_slots(cap * 2)) == NULL)
        return -1;
    k->slots = fresh;
    k->cap = cap * 2;
    for (i = 0; i < cap; i++)
        if (old[i].hash != 0)
            *find(k, old[i].hash) = old[i];
    free(old);
    return 0;
}

static int add_event(keyset *k, uint64_t hash, long long line)
{
    if (k->nev == k->evcap) {
        size_t cap = k->evcap ? k->evcap * 2 : 64;
        event *e = realloc(k->events, cap * sizeof *e);

        if (e == NULL)
            return -1;
        k->events = e;
        k->evcap = cap;
    }
    k->events[k->nev].hash = hash;
    k->events[k->nev].line = line;
    k->nev++;
    return 0;
}

/* 0 new, -1 blank, n an event; -2 out of memory. */
static long long see_hash(keyset *k, uint64_t hash, int32_t code, long long line)
{
    slot *s;

    if (hash == 0)
        return add_event(k, 0, line) != 0 ? -2 : -1;
    if ((k->n + 1) * 10 > k->cap * 7 && grow(k) != 0)
        return -2;
    s = find(k, hash);
    if (s->hash == 0) {
        s->hash = hash;
        s->code = code;
        s->first = line >= (long long)AGAIN ? AGAIN - 1 : (uint32_t)line;
        k->n++;
        return 0;
    }
    return add_event(k, hash, line) != 0 ? -2 : (long long)k->nev;
}

/* A whole number in [lo, hi] at idx, or a raised misuse. */
static lua_Integer check_in(lua_State *L, int idx, lua_Integer lo, lua_Integer hi)
{
    lua_Integer v = marketo_tointeger_in(L, idx, lo, hi, lo - 1);

    if (v == lo - 1)
        luaL_argerror(L, idx, "whole number in range expected");
    return v;
}

static int32_t check_code(lua_State *L, int idx)
{
    return (int32_t)check_in(L, idx, -INT32_MAX, INT32_MAX);
}

/* A key's fields or columns at idx: one value, or a list of up to MAX_FIELDS;
 * their count. */
static int key_arity(lua_State *L, int idx)
{
    int nf = 1;

    if (lua_type(L, idx) == LUA_TTABLE) {
        nf = (int)marketo_rawlen(L, idx);
        luaL_argcheck(L, nf >= 1 && nf <= MAX_FIELDS, idx, "1 to 8 fields expected");
    }
    return nf;
}

/* Field i (1-based) of the key at idx: the value, or the list's i-th. */
static void key_part(lua_State *L, int idx, int i)
{
    if (lua_type(L, idx) == LUA_TTABLE)
        lua_rawgeti(L, idx, i);
    else
        lua_pushvalue(L, idx);
}

static int keys_see(lua_State *L)
{
    keyset *k = marketo_keyset_check(L, 1);
    int i, nf = key_arity(L, 2);
    int32_t code = check_code(L, 3);
    long long line = (long long)check_in(L, 4, 0, LLONG_MAX / 2), r;
    const char *p[MAX_FIELDS];
    size_t n[MAX_FIELDS];

    for (i = 0; i < nf; i++) {
        key_part(L, 2, i + 1);
        p[i] = lua_tolstring(L, -1, &n[i]);
        luaL_argcheck(L, p[i] != NULL && lua_type(L, -1) == LUA_TSTRING, 2,
                      "strings expected"); /* kept on the stack while p[i] is read */
    }
    if ((r = see_hash(k, marketo_key_hash(p, n, nf), code, line)) == -2)
        return luaL_error(L, "%s: out of memory", KEYSET_MT);
    lua_pushinteger(L, (lua_Integer)r);
    return 1;
}

#define BATCH 64

/* A batch of rows' hashes, their slots asked for ahead (the table is far
 * larger than the caches: one miss a row, but many in flight at once). */
int marketo_keyset_see_batch(keyset *k, const uint64_t *hash, const long long *line, int n,
                             int32_t code)
{
    int i;

#if defined(__GNUC__)
    for (i = 0; i < n; i++)
        __builtin_prefetch(&k->slots[home(k, hash[i])]);
#endif
    for (i = 0; i < n; i++)
        if (see_hash(k, hash[i], code, line[i]) == -2)
            return -1;
    return 0;
}

/* The columns at idx (one, or a list), 0-based, into col; their count. */
int marketo_key_columns(lua_State *L, int idx, int *col)
{
    int i, nf = key_arity(L, idx);

    for (i = 0; i < nf; i++) {
        key_part(L, idx, i + 1);
        col[i] = (int)check_in(L, -1, 1, INT32_MAX) - 1;
        lua_pop(L, 1);
    }
    return nf;
}

uint64_t marketo_key_of_fields(const csv_scan *s, const int *col, int nf)
{
    const char *p[MAX_FIELDS];
    size_t len[MAX_FIELDS];
    int i;

    for (i = 0; i < nf; i++) {
        p[i] = "";
        len[i] = 0;
        if (col[i] < s->nf)
            p[i] = csv_field(s, col[i], &len[i]);
    }
    return marketo_key_hash(p, len, nf);
}

static int keys_scan(lua_State *L)
{
    keyset *k = marketo_keyset_check(L, 1);
    marketo_csv_reader *r = marketo_csv_check_reader(L, 2);
    int n = 0, col[MAX_FIELDS], nf = marketo_key_columns(L, 3, col);
    int32_t code = check_code(L, 4);
    uint64_t hash[BATCH];
    long long line[BATCH];

    k->nev = 0;
    for (;;) {
        int st = marketo_csv_reader_next(L, r, 1);

        if (st < 0)
            return 3;
        if (st == CSV_ROW) {
            hash[n] = marketo_key_of_fields(&r->s, col, nf);
            line[n++] = r->s.rec_line;
        }
        if (st == CSV_ROW && n < BATCH)
            continue;
        if (marketo_keyset_see_batch(k, hash, line, n, code) != 0)
            return luaL_error(L, "%s: out of memory", KEYSET_MT);
        if (st != CSV_ROW)
            break;
        n = 0;
    }
    lua_pushinteger(L, (lua_Integer)k->nev);
    return 1;
}

static const event *check_event(lua_State *L, const keyset *k)
{
    lua_Integer i = check_in(L, 2, 1, (lua_Integer)k->nev);

    return &k->events[i - 1];
}

/* The example number of a key seen again, given one while there is room. */
static int example_of(keyset *k, uint64_t hash, int again)
{
    int i;

    for (i = 0; i < k->nex; i++)
        if (k->examples[i] == hash)
            return i + 1;
    if (again || k->nex >= k->maxex)
        return 0;
    k->examples[k->nex++] = hash;
    return k->nex;
}

static int keys_event(lua_State *L)
{
    keyset *k = marketo_keyset_check(L, 1);
    const event *e = check_event(L, k);
    slot *s;
    int again;

    lua_pushinteger(L, (lua_Integer)e->line);
    lua_pushboolean(L, e->hash == 0);
    if (e->hash == 0)
        return 2;
    s = find(k, e->hash);
    again = (s->first & AGAIN) != 0;
    s->first |= AGAIN;
    lua_pushinteger(L, s->code);
    lua_pushinteger(L, (lua_Integer)(s->first & ~AGAIN));
    lua_pushboolean(L, again);
    lua_pushinteger(L, example_of(k, e->hash, again));
    return 6;
}

static int keys_mark(lua_State *L)
{
    keyset *k = marketo_keyset_check(L, 1);
    const event *e = check_event(L, k);
    int32_t code = check_code(L, 3);

    luaL_argcheck(L, e->hash != 0, 2, "a blank key has no code");
    find(k, e->hash)->code = code;
    return 0;
}

static int keys_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)marketo_keyset_check(L, 1)->n);
    return 1;
}

static int keys_close(lua_State *L)
{
    keyset *k = (keyset *)luaL_checkudata(L, 1, KEYSET_MT);

    free(k->slots);
    free(k->events);
    k->slots = NULL;
    k->events = NULL;
    k->cap = k->n = k->nev = k->evcap = 0;
    return 0;
}

static int keys_tostring(lua_State *L)
{
    keyset *k = (keyset *)luaL_checkudata(L, 1, KEYSET_MT);

    if (k->slots == NULL)
        return marketo_tostring(L, KEYSET_MT, NULL);
    lua_pushfstring(L, "%d keys", (int)k->n);
    return marketo_tostring(L, KEYSET_MT, lua_tostring(L, -1));
}

static int keys_new(lua_State *L)
{
    int maxex = (int)check_in(L, 1, 0, 16);
    lua_Integer expect = lua_isnoneornil(L, 2) ? 0 : check_in(L, 2, 0, (lua_Integer)1 << 40);
    keyset *k = (keyset *)marketo_newudata(L, sizeof *k);
    size_t cap = 1024;

    memset(k, 0, sizeof *k);
    k->maxex = maxex;
    luaL_getmetatable(L, KEYSET_MT);
    lua_setmetatable(L, -2);
    if ((lua_Integer)cap * 7 < expect * 10) /* room for them without growing */
        cap = (size_t)((expect * 10 + 6) / 7 + 1023) / 1024 * 1024;
    if ((k->slots = new_slots(cap)) == NULL)
        return luaL_error(L, "%s: out of memory", KEYSET_MT);
    k->cap = cap;
    return 1;
}

void marketo_csv_keys_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"count", keys_count},
        {"event", keys_event},
        {"mark", keys_mark},
        {"scan", keys_scan},
        {"see", keys_see},
        {NULL, NULL}
    };
    marketo_new_class(L, KEYSET_MT, keys_close, keys_tostring, NULL, methods, "csv_keyset",
                      keys_new);
}
