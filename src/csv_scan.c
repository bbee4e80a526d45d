/* csv_scan.c - the one state machine over a buffered read that finds CSV
 * records (RFC 4180 quoting, LF or CRLF, UTF-8 BOM) and checks them: quotes,
 * field count, UTF-8, NUL bytes, row size. The reader, planner and mapper all
 * call csv_scan_next, so the rules live here only. No Lua in this file. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "grow.h"

enum { C_PLAIN = 0, C_DELIM, C_QUOTE, C_LF, C_CR, C_NUL, C_HIGH };
/* What skip_data reports besides a class. */
enum { C_END = -1, C_RETURN = -2 };

/* What the field scanners report. */
enum { R_FIELD, R_RECORD, R_FAIL, R_IO, R_NOMEM };

int csv_scan_init(csv_scan *s, csv_read_fn read, void *ctx, int delim,
                  size_t chunk, size_t max_row, int lenient)
{
    int c;

    memset(s, 0, sizeof *s);
    s->read = read;
    s->ctx = ctx;
    s->delim = (unsigned char)delim;
    s->lenient = lenient != 0;
    s->chunk = chunk;
    s->max_row = max_row;
    s->line = 1;
    s->extra_off = -1;
    s->cap = 2 * chunk;
    s->fcap = 256;
    s->fmax = 16;
    s->buf = malloc(s->cap);
    s->fbuf = malloc(s->fcap);
    s->fend = malloc((size_t)s->fmax * sizeof *s->fend);
    s->fquoted = malloc((size_t)s->fmax);
    if (!s->buf || !s->fbuf || !s->fend || !s->fquoted) {
        csv_scan_free(s);
        return -1;
    }
    for (c = 0x80; c < 0x100; c++)
        s->ucls[c] = s->qcls[c] = C_HIGH;
    s->ucls[0] = s->qcls[0] = C_NUL;
    s->ucls['\n'] = s->qcls['\n'] = C_LF;
    s->ucls['"'] = s->qcls['"'] = C_QUOTE;
    s->ucls['\r'] = C_CR;
    s->ucls[s->delim] = C_DELIM;
    return 0;
}

void csv_scan_free(csv_scan *s)
{
    free(s->buf);
    free(s->fbuf);
    free(s->fend);
    free(s->fquoted);
    s->buf = NULL;
    s->fbuf = NULL;
    s->fend = NULL;
    s->fquoted = NULL;
}

const char *csv_err_code(int err)
{
    switch (err) {
    case CSV_E_UNBALANCED: return "CSV_UNBALANCED_QUOTE";
    case CSV_E_STRAY: return "CSV_STRAY_QUOTE";
    case CSV_E_FIELDS: return "CSV_FIELD_COUNT";
    case CSV_E_UTF8: return "CSV_INVALID_UTF8";
    case CSV_E_NUL: return "CSV_NUL_BYTE";
    case CSV_E_TOO_LARGE: return "CSV_ROW_TOO_LARGE";
    default: return "CSV_ERROR";
    }
}

/* Reads until `need` bytes are buffered at pos or the source ends. Keeps
 * the current record whole (the reader hands it out raw for rejects) unless
 * it is being discarded. 0, -1 on I/O error, -2 when the record outgrew
 * max_row (checked before growing, so the buffer stays bounded). */
int csv_scan_fill(csv_scan *s, size_t need)
{
    while (s->len - s->pos < need && !s->eof) {
        size_t keep;
        ssize_t n;

        if (!s->discard && (long long)s->pos + s->base - s->rec_off > (long long)s->max_row)
            return -2;
        keep = s->discard ? s->pos : (size_t)(s->rec_off - s->base);
        if (keep > 0) {
            memmove(s->buf, s->buf + keep, s->len - keep);
            s->len -= keep;
            s->pos -= keep;
            s->base += (long long)keep;
        }
        if (s->cap - s->len < s->chunk) {
            unsigned char *b = marketo_grow(s->buf, &s->cap, s->len + s->chunk, 1);
            if (b == NULL) {
                s->io_errno = ENOMEM;
                return -1;
            }
            s->buf = b;
        }
        n = s->read(s->ctx, s->buf + s->len, s->cap - s->len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s->io_errno = errno;
            return -1;
        }
        if (n == 0)
            s->eof = 1;
        s->len += (size_t)n;
    }
    return 0;
}

static long long column_at(const csv_scan *s, long long off, long long line_start)
{
    long long col = 1, i;

    if (s->discard || line_start < s->base)
        return 1;
    for (i = line_start - s->base; i < off - s->base && i < (long long)s->len; i++)
        col += (s->buf[i] & 0xC0) != 0x80;
    return col;
}

static void too_large(csv_scan *s);

/* Records the first problem of the record, at file offset `off`. */
static void bad(csv_scan *s, int err, long long off, long long line, long long line_start,
                const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

static void bad(csv_scan *s, int err, long long off, long long line, long long line_start,
                const char *fmt, ...)
{
    va_list ap;

    if (s->err != CSV_OK)
        return;
    if (err != CSV_E_TOO_LARGE
        && s->base + (long long)s->pos - s->rec_off > (long long)s->max_row) {
        /* past max_row whatever else is wrong: say so, as a smaller buffer
         * would have (fill checks the size), so the answer never depends on
         * how the input arrived */
        too_large(s);
        return;
    }
    s->err = err;
    s->err_field = s->nf + 1;
    s->err_line = line;
    s->err_col = column_at(s, off, line_start);
    va_start(ap, fmt);
    vsnprintf(s->err_detail, sizeof s->err_detail, fmt, ap);
    va_end(ap);
}

static void too_large(csv_scan *s)
{
    if (s->q_off >= 0)
        bad(s, CSV_E_TOO_LARGE, s->rec_off, s->rec_line, s->rec_off,
            "row is over the limit of %zu bytes and still inside the quoted field "
            "opened at line %lld column %lld; check for an unbalanced quote, or raise max_row",
            s->max_row, s->q_line, column_at(s, s->q_off, s->q_line_start));
    else
        bad(s, CSV_E_TOO_LARGE, s->rec_off, s->rec_line, s->rec_off,
            "row is over the limit of %zu bytes; raise max_row or check the file",
            s->max_row);
    s->discard = 1;
}

/* fill() for the field scanners: 0 to go on, or an R_ code to return. */
static int more(csv_scan *s, size_t need)
{
    int r = csv_scan_fill(s, need);

    if (r == -1)
        return s->io_errno == ENOMEM ? R_NOMEM : R_IO;
    if (r == -2) {
        too_large(s);
        if (!s->lenient)
            return R_FAIL;
        return csv_scan_fill(s, need) == 0 ? 0 : (s->io_errno == ENOMEM ? R_NOMEM : R_IO);
    }
    return 0;
}

/* Room for n bytes of field data: 0, or -1 out of memory. */
static int fields_room(csv_scan *s, size_t n)
{
    char *b = marketo_grow(s->fbuf, &s->fcap, n, 1);

    if (b == NULL)
        return -1;
    s->fbuf = b;
    return 0;
}

static int append(csv_scan *s, const unsigned char *p, size_t n)
{
    if (fields_room(s, s->flen + n) != 0)
        return -1;
    memcpy(s->fbuf + s->flen, p, n);
    s->flen += n;
    return 0;
}

/* Keeps n bytes of field data when capturing and the record is still good:
 * 0, or -1 out of memory. */
static int capture(csv_scan *s, int cap, const unsigned char *p, size_t n)
{
    return cap && n > 0 && s->err == CSV_OK ? append(s, p, n) : 0;
}

static void end_line(csv_scan *s)
{
    s->prev_line_start = s->line_start;
    s->line++;
    s->line_start = s->base + (long long)s->pos;
}

/* A byte >= 0x80 at pos: checks one UTF-8 sequence and captures it. */
static int high_byte(csv_scan *s, int cap)
{
    size_t k;
    int r;

    if (s->len - s->pos < 4 && (r = more(s, 4)) != 0)
        return r;
    k = csv_utf8_seq(s->buf + s->pos, s->len - s->pos);
    if (k == 0) {
        bad(s, CSV_E_UTF8, s->base + (long long)s->pos, s->line, s->line_start,
            "invalid UTF-8 (byte 0x%02X) in field %lld; convert the file to UTF-8 "
            "(iconv -f latin1 -t utf-8) or pass lenient mode to reject the row",
            s->buf[s->pos], (long long)s->nf + 1);
        if (!s->lenient)
            return R_FAIL;
        k = 1;
    }
    if (capture(s, cap, s->buf + s->pos, k) != 0)
        return R_NOMEM;
    s->pos += k;
    return -1;
}

static int nul_byte(csv_scan *s)
{
    bad(s, CSV_E_NUL, s->base + (long long)s->pos, s->line, s->line_start,
        "NUL byte in field %d; remove NUL bytes (tr -d '\\000') or pass lenient mode "
        "to reject the row", s->nf + 1);
    if (!s->lenient)
        return R_FAIL;
    s->pos++;
    return -1;
}

/* Moves pos past field data, capturing it and reading more as it goes:
 * bytes of class 0 in cls, UTF-8 sequences, and what lenient mode lets pass.
 * The class of the byte at pos then, C_END where the source ends, or
 * C_RETURN with *r the R_ code for the scanner to return. */
static int skip_data(csv_scan *s, int cap, const unsigned char *cls, int *r)
{
    for (;;) {
        size_t i = s->pos, st = i;
        int c;

        while (i < s->len && !cls[s->buf[i]])
            i++;
        if (capture(s, cap, s->buf + st, i - st) != 0) {
            *r = R_NOMEM;
            return C_RETURN;
        }
        s->pos = i;
        if (i >= s->len) {
            if ((*r = more(s, 1)) != 0)
                return C_RETURN;
            if (s->pos >= s->len)
                return C_END;
            continue;
        }
        if ((c = cls[s->buf[i]]) != C_NUL && c != C_HIGH)
            return c;
        if ((*r = c == C_NUL ? nul_byte(s) : high_byte(s, cap)) >= 0)
            return C_RETURN;
    }
}

/* The line end of term_len bytes (1 LF, 2 CRLF) at pos ends the record. */
static int end_record(csv_scan *s, int term_len)
{
    s->crlf |= term_len == 2;
    s->term_len = term_len;
    s->pos += (size_t)term_len;
    end_line(s);
    return R_RECORD;
}

static int scan_unquoted(csv_scan *s, int cap)
{
    for (;;) {
        int r, c = skip_data(s, cap, s->ucls, &r);

        switch (c) {
        case C_RETURN:
            return r;
        case C_END:
            return R_RECORD; /* the source ends the record */
        case C_DELIM:
            s->pos++;
            return R_FIELD;
        case C_LF:
            return end_record(s, 1);
        case C_CR:
            if (s->len - s->pos < 2 && (r = more(s, 2)) != 0)
                return r;
            if (s->len - s->pos >= 2 && s->buf[s->pos + 1] == '\n')
                return end_record(s, 2);
            /* a lone CR is data; the writer quotes it */
            s->rec_cr = 1;
            if (capture(s, cap, s->buf + s->pos, 1) != 0)
                return R_NOMEM;
            s->pos++;
            break;
        case C_QUOTE:
            bad(s, CSV_E_STRAY, s->base + (long long)s->pos, s->line, s->line_start,
                "quote inside unquoted field %d; quote the whole field and double the quote "
                "(\"\"), or pass lenient mode to reject the row", s->nf + 1);
            if (!s->lenient)
                return R_FAIL;
            s->pos++;
            break;
        }
    }
}

/* After a closing quote only a delimiter, a line end or the end may follow. */
static int after_quote(csv_scan *s, int cap)
{
    int r;
    unsigned char c;

    if (s->len - s->pos < 2 && (r = more(s, 2)) != 0)
        return r;
    if (s->pos >= s->len)
        return R_RECORD;
    c = s->buf[s->pos];
    if (c == s->delim) {
        s->pos++;
        return R_FIELD;
    }
    if (c == '\n' || (c == '\r' && s->len - s->pos >= 2 && s->buf[s->pos + 1] == '\n'))
        return end_record(s, c == '\r' ? 2 : 1);
    bad(s, CSV_E_STRAY, s->base + (long long)s->pos, s->line, s->line_start,
        "text after the closing quote of field %d; quote the whole field and double inner "
        "quotes (\"\"), or pass lenient mode to reject the row", s->nf + 1);
    if (!s->lenient)
        return R_FAIL;
    return scan_unquoted(s, cap);
}

static int scan_quoted(csv_scan *s, int cap)
{
    s->q_off = s->base + (long long)s->pos;
    s->q_line = s->line;
    s->q_line_start = s->line_start;
    s->pos++;
    for (;;) {
        int r, c = skip_data(s, cap, s->qcls, &r);

        switch (c) {
        case C_RETURN:
            return r;
        case C_END:
            bad(s, CSV_E_UNBALANCED, s->q_off, s->q_line, s->q_line_start,
                "unbalanced quote in field %d (the file ends inside it); close the quote "
                "or pass lenient mode to reject the row", s->nf + 1);
            return s->lenient ? R_RECORD : R_FAIL;
        case C_QUOTE:
            if (s->len - s->pos < 2 && (r = more(s, 2)) != 0)
                return r;
            s->pos++;
            if (s->pos < s->len && s->buf[s->pos] == '"') {
                if (capture(s, cap, s->buf + s->pos, 1) != 0)
                    return R_NOMEM;
                s->pos++;
                break;
            }
            s->q_off = -1;
            return after_quote(s, cap);
        case C_LF:
            if (capture(s, cap, s->buf + s->pos, 1) != 0)
                return R_NOMEM;
            s->pos++;
            end_line(s);
            break;
        }
    }
}

static int add_field(csv_scan *s, int quoted)
{
    if (s->nf == s->fmax) {
        int fmax = s->fmax * 2;
        size_t *fend = realloc(s->fend, (size_t)fmax * sizeof *fend);
        unsigned char *fq;
        if (fend == NULL)
            return -1;
        s->fend = fend;
        if ((fq = realloc(s->fquoted, (size_t)fmax)) == NULL)
            return -1;
        s->fquoted = fq;
        s->fmax = fmax;
    }
    s->fend[s->nf] = s->flen;
    s->fquoted[s->nf] = (unsigned char)quoted;
    s->nf++;
    return 0;
}

/* Captures the fields of a record csv_scan_fast found clean: p holds its n
 * bytes without the line end. Quotes are known to be balanced and placed
 * right, so only unescaping is left. Fields are short: a byte loop beats a
 * memchr call per field, and the room is made once (unescaped fields never
 * take more bytes than the record). 0, or -1 out of memory. */
int csv_scan_split(csv_scan *s, const unsigned char *p, size_t n)
{
    const unsigned char *e = p + n;
    unsigned char d = s->delim;
    char *o;

    s->nf = 0;
    s->flen = 0;
    s->rec_cr = memchr(p, '\r', n) != NULL; /* cautious: CR in quotes counts too */
    if (fields_room(s, n) != 0)
        return -1;
    o = s->fbuf;
    for (;;) {
        int quoted = p < e && *p == '"';
        if (quoted) {
            for (p++;;) {
                const unsigned char *q = memchr(p, '"', (size_t)(e - p));
                memcpy(o, p, (size_t)(q - p));
                o += q - p;
                p = q + 1;
                if (p >= e || *p != '"')
                    break;
                *o++ = '"'; /* a doubled quote */
                p++;
            }
        } else {
            while (p < e && *p != d)
                *o++ = (char)*p++;
        }
        s->flen = (size_t)(o - s->fbuf);
        if (add_field(s, quoted) != 0)
            return -1;
        if (p >= e)
            return 0;
        p++; /* the delimiter */
    }
}

/* Skips blank lines while the scan is before file offset stop: -1 if it is
 * then at stop or past it, CSV_ROW if a record starts at pos, CSV_END, or
 * CSV_IOERR. */
static int skip_blank(csv_scan *s, long long stop)
{
    for (;;) {
        s->rec_off = s->base + (long long)s->pos; /* fill() keeps from here */
        if (s->rec_off >= stop)
            return -1;
        if (csv_scan_fill(s, 2) != 0)
            return CSV_IOERR;
        if (s->pos >= s->len)
            return CSV_END;
        if (s->buf[s->pos] == '\n')
            s->pos++;
        else if (s->buf[s->pos] == '\r' && s->len - s->pos >= 2 && s->buf[s->pos + 1] == '\n')
            s->pos += 2;
        else
            return CSV_ROW;
        end_line(s);
        s->blank++;
    }
}

/* Skips blank lines and, before the first record, a UTF-8 BOM. 0 if a record
 * starts at pos, CSV_END, or an error status. */
static int start_record(csv_scan *s)
{
    s->rec_off = s->base + (long long)s->pos; /* fill() keeps from here */
    if (!s->started) {
        if (csv_scan_fill(s, 3) != 0)
            return CSV_IOERR;
        s->started = 1;
        if (s->len >= 3 && memcmp(s->buf, "\xEF\xBB\xBF", 3) == 0) {
            s->pos = 3;
            s->bom = 1;
            s->line_start = 3;
        }
    }
    return skip_blank(s, LLONG_MAX);
}

int csv_scan_skip_blank(csv_scan *s, long long stop)
{
    return skip_blank(s, stop) < 0; /* an end or an error: csv_scan_next reports it */
}

static void check_record(csv_scan *s)
{
    if (s->expect > 0 && s->nf > s->expect)
        bad(s, CSV_E_FIELDS, s->extra_off, s->extra_line, s->extra_line_start,
            "row has %d fields, the header has %d; quote values that contain the "
            "delimiter, or pass lenient mode to reject the row", s->nf, s->expect);
    else if (s->expect > 0 && s->nf < s->expect)
        bad(s, CSV_E_FIELDS, s->rec_end - s->term_len, s->rec_last_line,
            s->term_len ? s->prev_line_start : s->line_start,
            "row has %d fields, the header has %d; fill the missing fields, or pass "
            "lenient mode to reject the row", s->nf, s->expect);
    if (s->rec_end - s->rec_off > (long long)s->max_row)
        too_large(s);
}

/* Finds the next record. CSV_ROW: fields captured (if asked) and rec_* set.
 * CSV_BAD: err_* say why; in lenient mode pos is past the record. */
int csv_scan_next(csv_scan *s, int capture)
{
    int r;

    s->err = CSV_OK;
    s->discard = 0;
    s->nf = 0;
    s->flen = 0;
    s->extra_off = -1;
    s->q_off = -1;
    s->term_len = 0;
    s->rec_cr = 0;
    if ((r = start_record(s)) != 0)
        return r;
    s->rec_line = s->line;
    do {
        int quoted;

        if (s->pos >= s->len && (r = more(s, 1)) != 0)
            return r == R_FAIL ? CSV_BAD : r == R_IO ? CSV_IOERR : CSV_NOMEM;
        quoted = s->pos < s->len && s->buf[s->pos] == '"';
        r = quoted ? scan_quoted(s, capture) : scan_unquoted(s, capture);
        if (r == R_IO)
            return CSV_IOERR;
        if (r == R_NOMEM || add_field(s, quoted) != 0)
            return CSV_NOMEM;
        if (r == R_FAIL)
            return CSV_BAD;
        if (r == R_FIELD && s->nf == s->expect) {
            /* remember where the first extra field starts, to point at it */
            s->extra_off = s->base + (long long)s->pos;
            s->extra_line = s->line;
            s->extra_line_start = s->line_start;
        }
    } while (r == R_FIELD);
    s->rec_end = s->base + (long long)s->pos;
    s->rec_last_line = s->term_len ? s->line - 1 : s->line;
    check_record(s);
    return s->err != CSV_OK ? CSV_BAD : CSV_ROW;
}

int csv_needs_quote(const char *p, size_t n, int delim)
{
    size_t i;

    if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        return 1; /* else, first in a file, a reader would strip it as a BOM */
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\n' || c == '\r' || c == (unsigned char)delim)
            return 1;
    }
    return 0;
}

size_t csv_encode_field(char *dst, const char *p, size_t n, int quote)
{
    size_t i, k = 0;

    if (!quote) {
        memcpy(dst, p, n);
        return n;
    }
    dst[k++] = '"';
    for (i = 0; i < n; i++) {
        if (p[i] == '"')
            dst[k++] = '"';
        dst[k++] = p[i];
    }
    dst[k++] = '"';
    return k;
}
