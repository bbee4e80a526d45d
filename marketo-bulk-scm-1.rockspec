rockspec_format = "3.0"
package = "marketo-bulk"
version = "scm-1"
source = { url = "git+file:///marketo-bulk" }
description = {
    summary = "Bulk imports into Marketo (leads, custom objects, program members), done right",
    detailed = [[
marketo.core (C over libcurl >= 7.66: streamed multipart uploads, an event loop,
a streaming CSV engine), Lua modules for auth, jobs, scheduling, journal and
reports, the marketo-bulk runner (Lua 5.4 embedded) and a local sandbox.]],
    license = "MIT",
}
-- At run time: lua-cjson (every JSON body, journal and report) and LuaSocket
-- (the sandbox, embedded in the runner or started by a script).
dependencies = { "lua >= 5.1", "lua-cjson", "luasocket" }
-- Only the libraries: Debian keeps curl/curl.h in the multiarch include folder,
-- which luarocks' header check does not search; the compiler finds it itself.
external_dependencies = { CURL = { library = "curl" }, ZLIB = { library = "z" } }
build = {
    type = "make",
    build_target = "build",
    -- A tree of its own, so a luarocks build never reuses a developer's objects.
    build_variables = { CFLAGS = "$(CFLAGS)", WERROR = "", BUILD = "build/rock/lua5.4",
        RUNNER = "build/rock/bin/marketo-bulk" },
    install_variables = {
        PREFIX = "$(PREFIX)", LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)", BINDIR = "$(BINDIR)",
        BUILD = "build/rock/lua5.4", RUNNER = "build/rock/bin/marketo-bulk",
    },
}
