/* request.c - marketo.request: one HTTP transfer over a libcurl easy handle,
 * with a body from a string or a multipart body whose file part is streamed
 * from a byte range of a file (with a prefix, the CSV header, in front).
 * Every easy handle joins the Lua state's CURLSH (share.c), so connections
 * are reused by sequential blocking requests as well as by the loop's. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "transport.h"

/* ---- helpers -------------------------------------------------------------- */

static marketo_request *check_request(lua_State *L, int idx)
{
    return (marketo_request *)luaL_checkudata(L, idx, MARKETO_REQUEST_MT);
}

static marketo_request *check_open_request(lua_State *L, int idx)
{
    marketo_request *r = check_request(L, idx);
    if (r->curl == NULL)
        luaL_error(L, "attempt to use a closed %s", MARKETO_REQUEST_MT);
    return r;
}

marketo_request *marketo_request_check_idle(lua_State *L, int idx)
{
    marketo_request *r = check_open_request(L, idx);
    if (r->L != NULL || r->loop != NULL)
        luaL_error(L, "%s is in a transfer", MARKETO_REQUEST_MT);
    return r;
}

/* ---- libcurl callbacks: no Lua error may unwind through them ------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    marketo_request *r = (marketo_request *)ud;
    size_t len = size * nmemb;

    if (r->output != NULL)
        return fwrite(data, 1, len, r->output);
    return marketo_buffer_append(&r->body, data, len) == 0 ? len : 0;
}

/* Keeps the header lines of the last response only (not of a 100 Continue). */
static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    marketo_request *r = (marketo_request *)ud;
    size_t len = size * nmemb;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0)
        r->head.len = 0;
    return marketo_buffer_append(&r->head, data, len) == 0 ? len : 0;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    marketo_request *r = (marketo_request *)ud;
    lua_State *L = r->L;
    int status;

    if (r->err_ref != LUA_NOREF || L == NULL)
        return 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->progress_ref); /* fn */
    marketo_pushsize(L, ulnow);
    marketo_pushsize(L, ultotal);
    marketo_pushsize(L, dlnow);
    marketo_pushsize(L, dltotal);                        /* fn ul ult dl dlt */
    r->in_callback = 1;
    status = lua_pcall(L, 4, 0, 0);
    r->in_callback = 0;
    if (status != 0) {                                   /* err */
        r->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        return 1; /* non-zero aborts the transfer */
    }
    return 0;
}

/* ---- failure codes -------------------------------------------------------- */

#define MARKETO_CURL_CODES(X) \
    X(UNSUPPORTED_PROTOCOL) X(FAILED_INIT) X(URL_MALFORMAT) X(NOT_BUILT_IN) \
    X(COULDNT_RESOLVE_PROXY) X(COULDNT_RESOLVE_HOST) X(COULDNT_CONNECT) \
    X(WEIRD_SERVER_REPLY) X(HTTP2) X(PARTIAL_FILE) X(HTTP_RETURNED_ERROR) \
    X(WRITE_ERROR) X(UPLOAD_FAILED) X(READ_ERROR) X(OUT_OF_MEMORY) \
    X(OPERATION_TIMEDOUT) X(RANGE_ERROR) X(HTTP_POST_ERROR) X(SSL_CONNECT_ERROR) \
    X(FILE_COULDNT_READ_FILE) X(ABORTED_BY_CALLBACK) X(BAD_FUNCTION_ARGUMENT) \
    X(INTERFACE_FAILED) X(TOO_MANY_REDIRECTS) X(GOT_NOTHING) X(SEND_ERROR) \
    X(RECV_ERROR) X(SSL_CERTPROBLEM) X(SSL_CIPHER) X(PEER_FAILED_VERIFICATION) \
    X(BAD_CONTENT_ENCODING) X(FILESIZE_EXCEEDED) X(SEND_FAIL_REWIND) \
    X(SSL_CACERT_BADFILE) X(AGAIN) X(HTTP2_STREAM) X(SSL_SHUTDOWN_FAILED) \
    X(SSL_INVALIDCERTSTATUS) X(PROXY) X(SSL_CLIENTCERT) X(UNRECOVERABLE_POLL) \
    X(RECURSIVE_API_CALL)

static const char *curl_code_name(CURLcode code)
{
    switch (code) {
#define MARKETO_CASE(name) case CURLE_##name: return #name;
    MARKETO_CURL_CODES(MARKETO_CASE)
#undef MARKETO_CASE
    default: return "CURL_ERROR";
    }
}

int marketo_push_curl_error(lua_State *L, CURLcode code, const char *detail)
{
    const char *msg = (detail != NULL && detail[0] != '\0') ? detail
                                                            : curl_easy_strerror(code);
    return marketo_push_fail(L, curl_code_name(code), "%s", msg);
}

/* ---- transfers ------------------------------------------------------------ */

/* The method libcurl would pick is implied by the body; say it only when
 * it differs, so that a GET never sends a stale body. */
static void apply_method(marketo_request *r)
{
    CURL *c = r->curl;
    const char *m = r->method;
    int payload = r->mime != NULL || r->has_body;

    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    if (r->mime == NULL && !r->has_body && strcmp(m, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        payload = 1;
    } else if (r->mime == NULL) {
        curl_easy_setopt(c, r->has_body ? CURLOPT_POST : CURLOPT_HTTPGET, 1L);
    }
    if (strcmp(m, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (m[0] != '\0' && strcmp(m, payload ? "POST" : "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
}

int marketo_request_start(lua_State *L, marketo_request *r)
{
    r->done = 0;
    r->result = CURLE_OK;
    r->errbuf[0] = '\0';
    r->body.len = r->head.len = 0;
    if (!marketo_parts_start(L, r))
        return 0;
    if (r->output_path != NULL && (r->output = marketo_create_file(r->output_path)) == NULL) {
        int err = errno;
        marketo_parts_close(r);
        marketo_push_errno(L, r->output_path, err);
        return 0;
    }
    apply_method(r);
    return 1;
}

void marketo_request_finish(marketo_request *r, CURLcode code)
{
    marketo_parts_close(r);
    if (r->output != NULL) {
        if (fclose(r->output) != 0 && code == CURLE_OK)
            code = CURLE_WRITE_ERROR;
        r->output = NULL;
    }
    r->result = code;
    r->done = 1;
}

int marketo_request_take_error(lua_State *L, marketo_request *r)
{
    if (r->err_ref == LUA_NOREF)
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->err_ref); /* err */
    marketo_unref(L, &r->err_ref);
    return 1;
}

static int push_result(lua_State *L, marketo_request *r)
{
    if (r->result != CURLE_OK)
        return marketo_push_curl_error(L, r->result, r->errbuf);
    lua_pushboolean(L, 1);
    return 1;
}

/* perform() -> true | fail, "NAME: message", "NAME"; blocks until done. */
static int request_perform(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    CURLcode rc;

    if (!marketo_request_start(L, r))
        return 3;
    r->L = L; /* callbacks run on the calling coroutine */
    rc = curl_easy_perform(r->curl);
    r->L = NULL;
    marketo_request_finish(r, rc);
    if (marketo_request_take_error(L, r))
        return lua_error(L);
    return push_result(L, r);
}

/* result() -> what perform() returned, for a transfer the loop finished. */
static int request_result(lua_State *L)
{
    marketo_request *r = check_open_request(L, 1);

    if (!r->done)
        return luaL_error(L, "%s has no finished transfer", MARKETO_REQUEST_MT);
    return push_result(L, r);
}

/* ---- setters: positional, checked before any side effect, return self ---- */

int marketo_request_self(lua_State *L)
{
    lua_settop(L, 1);
    return 1;
}

static int request_set_url(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    const char *url = luaL_checkstring(L, 2);

    if (curl_easy_setopt(r->curl, CURLOPT_URL, url) != CURLE_OK)
        return luaL_error(L, "set_url: cannot store the URL");
    return marketo_request_self(L);
}

static int request_set_method(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    size_t len;
    const char *m = luaL_checklstring(L, 2, &len);
    size_t i;

    luaL_argcheck(L, len > 0 && len < sizeof r->method, 2, "bad method length");
    for (i = 0; i < len; i++)
        luaL_argcheck(L, m[i] >= 'A' && m[i] <= 'Z', 2, "method must be upper-case letters");
    memcpy(r->method, m, len + 1);
    return marketo_request_self(L);
}

/* set_headers{ "Name: value", ... }: replaces every header set before. An
 * empty Expect: is always added, so a large body never waits for 100-continue. */
static int request_set_headers(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    struct curl_slist *list = NULL, *grown;
    size_t i, n;

    luaL_checktype(L, 2, LUA_TTABLE);
    n = marketo_rawlen(L, 2);
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (int)i);
        if (lua_type(L, -1) != LUA_TSTRING || strchr(lua_tostring(L, -1), ':') == NULL)
            luaL_argerror(L, 2, "array of \"Name: value\" strings expected");
        lua_pop(L, 1);
    }
    for (i = 0; i <= n; i++) {
        if (i < n)
            lua_rawgeti(L, 2, (int)i + 1);
        grown = curl_slist_append(list, i < n ? lua_tostring(L, -1) : "Expect:");
        if (i < n)
            lua_pop(L, 1);
        if (grown == NULL) {
            curl_slist_free_all(list);
            return luaL_error(L, "not enough memory");
        }
        list = grown;
    }
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, list);
    curl_slist_free_all(r->headers);
    r->headers = list;
    return marketo_request_self(L);
}

/* set_timeouts(connect_s, total_s, low_speed_bytes, low_speed_s); 0 = none. */
static int request_set_timeouts(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    double connect_s = lua_isnoneornil(L, 2) ? 0 : marketo_checkseconds(L, 2);
    double total_s = lua_isnoneornil(L, 3) ? 0 : marketo_checkseconds(L, 3);
    lua_Integer low_bytes = luaL_optinteger(L, 4, 0), low_s = luaL_optinteger(L, 5, 0);

    luaL_argcheck(L, low_bytes >= 0 && low_bytes <= LONG_MAX, 4, "0 to LONG_MAX bytes");
    luaL_argcheck(L, low_s >= 0 && low_s <= LONG_MAX, 5, "0 to LONG_MAX seconds");
    curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)marketo_clamp(connect_s * 1000, LONG_MAX));
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, (long)marketo_clamp(total_s * 1000, LONG_MAX));
    curl_easy_setopt(r->curl, CURLOPT_LOW_SPEED_LIMIT, (long)low_bytes);
    curl_easy_setopt(r->curl, CURLOPT_LOW_SPEED_TIME, (long)low_s);
    return marketo_request_self(L);
}

/* set_tls(verify, ca_path): ca_path is a PEM bundle or a hashed directory. */
static int request_set_tls(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    int verify;
    const char *ca = luaL_optstring(L, 3, NULL);
    struct stat st;

    luaL_checktype(L, 2, LUA_TBOOLEAN); /* a forgotten argument must not turn it off */
    verify = lua_toboolean(L, 2);
    curl_easy_setopt(r->curl, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    curl_easy_setopt(r->curl, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (ca != NULL && stat(ca, &st) == 0 && S_ISDIR(st.st_mode))
        curl_easy_setopt(r->curl, CURLOPT_CAPATH, ca);
    else if (ca != NULL)
        curl_easy_setopt(r->curl, CURLOPT_CAINFO, ca);
    return marketo_request_self(L);
}

static int request_set_body(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    size_t len;
    const char *body = luaL_checklstring(L, 2, &len);

    luaL_argcheck(L, r->parts == NULL, 1, "request already has multipart parts");
    curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    if (curl_easy_setopt(r->curl, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK)
        return luaL_error(L, "not enough memory");
    r->has_body = 1;
    return marketo_request_self(L);
}

/* set_output(path | nil): stream the response body to a file (truncated). */
static int request_set_output(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);
    const char *path = luaL_optstring(L, 2, NULL);
    char *copy = NULL;

    if (path != NULL && (copy = (char *)malloc(strlen(path) + 1)) == NULL)
        return luaL_error(L, "not enough memory");
    if (copy != NULL)
        strcpy(copy, path);
    free(r->output_path);
    r->output_path = copy;
    return marketo_request_self(L);
}

/* on_progress(fn | nil): fn(sent, send_total, received, receive_total). */
static int request_on_progress(lua_State *L)
{
    marketo_request *r = marketo_request_check_idle(L, 1);

    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    luaL_unref(L, LUA_REGISTRYINDEX, r->progress_ref);
    lua_pushvalue(L, 2);
    r->progress_ref = lua_isnil(L, -1) ? (lua_pop(L, 1), LUA_NOREF)
                                      : luaL_ref(L, LUA_REGISTRYINDEX);
    curl_easy_setopt(r->curl, CURLOPT_NOPROGRESS, r->progress_ref == LUA_NOREF ? 1L : 0L);
    return marketo_request_self(L);
}

/* ---- getters -------------------------------------------------------------- */

static int request_status(lua_State *L)
{
    marketo_request *r = check_open_request(L, 1);
    long code = 0;

    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
    lua_pushinteger(L, (lua_Integer)code);
    return 1;
}

static int request_body(lua_State *L)
{
    marketo_request *r = check_open_request(L, 1);

    if (r->output_path != NULL)
        lua_pushnil(L);
    else
        lua_pushlstring(L, r->body.data ? r->body.data : "", r->body.len);
    return 1;
}

/* Sets t[lower(name)] = value; a repeated name joins its values with ", ". */
static void push_header_line(lua_State *L, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len), *v, *end = line + len;
    luaL_Buffer b;
    size_t i;

    if (colon == NULL || colon == line)
        return;
    for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
        ;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    luaL_buffinit(L, &b);
    for (i = 0; line + i < colon; i++)
        luaL_addchar(&b, (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + 32 : line[i]));
    luaL_pushresult(&b);                          /* t name */
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);                            /* t name old */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(end - v)); /* t name value */
    } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(end - v));
        lua_concat(L, 3);                         /* t name joined */
    }
    lua_rawset(L, -3);                            /* t */
}

/* headers() -> { ["content-type"] = "...", ... } of the last response. */
static int request_headers(lua_State *L)
{
    marketo_request *r = check_open_request(L, 1);
    const char *at = r->head.data, *end = at + r->head.len, *nl;

    lua_newtable(L);
    while (at != NULL && at < end) {
        nl = memchr(at, '\n', (size_t)(end - at));
        nl = nl ? nl + 1 : end;
        push_header_line(L, at, (size_t)(nl - at));
        at = nl;
    }
    return 1;
}

/* info() -> { time, uploaded, downloaded, connects, local_port } */
static int request_info(lua_State *L)
{
    marketo_request *r = check_open_request(L, 1);
    double total = 0;
    curl_off_t up = 0, down = 0;
    long connects = 0, port = 0;

    curl_easy_getinfo(r->curl, CURLINFO_TOTAL_TIME, &total);
    curl_easy_getinfo(r->curl, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(r->curl, CURLINFO_SIZE_DOWNLOAD_T, &down);
    curl_easy_getinfo(r->curl, CURLINFO_NUM_CONNECTS, &connects);
    curl_easy_getinfo(r->curl, CURLINFO_LOCAL_PORT, &port);
    lua_createtable(L, 0, 5);
    lua_pushnumber(L, total);
    lua_setfield(L, -2, "time");
    marketo_pushsize(L, up);
    lua_setfield(L, -2, "uploaded");
    marketo_pushsize(L, down);
    lua_setfield(L, -2, "downloaded");
    lua_pushinteger(L, (lua_Integer)connects);
    lua_setfield(L, -2, "connects");
    lua_pushinteger(L, (lua_Integer)port);
    lua_setfield(L, -2, "local_port");
    return 1;
}

/* ---- lifecycle ------------------------------------------------------------ */

/* close(), __gc and __close: idempotent; never raises on a closed handle. */
static int request_close(lua_State *L)
{
    marketo_request *r = check_request(L, 1);

    if (r->in_callback || r->L != NULL)
        return luaL_error(L, "cannot close %s inside its own transfer", MARKETO_REQUEST_MT);
    if (r->loop != NULL)
        marketo_loop_detach(L, r);
    if (r->curl != NULL) {
        marketo_request_finish(r, CURLE_OK); /* closes files of an unfinished transfer */
        curl_easy_cleanup(r->curl);
        r->curl = NULL;
    }
    curl_mime_free(r->mime);
    r->mime = NULL;
    curl_slist_free_all(r->headers);
    r->headers = NULL;
    marketo_parts_free(r);
    free(r->output_path);
    r->output_path = NULL;
    marketo_buffer_free(&r->body);
    marketo_buffer_free(&r->head);
    marketo_unref(L, &r->progress_ref);
    marketo_unref(L, &r->err_ref);
    lua_pushboolean(L, 1);
    return 1;
}

static int request_tostring(lua_State *L)
{
    marketo_request *r = check_request(L, 1);

    return marketo_tostring_at(L, MARKETO_REQUEST_MT, r->curl == NULL ? NULL : (void *)r);
}

static void set_defaults(marketo_request *r, CURLSH *share)
{
    CURL *c = r->curl;

    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SHARE, share);
    curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, (void *)r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)r);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)r);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
}

/* request() -> a new marketo.request, TLS verification on. */
static int request_new(lua_State *L)
{
    marketo_request *r = (marketo_request *)marketo_newudata(L, sizeof *r);
    CURLSH *share = marketo_share_get(L);

    memset(r, 0, sizeof *r); /* born closed: __gc is safe if anything below fails */
    r->parts_tail = &r->parts;
    r->progress_ref = r->err_ref = LUA_NOREF;
    luaL_getmetatable(L, MARKETO_REQUEST_MT);
    lua_setmetatable(L, -2);                        /* req */
    if ((r->headers = curl_slist_append(NULL, "Expect:")) == NULL)
        return luaL_error(L, "not enough memory");
    if ((r->curl = curl_easy_init()) == NULL)
        return luaL_error(L, "curl_easy_init failed");
    set_defaults(r, share);
    return 1;
}

void marketo_request_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"body", request_body},
        {"headers", request_headers},
        {"info", request_info},
        {"on_progress", request_on_progress},
        {"perform", request_perform},
        {"result", request_result},
        {"set_body", request_set_body},
        {"set_headers", request_set_headers},
        {"set_method", request_set_method},
        {"set_output", request_set_output},
        {"set_timeouts", request_set_timeouts},
        {"set_tls", request_set_tls},
        {"set_url", request_set_url},
        {"status", request_status},
        {NULL, NULL}
    };
    marketo_new_class(L, MARKETO_REQUEST_MT, request_close, request_tostring, NULL, methods,
                      "request", request_new);
}
