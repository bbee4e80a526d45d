/* grow.h - the one way a buffer or an array grows in marketo.core: by
 * doubling, so that appending costs O(1) on average. No Lua here, so the
 * scanner (and the fuzz harness that links it alone) can use it. */
#ifndef MARKETO_GROW_H
#define MARKETO_GROW_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* p (an array of *cap elements of size bytes) made to hold need elements:
 * the new block, *cap updated; p itself if it holds them already; NULL when
 * out of memory (p is then untouched and still the caller's). */
static inline void *marketo_grow(void *p, size_t *cap, size_t need, size_t size)
{
    size_t c = *cap > 0 ? *cap : 16;
    void *q;

    if (need <= *cap)
        return p;
    while (c < need && c <= SIZE_MAX / 2)
        c *= 2;
    if (c < need || c > SIZE_MAX / size || (q = realloc(p, c * size)) == NULL)
        return NULL;
    *cap = c;
    return q;
}

/* A byte buffer: data[0..len) in use, cap allocated. Zeroed is empty. */
typedef struct marketo_buffer {
    char *data;
    size_t len, cap;
} marketo_buffer;

/* Room for more bytes after len: 0, or -1 out of memory. */
static inline int marketo_buffer_reserve(marketo_buffer *b, size_t more)
{
    char *p;

    if (more > SIZE_MAX - b->len)
        return -1;
    if ((p = (char *)marketo_grow(b->data, &b->cap, b->len + more, 1)) == NULL)
        return -1;
    b->data = p;
    return 0;
}

/* Appends n bytes: 0, or -1 out of memory. */
static inline int marketo_buffer_append(marketo_buffer *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (marketo_buffer_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline void marketo_buffer_free(marketo_buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
