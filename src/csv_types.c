/* csv_types.c - the type checks of a file's values against the instance's
 * schema (marketo.pipeline.checks), in C, with no Lua call per cell: the
 * rules (csv_types.h), which the planner runs as it scans (csv_plan.c and
 * its workers: an unmapped file), and a pass over a reader, for files that
 * are only renamed:
 *
 *   core.csv_check_types(reader, kinds, lengths, max)
 *     kinds[i]: the check of column i ("integer", "number", "boolean", "date",
 *     "datetime", "email", or nil/false: none); lengths[i]: at most that many characters
 *     (UTF-8), or nil.
 *   -> rows, { { line, column, value, what }... } (at most max, file order;
 *      what is "type" or "length")[, { count, line, column, value }: values of
 *      "email" columns that do not look like an email address, a warning]
 *      | nil, msg, code (the reader's failure)
 *
 * The rules are the Lua ones (checks.lua M.TYPES), which the spec
 * csv_types_spec.lua holds both to. A blank cell is fine. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "csv_core.h"
#include "csv_types.h"

#if defined(__GNUC__)
#define INLINE inline __attribute__((always_inline))
#else
#define INLINE inline
#endif

enum { T_NONE = 0, T_INTEGER, T_NUMBER, T_BOOLEAN, T_DATE, T_DATETIME, T_EMAIL };

static const char *const KIND_NAMES[] = { "none", "integer", "number", "boolean", "date",
                                          "datetime", "email", NULL };

static inline int digits(const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

static inline int num2(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

/* YYYY-MM-DD, a day the month has. */
static inline int is_date(const char *p, size_t n)
{
    static const int days[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, m, d;

    if (n != 10 || p[4] != '-' || p[7] != '-' || !digits(p, 4) || !digits(p + 5, 2)
        || !digits(p + 8, 2))
        return 0;
    y = num2(p) * 100 + num2(p + 2);
    m = num2(p + 5);
    d = num2(p + 8);
    if (m < 1 || m > 12 || d < 1 || d > days[m - 1])
        return 0;
    if (m == 2 && d == 29)
        return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    return 1;
}

/* YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm|+hhmm|-...) */
static inline int is_datetime(const char *p, size_t n)
{
    size_t i = 19;

    if (n < 20 || !is_date(p, 10) || p[10] != 'T' || p[13] != ':' || p[16] != ':'
        || !digits(p + 11, 2) || !digits(p + 14, 2) || !digits(p + 17, 2))
        return 0;
    if (num2(p + 11) > 23 || num2(p + 14) > 59 || num2(p + 17) > 60)
        return 0;
    if (p[i] == '.') {
        size_t start = ++i;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
        if (i == start)
            return 0;
    }
    if (n - i == 1)
        return p[i] == 'Z';
    if (p[i] != '+' && p[i] != '-')
        return 0;
    i++;
    if (n - i == 5)
        return digits(p + i, 2) && p[i + 2] == ':' && digits(p + i + 3, 2);
    return n - i == 4 && digits(p + i, 4);
}

static inline int is_integer(const char *p, size_t n)
{
    if (n > 0 && (p[0] == '-' || p[0] == '+')) {
        p++;
        n--;
    }
    return n > 0 && digits(p, n);
}

/* d+[.d*] | .d+ | d+[.d*](e|E)[+-]d+, with a sign in front. */
static inline int is_number(const char *p, size_t n)
{
    size_t i = 0, int_digits = 0, frac_digits = 0;

    if (i < n && (p[i] == '-' || p[i] == '+'))
        i++;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        int_digits++;
    }
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            i++;
            frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return 0;
    if (i == n)
        return 1;
    if (int_digits == 0 || (p[i] != 'e' && p[i] != 'E'))
        return 0;
    i++;
    if (i < n && (p[i] == '-' || p[i] == '+'))
        i++;
    return i < n && digits(p + i, n - i);
}

static inline int is_boolean(const char *p, size_t n)
{
    static const char *const words[] = { "", "1", "no", "yes", "true", "false" };
    char low[5];
    size_t i;

    if (n == 0 || n > 5)
        return 0;
    for (i = 0; i < n; i++) {
        low[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' : p[i]);
        if (low[i] != words[n][i] && !(n == 1 && low[0] == '0'))
            return 0;
    }
    return 1;
}

/* local@domain.tld: one @, no white space, a dot in the domain with text on
 * both sides (Lua: ^[^@%s]+@[^@%s]+%.[^@%s%.]+$). */
static int is_email(const char *p, size_t n)
{
    size_t i, at = n, dot = n;

    for (i = 0; i < n; i++) {
        char c = p[i];
        if (c == ' ' || (c >= '\t' && c <= '\r'))
            return 0;
        if (c == '@') {
            if (at != n)
                return 0;
            at = i;
        } else if (c == '.' && at != n) {
            dot = i;
        }
    }
    return at > 0 && at < n && dot != n && dot > at + 1 && dot + 1 < n;
}

static INLINE int kind_ok(int kind, const char *p, size_t n)
{
    /* tests, not a jump table: each column's kind is the same on every row,
     * which branch prediction learns, and an indirect jump's seldom is */
    if (kind == T_INTEGER)
        return is_integer(p, n);
    if (kind == T_NUMBER)
        return is_number(p, n);
    if (kind == T_BOOLEAN)
        return is_boolean(p, n);
    if (kind == T_DATE)
        return is_date(p, n);
    if (kind == T_DATETIME)
        return is_datetime(p, n);
    return 1; /* none, or an email: a bad one is a warning, checked apart */
}

/* Characters of UTF-8 text: bytes that do not continue a sequence. */
static long long chars(const char *p, size_t n)
{
    long long c = 0;
    size_t i;

    for (i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80)
            c++;
    return c;
}

static void push_failure(lua_State *L, int out, lua_Integer k, const marketo_csv_reader *r,
                         int col, const char *p, size_t n, const char *what)
{
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, r->s.rec_line);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, col + 1);
    lua_setfield(L, -2, "column");
    lua_pushlstring(L, p, n);
    lua_setfield(L, -2, "value");
    lua_pushstring(L, what);
    lua_setfield(L, -2, "what");
    lua_rawseti(L, out, k);
}

static void note_email(csv_email_note *e, long long line, int col, const char *p, size_t n)
{
    if (e->count++ > 0)
        return;
    e->line = line;
    e->column = col + 1;
    e->len = n < sizeof e->value ? n : sizeof e->value;
    memcpy(e->value, p, e->len);
}

void csv_types_merge(csv_email_note *a, const csv_email_note *b, long long dl)
{
    if (b->count == 0)
        return;
    if (a->count == 0) {
        *a = *b;
        a->line += dl;
    } else {
        a->count += b->count;
    }
}

/* The failure of a value of column c, or NULL. */
static INLINE const char *field_failure(const csv_col_check *c, const char *p, size_t n)
{
    if (n == 0)
        return NULL;
    if (!kind_ok(c->kind, p, n))
        return "type";
    if (c->length > 0 && (long long)n > c->length && chars(p, n) > c->length)
        return "length";
    return NULL;
}

int csv_types_failure(const csv_types *t, const csv_scan *s, const char **what)
{
    int i;

    for (i = 0; i <= t->last && i < s->nf; i++) {
        size_t n;
        const char *p;
        if (t->cols[i].kind == T_NONE && t->cols[i].length == 0)
            continue;
        p = csv_field(s, i, &n);
        if ((*what = field_failure(&t->cols[i], p, n)) != NULL)
            return i;
    }
    return -1;
}

/* The emails among the fields of s before column upto that do not look
 * like one, to e. */
static void note_emails(const csv_types *t, const csv_scan *s, long long line, int upto,
                        csv_email_note *e)
{
    int i;

    for (i = 0; i < upto && i < t->ncols && i < s->nf; i++) {
        size_t n;
        const char *p;
        if (t->cols[i].kind != T_EMAIL)
            continue;
        p = csv_field(s, i, &n);
        if (n > 0 && !is_email(p, n))
            note_email(e, line, i, p, n);
    }
}

void csv_types_note(const csv_types *t, const csv_scan *s, long long line, csv_email_note *e)
{
    note_emails(t, s, line, t->ncols, e);
}

/* Checks the captured fields of the reader's current record; pushes the
 * first failure into out (the emails before it noted). 1 if one was found. */
static int check_captured(lua_State *L, int out, lua_Integer k, const marketo_csv_reader *r,
                          const csv_types *t, csv_email_note *e)
{
    const char *what = NULL;
    int col = csv_types_failure(t, &r->s, &what);

    note_emails(t, &r->s, r->s.rec_line, col < 0 ? t->ncols : col + 1, e);
    if (col < 0)
        return 0;
    {
        size_t n;
        const char *p = csv_field(&r->s, col, &n);
        push_failure(L, out, k, r, col, p, n, what);
    }
    return 1;
}

/* ---- the quick look: a record's fields found 64 bytes at a time ---- */

/* Bits of the bytes equal to c, and (with ws) of white space, among the
 * 64 at p. */
#if defined(__SSE2__)
static inline uint64_t eq16(__m128i x, char c)
{
    return (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(c)));
}

static inline void classify(const unsigned char *p, int a, int b, uint64_t *ma, uint64_t *mb)
{
    int i;

    *ma = *mb = 0;
    for (i = 0; i < 4; i++) {
        __m128i x;
        memcpy(&x, p + 16 * i, sizeof x);
        *ma |= eq16(x, (char)a) << (16 * i);
        *mb |= eq16(x, (char)b) << (16 * i);
    }
}

static inline uint64_t white(const unsigned char *p)
{
    uint64_t m = 0;
    int i;

    for (i = 0; i < 4; i++) {
        __m128i x, y;
        memcpy(&x, p + 16 * i, sizeof x);
        y = _mm_sub_epi8(x, _mm_set1_epi8(9)); /* \t..\r: 0..4 */
        m |= ((uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(y,
                _mm_set1_epi8(4)), y)) | eq16(x, ' ')) << (16 * i);
    }
    return m;
}
#else
static inline void classify(const unsigned char *p, int a, int b, uint64_t *ma, uint64_t *mb)
{
    int i;

    *ma = *mb = 0;
    for (i = 0; i < 64; i++) {
        *ma |= (uint64_t)(p[i] == a) << i;
        *mb |= (uint64_t)(p[i] == b) << i;
    }
}

static inline uint64_t white(const unsigned char *p)
{
    uint64_t m = 0;
    int i;

    for (i = 0; i < 64; i++)
        m |= (uint64_t)(p[i] == ' ' || (p[i] >= '\t' && p[i] <= '\r')) << i;
    return m;
}
#endif

/* Bit i set when an odd number of bits of q are set at 0..i: inside quotes. */
static inline uint64_t inside_quotes(uint64_t q)
{
    int k;

    for (k = 1; k < 64; k *= 2)
        q ^= q << k;
    return q;
}

/* The lowest and the highest bit set of x (not 0). */
#if defined(__GNUC__)
#define LOW_BIT(x) __builtin_ctzll(x)
#define HIGH_BIT(x) (63 - __builtin_clzll(x))
#else
static int low_bit(uint64_t x)
{
    int n = 0;

    for (; !(x & 1); x >>= 1)
        n++;
    return n;
}

static int high_bit(uint64_t x)
{
    int n = 63;

    for (; !(x >> 63); x <<= 1)
        n--;
    return n;
}
#define LOW_BIT(x) low_bit(x)
#define HIGH_BIT(x) high_bit(x)
#endif

/* The 64 bytes from p[b], where `room` bytes from p may be read: the bits
 * of those past n are masked off by the callers (and are zeros copied
 * when there is no room to read them). */
static inline const unsigned char *block_at(const char *p, size_t n, size_t room, size_t b,
                                            unsigned char tmp[64])
{
    if (room - b >= 64)
        return (const unsigned char *)p + b;
    memset(tmp, 0, 64);
    memcpy(tmp, p + b, n - b);
    return tmp;
}

/* The bits of the bytes [b, n) of a block at b. */
static inline uint64_t valid_bits(size_t n, size_t b)
{
    return n - b >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << (n - b)) - 1;
}

/* The delimiters outside quotes in the block of p[0..n) at b; *inq: all
 * ones when the block before ended inside quotes. */
static inline uint64_t block_seps(const char *p, size_t n, size_t room, size_t b, int delim,
                                  uint64_t *inq)
{
    unsigned char tmp[64];
    uint64_t d, q, valid = valid_bits(n, b);

    classify(block_at(p, n, room, b, tmp), delim, '"', &d, &q);
    d &= valid;
    q &= valid;
    if (q | *inq) {
        uint64_t inside = inside_quotes(q) ^ *inq;
        *inq = (uint64_t)0 - (inside >> 63);
        d &= ~inside;
    }
    return d;
}

/* is_email of a value of 64 bytes at most, with bit masks. */
static int is_email_64(const char *p, size_t n, size_t room)
{
    unsigned char tmp[64];
    const unsigned char *b = block_at(p, n, room, 0, tmp);
    uint64_t valid = valid_bits(n, 0), at, dot, after;
    int a, last;

    if (white(b) & valid)
        return 0;
    classify(b, '@', '.', &at, &dot);
    at &= valid;
    if (at == 0 || (at & (at - 1)) != 0)
        return 0; /* none, or two */
    a = LOW_BIT(at);
    after = dot & valid & ~((at << 1) - 1); /* the dots after the @ */
    if (a == 0 || after == 0)
        return 0;
    last = HIGH_BIT(after);
    return last > a + 1 && (size_t)last + 1 < n;
}

static int looks_like_email(const char *p, size_t n, size_t room)
{
    return n <= 64 ? is_email_64(p, n, room) : is_email(p, n);
}

/* Whether value v[0..len) of a quoted field passes column c (1), or must be
 * looked at split (0): a doubled quote in it. */
static int quoted_passes(const csv_col_check *c, const char *v, size_t len, size_t room)
{
    const char *q = memchr(v, '"', len);
    long long doubled = 0;

    if (q == NULL)
        return field_failure(c, v, len) == NULL
               && (c->kind != T_EMAIL || looks_like_email(v, len, room));
    if (c->kind != T_NONE)
        return 0; /* no number, date or boolean has a quote (nor an email) */
    while (q != NULL) { /* quotes come in pairs inside a clean field */
        doubled++;
        q = memchr(q + 2, '"', len - (size_t)(q + 2 - v));
    }
    return chars(v, len) - doubled <= c->length;
}

/* Where a record's fields end: its delimiters outside quotes, in order. */
typedef struct seps {
    const char *p;
    size_t n, room, b;  /* the record, what may be read, the block looked at */
    uint64_t left, inq; /* the block's delimiters not yet taken; quoted? */
    int delim;
} seps;

/* The next delimiter outside quotes, or n. */
static inline size_t next_sep(seps *w)
{
    size_t at;

    while (w->left == 0) {
        if (w->b + 64 >= w->n)
            return w->n;
        w->b += 64;
        w->left = block_seps(w->p, w->n, w->room, w->b, w->delim, &w->inq);
    }
    at = w->b + (size_t)LOW_BIT(w->left);
    w->left &= w->left - 1;
    return at;
}

int csv_types_quick(const csv_types *t, const char *p, size_t n, size_t room, int delim)
{
    /* no field is longer than its record: a short one needs only its types */
    const int *list = (long long)n > t->min_length ? t->all : t->kind;
    int j, nl = (long long)n > t->min_length ? t->nall : t->nkind, field = 0;
    size_t start = 0;
    seps w;

    if (nl == 0 || n == 0)
        return 1;
    w.p = p;
    w.n = n;
    w.room = room;
    w.b = 0;
    w.inq = 0;
    w.delim = delim;
    w.left = block_seps(p, n, room, 0, delim, &w.inq);
    for (j = 0; j < nl; j++) {
        const csv_col_check *c = &t->cols[list[j]];
        size_t end;
        const char *v;
        for (; field < list[j]; field++) { /* the fields before it */
            if ((end = next_sep(&w)) >= n)
                return 1; /* a short row: what it lacks goes unchecked */
            start = end + 1;
        }
        end = next_sep(&w);
        v = p + start;
        if (end > start) {
            if (*v == '"') {
                if (!quoted_passes(c, v + 1, end - start - 2, room - start - 1))
                    return 0;
            } else if (field_failure(c, v, end - start) != NULL
                       || (c->kind == T_EMAIL
                           && !looks_like_email(v, end - start, room - start))) {
                return 0; /* checked again, split, for its message or its note */
            }
        }
        if (end >= n)
            return 1;
        start = end + 1;
        field++;
    }
    return 1;
}

csv_types *csv_types_new(lua_State *L, int kinds, int lengths, int ncols)
{
    csv_types *t;
    int i;

    if (ncols < 0)
        ncols = 0;
    t = (csv_types *)marketo_newudata(L, sizeof *t + (sizeof t->cols[0] + 2 * sizeof(int))
                                              * (size_t)ncols);
    t->ncols = ncols;
    t->last = t->last_kind = -1;
    t->min_length = LLONG_MAX;
    t->all = (int *)(void *)&t->cols[ncols + 1];
    t->kind = t->all + ncols;
    t->nall = t->nkind = 0;
    for (i = 0; i < ncols; i++) {
        csv_col_check *c = &t->cols[i];
        lua_rawgeti(L, kinds, i + 1);
        c->kind = T_NONE;
        if (lua_type(L, -1) == LUA_TSTRING)
            c->kind = (unsigned char)luaL_checkoption(L, -1, "none", KIND_NAMES);
        lua_pop(L, 1);
        lua_rawgeti(L, lengths, i + 1);
        c->length = (long long)marketo_tointeger_in(L, -1, 1, LLONG_MAX, 0);
        lua_pop(L, 1);
        if (c->kind != T_NONE || c->length > 0)
            t->all[t->nall++] = t->last = i;
        if (c->kind != T_NONE)
            t->kind[t->nkind++] = t->last_kind = i;
        if (c->length > 0 && c->length < t->min_length)
            t->min_length = c->length;
    }
    return t;
}

int marketo_check_types(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    lua_Integer max, found = 0, rows = 0;
    const csv_types *t;
    csv_email_note email;
    csv_rec recs[1024];
    int i, out;

    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    max = luaL_checkinteger(L, 4);
    if (r->fd < 0)
        return luaL_error(L, "csv_check_types: the reader is closed");
    t = csv_types_new(L, 2, 3, r->s.expect);
    memset(&email, 0, sizeof email);
    lua_newtable(L);
    out = lua_gettop(L);
    while (found < max) {
        csv_scan *s = &r->s;
        int k = r->bi < r->bn ? 0 : csv_scan_fast(s, recs, (int)(sizeof recs / sizeof recs[0]));
        int st;

        /* clean records, straight from the buffer; one that fails is split
         * like any other (csv_scan_split) for its message */
        for (i = 0; i < k && found < max; i++) {
            size_t n;
            const char *p = csv_rec_bytes(s, recs[i].off, recs[i].end, &n);
            rows++;
            r->rows++;
            if (csv_types_quick(t, p, n, csv_rec_room(s, p), s->delim))
                continue;
            if (csv_scan_split(s, (const unsigned char *)p, n) != 0)
                return luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
            s->rec_line = recs[i].line;
            if (check_captured(L, out, found + 1, r, t, &email))
                found++;
        }
        if (k > 0)
            continue;
        st = marketo_csv_reader_next(L, r, 1);
        if (st == CSV_END)
            break;
        if (st != CSV_ROW)
            return 3; /* the reader's failure triple */
        rows++;
        if (check_captured(L, out, found + 1, r, t, &email))
            found++;
    }
    lua_pushinteger(L, rows);
    lua_pushvalue(L, out);
    if (email.count == 0)
        return 2;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, email.count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, email.line);
    lua_setfield(L, -2, "line");
    lua_pushinteger(L, email.column);
    lua_setfield(L, -2, "column");
    lua_pushlstring(L, email.value, email.len);
    lua_setfield(L, -2, "value");
    return 3;
}

/* csv_copy_checked(reader, writer, kinds, lengths) -> rows, failed | nil,
 * msg, code: csv_copy (csv_mapper.c) that also leaves out the rows with a
 * value that fails its check: a part with holes where the plan rejected
 * rows (malformed ones, or with a value that fails) made whole. Rows are
 * written as they are in the source, line ends and all. */
int marketo_copy_checked(lua_State *L)
{
    marketo_csv_reader *r = marketo_csv_check_reader(L, 1);
    marketo_csv_writer *w = marketo_csv_check_writer(L, 2);
    const csv_types *t;
    long long failed = 0;
    csv_rec recs[1024];

    luaL_argcheck(L, r->hdr != NULL && r->bi == r->bn, 1, "a reader with a header");
    luaL_argcheck(L, w->hdr == NULL && w->rows == 0 && w->delim == r->s.delim, 2,
                  "a writer of the same format, with no header and no row yet");
    luaL_checktype(L, 3, LUA_TTABLE);
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_settop(L, 4);
    t = csv_types_new(L, 3, 4, r->s.expect);
    if (marketo_csv_writer_header(L, w, r->hdr, r->hlen) != 0)
        return 3;
    for (;;) {
        csv_scan *s = &r->s;
        int i, st, k = csv_scan_fast(s, recs, 1024);
        const char *what;

        for (i = 0; i <= k; i++) {
            long long off, end, line;
            size_t n;
            const char *p;
            if (i < k) {
                off = recs[i].off, end = recs[i].end, line = recs[i].line;
            } else if (k > 0) {
                break;
            } else {
                if ((st = marketo_csv_reader_next(L, r, 0)) < 0)
                    return 3;
                if (st == CSV_END) {
                    marketo_pushsize(L, r->rows);
                    marketo_pushsize(L, failed);
                    return 2;
                }
                r->rows--; /* counted below */
                off = s->rec_off, end = s->rec_end, line = s->rec_line;
            }
            p = csv_rec_bytes(s, off, end, &n);
            if (!csv_types_quick(t, p, n, csv_rec_room(s, p), s->delim)) {
                if (csv_scan_split(s, (const unsigned char *)p, n) != 0)
                    return luaL_error(L, "%s: out of memory", MARKETO_CSV_READER_MT);
                if (csv_types_failure(t, s, &what) >= 0) {
                    failed++;
                    continue;
                }
            }
            r->rows++;
            if (marketo_csv_writer_as_is(L, w, (const char *)s->buf + (off - s->base),
                                         (size_t)(end - off), line) != 0)
                return 3;
        }
    }
}
