/* csv.h - the CSV engine shared by csv_*.c. One scanner (csv_scan.c) holds
 * every quoting rule; the reader, planner and mapper drive it, and the writer
 * quotes with csv_encode_field from the same file, so a rule changes in one
 * place. csv_scan.c needs no Lua, which lets the fuzz harness link it alone. */
#ifndef MARKETO_CSV_H
#define MARKETO_CSV_H

#include <stddef.h>
#include <sys/types.h>

/* What csv_scan_next returns. */
enum { CSV_ROW = 0, CSV_END, CSV_BAD, CSV_IOERR, CSV_NOMEM };

/* Why a record is bad (csv_scan.err). */
enum {
    CSV_OK = 0, CSV_E_UNBALANCED, CSV_E_STRAY, CSV_E_FIELDS, CSV_E_UTF8,
    CSV_E_NUL, CSV_E_TOO_LARGE
};

#define CSV_CHUNK (256 * 1024)

typedef ssize_t (*csv_read_fn)(void *ctx, void *buf, size_t n);

typedef struct csv_scan {
    csv_read_fn read;          /* the source: read(2) on an fd, or memory */
    void *ctx;
    unsigned char *buf;        /* buf[pos..len) is unread; the current record
                                * starts at rec_off - base and is kept whole */
    size_t cap, len, pos, chunk;
    long long base;            /* file offset of buf[0] */
    int eof, io_errno, started;
    unsigned char delim, lenient;
    unsigned char ucls[256];   /* byte classes outside quotes */
    unsigned char qcls[256];   /* byte classes inside quotes */
    size_t max_row;            /* bytes, terminator included */
    int expect;                /* fields per record; 0 = any */
    long long line;            /* physical line at pos (1-based) */
    long long line_start;      /* file offset where that line starts */
    int bom, crlf;
    long long blank;           /* blank lines skipped */

    /* The last record. */
    long long rec_off, rec_end, rec_line, rec_last_line;
    char *fbuf;                /* unquoted field bytes, back to back */
    size_t fcap, flen;
    size_t *fend;              /* field i is fbuf[i ? fend[i-1] : 0 .. fend[i]) */
    unsigned char *fquoted;    /* 1 if field i was quoted in the source */
    int nf, fmax;
    long long extra_off;       /* where field expect+1 starts, -1 if none */
    long long extra_line, extra_line_start;
    long long prev_line_start; /* start of the line before `line` */
    int term_len;              /* bytes of the record's line end (0 at EOF) */
    int rec_cr;                /* an unquoted field holds a lone CR */

    /* Why the last record is bad (first problem only). */
    int err, err_field, discard;
    long long err_line, err_col;
    char err_detail[256];
    long long q_off, q_line, q_line_start; /* the quote that opened the field */
} csv_scan;

typedef struct csv_rec {
    long long off, end, line; /* bytes [off, end) of the file; start line */
} csv_rec;

int csv_scan_init(csv_scan *s, csv_read_fn read, void *ctx, int delim,
                  size_t chunk, size_t max_row, int lenient);
void csv_scan_free(csv_scan *s);
int csv_scan_next(csv_scan *s, int capture);
/* Up to cap clean records without capture, fast (csv_fast.c); 0 when the
 * next record needs csv_scan_next. Only after csv_scan_next read one. */
int csv_scan_fast(csv_scan *s, csv_rec *out, int cap);
/* csv_scan_fast that stops before a record (or a blank line) starting at
 * file offset `stop` or after: the scan is then at the first place between
 * records at or past stop, if the clean records reach it. */
int csv_scan_fast_until(csv_scan *s, csv_rec *out, int cap, long long stop);
/* Picks csv_scan_fast's code for this CPU; call it before threads do. */
void csv_fast_init(void);
/* Skips blank lines, as csv_scan_next would, while the scan is before stop
 * (started only): 1 if it is then at stop or past it, 0 if a record (or the
 * end, or an error for csv_scan_next to report) comes first. */
int csv_scan_skip_blank(csv_scan *s, long long stop);
/* Puts the scan between two records at file offset off, on physical line
 * `line` (a record ended, or a line feed, just before off). Buffered bytes
 * are kept if off is among them (0); else they are dropped (1), and the
 * caller must make its read function go on from off. */
int csv_scan_seek(csv_scan *s, long long off, long long line);
int csv_scan_fill(csv_scan *s, size_t need);
int csv_scan_split(csv_scan *s, const unsigned char *p, size_t n);
const char *csv_err_code(int err);

static inline const char *csv_field(const csv_scan *s, int i, size_t *len)
{
    size_t from = i > 0 ? s->fend[i - 1] : 0;
    *len = s->fend[i] - from;
    return s->fbuf + from;
}

/* Length of the valid UTF-8 sequence at p (n bytes available), 0 if none. */
static inline size_t csv_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];

    if (c < 0xC2)
        return 0; /* continuation byte, or an overlong 2-byte lead */
    if (c < 0xE0)
        return n >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))
            return 0; /* overlong, or a UTF-16 surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80
            || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90))
            return 0; /* overlong, or above U+10FFFF */
        return 4;
    }
    return 0;
}

/* Whether a value must be quoted to survive a round trip: it holds the
 * delimiter, a quote, CR or LF, or starts with U+FEFF (a BOM). */
int csv_needs_quote(const char *p, size_t n, int delim);
/* Writes the field to dst (room for 2n+2 bytes) quoted if asked; returns
 * the length written. */
size_t csv_encode_field(char *dst, const char *p, size_t n, int quote);

#endif
