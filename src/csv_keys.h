/* csv_keys.h - the keyset of csv_keys.c, shared with csv_keys_parallel.c
 * (a part's keys hashed on other threads, put in the set here in file order)
 * and csv_keys_rows.c (parts with holes written again in C). */
#ifndef MARKETO_CSV_KEYS_H
#define MARKETO_CSV_KEYS_H

#include <stdint.h>

#include "csv_core.h"

#define KEYSET_MT "marketo.csv_keyset"

/* A key of up to MAX_FIELDS fields (a custom object's dedupe fields). */
#define MAX_FIELDS 8

#define AGAIN 0x80000000u /* slot.first: the key was seen again before */

typedef struct slot {
    uint64_t hash;   /* 0: empty */
    int32_t code;
    uint32_t first;  /* the first line, saturated at 2^31 - 1; | AGAIN */
} slot;

typedef struct event {
    uint64_t hash;   /* 0: a blank key */
    long long line;
} event;

typedef struct keyset {
    slot *slots;     /* NULL once closed */
    size_t cap, n;   /* cap: any size up to 2^32 (see home()) */
    event *events;
    size_t nev, evcap;
    uint64_t examples[16]; /* the first keys seen again, in order */
    int nex, maxex;
} keyset;

keyset *marketo_keyset_check(lua_State *L, int idx);

/* n rows' hashes (0: a blank key) and lines, of the part `code`, put in the
 * set in order: an event for each blank key or key seen before. 0, or -1
 * out of memory. */
int marketo_keyset_see_batch(keyset *k, const uint64_t *hash, const long long *line, int n,
                             int32_t code);

/* The hash of a clean record's key (bytes p[0..n), line end left out, as
 * csv_scan_fast found it: well-formed, its quotes balanced): the fields
 * col[0..nf) found without splitting the others. `tmp` holds a quoted field
 * with doubled quotes, undone (room for n bytes). */
uint64_t marketo_key_of_clean(const unsigned char *p, size_t n, unsigned char delim,
                              const int *col, int nf, char *tmp);

/* The key of the record the scan holds (csv_scan_next's, fields captured). */
uint64_t marketo_key_of_fields(const csv_scan *s, const int *col, int nf);

/* The columns at idx (one, or a list of up to MAX_FIELDS) into col, 0-based;
 * their count. Raises on misuse. */
int marketo_key_columns(lua_State *L, int idx, int *col);

/* The next source line of a lines file (one decimal a line), or -1. */
long long marketo_next_line(FILE *f);

#endif
