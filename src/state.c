/* state.c - what an instance holds from earlier imports, for --changed-only:
 * per key, a hash of the row as it was sent. A sorted array of (key hash,
 * row hash) pairs, 16 bytes a key: ten million keys in 160 MB and no Lua
 * table, looked up through an index of the hashes' top bits (one or two cache
 * misses a row). Keys are hashed as csv_keys.c hashes them (trimmed, folded),
 * rows with a 64-bit hash of their bytes; two rows with one hash are taken
 * for one (a chance of 2^-64 per row that a changed row is not sent).
 *
 * The file is written whole (a temporary name, fsync, rename; 0600):
 *   "MKBSTATE", u32 version, u32 text bytes, u64 keys, u64 checksum,
 *   text: instance NUL object NUL key field NUL note NUL, then the pairs,
 * in the machine's byte order (a file from another one reads as an unknown
 * version). The checksum covers the text and the pairs: a truncated or
 * corrupt file is refused with STATE_CORRUPT, never read as fewer keys.
 *
 *   core.state_new(instance, object, key_field) -> state (no keys)
 *   core.state_load(path) -> state | nil, msg, code (ENOENT, STATE_CORRUPT...)
 *   state:identity() -> instance, object, key_field
 *   state:note([text]) -> the note (free text: the last import), set first
 *   state:salt([text]): what is sent with the rows besides their bytes (a
 *       member's status, a list id), mixed into each row's hash from then
 *       on: the same row sent with another status is a changed row. nil:
 *       none (a row's hash is its bytes' alone). Not saved: set per part.
 *   state:count() -> keys held (merged)
 *   state:same(key, row) -> same, held: whether the key is held, with this
 *       row; key: a string or a list of up to 8 fields (blank: never held)
 *   state:put(key, row) -> true | false (a blank key): held with this row
 *       once merged (a key held already changes at once; put merges by
 *       itself every million new keys); of a key put twice, the last row
 *   state:merge(): the keys put since are held (lookups see them)
 *   state:save(path) -> true | nil, msg, code (merges first)
 *   state:record(reader, columns, skip, ordinal) -> rows put: a sent part's
 *       rows, but the lines (or row numbers) `skip` holds (see state_record)
 *   state:sift(reader, columns, writer, lines) -> kept, unchanged: the rows
 *       held as they are left out, the others written (see state_sift) */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise's MADV_HUGEPAGE */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "csv_core.h"
#include "csv_keys.h"
#include "grow.h"

#define STATE_MT "marketo.state"
#define MAGIC "MKBSTATE"
#define VERSION 1u
#define HEAD 32 /* magic, version, text bytes, keys, checksum */
#define MAX_TEXT 65536
#define MERGE_AT ((size_t)1 << 20) /* added pairs merged at once (16 MB, a sort buffer as large) */

typedef struct pair {
    uint64_t key, row;
} pair;

typedef struct state {
    pair *held;       /* sorted by key, no key twice */
    size_t n;
    pair *added;      /* put since the last merge, new keys, in any order */
    size_t nadd, addcap;
    uint32_t *index;  /* index[b]: the first held pair whose key's top bits >= b */
    int bits;
    char *text;       /* instance NUL object NUL key field NUL note NUL; NULL: closed */
    size_t ntext;
    uint64_t salt;    /* 0: none (see state:salt) */
    marketo_buffer batch; /* the bytes of the rows sift looks up at once */
} state;

/* Rows sift looks up together: each lookup is a cache miss or two in an
 * array far larger than the caches, so a batch's are asked for ahead and
 * wait in parallel (a lookup a row alone was 60% of a sift's time). */
#define SIFT_BATCH 64

typedef struct sift_batch {
    uint64_t key[SIFT_BATCH], row[SIFT_BATCH];
    long long line[SIFT_BATCH];
    size_t off[SIFT_BATCH], len[SIFT_BATCH];
    int n;
} sift_batch;

static state *check_state(lua_State *L)
{
    state *s = (state *)luaL_checkudata(L, 1, STATE_MT);

    if (s->text == NULL)
        luaL_error(L, "attempt to use a closed %s", STATE_MT);
    return s;
}

/* A row's hash: 8 bytes at a time, mixed; its length in the seed. */
static uint64_t hash_row(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n, w;

    while (n >= 8) {
        memcpy(&w, p, 8);
        h = (h ^ (w * 0xff51afd7ed558ccdULL)) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, p, n);
    h = (h ^ (w * 0xff51afd7ed558ccdULL)) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 32;
    h *= 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

/* A row's hash as the state holds it: its bytes', with the salt mixed in. */
static uint64_t row_hash(const state *s, const char *p, size_t n)
{
    uint64_t h = hash_row(p, n);

    if (s->salt == 0)
        return h;
    h = (h ^ s->salt) * 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static uint64_t checksum(const char *text, size_t ntext, const pair *p, size_t n)
{
    uint64_t h = hash_row(text, ntext);
    size_t i;

    for (i = 0; i < n; i++)
        h = (h ^ p[i].key ^ (p[i].row * 0x9e3779b97f4a7c15ULL)) * 0xc4ceb9fe1a85ec53ULL
            + (h >> 31);
    return h;
}

/* The index over the held pairs: about 4 pairs a bucket. */
static int build_index(state *s)
{
    int bits = 1;
    size_t b, i = 0, nb;
    uint32_t *idx;

    while (bits < 30 && ((size_t)1 << bits) * 4 < s->n)
        bits++;
    nb = (size_t)1 << bits;
    if ((idx = malloc((nb + 1) * sizeof *idx)) == NULL)
        return -1;
    for (b = 0; b < nb; b++) {
        while (i < s->n && (s->held[i].key >> (64 - bits)) < b)
            i++;
        idx[b] = (uint32_t)i;
    }
    idx[nb] = (uint32_t)s->n;
    free(s->index);
    s->index = idx;
    s->bits = bits;
    return 0;
}

static pair *lookup(const state *s, uint64_t key)
{
    size_t b = (size_t)(key >> (64 - s->bits));
    size_t lo = s->index[b], hi = s->index[b + 1];

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->held[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n && s->held[lo].key == key ? &s->held[lo] : NULL;
}

/* A stable sort by key (a put later stays later): 8 passes of a byte each
 * through tmp. */
static void sort_pairs(pair *p, pair *tmp, size_t n)
{
    int shift;

    for (shift = 0; shift < 64; shift += 8) {
        size_t count[257] = { 0 }, i;
        int d;

        for (i = 0; i < n; i++)
            count[((p[i].key >> shift) & 0xff) + 1]++;
        for (d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (i = 0; i < n; i++)
            tmp[count[(p[i].key >> shift) & 0xff]++] = p[i];
        memcpy(p, tmp, n * sizeof *p);
    }
}

/* The added pairs among the held ones (no key in both: put changes a held
 * key in place): merged from the tail into the held array grown in place, no
 * second copy of ten million pairs; of a key put twice, the last. */
static int merge(state *s)
{
    size_t i, j, k, n;
    pair *p;

    if (s->nadd == 0)
        return 0;
    if ((p = malloc(s->nadd * sizeof *p)) == NULL)
        return -1;
    sort_pairs(s->added, p, s->nadd);
    free(p);
    if (s->n == 0) {
        p = s->added;
        s->added = s->held;
        s->addcap = 0;
        n = s->nadd;
    } else {
        if ((p = realloc(s->held, (s->n + s->nadd) * sizeof *p)) == NULL)
            return -1;
        i = s->n;
        j = s->nadd;
        k = s->n + s->nadd;
        while (j > 0) {
            if (i > 0 && p[i - 1].key > s->added[j - 1].key)
                p[--k] = p[--i];
            else
                p[--k] = s->added[--j];
        }
        n = s->n + s->nadd;
    }
    for (i = 0, k = 0; i < n; i++) {
        if (k > 0 && p[k - 1].key == p[i].key)
            k--;
        p[k++] = p[i];
    }
    s->held = p;
    s->n = k;
    free(s->added);
    s->added = NULL;
    s->nadd = s->addcap = 0;
    return build_index(s);
}

/* The hash of the key at idx (a string or a list of fields); 0: blank. */
static uint64_t check_key(lua_State *L, int idx)
{
    const char *p[MAX_FIELDS];
    size_t n[MAX_FIELDS];
    int i, nf = 1;

    if (lua_type(L, idx) == LUA_TTABLE) {
        nf = (int)marketo_rawlen(L, idx);
        luaL_argcheck(L, nf >= 1 && nf <= MAX_FIELDS, idx, "1 to 8 fields expected");
    }
    for (i = 0; i < nf; i++) {
        if (lua_type(L, idx) == LUA_TTABLE)
            lua_rawgeti(L, idx, i + 1);
        else
            lua_pushvalue(L, idx);
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, idx, "strings expected");
        p[i] = lua_tolstring(L, -1, &n[i]); /* kept on the stack while read */
    }
    return marketo_key_hash(p, n, nf);
}

static uint64_t check_row(lua_State *L, const state *s, int idx)
{
    size_t n;
    const char *p = luaL_checklstring(L, idx, &n);

    return row_hash(s, p, n);
}

static int state_same(lua_State *L)
{
    state *s = check_state(L);
    uint64_t key = check_key(L, 2), row = check_row(L, s, 3);
    const pair *p = key != 0 ? lookup(s, key) : NULL;

    lua_pushboolean(L, p != NULL && p->row == row);
    lua_pushboolean(L, p != NULL);
    return 2;
}

/* 0, or -1 out of memory. */
static int put_pair(state *s, uint64_t key, uint64_t row)
{
    pair *p = lookup(s, key);

    if (p != NULL) {
        p->row = row;
        return 0;
    }
    if (s->nadd == s->addcap) {
        size_t cap = s->addcap ? s->addcap + s->addcap / 2 : 1024;
        pair *a = realloc(s->added, cap * sizeof *a);

        if (a == NULL)
            return -1;
        s->added = a;
        s->addcap = cap;
    }
    s->added[s->nadd].key = key;
    s->added[s->nadd++].row = row;
    return s->nadd >= MERGE_AT ? merge(s) : 0;
}

static int state_put(lua_State *L)
{
    state *s = check_state(L);
    uint64_t key = check_key(L, 2), row = check_row(L, s, 3);

    if (key != 0 && put_pair(s, key, row) != 0)
        return luaL_error(L, "%s: out of memory", STATE_MT);
    lua_pushboolean(L, key != 0);
    return 1;
}

/* The batch's rows: the held ones counted, the others written in order. */
static int sift_flush(lua_State *L, state *s, marketo_csv_writer *w, sift_batch *b,
                      long long *kept, long long *unchanged)
{
    int i;

#if defined(__GNUC__)
    for (i = 0; i < b->n; i++) /* their index entries were asked for as they came */
        if (b->key[i] != 0 && s->n > 0)
            __builtin_prefetch(&s->held[s->index[(size_t)(b->key[i] >> (64 - s->bits))]]);
#endif
    for (i = 0; i < b->n; i++) {
        const pair *held = b->key[i] != 0 ? lookup(s, b->key[i]) : NULL;

        if (held != NULL && held->row == b->row[i]) {
            (*unchanged)++;
            continue;
        }
        if (marketo_csv_writer_raw(L, w, s->batch.data + b->off[i], b->len[i], b->line[i]) != 0)
            return -1;
        (*kept)++;
    }
    b->n = 0;
    s->batch.len = 0;
    return 0;
}

/* sift(reader, columns, writer, lines) -> kept, unchanged | nil, msg, code:
 * the reader's rows whose key (the fields at `columns`, 1-based: a number or
 * a list) is held with the same row (its bytes, line end aside) are counted;
 * the others go to the writer as they are, with their line, or, when `lines`
 * is a list, with lines[n] for the reader's n-th row (a written part's rows
 * and their source lines), or with n when `lines` is true. */
static int state_sift(lua_State *L)
{
    state *s = check_state(L);
    marketo_csv_reader *r = marketo_csv_check_reader(L, 2);
    marketo_csv_writer *w = marketo_csv_check_writer(L, 4);
    int listed = lua_type(L, 5) == LUA_TTABLE, ordinal = lua_toboolean(L, 5);
    int col[MAX_FIELDS], nf = marketo_key_columns(L, 3, col);
    long long kept = 0, unchanged = 0, nth = 0;
    sift_batch b;

    lua_settop(L, 5);
    b.n = 0;
    s->batch.len = 0;
    for (;;) {
        int st = marketo_csv_reader_next(L, r, 1);
        const csv_scan *c = &r->s;
        const char *row;
        size_t n;
        uint64_t key;
        long long line;

        if (st < 0)
            return 3;
        if (st != CSV_ROW)
            break;
        nth++;
        key = marketo_key_of_fields(c, col, nf);
        row = (const char *)c->buf + (c->rec_off - c->base);
        n = (size_t)(c->rec_end - c->rec_off) - (size_t)c->term_len;
        line = ordinal ? nth : c->rec_line;
        if (listed) {
            lua_rawgeti(L, 5, (lua_Integer)nth);
            line = (long long)lua_tointeger(L, -1);
            lua_pop(L, 1);
            if (line <= 0)
                return luaL_error(L, "%s: sift: no source line for row %lld", STATE_MT, nth);
        }
#if defined(__GNUC__)
        if (key != 0)
            __builtin_prefetch(&s->index[(size_t)(key >> (64 - s->bits))]);
#endif
        b.key[b.n] = key;
        b.row[b.n] = row_hash(s, row, n);
        b.line[b.n] = line;
        b.off[b.n] = s->batch.len;
        b.len[b.n] = n;
        if (marketo_buffer_append(&s->batch, row, n) != 0)
            return luaL_error(L, "%s: out of memory", STATE_MT);
        if (++b.n == SIFT_BATCH && sift_flush(L, s, w, &b, &kept, &unchanged) != 0)
            return 3;
    }
    if (sift_flush(L, s, w, &b, &kept, &unchanged) != 0)
        return 3;
    lua_pushinteger(L, (lua_Integer)kept);
    lua_pushinteger(L, (lua_Integer)unchanged);
    return 2;
}

/* record(reader, columns, skip, ordinal) -> rows put: each row of the reader
 * put with its bytes (line end aside), but those whose line (or number among
 * the reader's rows, when `ordinal`) is a key of the table `skip`. */
static int state_record(lua_State *L)
{
    state *s = check_state(L);
    marketo_csv_reader *r = marketo_csv_check_reader(L, 2);
    int ordinal = lua_toboolean(L, 5), col[MAX_FIELDS], nf = marketo_key_columns(L, 3, col);
    long long put = 0, nth = 0;

    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 5);
    for (;;) {
        int st = marketo_csv_reader_next(L, r, 1), skip;
        const csv_scan *c = &r->s;
        uint64_t key;

        if (st < 0)
            return 3;
        if (st != CSV_ROW)
            break;
        nth++;
        lua_rawgeti(L, 4, (lua_Integer)(ordinal ? nth : c->rec_line));
        skip = !lua_isnil(L, -1);
        lua_pop(L, 1);
        key = marketo_key_of_fields(c, col, nf);
        if (skip || key == 0)
            continue;
        if (put_pair(s, key, row_hash(s, (const char *)c->buf + (c->rec_off - c->base),
                                      (size_t)(c->rec_end - c->rec_off) - (size_t)c->term_len)) != 0)
            return luaL_error(L, "%s: out of memory", STATE_MT);
        put++;
    }
    lua_pushinteger(L, (lua_Integer)put);
    return 1;
}

static int state_merge(lua_State *L)
{
    if (merge(check_state(L)) != 0)
        return luaL_error(L, "%s: out of memory", STATE_MT);
    return 0;
}

/* The i-th (0-based) NUL-ended string of the text. */
static const char *text_at(const state *s, int i)
{
    const char *p = s->text;

    while (i-- > 0)
        p += strlen(p) + 1;
    return p;
}

static int state_identity(lua_State *L)
{
    state *s = check_state(L);
    int i;

    for (i = 0; i < 3; i++)
        lua_pushstring(L, text_at(s, i));
    return 3;
}

/* A text of the strings at idx.. (NUL-free), or a raised misuse. */
static int set_text(lua_State *L, state *s, const char *const *v)
{
    size_t len[4], total = 0;
    char *t, *q;
    int i;

    for (i = 0; i < 4; i++) {
        len[i] = strlen(v[i]);
        total += len[i] + 1;
    }
    if (total > MAX_TEXT)
        return luaL_error(L, "%s: names and note longer than %d bytes", STATE_MT, MAX_TEXT);
    if ((t = malloc(total)) == NULL)
        return luaL_error(L, "%s: out of memory", STATE_MT);
    for (i = 0, q = t; i < 4; i++) {
        memcpy(q, v[i], len[i] + 1);
        q += len[i] + 1;
    }
    free(s->text);
    s->text = t;
    s->ntext = total;
    return 0;
}

static const char *check_name(lua_State *L, int idx)
{
    size_t n;
    const char *p = luaL_checklstring(L, idx, &n);

    luaL_argcheck(L, strlen(p) == n, idx, "no NUL byte expected");
    return p;
}

static int state_note(lua_State *L)
{
    state *s = check_state(L);

    if (!lua_isnoneornil(L, 2)) {
        const char *v[4];
        int i;

        for (i = 0; i < 3; i++)
            v[i] = text_at(s, i);
        v[3] = check_name(L, 2);
        lua_pushstring(L, v[0]); /* v[0..2] point into the text set_text frees */
        lua_pushstring(L, v[1]);
        lua_pushstring(L, v[2]);
        for (i = 0; i < 3; i++)
            v[i] = lua_tostring(L, -3 + i);
        set_text(L, s, v);
        lua_pop(L, 3);
    }
    lua_pushstring(L, text_at(s, 3));
    return 1;
}

static int state_salt(lua_State *L)
{
    state *s = check_state(L);
    size_t n;
    const char *p;

    s->salt = 0;
    if (!lua_isnoneornil(L, 2)) {
        p = luaL_checklstring(L, 2, &n);
        s->salt = hash_row(p, n) | 1; /* never 0: that is none */
    }
    return 0;
}

static int state_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_state(L)->n);
    return 1;
}

static int state_save(lua_State *L)
{
    state *s = check_state(L);
    const char *path = luaL_checkstring(L, 2);
    unsigned char head[HEAD];
    uint32_t version = VERSION, ntext;
    uint64_t n, sum;
    const void *data[3];
    size_t len[3];

    if (merge(s) != 0)
        return luaL_error(L, "%s: out of memory", STATE_MT);
    ntext = (uint32_t)s->ntext;
    n = (uint64_t)s->n;
    sum = checksum(s->text, s->ntext, s->held, s->n);
    memcpy(head, MAGIC, 8);
    memcpy(head + 8, &version, 4);
    memcpy(head + 12, &ntext, 4);
    memcpy(head + 16, &n, 8);
    memcpy(head + 24, &sum, 8);
    data[0] = head;
    len[0] = HEAD;
    data[1] = s->text;
    len[1] = s->ntext;
    data[2] = s->held;
    len[2] = s->n * sizeof *s->held;
    return marketo_write_whole(L, path, data, len, 3);
}

static void free_state(state *s)
{
    marketo_buffer_free(&s->batch);
    free(s->held);
    free(s->added);
    free(s->index);
    free(s->text);
    memset(s, 0, sizeof *s);
}

static int state_close(lua_State *L)
{
    free_state((state *)luaL_checkudata(L, 1, STATE_MT));
    return 0;
}

static int state_tostring(lua_State *L)
{
    state *s = (state *)luaL_checkudata(L, 1, STATE_MT);

    if (s->text == NULL)
        return marketo_tostring(L, STATE_MT, NULL);
    lua_pushfstring(L, "%d keys", (int)s->n);
    return marketo_tostring(L, STATE_MT, lua_tostring(L, -1));
}

static state *push_state(lua_State *L)
{
    state *s = (state *)marketo_newudata(L, sizeof *s);

    memset(s, 0, sizeof *s);
    luaL_getmetatable(L, STATE_MT);
    lua_setmetatable(L, -2);
    return s;
}

static int state_new(lua_State *L)
{
    const char *v[4];
    state *s;
    int i;

    for (i = 0; i < 3; i++)
        v[i] = check_name(L, i + 1);
    v[3] = "";
    s = push_state(L);
    set_text(L, s, v);
    if (build_index(s) != 0)
        return luaL_error(L, "%s: out of memory", STATE_MT);
    return 1;
}

static int read_all(int fd, void *data, size_t len)
{
    char *p = data;

    while (len > 0) {
        ssize_t r = read(fd, p, len > ((size_t)1 << 30) ? (size_t)1 << 30 : len);

        if (r < 0 && errno != EINTR)
            return -1;
        if (r == 0)
            return 1; /* short */
        if (r > 0) {
            p += r;
            len -= (size_t)r;
        }
    }
    return 0;
}

/* What is wrong with a loaded state, or NULL. */
static const char *check_loaded(const state *s, uint64_t sum)
{
    size_t i, nul = 0;

    for (i = 0; i < s->ntext; i++)
        nul += s->text[i] == '\0';
    if (nul != 4 || s->text[s->ntext - 1] != '\0')
        return "its header is damaged";
    if (checksum(s->text, s->ntext, s->held, s->n) != sum)
        return "its checksum does not match (a damaged file)";
    for (i = 1; i < s->n; i++)
        if (s->held[i - 1].key >= s->held[i].key)
            return "its keys are out of order";
    return NULL;
}

/* Room for n pairs: in huge pages where the kernel gives them on request
 * (a loaded state of millions of keys then takes a fault per 2 MB, not per
 * 4 KB, and its random lookups rarely miss the TLB). free() releases it. */
#define HUGE ((size_t)2 << 20)
static pair *alloc_pairs(size_t n)
{
    void *p;

    if (n * sizeof(pair) < HUGE)
        return malloc(n > 0 ? n * sizeof(pair) : 1);
    if (posix_memalign(&p, HUGE, n * sizeof(pair)) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    (void)madvise(p, n * sizeof(pair), MADV_HUGEPAGE);
#endif
    return p;
}

static int state_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    unsigned char head[HEAD];
    uint32_t version, ntext;
    uint64_t n, sum;
    const char *bad = NULL;
    char extra;
    state *s;
    int fd = open(path, O_RDONLY | O_CLOEXEC), r;

    if (fd < 0)
        return marketo_push_errno(L, path, errno);
    s = push_state(L);
    r = read_all(fd, head, HEAD);
    if (r == 0) {
        memcpy(&version, head + 8, 4);
        memcpy(&ntext, head + 12, 4);
        memcpy(&n, head + 16, 8);
        memcpy(&sum, head + 24, 8);
        if (memcmp(head, MAGIC, 8) != 0)
            bad = "it is not a marketo-bulk state file";
        else if (version != VERSION)
            bad = "it is of an unknown version";
        else if (ntext < 4 || ntext > MAX_TEXT || n > ((uint64_t)1 << 32) - 1)
            bad = "its header is damaged";
    }
    if (r == 0 && bad == NULL) {
        s->text = malloc(ntext);
        s->held = alloc_pairs((size_t)n);
        if (s->text == NULL || s->held == NULL) {
            close(fd);
            free_state(s);
            return luaL_error(L, "%s: out of memory", STATE_MT);
        }
        s->ntext = ntext;
        s->n = (size_t)n;
        r = read_all(fd, s->text, ntext);
        if (r == 0)
            r = read_all(fd, s->held, s->n * sizeof *s->held);
        if (r == 0 && read_all(fd, &extra, 1) == 0)
            bad = "it is longer than its header says";
    }
    if (r < 0) {
        int err = errno;

        close(fd);
        free_state(s);
        return marketo_push_errno(L, path, err);
    }
    close(fd);
    if (r > 0)
        bad = "it is truncated";
    if (bad == NULL)
        bad = check_loaded(s, sum);
    if (bad == NULL && build_index(s) != 0)
        return luaL_error(L, "%s: out of memory", STATE_MT);
    if (bad != NULL) {
        free_state(s);
        return marketo_push_fail(L, "STATE_CORRUPT", "%s: %s", path, bad);
    }
    return 1;
}

void marketo_state_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"count", state_count},
        {"identity", state_identity},
        {"merge", state_merge},
        {"note", state_note},
        {"put", state_put},
        {"record", state_record},
        {"salt", state_salt},
        {"same", state_same},
        {"save", state_save},
        {"sift", state_sift},
        {NULL, NULL}
    };
    marketo_new_class(L, STATE_MT, state_close, state_tostring, NULL, methods, "state_new",
                      state_new);
    lua_pushcfunction(L, state_load);
    lua_setfield(L, -2, "state_load");
}
