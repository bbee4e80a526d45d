/* transport.h - what request.c and loop.c share: the request struct (the loop
 * drives requests through a curl multi handle) and the transfer hooks. */
#ifndef MARKETO_TRANSPORT_H
#define MARKETO_TRANSPORT_H

#include <curl/curl.h>

#include "grow.h"
#include "marketo.h"

#define MARKETO_REQUEST_MT "marketo.request"
#define MARKETO_LOOP_MT "marketo.loop"

typedef struct marketo_part marketo_part; /* a multipart field or file part */
typedef struct marketo_loop marketo_loop;

typedef struct marketo_request {
    CURL *curl;                  /* NULL once closed */
    lua_State *L;                /* thread driving libcurl right now, NULL otherwise */
    marketo_loop *loop;          /* the loop it is in flight in, or NULL */
    struct marketo_request *prev, *next; /* the loop's list of requests in flight */
    struct curl_slist *headers;  /* request headers, owned */
    curl_mime *mime;             /* built from parts by the transfer's start */
    marketo_part *parts, **parts_tail;
    char method[16];             /* "" means GET, or POST with a body */
    int has_body;                /* set_body() copied a body into libcurl */
    char *output_path;           /* stream the response body here, or NULL */
    FILE *output;                /* open during a transfer only */
    marketo_buffer body;         /* response body, when no output file */
    marketo_buffer head;         /* raw header lines of the last response */
    int progress_ref;            /* on_progress function */
    int err_ref;                 /* error raised by a callback, to re-raise */
    int in_callback;             /* a Lua callback is running */
    int done;                    /* a transfer ended; result is its code */
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
} marketo_request;

struct marketo_loop {
    CURLM *multi;                /* NULL once closed */
    marketo_request *active;     /* requests in flight (doubly linked) */
    int count;                   /* how many */
    int anchor_ref;              /* table: lightuserdata(request) -> its userdata */
    int done_ref;                /* array of finished requests not yet returned */
    int busy;                    /* wait() is running */
};

/* Checks argument idx is a request that is open and not in a transfer. */
marketo_request *marketo_request_check_idle(lua_State *L, int idx);

/* What every setter returns: the request (argument 1), so calls chain. */
int marketo_request_self(lua_State *L);

/* Opens files and builds the body before a transfer: true, or pushes the
 * failure triple and returns 0. */
int marketo_request_start(lua_State *L, marketo_request *r);

/* Ends a transfer that libcurl reported done (or abandoned) with code. */
void marketo_request_finish(marketo_request *r, CURLcode code);

/* Multipart (request_multipart.c): opens the files and builds the mime
 * (1), or pushes the failure triple (0); closes the files; frees the parts. */
int marketo_parts_start(lua_State *L, marketo_request *r);
void marketo_parts_close(marketo_request *r);
void marketo_parts_free(marketo_request *r);

/* Pushes the error a callback parked, if any, and returns 1; else 0. */
int marketo_request_take_error(lua_State *L, marketo_request *r);

/* Takes r out of its loop: multi handle, list and anchor. */
void marketo_loop_detach(lua_State *L, marketo_request *r);

/* The state's CURLSH (share.c); raises if the core was not opened. */
CURLSH *marketo_share_get(lua_State *L);

/* Pushes fail, "NAME: message", "NAME" for a libcurl code; returns 3. */
int marketo_push_curl_error(lua_State *L, CURLcode code, const char *detail);

#endif
