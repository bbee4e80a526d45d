/* request_multipart.c - the multipart/form-data body of a marketo.request:
 * string fields, and file parts streamed at transfer time from a byte range
 * of a file with a prefix (the CSV header row) in front, never copied. The
 * parts are kept as plain data and turned into a curl_mime at each start, so
 * the file is opened and measured right before the transfer. */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64 /* ranges of files over 2 GB on 32-bit systems too */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport.h"

struct marketo_part {
    marketo_part *next;
    const char *name, *filename, *type;  /* filename, type may be NULL */
    const char *data;                    /* field value, or file prefix */
    size_t data_len;
    const char *path;                    /* NULL for a string field */
    long long offset, length;            /* length -1: up to the end of the file */
    int fd;                              /* open during a transfer only */
    long long pos;                       /* read position in prefix + range */
};


/* Serves the prefix, then the byte range of the file, without copying it. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    marketo_part *p = (marketo_part *)ud;
    size_t want = size * nitems, n = 0;
    ssize_t got;

    if (p->pos < (long long)p->data_len) {
        n = p->data_len - (size_t)p->pos;
        if (n > want)
            n = want;
        memcpy(buf, p->data + p->pos, n);
        p->pos += (long long)n;
        return n;
    }
    if (p->pos - (long long)p->data_len + (long long)want > p->length)
        want = (size_t)(p->length - (p->pos - (long long)p->data_len));
    if (want == 0)
        return 0;
    do {
        got = pread(p->fd, buf, want, (off_t)(p->offset + p->pos - (long long)p->data_len));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) /* the file shrank or failed under us: never send a short part */
        return CURL_READFUNC_ABORT;
    p->pos += got;
    return (size_t)got;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
    marketo_part *p = (marketo_part *)ud;

    if (origin != SEEK_SET || offset < 0 || offset > (curl_off_t)p->data_len + p->length)
        return CURL_SEEKFUNC_FAIL;
    p->pos = offset;
    return CURL_SEEKFUNC_OK;
}


void marketo_parts_close(marketo_request *r)
{
    marketo_part *p;

    for (p = r->parts; p != NULL; p = p->next) {
        if (p->fd >= 0)
            close(p->fd);
        p->fd = -1;
    }
}

/* Opens each file part and checks its range, so a missing or short file is a
 * clear failure before any byte is sent. */
static int open_files(lua_State *L, marketo_request *r)
{
    marketo_part *p;
    struct stat st;

    for (p = r->parts; p != NULL; p = p->next) {
        if (p->path == NULL)
            continue;
        if ((p->fd = open(p->path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(p->fd, &st) != 0) {
            int err = errno;
            marketo_parts_close(r);
            return marketo_push_errno(L, p->path, err);
        }
        if (p->length < 0)
            p->length = (long long)st.st_size - p->offset;
        /* offset + length could overflow: compare against what is left */
        if (p->length < 0 || p->offset > (long long)st.st_size
            || p->length > (long long)st.st_size - p->offset) {
            marketo_parts_close(r);
            return marketo_push_fail(L, "READ_ERROR", "%s: range %lld+%lld is past its end (%lld)",
                                     p->path, p->offset, p->length, (long long)st.st_size);
        }
    }
    return 0;
}

static CURLcode add_part(curl_mime *mime, marketo_part *p)
{
    curl_mimepart *part = curl_mime_addpart(mime);
    CURLcode rc;

    if (part == NULL)
        return CURLE_OUT_OF_MEMORY;
    if ((rc = curl_mime_name(part, p->name)) != CURLE_OK)
        return rc;
    if (p->filename != NULL && (rc = curl_mime_filename(part, p->filename)) != CURLE_OK)
        return rc;
    if (p->type != NULL && (rc = curl_mime_type(part, p->type)) != CURLE_OK)
        return rc;
    if (p->path == NULL)
        return curl_mime_data(part, p->data, p->data_len);
    p->pos = 0;
    return curl_mime_data_cb(part, (curl_off_t)p->data_len + p->length,
                             on_read, on_seek, NULL, p);
}

static CURLcode build_mime(marketo_request *r)
{
    curl_mime *mime, *old = r->mime;
    marketo_part *p;
    CURLcode rc = CURLE_OK;

    if (r->parts == NULL)
        return CURLE_OK;
    if ((mime = curl_mime_init(r->curl)) == NULL)
        return CURLE_OUT_OF_MEMORY;
    for (p = r->parts; p != NULL && rc == CURLE_OK; p = p->next)
        rc = add_part(mime, p);
    if (rc != CURLE_OK) {
        curl_mime_free(mime);
        return rc;
    }
    r->mime = mime;
    curl_easy_setopt(r->curl, CURLOPT_MIMEPOST, mime);
    curl_mime_free(old); /* after MIMEPOST let go of it */
    return CURLE_OK;
}

/* One allocation per part: the struct followed by copies of its strings. */
static marketo_part *new_part(lua_State *L, const char *strs[4], const char *data, size_t len)
{
    size_t sizes[4], total = sizeof(marketo_part) + len + 1;
    char *at;
    marketo_part *p;
    int i;

    for (i = 0; i < 4; i++)
        total += (sizes[i] = strs[i] ? strlen(strs[i]) + 1 : 0);
    if ((p = (marketo_part *)calloc(1, total)) == NULL)
        luaL_error(L, "not enough memory");
    at = (char *)(p + 1);
    memcpy(at, data, len);
    at[len] = '\0';
    p->data = at;
    p->data_len = len;
    at += len + 1;
    for (i = 0; i < 4; i++) {
        const char *copy = strs[i] ? memcpy(at, strs[i], sizes[i]) : NULL;
        at += sizes[i];
        if (i == 0) p->name = copy;
        else if (i == 1) p->filename = copy;
        else if (i == 2) p->type = copy;
        else p->path = copy;
    }
    p->fd = -1;
    p->length = -1;
    return p;
}

static void append_part(marketo_request *r, marketo_part *p)
{
    *r->parts_tail = p;
    r->parts_tail = &p->next;
}

/* add_field(name, value): a string part of a multipart/form-data body. */
static int request_add_field(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    size_t len;
    const char *strs[4] = { NULL, NULL, NULL, NULL };
    const char *value;

    strs[0] = luaL_checkstring(L, 2);
    value = luaL_checklstring(L, 3, &len);
    luaL_argcheck(L, !r->has_body, 1, "request already has a body");
    append_part(r, new_part(L, strs, value, len));
    return marketo_request_self(L);
}

/* add_file(name, filename, content_type, path, offset, length, prefix): a file
 * part streamed from path at the transfer, prefix first; length nil = to EOF. */
static int request_add_file(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    const char *strs[4];
    long long offset, length;
    size_t prefix_len;
    const char *prefix;
    marketo_part *p;

    strs[0] = luaL_checkstring(L, 2);
    strs[1] = luaL_optstring(L, 3, NULL);
    strs[2] = luaL_optstring(L, 4, NULL);
    strs[3] = luaL_checkstring(L, 5);
    offset = marketo_optsize(L, 6, 0);
    length = marketo_optsize(L, 7, -1);
    prefix = luaL_optlstring(L, 8, "", &prefix_len);
    luaL_argcheck(L, offset >= 0, 6, "negative offset");
    luaL_argcheck(L, length >= -1, 7, "negative length");
    luaL_argcheck(L, !r->has_body, 1, "request already has a body");
    p = new_part(L, strs, prefix, prefix_len);
    p->offset = offset;
    p->length = length;
    append_part(r, p);
    return marketo_request_self(L);
}


void marketo_parts_free(marketo_request *r)
{
    marketo_part *p = r->parts, *next;

    for (; p != NULL; p = next) {
        next = p->next;
        free(p);
    }
    r->parts = NULL;
    r->parts_tail = &r->parts;
}

int marketo_parts_start(lua_State *L, marketo_request *r)
{
    CURLcode rc;

    if (open_files(L, r) != 0)
        return 0;
    if ((rc = build_mime(r)) != CURLE_OK) {
        marketo_parts_close(r);
        marketo_push_curl_error(L, rc, NULL);
        return 0;
    }
    return 1;
}

/* Runs after marketo_request_open (modules.h is sorted): adds the part
 * setters to the request methods. */
void marketo_request_multipart_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"add_field", request_add_field},
        {"add_file", request_add_file},
        {NULL, NULL}
    };

    luaL_getmetatable(L, MARKETO_REQUEST_MT);   /* M mt */
    lua_getfield(L, -1, "__index");             /* M mt methods */
    marketo_setfuncs(L, methods);
    lua_pop(L, 2);                              /* M */
}
