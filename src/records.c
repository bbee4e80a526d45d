/* records.c - marketo.records: the sandbox's store of imported records, held
 * compactly, so that a rehearsal of millions of rows costs about the bytes of
 * its values rather than Lua's per-table overhead.
 *
 * Each record is one packed blob in a single arena: its key (empty for a
 * record without one), then its fields as (field number, type and length,
 * bytes). Field names are numbered once per store. Records are numbered from
 * 1 in the order they were made and never removed (a store is dropped whole).
 * Hash indexes map a key to a record: the primary one on the record's key,
 * and one per field asked for (index), kept up to date as records change.
 *
 * Values are strings, numbers, booleans and the JSON null (a NULL light
 * userdata, as cjson.null is); merging a field table overwrites the fields it
 * names and keeps the others. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marketo.h"
#include "grow.h"

#define RECORDS_MT "marketo.records"

enum { T_STRING, T_NULL, T_FALSE, T_TRUE, T_INTEGER, T_FLOAT };

/* An open-addressing hash table (linear probing, deletion by backward
 * shift): each slot the 32-bit hash of a key and what it refers to (a record
 * number, or a field number + 1); 0 is an empty slot. */
typedef struct slot {
    uint32_t hash, ref;
} slot;

typedef struct table {
    slot *slots;
    size_t cap, used; /* cap a power of two, or 0 */
} table;

/* An index of records by the value of one field (field -1: the record's
 * key); fold compares ASCII letters case-insensitively. */
typedef struct findex {
    int field, fold;
    int changed; /* during a commit: the record's value differs */
    table t;
} findex;

typedef struct fname {
    char *s; /* NUL-terminated, for messages */
    size_t len;
} fname;

typedef struct records {
    marketo_buffer arena;   /* the blobs */
    uint64_t *at;           /* at[n - 1]: offset of record n's blob */
    size_t n, cap_at;
    size_t garbage;         /* arena bytes of blobs since replaced */
    fname *names;           /* field number -> name */
    size_t nnames, cap_names;
    table by_name;          /* name -> field number + 1 */
    findex *indexes;        /* [0] is the key's */
    size_t nindexes;
    uint32_t *order;        /* record numbers in key order, or NULL */
    marketo_buffer scratch; /* a blob being built */
    marketo_buffer fields;  /* decoded fields of a blob (struct field) */
    int closed;
} records;

/* A field being packed: its bytes at p, or for a number from Lua in num. */
typedef struct field {
    size_t id;
    int type;
    const char *p;
    size_t len;
    unsigned char num[8];
} field;


/* FNV-1a, folding ASCII letters when asked. */
static uint32_t hash_bytes(const char *p, size_t n, int fold)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (fold && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        h = (h ^ c) * 16777619u;
    }
    return h;
}

static int same_bytes(const char *a, size_t an, const char *b, size_t bn, int fold)
{
    size_t i;

    if (an != bn)
        return 0;
    if (!fold)
        return memcmp(a, b, an) == 0;
    for (i = 0; i < an; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

/* ---- varints and blobs ------------------------------------------------ */

static int put_varint(marketo_buffer *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;

    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            tmp[n] |= 0x80;
        n++;
    } while (v != 0);
    return marketo_buffer_append(b, tmp, n);
}

static uint64_t get_varint(const char **p)
{
    const unsigned char *s = (const unsigned char *)*p;
    uint64_t v = 0;
    int shift = 0;

    for (;;) {
        v |= (uint64_t)(*s & 0x7f) << shift;
        if ((*s++ & 0x80) == 0)
            break;
        shift += 7;
    }
    *p = (const char *)s;
    return v;
}

/* A blob's key, and its fields from *body up to *end. */
static const char *parse_blob(const char *p, size_t *keylen, const char **body,
                              const char **end)
{
    size_t size = (size_t)get_varint(&p);
    const char *key;

    *end = p + size;
    *keylen = (size_t)get_varint(&p);
    key = p;
    *body = p + *keylen;
    return key;
}

static const char *blob_of(const records *r, size_t n, size_t *keylen, const char **body,
                           const char **end)
{
    return parse_blob(r->arena.data + r->at[n - 1], keylen, body, end);
}

/* The next field of a blob at *p (before end): 0 at the end. */
static int next_field(const char **p, const char *end, field *f)
{
    uint64_t tl;

    if (*p >= end)
        return 0;
    f->id = (size_t)get_varint(p);
    tl = get_varint(p);
    f->type = (int)(tl & 7);
    f->len = (size_t)(tl >> 3);
    f->p = *p;
    *p += f->len;
    return 1;
}

/* The value of field `id` (-1: the key) in a blob, when a non-empty string. */
static const char *blob_string(const char *blob, int id, size_t *len)
{
    const char *body, *end, *key;
    size_t keylen;
    field f;

    key = parse_blob(blob, &keylen, &body, &end);
    if (id < 0) {
        *len = keylen;
        return keylen > 0 ? key : NULL;
    }
    while (next_field(&body, end, &f))
        if (f.id == (size_t)id) {
            *len = f.len;
            return f.type == T_STRING && f.len > 0 ? f.p : NULL;
        }
    return NULL;
}

static const char *string_field(const records *r, size_t n, int id, size_t *len)
{
    return blob_string(r->arena.data + r->at[n - 1], id, len);
}

/* ---- hash tables ------------------------------------------------------ */

static int table_grow(table *t)
{
    size_t cap = t->cap ? t->cap * 2 : 64, i, j;
    slot *s;

    if (cap > SIZE_MAX / sizeof *s || (s = (slot *)calloc(cap, sizeof *s)) == NULL)
        return -1;
    for (i = 0; i < t->cap; i++) {
        if (t->slots[i].ref == 0)
            continue;
        j = t->slots[i].hash & (cap - 1);
        while (s[j].ref != 0)
            j = (j + 1) & (cap - 1);
        s[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = s;
    t->cap = cap;
    return 0;
}

/* Room for one more entry (load kept under 3/4): 0, or -1 out of memory. */
static int table_room(table *t)
{
    if ((t->used + 1) * 4 > t->cap * 3)
        return table_grow(t);
    return 0;
}

/* The slot of index x holding the key p[0..n), or of the empty slot where it
 * would go. */
static size_t index_probe(const records *r, const findex *x, const char *p, size_t n,
                          uint32_t h)
{
    size_t mask = x->t.cap - 1, i = h & mask, len;
    const char *v;

    while (x->t.slots[i].ref != 0) {
        if (x->t.slots[i].hash == h) {
            v = string_field(r, x->t.slots[i].ref, x->field, &len);
            if (v != NULL && same_bytes(v, len, p, n, x->fold))
                return i;
        }
        i = (i + 1) & mask;
    }
    return i;
}

static size_t index_find(const records *r, const findex *x, const char *p, size_t n)
{
    size_t i;

    if (x->t.cap == 0)
        return 0;
    i = index_probe(r, x, p, n, hash_bytes(p, n, x->fold));
    return x->t.slots[i].ref;
}

/* Points the key p[0..n) at record ref (the later of two wins): 0 or -1. */
static int index_set(const records *r, findex *x, const char *p, size_t n, size_t ref)
{
    uint32_t h = hash_bytes(p, n, x->fold);
    size_t i;

    if (table_room(&x->t) != 0)
        return -1;
    i = index_probe(r, x, p, n, h);
    if (x->t.slots[i].ref == 0)
        x->t.used++;
    x->t.slots[i].hash = h;
    x->t.slots[i].ref = (uint32_t)ref;
    return 0;
}

/* Drops the key p[0..n) if it points at record ref. */
static void index_unset(const records *r, findex *x, const char *p, size_t n, size_t ref)
{
    size_t mask = x->t.cap - 1, i, j, home;

    if (x->t.cap == 0)
        return;
    i = index_probe(r, x, p, n, hash_bytes(p, n, x->fold));
    if (x->t.slots[i].ref != ref)
        return;
    /* backward shift: move up each later entry whose home is not between */
    j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (x->t.slots[j].ref == 0)
            break;
        home = x->t.slots[j].hash & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            x->t.slots[i] = x->t.slots[j];
            i = j;
        }
    }
    x->t.slots[i].ref = 0;
    x->t.used--;
}

/* The number of a field name, made when new (-1 out of memory). */
static long field_id(records *r, const char *name, size_t len)
{
    uint32_t h = hash_bytes(name, len, 0);
    size_t mask, i, cap = r->cap_names;
    fname *names;

    if (table_room(&r->by_name) != 0)
        return -1;
    mask = r->by_name.cap - 1;
    for (i = h & mask; r->by_name.slots[i].ref != 0; i = (i + 1) & mask) {
        const fname *known = &r->names[r->by_name.slots[i].ref - 1];
        if (r->by_name.slots[i].hash == h && same_bytes(known->s, known->len, name, len, 0))
            return (long)(r->by_name.slots[i].ref - 1);
    }
    if (r->nnames >= INT_MAX - 1)
        return -1;
    if ((names = (fname *)marketo_grow(r->names, &cap, r->nnames + 1, sizeof *names)) == NULL)
        return -1;
    r->names = names;
    r->cap_names = cap;
    if ((names[r->nnames].s = (char *)malloc(len + 1)) == NULL)
        return -1;
    memcpy(names[r->nnames].s, name, len);
    names[r->nnames].s[len] = '\0';
    names[r->nnames].len = len;
    r->by_name.slots[i].hash = h;
    r->by_name.slots[i].ref = (uint32_t)(r->nnames + 1);
    r->by_name.used++;
    return (long)r->nnames++;
}

/* ---- building blobs --------------------------------------------------- */

/* The field value at the stack top (misuse raises). */
static void read_value(lua_State *L, field *f, const char *name)
{
    f->p = NULL;
    f->len = 0;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        f->type = T_STRING;
        f->p = lua_tolstring(L, -1, &f->len);
        return;
    case LUA_TBOOLEAN:
        f->type = lua_toboolean(L, -1) ? T_TRUE : T_FALSE;
        return;
    case LUA_TNUMBER: {
        double d;
#if LUA_VERSION_NUM >= 503
        if (lua_isinteger(L, -1)) {
            lua_Integer v = lua_tointeger(L, -1);
            f->type = T_INTEGER;
            memcpy(f->num, &v, 8);
            f->len = 8;
            return;
        }
#endif
        d = (double)lua_tonumber(L, -1);
        f->type = T_FLOAT;
        memcpy(f->num, &d, 8);
        f->len = 8;
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, -1) == NULL) {
            f->type = T_NULL;
            return;
        }
        break;
    default:
        break;
    }
    luaL_error(L, "marketo.records: field '%s' holds a %s (strings, numbers, booleans or "
               "null)", name, luaL_typename(L, -1));
}

/* Checks the field table at idx (misuse raises) and decodes it into
 * r->fields after the `have` fields of the stored record there already,
 * replacing those it names. 0, or -1 out of memory. */
static int read_fields(lua_State *L, records *r, int idx, size_t have)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        field f, *fs;
        long id;
        size_t nlen, i;
        const char *name;

        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "marketo.records: a field name must be a string (got %s)",
                       luaL_typename(L, -2));
        name = lua_tolstring(L, -2, &nlen);
        read_value(L, &f, name);
        if (f.len > (SIZE_MAX >> 4) || (id = field_id(r, name, nlen)) < 0) {
            lua_pop(L, 2);
            return -1;
        }
        f.id = (size_t)id;
        fs = (field *)r->fields.data;
        for (i = 0; i < have && fs[i].id != f.id; i++)
            ; /* the table's own names are unique: only the stored ones can repeat */
        if (i == have) {
            if (marketo_buffer_append(&r->fields, &f, sizeof f) != 0) {
                lua_pop(L, 2);
                return -1;
            }
        } else {
            fs[i] = f;
        }
        lua_pop(L, 1);
    }
    return 0;
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Packs key and r->fields into r->scratch: its size, then the key and each
 * field. 0, or -1 out of memory. */
static int pack(records *r, const char *key, size_t keylen)
{
    size_t i, count = r->fields.len / sizeof(field), size;
    const field *fs = (const field *)r->fields.data;
    int bad = 0;

    size = varint_size(keylen) + keylen;
    for (i = 0; i < count; i++)
        size += varint_size(fs[i].id) + varint_size((uint64_t)fs[i].len << 3) + fs[i].len;
    r->scratch.len = 0;
    bad |= put_varint(&r->scratch, size);
    bad |= put_varint(&r->scratch, keylen);
    bad |= marketo_buffer_append(&r->scratch, key, keylen);
    for (i = 0; i < count && !bad; i++) {
        bad |= put_varint(&r->scratch, fs[i].id);
        bad |= put_varint(&r->scratch, ((uint64_t)fs[i].len << 3) | (uint64_t)fs[i].type);
        bad |= marketo_buffer_append(&r->scratch, fs[i].p != NULL ? fs[i].p
                                     : (const char *)fs[i].num, fs[i].len);
    }
    return bad ? -1 : 0;
}

/* Copies the live blobs to a new arena, leaving the replaced ones behind. */
static int compact(records *r)
{
    size_t i, to = 0;
    marketo_buffer fresh = { NULL, 0, 0 };

    if (marketo_buffer_reserve(&fresh, r->arena.len - r->garbage) != 0)
        return -1;
    for (i = 0; i < r->n; i++) {
        const char *p = r->arena.data + r->at[i];
        const char *start = p;
        size_t size = (size_t)get_varint(&p);
        size += (size_t)(p - start);
        memcpy(fresh.data + to, start, size);
        r->at[i] = to;
        to += size;
    }
    fresh.len = to;
    marketo_buffer_free(&r->arena);
    r->arena = fresh;
    r->garbage = 0;
    return 0;
}

/* The fields of blob n's record in r->fields: 0 or -1 out of memory. */
static int decode_into_fields(records *r, size_t n)
{
    const char *body, *end;
    size_t keylen;
    field f;

    r->fields.len = 0;
    blob_of(r, n, &keylen, &body, &end);
    while (next_field(&body, end, &f)) {
        if (marketo_buffer_append(&r->fields, &f, sizeof f) != 0)
            return -1;
    }
    return 0;
}

/* Stores r->scratch as record n (n == r->n + 1: a new one), keeping every
 * index in step. 0, or -1 out of memory (nothing changed). */
static int commit(records *r, size_t n)
{
    size_t old_off = 0, old_size = 0, x, off;
    const char *p;
    int fresh = n > r->n;

    if (fresh) {
        size_t cap = r->cap_at;
        uint64_t *at;
        if (n > UINT32_MAX - 1)
            return -1;
        if ((at = (uint64_t *)marketo_grow(r->at, &cap, n, sizeof *at)) == NULL)
            return -1;
        r->at = at;
        r->cap_at = cap;
    } else {
        old_off = (size_t)r->at[n - 1];
        p = r->arena.data + old_off;
        old_size = (size_t)get_varint(&p);
        old_size += (size_t)(p - (r->arena.data + old_off));
    }
    for (x = 0; x < r->nindexes; x++) {
        findex *ix = &r->indexes[x];
        size_t olen = 0, nlen = 0;
        const char *was = fresh ? NULL : string_field(r, n, ix->field, &olen);
        const char *now = blob_string(r->scratch.data, ix->field, &nlen);
        /* as the Lua store did: an unchanged value leaves its key where it
         * points, at this record or at a newer one with the same key */
        ix->changed = (was == NULL) != (now == NULL)
            || (was != NULL && !same_bytes(was, olen, now, nlen, 0));
        if (ix->changed && table_room(&ix->t) != 0)
            return -1;
    }
    /* take the old keys out while the old blob is still record n */
    if (!fresh) {
        for (x = 0; x < r->nindexes; x++) {
            size_t len;
            const char *v = string_field(r, n, r->indexes[x].field, &len);
            if (v != NULL && r->indexes[x].changed)
                index_unset(r, &r->indexes[x], v, len, n);
        }
    }
    if (!fresh && r->scratch.len <= old_size) {
        off = old_off; /* fits where it was: the tail becomes garbage */
        memcpy(r->arena.data + off, r->scratch.data, r->scratch.len);
        r->garbage += old_size - r->scratch.len;
    } else {
        if (marketo_buffer_reserve(&r->arena, r->scratch.len) != 0) {
            if (!fresh) /* put the old keys back */
                for (x = 0; x < r->nindexes; x++) {
                    size_t len;
                    const char *v = string_field(r, n, r->indexes[x].field, &len);
                    if (v != NULL && r->indexes[x].changed)
                        index_set(r, &r->indexes[x], v, len, n);
                }
            return -1;
        }
        off = r->arena.len;
        memcpy(r->arena.data + off, r->scratch.data, r->scratch.len);
        r->arena.len += r->scratch.len;
        r->garbage += old_size;
    }
    r->at[n - 1] = off;
    if (fresh) {
        r->n = n;
        free(r->order);
        r->order = NULL;
    }
    for (x = 0; x < r->nindexes; x++) {
        size_t len;
        const char *v = string_field(r, n, r->indexes[x].field, &len);
        if (v != NULL && r->indexes[x].changed)
            index_set(r, &r->indexes[x], v, len, n); /* room was made above */
    }
    if (r->garbage > (1u << 20) && r->garbage > r->arena.len / 2)
        (void)compact(r); /* out of memory: keep the garbage */
    return 0;
}

/* ---- Lua ---------------------------------------------------------------- */

static records *check_records(lua_State *L)
{
    records *r = (records *)luaL_checkudata(L, 1, RECORDS_MT);

    if (r->closed)
        luaL_error(L, "marketo.records: used after close");
    return r;
}

static size_t check_number(lua_State *L, const records *r, int arg)
{
    lua_Integer n = marketo_tointeger_in(L, arg, 1, (lua_Integer)r->n, 0);

    luaL_argcheck(L, n != 0, arg, "no such record");
    return (size_t)n;
}

static int nomem(lua_State *L)
{
    return marketo_push_fail(L, "NOMEM", "out of memory storing a record");
}

/* Stores the fields of the table at idx with key as record n: merged into
 * record n's when it exists, a new record when n is one past the last. */
static int store(lua_State *L, records *r, size_t n, int idx, const char *key, size_t keylen)
{
    r->fields.len = 0;
    if (n <= r->n && decode_into_fields(r, n) != 0)
        return -1;
    if (read_fields(L, r, idx, r->fields.len / sizeof(field)) != 0)
        return -1;
    if (pack(r, key, keylen) != 0)
        return -1;
    return commit(r, n);
}

/* r:upsert(key, fields) -> n, created: the record with this key, fields
 * merged in; a new record when there is none. */
static int records_upsert(lua_State *L)
{
    records *r = check_records(L);
    size_t keylen, n;
    const char *key = luaL_checklstring(L, 2, &keylen);
    const char *kept;
    size_t klen = 0;

    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_argcheck(L, keylen > 0, 2, "empty key");
    n = index_find(r, &r->indexes[0], key, keylen);
    if (n != 0) {
        kept = string_field(r, n, -1, &klen);
        if (store(L, r, n, 3, kept, klen) != 0)
            return nomem(L);
        lua_pushinteger(L, (lua_Integer)n);
        lua_pushboolean(L, 0);
        return 2;
    }
    if (store(L, r, r->n + 1, 3, key, keylen) != 0)
        return nomem(L);
    lua_pushinteger(L, (lua_Integer)r->n);
    lua_pushboolean(L, 1);
    return 2;
}

/* r:insert(key or nil, fields) -> n: always a new record; a key another
 * record has then finds the new one. */
static int records_insert(lua_State *L)
{
    records *r = check_records(L);
    size_t keylen = 0;
    const char *key = luaL_optlstring(L, 2, "", &keylen);

    luaL_checktype(L, 3, LUA_TTABLE);
    if (store(L, r, r->n + 1, 3, key, keylen) != 0)
        return nomem(L);
    lua_pushinteger(L, (lua_Integer)r->n);
    return 1;
}

/* r:merge(n, fields) -> n */
static int records_merge(lua_State *L)
{
    records *r = check_records(L);
    size_t n = check_number(L, r, 2), klen;
    const char *key;

    luaL_checktype(L, 3, LUA_TTABLE);
    key = string_field(r, n, -1, &klen);
    if (store(L, r, n, 3, key != NULL ? key : "", key != NULL ? klen : 0) != 0)
        return nomem(L);
    lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

static int push_found(lua_State *L, size_t n)
{
    if (n == 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* r:find(key) -> n or nil */
static int records_find(lua_State *L)
{
    records *r = check_records(L);
    size_t len;
    const char *key = luaL_checklstring(L, 2, &len);

    return push_found(L, index_find(r, &r->indexes[0], key, len));
}

static findex *index_of(records *r, long id)
{
    size_t x;

    for (x = 1; x < r->nindexes; x++)
        if (r->indexes[x].field == id)
            return &r->indexes[x];
    return NULL;
}

/* r:index(field, fold): an index on a field's (non-empty string) value, made
 * from the records there are and kept up to date; fold: ASCII letters
 * compare case-insensitively. -> true, or fail when out of memory. */
static int records_index(lua_State *L)
{
    records *r = check_records(L);
    size_t nlen, n, cap = r->nindexes;
    const char *name = luaL_checklstring(L, 2, &nlen);
    int fold = lua_toboolean(L, 3);
    long id = field_id(r, name, nlen);
    findex *xs, *x;

    if (id < 0)
        return nomem(L);
    if (index_of(r, id) == NULL) {
        if ((xs = (findex *)realloc(r->indexes, (cap + 1) * sizeof *xs)) == NULL)
            return nomem(L);
        r->indexes = xs;
        x = &xs[r->nindexes++];
        x->field = (int)id;
        x->fold = fold;
        x->changed = 0;
        x->t.slots = NULL;
        x->t.cap = x->t.used = 0;
        for (n = 1; n <= r->n; n++) {
            size_t len;
            const char *v = string_field(r, n, x->field, &len);
            if (v != NULL && index_set(r, x, v, len, n) != 0) {
                free(x->t.slots); /* no index rather than a partial one */
                r->nindexes--;
                return nomem(L);
            }
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* r:lookup(field, key) -> n or nil, through the field's index. */
static int records_lookup(lua_State *L)
{
    records *r = check_records(L);
    size_t nlen, klen;
    const char *name = luaL_checklstring(L, 2, &nlen);
    const char *key = luaL_checklstring(L, 3, &klen);
    long id = field_id(r, name, nlen);
    findex *x = id < 0 ? NULL : index_of(r, id);

    if (x == NULL)
        return luaL_error(L, "marketo.records: no index on '%s' (call index first)", name);
    return push_found(L, index_find(r, x, key, klen));
}

/* r:get(n) -> the record's field table, or nil. */
static int records_get(lua_State *L)
{
    records *r = check_records(L);
    lua_Integer n = marketo_tointeger_in(L, 2, 1, (lua_Integer)r->n, 0);
    const char *body, *end;
    size_t keylen;
    field f;

    if (n == 0) {
        lua_pushnil(L);
        return 1;
    }
    blob_of(r, (size_t)n, &keylen, &body, &end);
    lua_createtable(L, 0, 8);
    while (next_field(&body, end, &f)) {
        lua_pushlstring(L, r->names[f.id].s, r->names[f.id].len);
        switch (f.type) {
        case T_STRING:
            lua_pushlstring(L, f.p, f.len);
            break;
        case T_NULL:
            lua_pushlightuserdata(L, NULL);
            break;
        case T_FALSE:
        case T_TRUE:
            lua_pushboolean(L, f.type == T_TRUE);
            break;
#if LUA_VERSION_NUM >= 503
        case T_INTEGER: {
            lua_Integer v;
            memcpy(&v, f.p, 8);
            lua_pushinteger(L, v);
            break;
        }
#endif
        default: {
            double v;
            memcpy(&v, f.p, 8);
            lua_pushnumber(L, (lua_Number)v);
            break;
        }
        }
        lua_rawset(L, -3);
    }
    return 1;
}

/* r:key(n) -> the record's key ("" for none), or nil. */
static int records_key(lua_State *L)
{
    records *r = check_records(L);
    lua_Integer n = marketo_tointeger_in(L, 2, 1, (lua_Integer)r->n, 0);
    const char *body, *end, *key;
    size_t keylen;

    if (n == 0) {
        lua_pushnil(L);
        return 1;
    }
    key = blob_of(r, (size_t)n, &keylen, &body, &end);
    lua_pushlstring(L, key, keylen);
    return 1;
}

static int records_count(lua_State *L)
{
    records *r = check_records(L);

    lua_pushinteger(L, (lua_Integer)r->n);
    return 1;
}

typedef struct keyed {
    const char *key;
    size_t len;
    uint32_t n;
} keyed;

static int by_key(const void *a, const void *b)
{
    const keyed *x = (const keyed *)a, *y = (const keyed *)b;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, m);

    if (c != 0)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* r:ordered(i) -> the number of the i-th record in key order (bytewise; the
 * older first for equal keys), or nil past the end. The order is kept until
 * a record is added. */
static int records_ordered(lua_State *L)
{
    records *r = check_records(L);
    lua_Integer i = marketo_tointeger_in(L, 2, 1, (lua_Integer)r->n, 0);
    size_t n;

    if (i == 0) {
        lua_pushnil(L);
        return 1;
    }
    if (r->order == NULL) {
        keyed *ks = (keyed *)malloc(r->n * sizeof *ks);
        if (ks == NULL || (r->order = (uint32_t *)malloc(r->n * sizeof *r->order)) == NULL) {
            free(ks);
            return nomem(L);
        }
        for (n = 1; n <= r->n; n++) {
            const char *body, *end;
            ks[n - 1].key = blob_of(r, n, &ks[n - 1].len, &body, &end);
            ks[n - 1].n = (uint32_t)n;
        }
        qsort(ks, r->n, sizeof *ks, by_key);
        for (n = 0; n < r->n; n++)
            r->order[n] = ks[n].n;
        free(ks);
    }
    lua_pushinteger(L, (lua_Integer)r->order[i - 1]);
    return 1;
}

/* r:memory() -> bytes held for the records and their indexes. */
static int records_memory(lua_State *L)
{
    records *r = check_records(L);
    size_t total = r->arena.cap + r->cap_at * sizeof *r->at, x;

    for (x = 0; x < r->nindexes; x++)
        total += r->indexes[x].t.cap * sizeof(slot);
    if (r->order != NULL)
        total += r->n * sizeof *r->order;
    marketo_pushsize(L, total);
    return 1;
}

static int records_close(lua_State *L)
{
    records *r = (records *)luaL_checkudata(L, 1, RECORDS_MT);
    size_t i;

    if (r->closed)
        return 0;
    r->closed = 1;
    marketo_buffer_free(&r->arena);
    marketo_buffer_free(&r->scratch);
    marketo_buffer_free(&r->fields);
    free(r->at);
    for (i = 0; i < r->nnames; i++)
        free(r->names[i].s);
    free(r->names);
    free(r->by_name.slots);
    for (i = 0; i < r->nindexes; i++)
        free(r->indexes[i].t.slots);
    free(r->indexes);
    free(r->order);
    return 0;
}

static int records_tostring(lua_State *L)
{
    records *r = (records *)luaL_checkudata(L, 1, RECORDS_MT);
    char what[32];

    if (r->closed)
        return marketo_tostring(L, RECORDS_MT, NULL);
    snprintf(what, sizeof what, "%lu records", (unsigned long)r->n);
    return marketo_tostring(L, RECORDS_MT, what);
}

/* records() -> an empty store. */
static int records_new(lua_State *L)
{
    records *r = (records *)marketo_newudata(L, sizeof *r);

    memset(r, 0, sizeof *r);
    r->closed = 1; /* until the key's index exists, __gc has nothing to free */
    luaL_getmetatable(L, RECORDS_MT);
    lua_setmetatable(L, -2);
    if ((r->indexes = (findex *)calloc(1, sizeof *r->indexes)) == NULL)
        return nomem(L);
    r->closed = 0;
    r->indexes[0].field = -1;
    r->nindexes = 1;
    return 1;
}

void marketo_records_open(lua_State *L)
{
    static const luaL_Reg meta[] = {
        { "__len", records_count },
        { NULL, NULL },
    };
    static const luaL_Reg methods[] = {
        { "upsert", records_upsert },
        { "insert", records_insert },
        { "merge", records_merge },
        { "find", records_find },
        { "index", records_index },
        { "lookup", records_lookup },
        { "get", records_get },
        { "key", records_key },
        { "count", records_count },
        { "ordered", records_ordered },
        { "memory", records_memory },
        { NULL, NULL },
    };
    marketo_new_class(L, RECORDS_MT, records_close, records_tostring, meta, methods, "records",
                      records_new);
}
