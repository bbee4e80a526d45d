/* csv_core.h - the reader and writer userdata of marketo.core, shared so the
 * planner and the mapper can drive them in C with no Lua call per row. */
#ifndef MARKETO_CSV_CORE_H
#define MARKETO_CSV_CORE_H

#include <stdio.h>

#include "csv.h"
#include "grow.h"

#include "marketo.h"

#define MARKETO_CSV_READER_MT "marketo.csv_reader"
#define MARKETO_CSV_WRITER_MT "marketo.csv_writer"

typedef struct marketo_csv_reader {
    csv_scan s;
    int fd;               /* -1 once closed */
    long long limit;      /* bytes left to read (range()), or -1: to the end */
    char *path;
    int on_reject;        /* registry ref; lenient mode only */
    int names;            /* registry ref to the header names, or LUA_NOREF */
    char *hdr;            /* the header row as in the file, line end included */
    size_t hlen;
    long long hdr_off;
    long long rows, rejected;
    int last_n;           /* fields the last read put in the caller's table */
    csv_rec batch[256];   /* clean records csv_scan_fast found, not yet read */
    int bi, bn;
    char fail[512];       /* a strict failure repeats on every later read */
    char fail_code[32];
} marketo_csv_reader;

typedef struct marketo_csv_part {
    long long bytes, rows, first_line, last_line;
} marketo_csv_part;

typedef struct marketo_csv_writer {
    int fd;               /* the current part, -1 between parts */
    int open;             /* 0 once closed */
    unsigned char delim;
    int crlf;
    long long max_bytes;  /* per part, header included; 0 = no limit */
    char *prefix, *suffix;
    int width;            /* part number width; < 0: one file named prefix */
    char *out;            /* output buffer, CSV_CHUNK bytes */
    size_t olen;
    marketo_buffer row;   /* the row being built */
    int rfields;
    char *hdr;            /* the encoded header, line end included */
    size_t hlen;
    int ncols;            /* header width; 0 without a header */
    marketo_csv_part *parts;
    int nparts;
    size_t pcap;
    int cur_part;         /* the part being written, for messages */
    long long rows;
    int err;              /* errno of a failed write, sticky */
    FILE *lines;          /* the source line of each row written, one a line; or NULL */
} marketo_csv_writer;

marketo_csv_reader *marketo_csv_check_reader(lua_State *L, int idx);
marketo_csv_writer *marketo_csv_check_writer(lua_State *L, int idx);

/* Next good record into r->s (rejects go to on_reject first): CSV_ROW,
 * CSV_END, or -1 with the failure triple pushed. */
int marketo_csv_reader_next(lua_State *L, marketo_csv_reader *r, int capture);

/* Pushes the row of the reader at index `reader` (csv_row.c): fields of its
 * current record by header name or column number, read-only; with strict,
 * an unknown name raises, else it is nil. */
void marketo_csv_push_row(lua_State *L, int reader, int strict);

/* Row building: fields in order, then end. `clean` promises the value
 * needs no quoting. end() returns 0, or -1 with the failure triple pushed. */
int marketo_csv_writer_field(lua_State *L, marketo_csv_writer *w,
                             const char *p, size_t n, int clean);
int marketo_csv_writer_end(lua_State *L, marketo_csv_writer *w, long long line);
/* A whole row already in the writer's format, without its line end. */
int marketo_csv_writer_raw(lua_State *L, marketo_csv_writer *w, const char *p, size_t len,
                           long long line);
/* The same with its own line end, or none: written as it is. */
int marketo_csv_writer_as_is(lua_State *L, marketo_csv_writer *w, const char *p, size_t len,
                             long long line);
/* Gives a writer opened without a header one, as it is (line end included),
 * before any row: 0, or -1 with the failure triple pushed. */
int marketo_csv_writer_header(lua_State *L, marketo_csv_writer *w, const char *p, size_t len);

/* The hash of a key of nf fields (csv_keys.c): each trimmed and folded as
 * marketo.objects.normalize_key does; never 0, or 0 when a field is blank. */
uint64_t marketo_key_hash(const char *const *p, const size_t *n, int nf);

#endif
