/* csv_fast.c - the fast path of the planner and the reader. csv_scan_fast
 * finds clean records 64 bytes at a time, with bit masks (SSE2 where the
 * compiler has it): quote parity by prefix XOR, record ends are line feeds
 * outside quotes, fields are delimiters outside quotes plus one. It decides nothing on its own: a record that is not
 * plainly well-formed (a quote out of place, a NUL, a byte >= 0x80 that is
 * not valid UTF-8, a wrong field count, over max_row, or near the end of the
 * input) is left to csv_scan_next, so every rule and every error message
 * stays in csv_scan.c. fuzz/csv_fuzz.c checks that both agree on all input.
 * For the parallel planner: csv_scan_fast_until stops at a given offset, and
 * csv_scan_seek puts a scan between two records anywhere in the file. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define CSV_AVX2 1 /* a second copy for AVX2 + POPCNT, chosen at run time */
#define INLINE inline __attribute__((always_inline))
#else
#define CSV_AVX2 0
#define INLINE inline
#endif

#include "csv.h"

#define FAST_MIN 8192 /* bytes to have buffered before a run; little to move */
#define LOOKAHEAD 68         /* a block, and what a UTF-8 sequence or a
                              * closing quote at its end may look at */

typedef struct masks {
    uint64_t q, n, d, r, z, h; /* quote, LF, delimiter, CR, NUL, >= 0x80 */
} masks;

#if CSV_AVX2
__attribute__((target("avx2")))
static INLINE uint64_t eq32(__m256i x, char c)
{
    return (uint64_t)(unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, _mm256_set1_epi8(c)));
}

__attribute__((target("avx2")))
static inline void classify_avx2(const unsigned char *p, int delim, masks *m)
{
    __m256i lo, hi;

    memcpy(&lo, p, sizeof lo);
    memcpy(&hi, p + 32, sizeof hi);
    m->q = eq32(lo, '"') | eq32(hi, '"') << 32;
    m->n = eq32(lo, '\n') | eq32(hi, '\n') << 32;
    m->d = eq32(lo, (char)delim) | eq32(hi, (char)delim) << 32;
    m->r = eq32(lo, '\r') | eq32(hi, '\r') << 32; /* a branch on quotes cost more */
    m->z = eq32(lo, 0) | eq32(hi, 0) << 32;
    m->h = (uint64_t)(unsigned)_mm256_movemask_epi8(lo)
           | (uint64_t)(unsigned)_mm256_movemask_epi8(hi) << 32;
}

/* prefix_xor in one carry-less multiply by all ones */
__attribute__((target("pclmul,sse2")))
static inline uint64_t prefix_xor_clmul(uint64_t x)
{
    __m128i v = _mm_clmulepi64_si128(_mm_set_epi64x(0, (long long)x), _mm_set1_epi8(-1), 0);
    return (uint64_t)_mm_cvtsi128_si64(v);
}
#endif

#if defined(__SSE2__)
static INLINE uint64_t eq16(__m128i x, char c)
{
    return (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(c)));
}

static INLINE void classify(const unsigned char *p, int delim, masks *m)
{
    int i;

    memset(m, 0, sizeof *m);
    for (i = 0; i < 4; i++) {
        __m128i x;
        memcpy(&x, p + 16 * i, sizeof x);
        m->q |= eq16(x, '"') << (16 * i);
        m->n |= eq16(x, '\n') << (16 * i);
        m->d |= eq16(x, (char)delim) << (16 * i);
        m->r |= eq16(x, '\r') << (16 * i);
        m->z |= eq16(x, 0) << (16 * i);
        m->h |= (uint64_t)(unsigned)_mm_movemask_epi8(x) << (16 * i);
    }
}
#else
static INLINE void classify(const unsigned char *p, int delim, masks *m)
{
    int i;

    memset(m, 0, sizeof *m);
    for (i = 0; i < 64; i++) {
        uint64_t bit = (uint64_t)1 << i;
        unsigned char c = p[i];
        if (c == '"') m->q |= bit;
        else if (c == '\n') m->n |= bit;
        else if (c == (unsigned char)delim) m->d |= bit;
        else if (c == '\r') m->r |= bit;
        else if (c == 0) m->z |= bit;
        else if (c >= 0x80) m->h |= bit;
    }
}
#endif

/* Bit i set when an odd number of bits are set at 0..i: inside quotes. */
static INLINE uint64_t prefix_xor(uint64_t x)
{
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    return x;
}

static INLINE int ctz64(uint64_t x)
{
#if defined(__GNUC__)
    return __builtin_ctzll(x);
#else
    int n = 0;
    while (!(x & 1)) { x >>= 1; n++; }
    return n;
#endif
}

static INLINE int popcount64(uint64_t x)
{
#if defined(__GNUC__)
    return __builtin_popcountll(x);
#else
    int n = 0;
    for (; x; x &= x - 1) n++;
    return n;
#endif
}

/* Checks the UTF-8 sequences that start in the block at p (high bytes in h);
 * *skip is how many continuation bytes at its start belong to the previous
 * block, and becomes the same for the next. 0 if a sequence is invalid. */
static INLINE int utf8_ok(const unsigned char *p, uint64_t h, int *skip)
{
    h &= *skip >= 64 ? 0 : ~(((uint64_t)1 << *skip) - 1);
    *skip = 0;
    while (h) {
        int i = ctz64(h);
        size_t k = csv_utf8_seq(p + i, (size_t)LOOKAHEAD - (size_t)i);
        if (k == 0)
            return 0;
        if (i + (int)k > 64)
            *skip = i + (int)k - 64;
        h &= i + (int)k >= 64 ? 0 : ~(((uint64_t)1 << (i + (int)k)) - 1);
    }
    return 1;
}

/* The byte after a closing quote may be a delimiter, a LF, a quote (a doubled
 * one) or a CR before a LF; c is the byte at 64, c2 the one after. */
static INLINE uint64_t can_follow(const masks *m, int delim, unsigned char c, unsigned char c2)
{
    uint64_t next_lf = (m->n >> 1) | ((uint64_t)(c == '\n') << 63);
    uint64_t crlf = m->r & next_lf;
    uint64_t last = c == (unsigned char)delim || c == '\n' || c == '"'
                    || (c == '\r' && c2 == '\n');

    return ((m->d | m->n | m->q | crlf) >> 1) | (last << 63);
}

/* The scan in progress, in locals: stores to out[] could otherwise alias
 * the scanner's fields and force them to be reloaded for every record. */
typedef struct run {
    const unsigned char *buf;
    long long base, blank;
    size_t max_row;
    int expect, crlf;
    size_t start;        /* where the record in progress starts (index) */
    long long start_line;
    long long stop;      /* no record (nor blank line) starting here or after */
    int n;
} run;

/* Emits the records that end in one classified block at b; 0 to go on,
 * -1 when a record needs the full scanner (run->start is that record). */
static INLINE int block_records(run *rn, size_t b, const masks *m, uint64_t inside,
                                long long line, int *dcount, csv_rec *out, int cap)
{
    uint64_t ends = m->n & ~inside, dbits = m->d & ~inside;

    while (ends) {
        int k = ctz64(ends);
        uint64_t low = ends ^ (ends - 1); /* bits up to k */
        size_t end = b + (size_t)k + 1;
        long long next_line = line + popcount64(m->n & low);
        int fields = *dcount + popcount64(dbits & low) + 1;

        if (rn->base + (long long)rn->start >= rn->stop)
            return -1;
        ends &= ends - 1;
        dbits &= ~low;
        *dcount = 0;
        if (end - rn->start == 1 || (end - rn->start == 2 && rn->buf[rn->start] == '\r')) {
            rn->blank++; /* csv_scan_next skips blank lines the same way */
        } else {
            if ((rn->expect > 0 && fields != rn->expect) || end - rn->start > rn->max_row)
                return -1;
            out[rn->n].off = rn->base + (long long)rn->start;
            out[rn->n].end = rn->base + (long long)end;
            out[rn->n].line = rn->start_line;
            rn->crlf |= rn->buf[end - 2] == '\r';
            rn->n++;
        }
        rn->start = end;
        rn->start_line = next_line;
        if (rn->n == cap)
            return -1;
    }
    *dcount += popcount64(dbits);
    return 0;
}

static INLINE int fast_run(csv_scan *s, csv_rec *out, int cap, long long stop, int avx2)
{
    uint64_t in_quotes = 0, after_sep = 1; /* a record starts after a LF */
    int dcount = 0, skip = 0, delim = s->delim;
    long long line;
    size_t b, len;
    run rn;

    if (!s->started || s->err != CSV_OK)
        return 0;
    if (s->len - s->pos < FAST_MIN && !s->eof) {
        s->rec_off = s->base + (long long)s->pos; /* fill keeps from here */
        if (csv_scan_fill(s, FAST_MIN) != 0)
            return 0; /* csv_scan_next meets the same error and reports it */
    }
    rn.buf = s->buf;
    rn.base = s->base;
    rn.blank = 0;
    rn.max_row = s->max_row;
    rn.expect = s->expect;
    rn.crlf = 0;
    rn.start = b = s->pos;
    rn.start_line = line = s->line;
    rn.stop = stop;
    rn.n = 0;
    len = s->len;
    while (b + LOOKAHEAD <= len) {
        const unsigned char *p = rn.buf + b;
        masks m;
        uint64_t inside, sep;

#if CSV_AVX2
        if (avx2)
            classify_avx2(p, delim, &m);
        else
#endif
            classify(p, delim, &m);
#if CSV_AVX2
        if (avx2)
            inside = prefix_xor_clmul(m.q) ^ in_quotes;
        else
#endif
            inside = prefix_xor(m.q) ^ in_quotes;
        sep = m.d | m.n | m.q;
        if (m.z || (m.q & inside & ~((sep << 1) | after_sep))
            || (m.q & ~inside & ~can_follow(&m, delim, p[64], p[65]))
            || (m.h && !utf8_ok(p, m.h, &skip)))
            break;
        if (block_records(&rn, b, &m, inside, line, &dcount, out, cap) != 0)
            break;
        line += popcount64(m.n);
        in_quotes = (uint64_t)0 - (inside >> 63);
        after_sep = sep >> 63;
        b += 64;
    }
    s->blank += rn.blank;
    s->crlf |= rn.crlf;
    s->pos = rn.start;
    s->line = rn.start_line;
    s->line_start = s->base + (long long)rn.start;
    return rn.n;
}

#if CSV_AVX2
__attribute__((target("avx2,popcnt,bmi,pclmul")))
static int fast_avx2(csv_scan *s, csv_rec *out, int cap, long long stop)
{
    return fast_run(s, out, cap, stop, 1);
}

static int avx2 = -1; /* set once by csv_fast_init */
#endif

void csv_fast_init(void)
{
#if CSV_AVX2
    if (avx2 < 0) {
        __builtin_cpu_init();
        avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")
               && __builtin_cpu_supports("pclmul");
    }
#endif
}

int csv_scan_fast_until(csv_scan *s, csv_rec *out, int cap, long long stop)
{
#if CSV_AVX2
    if (avx2 < 0)
        csv_fast_init();
    if (avx2)
        return fast_avx2(s, out, cap, stop);
#endif
    return fast_run(s, out, cap, stop, 0);
}

int csv_scan_fast(csv_scan *s, csv_rec *out, int cap)
{
    return csv_scan_fast_until(s, out, cap, LLONG_MAX);
}

int csv_scan_seek(csv_scan *s, long long off, long long line)
{
    s->line = line;
    s->line_start = off;
    s->rec_off = off;
    s->err = CSV_OK;
    s->discard = 0;
    if (off >= s->base && off <= s->base + (long long)s->len) {
        s->pos = (size_t)(off - s->base);
        return 0;
    }
    s->base = off;
    s->pos = s->len = 0;
    s->eof = 0;
    return 1;
}
