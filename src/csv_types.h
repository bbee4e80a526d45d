/* csv_types.h - the type checks of csv_types.c as the planner runs them:
 * in its main scan and in its workers' (threads: nothing here calls Lua but
 * csv_types_new). */
#ifndef MARKETO_CSV_TYPES_H
#define MARKETO_CSV_TYPES_H

#include "csv.h"
#include "marketo.h"

typedef struct csv_col_check {
    unsigned char kind;
    long long length; /* 0: any */
} csv_col_check;

/* The checks of a file's columns, read-only once made (threads share it). */
typedef struct csv_types {
    int ncols;
    int last, last_kind;    /* the last column checked at all, and by type */
    long long min_length;   /* the shortest length limit */
    int nall, nkind;        /* the columns checked at all, and by type: */
    int *all, *kind;        /* their numbers, in order */
    csv_col_check cols[1];  /* ncols of them (one at least) */
} csv_types;

/* Values of "email" columns that do not look like an email address (a
 * warning, as in Marketo): how many, and the first (its row's line). */
#define CSV_NOTE_VALUE 200
typedef struct csv_email_note {
    long long count, line;
    int column;
    size_t len;
    char value[CSV_NOTE_VALUE];
} csv_email_note;

/* The checks of kinds[i] and lengths[i] (tables at those stack indexes) for
 * ncols columns, in a userdata pushed on the stack. */
csv_types *csv_types_new(lua_State *L, int kinds, int lengths, int ncols);

/* 1 when the clean record p[0..n) (no line end) has no value that fails and
 * no email that does not look like one, looking at its bytes only (room of
 * them may be read from p, n or more: csv_rec_room); 0 when it must be
 * split (csv_scan_split) and looked at field by field. */
int csv_types_quick(const csv_types *t, const char *p, size_t n, size_t room, int delim);
/* The first column (0-based) of the record split into s whose value fails,
 * with *what "type" or "length"; -1 if none does. */
int csv_types_failure(const csv_types *t, const csv_scan *s, const char **what);
/* Adds the emails of the record split into s (on `line`) that do not look
 * like one to e. */
void csv_types_note(const csv_types *t, const csv_scan *s, long long line, csv_email_note *e);
/* Adds note b (of rows on lines shifted by dl) to a, which is before it. */
void csv_types_merge(csv_email_note *a, const csv_email_note *b, long long dl);

/* The bytes of record [off, end) in s's buffer, without its line end. */
static inline const char *csv_rec_bytes(const csv_scan *s, long long off, long long end,
                                        size_t *n)
{
    const char *p = (const char *)s->buf + (off - s->base);
    size_t k = (size_t)(end - off);

    if (k > 0 && p[k - 1] == '\n') {
        k--;
        if (k > 0 && p[k - 1] == '\r')
            k--;
    }
    *n = k;
    return p;
}

/* The bytes that may be read from p, in s's buffer. */
static inline size_t csv_rec_room(const csv_scan *s, const char *p)
{
    return (size_t)((const char *)s->buf + s->len - p);
}

#endif
