/* marketo.h - declarations shared by the C files of marketo.core. */
#ifndef MARKETO_H
#define MARKETO_H

#include "compat.h"
#include "modules.h"

#define MARKETO_VERSION "0.1.0"

#if defined(__GNUC__)
#define MARKETO_EXPORT __attribute__((visibility("default")))
#else
#define MARKETO_EXPORT
#endif

/* Runtime failure: push fail, "NAME: message", "NAME"; returns 3. */
int marketo_push_fail(lua_State *L, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Same, with message strerror(errno) prefixed by what (a path, say). */
int marketo_push_errno(lua_State *L, const char *what, int err);

#include <stdio.h>

/* Creates (or truncates) path for writing, closed on exec and readable by
 * its owner only (parts, lines and results hold personal data): an fd, or
 * -1 with errno. marketo_create_file is the same as a FILE, "wb". */
int marketo_create(const char *path);
FILE *marketo_create_file(const char *path);

/* t[k] = v for the table at the stack top, v a 64-bit size (see compat.h). */
void marketo_set_size(lua_State *L, const char *k, long long v);

/* Registers a userdata type: metatable `name` whose one close function
 * serves close(), __close and __gc (so it must be idempotent and never
 * raise on a closed handle), with __tostring, the metamethods in meta (NULL
 * for none: what the type adds, or a __gc of its own), and __index the
 * methods and close; and sets its constructor as module[ctor_name] on the
 * module table at the stack top. */
void marketo_new_class(lua_State *L, const char *name, lua_CFunction close,
                       lua_CFunction tostring, const luaL_Reg *meta, const luaL_Reg *methods,
                       const char *ctor_name, lua_CFunction ctor);

/* Releases the registry reference *ref (LUA_NOREF is fine) and forgets it. */
void marketo_unref(lua_State *L, int *ref);

/* __tostring: "name (what)", or "name (closed)" when what is NULL. */
int marketo_tostring(lua_State *L, const char *name, const char *what);
/* __tostring of a handle shown by its address: "name (0x...)", or
 * "name (closed)" when p is NULL. */
int marketo_tostring_at(lua_State *L, const char *name, void *p);

/* A duration in seconds at argument arg. NaN and negative values are misuse
 * (raise); a huge one, math.huge included, means as long as representable:
 * callers convert it with marketo_clamp, never with a bare cast. */
double marketo_checkseconds(lua_State *L, int arg);

/* v (not NaN, >= 0, maybe infinite) as an integer no larger than max. */
long long marketo_clamp(double v, long long max);

/* The number at idx if it is a whole number in [lo, hi], else `none` (a
 * fraction, NaN, out of range, math.mininteger - 1...): no bare cast or
 * arithmetic meets a value it is undefined for. */
lua_Integer marketo_tointeger_in(lua_State *L, int idx, lua_Integer lo, lua_Integer hi,
                                 lua_Integer none);

/* Writes the n pieces of data to path whole or not at all (file.c: a
 * temporary name, fsync, rename; 0600): pushes true or the failure triple. */
int marketo_write_whole(lua_State *L, const char *path, const void *const *data,
                        const size_t *len, int n);

/* Seconds on the monotonic clock. */
double marketo_monotonic(void);

/* Non-zero once SIGINT/SIGTERM arrived after catch_signals(). */
int marketo_stop_requested(void);

#define MARKETO_DECLARE_OPEN(name) void marketo_##name##_open(lua_State *L);
MARKETO_MODULES(MARKETO_DECLARE_OPEN)
#undef MARKETO_DECLARE_OPEN
#define MARKETO_DECLARE_FUNCTION(name, fn) int fn(lua_State *L);
MARKETO_FUNCTIONS(MARKETO_DECLARE_FUNCTION)
#undef MARKETO_DECLARE_FUNCTION

#endif
