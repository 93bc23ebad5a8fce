# evcharger: ingestd, realtimed, apid and the shared common/ library.
# Plain GNU make. Sources are discovered by directory, so adding a module
# never needs an edit here:
#   common/*.c                 -> common/libcommon.a
#   ingestd/*.c realtimed/*.c apid/*.c -> bin/<role>
#   tests/upstream-sim/*.c     -> bin/upstream-sim
#   tests/unit/test_*.c        -> build/tests/unit/test_*        (+ tests/testmain.c)
#   tests/integration/test_*.c -> build/tests/integration/test_* (+ itest.c, testmain.c)
# `make SAN=1 ...` builds everything with ASan+UBSan; a flags stamp forces a
# full rebuild whenever the effective flags change.

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
GIT_REV := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)

CC ?= cc
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
DESTDIR ?=

PKGS := libevent libevent_pthreads libpq libcurl yajl hiredis libsystemd zlib
TEST_PKGS := check

# Debian packages behind the pkg-config names above, plus the servers and
# tools the tests, `make run` and `make bench` start. llvm: llvm-symbolizer,
# which names the functions in a fuzzer's or clang sanitizer's report;
# fonts-liberation: a font for the headless Chromium of the /docs test.
DEB_BUILD := build-essential pkg-config libevent-dev libpq-dev libcurl4-openssl-dev \
	libyajl-dev libhiredis-dev libsystemd-dev zlib1g-dev check clang-format clang libclang-rt-14-dev \
	llvm
DEB_RUN := postgresql-15 postgresql-client-15 redis-server redis-tools curl procps \
	wrk nginx-light bc
# The /docs page's test drives Debian's Chromium through chromedriver, from node.
DEB_TEST := chromium chromium-driver fonts-liberation
DEB_ALL := $(DEB_BUILD) $(DEB_RUN) $(DEB_TEST)

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wundef -Wno-unused-parameter
PROJECT_CFLAGS := -std=gnu11 -O2 -g -D_GNU_SOURCE $(WARN) -MMD -MP -Icommon
PROJECT_LDFLAGS :=

# The sanitizer build lives in its own tree (build/san/, binaries in
# build/san/bin), so plain and SAN builds never overwrite each other.
ifeq ($(SAN),1)
PROJECT_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
PROJECT_LDFLAGS += -fsanitize=address,undefined
B := build/san
BIN := build/san/bin
LIBCOMMON := build/san/libcommon.a
else ifneq ($(SAN),)
$(error SAN must be 1 or unset, got '$(SAN)')
else
B := build
BIN := bin
LIBCOMMON := common/libcommon.a
endif

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lpthread -lm
TEST_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS := $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

ALL_CFLAGS := $(PROJECT_CFLAGS) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS := $(PROJECT_LDFLAGS) $(LDFLAGS)

STAMP := $(B)/flags.stamp

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)

ROLES := ingestd realtimed apid
ROLE_BINS := $(ROLES:%=$(BIN)/%)
SIM_SRC := $(wildcard tests/upstream-sim/*.c)
SIM_OBJ := $(SIM_SRC:%.c=$(B)/%.o)

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:%.c=$(B)/%)
ITEST_SRC := $(wildcard tests/integration/test_*.c)
ITEST_BINS := $(ITEST_SRC:%.c=$(B)/%)
ITEST_SUPPORT_OBJ := $(B)/tests/integration/itest.o
TESTMAIN_OBJ := $(B)/tests/testmain.o

# libFuzzer harnesses: clang, common/ rebuilt with fuzzer instrumentation in
# build/fuzz (warnings shown, not fatal: clang's set differs from gcc's).
FUZZ_CC ?= clang
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_COMMON_OBJ := $(COMMON_SRC:%.c=build/fuzz/%.o)
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Icommon \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all $(PKG_CFLAGS)

.DEFAULT_GOAL := all
docs: all
	docs/gen-config.sh

.PHONY: fuzz-build docs all test test-unit test-integration run deps deps-build deps-run install clean format format-check bench fuzz help-config
all: $(LIBCOMMON) $(ROLE_BINS) $(BIN)/upstream-sim

# Rebuild everything when the effective flags change (SAN=1 <-> plain).
$(STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@
FORCE:

# The version string is compiled into common/version.c alone, so a new commit
# rebuilds one file, not everything.
VERSION_STRING := $(VERSION) ($(GIT_REV))
$(B)/version.stamp: FORCE
	@mkdir -p $(@D)
	@echo '$(VERSION_STRING)' | cmp -s - $@ || echo '$(VERSION_STRING)' > $@
$(B)/common/version.o: $(B)/version.stamp
$(B)/common/version.o: ALL_CFLAGS += -DEV_VERSION='"$(VERSION_STRING)"'

$(B)/%.o: %.c $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/tests/%.o: tests/%.c $(STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(TEST_CFLAGS) -Itests -c -o $@ $<

$(LIBCOMMON): $(COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

role_objs = $(patsubst %.c,$(B)/%.o,$(wildcard $(1)/*.c))
$(BIN)/ingestd: $(call role_objs,ingestd)
$(BIN)/realtimed: $(call role_objs,realtimed)
$(BIN)/apid: $(call role_objs,apid) $(B)/gen/openapi_json.o $(B)/gen/docs_assets.o

# apid serves apid/openapi.json embedded as a byte array, generated here so the
# JSON file stays the one source (od: coreutils, no other tool needed).
$(B)/gen/openapi_json.c: apid/openapi.json
	@mkdir -p $(@D)
	@{ printf '/* Generated from apid/openapi.json by the Makefile; do not edit. */\n#include <stddef.h>\n#include "routes.h"\nconst char apid_openapi_json[] = {\n'; \
	  od -An -v -tx1 $< | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  printf '0x00};\nconst size_t apid_openapi_json_len = sizeof(apid_openapi_json) - 1;\n'; } > $@.tmp && mv $@.tmp $@
$(B)/gen/openapi_json.o: $(B)/gen/openapi_json.c $(STAMP)
	$(CC) $(ALL_CFLAGS) -Iapid -c -o $@ $<
# /docs: Swagger UI from npm's swagger-ui-dist, pinned by apid/docs/package-lock.json
# and installed by `npm ci` into build/npm (one install for the plain and SAN
# trees; --ignore-scripts: no install-time scripts run). The page
# (apid/docs/index.html) and the two Swagger UI files are embedded with .incbin:
# the bundle is 1.5 MB, which an od array like openapi_json.c would make 9 MB of C.
DOCS_NPM := build/npm
DOCS_STAMP := $(DOCS_NPM)/installed.stamp
DOCS_DIST := $(abspath $(DOCS_NPM))/node_modules/swagger-ui-dist
$(DOCS_STAMP): apid/docs/package.json apid/docs/package-lock.json
	@mkdir -p $(@D)
	cp apid/docs/package.json apid/docs/package-lock.json $(@D)/
	cd $(@D) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@
docs_asset = printf '__asm__(".section .rodata\\n.balign 16\\n.globl %s\\n%s:\\n.incbin \\"%s\\"\\n.globl %s_end\\n%s_end:\\n.byte 0\\n.previous");\n' $(1) $(1) $(2) $(1) $(1);
$(B)/gen/docs_assets.c: $(DOCS_STAMP) apid/docs/index.html
	@mkdir -p $(@D)
	@{ printf '/* Generated by the Makefile from apid/docs/index.html and npm swagger-ui-dist; do not edit. */\n'; \
	  $(call docs_asset,apid_docs_index_html,$(abspath apid/docs/index.html)) \
	  $(call docs_asset,apid_docs_ui_js,$(DOCS_DIST)/swagger-ui-bundle.js) \
	  $(call docs_asset,apid_docs_ui_css,$(DOCS_DIST)/swagger-ui.css) } > $@.tmp && mv $@.tmp $@
$(B)/gen/docs_assets.o: $(B)/gen/docs_assets.c $(STAMP) $(DOCS_STAMP) apid/docs/index.html
	$(CC) $(ALL_CFLAGS) -Iapid -c -o $@ $<
$(ROLE_BINS): $(LIBCOMMON)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(LIBCOMMON) $(PKG_LIBS)

# The simulator links no common/ code: a misreading of the wire format in
# common/ must not be mirrored by the simulator (it uses base.h macros only).
$(BIN)/upstream-sim: $(SIM_OBJ)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(SIM_OBJ) $(PKG_LIBS)

$(B)/tests/unit/test_%: $(B)/tests/unit/test_%.o $(TESTMAIN_OBJ) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBCOMMON) $(PKG_LIBS) $(TEST_LIBS)

$(B)/tests/integration/test_%: $(B)/tests/integration/test_%.o $(ITEST_SUPPORT_OBJ) $(TESTMAIN_OBJ) $(LIBCOMMON)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBCOMMON) $(PKG_LIBS) $(TEST_LIBS)

tests-build: all $(UNIT_BINS) $(ITEST_BINS)
.PHONY: tests-build
# The test objects are intermediate files of the pattern rules above: make
# would delete them after linking and, the flags stamp being FORCEd, compile
# all of them again on the next run (`make test` right after the build).
.SECONDARY: $(UNIT_BINS:%=%.o) $(ITEST_BINS:%=%.o) $(TESTMAIN_OBJ) $(ITEST_SUPPORT_OBJ)

# The README's test command. TESTS=name,name runs a subset (see tests/run.sh).
TEST_ENV := TEST_BIN=$(abspath $(BIN)) TEST_BUILD=$(abspath $(B))
test: tests-build
	$(TEST_ENV) tests/run.sh all

# Under SAN the tests of the roles run against the plain simulator (test
# infrastructure: its own tests, test_sim_*, still run it sanitized): a
# sanitized simulator serving the ingest tests' pages was the largest CPU
# cost of the SAN pass.
ifeq ($(SAN),1)
test test-integration: TEST_ENV += TEST_SIM_BIN=$(abspath bin/upstream-sim)
test test-integration: plain-sim
.PHONY: plain-sim
plain-sim:
	@$(MAKE) --no-print-directory SAN= bin/upstream-sim
endif

test-unit: tests-build
	$(TEST_ENV) tests/run.sh unit

test-integration: tests-build
	$(TEST_ENV) tests/run.sh integration

# Local stack on embedded defaults: PostgreSQL and Redis in ./.run/, the
# simulator as upstream unless UPSTREAM_KEYS names a real key. Ctrl-C stops it.
run: all
	deploy/dev/run-local.sh

# npm (the build installs the /docs page's Swagger UI with it) comes with the
# machine's node when that is NodeSource's; else Debian's npm (and nodejs).
# `deps` installs every package above; `deps-build` the build's alone,
# `deps-run` those and the servers' (CI installs the servers while it
# compiles, then Chromium while the tests run). Without recommended packages: on a
# fresh machine they doubled the install (llvm-14-dev alone is 272 MB),
# and nothing here uses them; dpkg without fsync (a failed install is run
# again, not recovered). The package lists are fetched again when older
# than an hour.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	-o Dpkg::Options::=--force-unsafe-io
define apt_deps
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		{ [ -n "$$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 2>/dev/null)" ] || \
			apt-get update -qq; } && $(APT_INSTALL) $$missing; \
	else echo "deps: all present"; fi
endef
deps:
	$(call apt_deps,$(DEB_ALL))
deps-build:
	$(call apt_deps,$(DEB_BUILD))
deps-run:
	$(call apt_deps,$(DEB_BUILD) $(DEB_RUN))

# Units go where systemd looks for a /usr/local install; @PREFIX@ in them
# becomes the real prefix. Example settings land beside the real ones
# (/etc/evcharger/<role>.env is the operator's, never overwritten).
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/evcharger/migrations \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/evcharger $(DESTDIR)$(PREFIX)/share/doc/evcharger
	install -m 0755 $(ROLE_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 migrations/*.sql $(DESTDIR)$(PREFIX)/share/evcharger/migrations/
	for unit in deploy/systemd/*.service deploy/systemd/*.socket deploy/systemd/*.timer; do \
		sed 's|@PREFIX@|$(PREFIX)|g' $$unit > $(DESTDIR)$(UNITDIR)/$$(basename $$unit) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$unit) || exit 1; \
	done
	for env in deploy/env/*.env; do \
		install -m 0640 $$env $(DESTDIR)$(SYSCONFDIR)/evcharger/$$(basename $$env).example || exit 1; \
	done
	install -m 0644 README.md docs/*.md $(DESTDIR)$(PREFIX)/share/doc/evcharger/

bench: all
	tests/bench/run-all.sh

build/fuzz/common/%.o: common/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
build/fuzz/libcommon.a: $(FUZZ_COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libcommon.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build/fuzz/libcommon.a $(PKG_LIBS)
fuzz-build: $(FUZZ_BINS)

# FUZZ_SECONDS=N per harness (default 60).
fuzz: fuzz-build
	tests/fuzz/run.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build bin common/libcommon.a

-include $(shell find $(B) -name '*.d' 2>/dev/null)
