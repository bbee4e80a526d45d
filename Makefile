# The developer loop. `make help` lists the targets.
LUA      ?= lua5.4
LUA_PC    = $(if $(filter luajit,$(LUA)),luajit,$(LUA))
BUILD    ?= build/$(LUA)
CORE      = $(BUILD)/marketo/core.so
RUNNER   ?= build/bin/marketo-bulk
COMPLETION = $(dir $(RUNNER))marketo-bulk.bash
RESULTS   = build/results

CC       ?= cc
CFLAGS   ?= -O2 -g
# -Werror is for us and CI; a user's `luarocks make` builds with WERROR= (their
# compiler may warn where ours does not).
WERROR   ?= -Werror
WARN      = -std=c99 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wcast-qual -Wwrite-strings -Wundef $(WERROR)
LUA_INC   = $(shell pkg-config --cflags $(LUA_PC))
CURL_LIBS = $(shell pkg-config --libs libcurl)
ZLIB_LIBS = $(shell pkg-config --libs zlib)
SAN       = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

CORE_SRCS   = $(sort $(wildcard src/*.c))
CORE_HDRS   = $(wildcard src/*.h)
LUA_SRCS    = $(shell find lua -name '*.lua' | sort)
RUNNER_SRCS = $(sort $(wildcard src/runner/*.c))

BUSTED = MARKETO_BULK_BIN=$(abspath $(RUNNER)) $(LUA) /usr/bin/busted \
         --cpath='$(BUILD)/?.so' -o spec/support/output.lua

# Where `make install` (and so `luarocks make`) puts things.
PREFIX  ?= /usr/local
LUADIR  ?= $(PREFIX)/share/lua/5.4
LIBDIR  ?= $(PREFIX)/lib/lua/5.4
BINDIR  ?= $(PREFIX)/bin
COMPDIR ?= $(PREFIX)/share/bash-completion/completions

.PHONY: all build deps test lint asan luajit check bench demo fuzz install clean help
all: build

help:
	@echo "make demo    install Debian packages if missing, build, run an import end to end"
	@echo "make test    install Debian packages if missing, build, run every spec"
	@echo "make check   luacheck, ASan+UBSan core specs, LuaJIT core specs, luarocks make"
	@echo "make build | lint | asan | luajit | bench | fuzz | install | clean"

deps:
	@tools/ensure-deps.sh

build: $(CORE) $(RUNNER) $(COMPLETION)

$(CORE): $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) $(LUA_INC) -fPIC -fvisibility=hidden -shared \
	    -o $@ $(CORE_SRCS) $(CURL_LIBS) $(ZLIB_LIBS) -pthread $(LDFLAGS)

# The runner: Lua 5.4 embedded, the core linked in, lua/marketo/ compiled in.
build/embedded.c: tools/embed.lua $(LUA_SRCS)
	@mkdir -p $(@D)
	lua5.4 tools/embed.lua $@ $(LUA_SRCS)

$(RUNNER): $(RUNNER_SRCS) build/embedded.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(WARN) -Isrc -Isrc/runner $(shell pkg-config --cflags lua5.4) \
	    -o $@ $(RUNNER_SRCS) build/embedded.c $(CORE_SRCS) \
	    $(shell pkg-config --libs lua5.4) $(CURL_LIBS) $(ZLIB_LIBS) -lm -pthread $(LDFLAGS)

# Bash completion, made by the runner from its commands' own flags.
$(COMPLETION): $(RUNNER)
	$(RUNNER) completion bash > $@

# The specs in SHARDS lists run at once (spec/support/shards.lua): they mostly
# wait on other processes, so two cores run three lists in less time than one.
# Each list's output is shown whole once all have ended; a list that left no
# counts (busted itself died) fails the run.
SHARDS ?= 3
LOGS     = build/test-logs
test: deps build
	@rm -rf $(RESULTS) $(LOGS) && mkdir -p $(RESULTS) $(LOGS)
	@$(LUA) spec/support/shards.lua $(SHARDS) > $(LOGS)/shards
	@k=0; while read -r files; do k=$$((k + 1)); \
	    MARKETO_TEST_COUNTS=$(RESULTS)/lua5.4-$$k $(BUSTED) $$files > $(LOGS)/$$k.log 2>&1 & \
	done < $(LOGS)/shards; wait; \
	for k in $$(seq 1 $$k); do cat $(LOGS)/$$k.log; \
	    test -f $(RESULTS)/lua5.4-$$k || { echo "spec list $$k left no counts"; exit 1; }; done
	@$(LUA) spec/support/total.lua $(RESULTS)

lint:
	luacheck -q .

# Core specs against an ASan+UBSan build; the interpreter is not instrumented,
# so the sanitizer runtime is preloaded.
ASAN_SPECS = spec/core_spec.lua $(wildcard spec/core_*_spec.lua spec/csv*_spec.lua)
asan:
	$(MAKE) --no-print-directory BUILD=build/asan-lua5.4 CFLAGS="-O1 -g $(SAN)" \
	    LDFLAGS="$(SAN)" build/asan-lua5.4/marketo/core.so
	@mkdir -p $(RESULTS)
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions=$(abspath tools/lsan.supp) \
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	MARKETO_TEST_COUNTS=$(RESULTS)/asan \
	    $(MAKE) --no-print-directory BUILD=build/asan-lua5.4 busted-run SPECS="$(ASAN_SPECS)"

# The library must also run on LuaJIT (OpenResty): the core specs and the
# specs of every library module that does not need Lua 5.4 in-process (their
# sandboxes and servers run as Lua 5.4 child processes).
LUAJIT_SPECS = $(ASAN_SPECS) $(addprefix spec/,$(addsuffix _spec.lua,http loop journal plan plan_changed \
    limiter report progress errors retry results client_config auth job client \
    client_envelope secrets poll options url import json budget budget_redis day pipeline_quota))
luajit:
	$(MAKE) --no-print-directory LUA=luajit build/luajit/marketo/core.so
	@mkdir -p $(RESULTS)
	MARKETO_TEST_COUNTS=$(RESULTS)/luajit \
	    $(MAKE) --no-print-directory LUA=luajit busted-run SPECS="$(LUAJIT_SPECS)"

busted-run:
	$(BUSTED) $(SPECS)

# Installs into a throwaway tree, offline, exactly as a user would.
rock:
	rm -rf build/rock-tree build/rock
	luarocks --lua-version=5.4 --tree=build/rock-tree make --deps-mode=none
	test -x build/rock-tree/bin/marketo-bulk
	LUA_CPATH='build/rock-tree/lib/lua/5.4/?.so;;' LUA_PATH='build/rock-tree/share/lua/5.4/?.lua;build/rock-tree/share/lua/5.4/?/init.lua;;' \
	    lua5.4 -e 'assert(require("marketo").core._VERSION)'

check: deps build lint asan luajit rock
	@$(LUA) spec/support/total.lua $(RESULTS)

bench: build
	@set -e; for b in bench/*; do if [ -x "$$b" ]; then echo "== $$b"; "$$b"; fi; done

# The CSV scanner under libFuzzer + ASan + UBSan for FUZZ_TIME seconds, from
# the seed corpus in fuzz/corpus (new inputs go to build/fuzz/corpus).
FUZZ_TIME ?= 60
fuzz:
	@mkdir -p build/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(WARN) -Isrc \
	    -o build/fuzz/csv_fuzz fuzz/csv_fuzz.c src/csv_scan.c src/csv_fast.c
	build/fuzz/csv_fuzz -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/ \
	    build/fuzz/corpus fuzz/corpus

# The example has rows Marketo refuses, on purpose: its documented exit status
# is then 3 ("some rows failed, see the report"); anything else is a failure.
demo: deps build
	@rm -rf build/demo
	@status=0; $(RUNNER) run examples/crm-leads.lua || status=$$?; \
	    if [ $$status -ne 0 ] && [ $$status -ne 3 ]; then exit $$status; fi; \
	    echo; echo "the JSON report: build/demo/crm-leads.report.json"

install: build
	install -d $(DESTDIR)$(LIBDIR)/marketo $(DESTDIR)$(LUADIR) $(DESTDIR)$(BINDIR)
	install -m 0755 $(CORE) $(DESTDIR)$(LIBDIR)/marketo/core.so
	cd lua && find marketo -name '*.lua' -exec install -D -m 0644 {} $(DESTDIR)$(LUADIR)/{} \;
	install -m 0755 $(RUNNER) $(DESTDIR)$(BINDIR)/marketo-bulk
	install -D -m 0644 $(COMPLETION) $(DESTDIR)$(COMPDIR)/marketo-bulk

clean:
	rm -rf build
