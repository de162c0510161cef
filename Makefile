# gort: one GNU Makefile. See README.md.
#
#   make                 build/libgort.a and build/libgort.so (release)
#   make test            build and run every test; ends with "N passed, N failed"
#   make stress          the long soaks
#   make bench           benchmarks against glibc, jemalloc, tcmalloc, mimalloc,
#                        the collector's against bdwgc, Go and malloc (bench/gc),
#                        and the scheduler's against Go (bench/sched)
#   make bench-gc        build the collector's benchmarks only
#   make bench-chan      channels, select and mutexes, gort and Go side by side
#   make bench-pool      the pools' get+put against malloc, a mutex list and Go
#   make demo            build and run the demo
#   make install         PREFIX=/usr/local LIBDIR=$(PREFIX)/lib DESTDIR=; make uninstall
#   make docs            regenerate docs/METRICS.md, docs/gort.3 and docs/gort.7
#   MODE=debug | tsan    other builds (in build/debug, build/tsan); VALGRIND=1 the
#                        memcheck-annotated one (build/valgrind). The debug and
#                        Valgrind builds install as libgort-debug and libgort-valgrind.
#
# CFLAGS, CPPFLAGS and LDFLAGS are added to gort's own flags (last, so they win).

MODE ?= release
# The context switch is written for x86-64 only so far (src/sched/switch_amd64.S).
ARCH_SUFFIX := amd64
PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
CC ?= cc
CXX ?= c++

ifeq ($(MODE),release)
  B := $(if $(VALGRIND),build/valgrind,build)
  VARIANT := $(if $(VALGRIND),-valgrind)
  MODE_CFLAGS := -O2 -g
else ifeq ($(MODE),debug)
  B := build/debug$(if $(VALGRIND),-valgrind)
  VARIANT := -debug$(if $(VALGRIND),-valgrind)
  MODE_CFLAGS := -O1 -g -DGORT_DEBUG_LEVEL=3
else ifeq ($(MODE),tsan)
  # ThreadSanitizer replaces malloc itself: build the allocator without the
  # libc shim and test it through gort_* only.
  B := build/tsan
  VARIANT := -tsan
  MODE_CFLAGS := -O1 -g -fsanitize=thread -DGORT_NO_SHIM
  MODE_LDFLAGS := -fsanitize=thread
  NO_SHIM := 1
else
  $(error MODE must be release, debug or tsan)
endif

# The version is written once, in include/gort/version.h. The shared
# library is libgort.so.$(VERSION), with the SONAME libgort.so.$(MAJOR)
# (what programs record) and the links libgort.so.$(MAJOR) and libgort.so
# (what -lgort finds); each build directory also has a libgort.so link, for
# LD_PRELOAD=build/libgort.so and the tests, whatever the variant's name.
version_part = $(shell awk '$$2 == "GORT_VERSION_$(1)" { print $$3 }' include/gort/version.h)
MAJOR := $(call version_part,MAJOR)
VERSION := $(MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
LIBNAME := gort$(VARIANT)
SONAME := lib$(LIBNAME).so.$(MAJOR)
REALNAME := lib$(LIBNAME).so.$(VERSION)
SO_LINKS := $(sort $(B)/lib$(LIBNAME).so $(B)/libgort.so)

ifdef VALGRIND
  MODE_CFLAGS += -DGORT_VALGRIND  # memcheck annotations (src/base/vg.h)
endif

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wconversion -Wno-sign-conversion
CFLAGS_ALL := -std=gnu11 -fPIC -fvisibility=hidden -fno-semantic-interposition -ffunction-sections \
  -ftls-model=initial-exec -fexceptions -Iinclude -Isrc $(WARN) $(MODE_CFLAGS) $(CPPFLAGS) $(CFLAGS)
CXXFLAGS_ALL := -std=gnu++17 -fPIC -fvisibility=hidden -ffunction-sections -Iinclude -Isrc -Wall -Wextra $(MODE_CFLAGS) \
  $(CPPFLAGS) $(CXXFLAGS)
LDLIBS_ALL := -lpthread

LIB_SRCS := $(wildcard src/base/*.c src/os/*.c src/alloc/*.c src/gc/*.c src/sched/*.c src/chan/*.c \
  src/sync/*.c src/pool/*.c src/obs/*.c)
LIB_ASM_SRCS := $(wildcard src/sched/*_$(ARCH_SUFFIX).S)
ifndef NO_SHIM
  LIB_SRCS += $(wildcard src/shim/*.c)
  LIB_CXX_SRCS := $(wildcard src/shim/*.cc)
endif
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o) $(LIB_CXX_SRCS:%.cc=$(B)/obj/%.o) $(LIB_ASM_SRCS:%.S=$(B)/obj/%.o)
HEADERS := $(wildcard include/*.h include/gort/*.h src/*/*.h)

all: $(B)/libgort.a $(B)/$(SONAME) $(SO_LINKS)

$(B)/obj/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The context switch (sched/switch_*.S): one per architecture.
$(B)/obj/%.o: %.S Makefile
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(B)/obj/%.o: %.cc $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -c $< -o $@

$(B)/libgort.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

SO_LDFLAGS := -shared -Wl,-z,nodelete -Wl,--version-script=src/shim/gort.map
ifdef LIB_CXX_SRCS
  SO_LINK := $(CXX)
else
  SO_LINK := $(CC)
endif
# The functions every malloc program runs go first in the text, in as few of
# the kernel's fault-around windows as they fit (tools/mkhottext.sh says why;
# `make hottext` regenerates their list, src/shim/hot.ld): GNU ld's own
# script for this link (asked with the same flags, so that -z now and the
# like pick their variant), with that list at the top of .text and .fini
# beside .init (tools/hotscript.awk). Another linker (lld, gold), or a
# script with no such place, links with its default: the layout is only a
# matter of RSS. The flags are kept in gort.flags, so that a change of
# linker or flags makes the script again.
SO_FLAGS_ALL = $(SO_LINK) $(SO_LDFLAGS) $(MODE_LDFLAGS) $(LDFLAGS)
$(B)/gort.flags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(SO_FLAGS_ALL)' | cmp -s - $@ || echo '$(SO_FLAGS_ALL)' > $@
$(B)/gort.ld: src/shim/hot.ld tools/hotscript.awk Makefile $(B)/gort.flags
	@if $(SO_FLAGS_ALL) -Wl,--version 2>/dev/null | head -1 | grep -q '^GNU ld'; then \
	  $(SO_FLAGS_ALL) -Wl,--verbose -o $@.so 2>/dev/null | sed -n '/^=====/,/^=====/{/^=====/d;p;}' | \
	    awk -v hot=src/shim/hot.ld -f tools/hotscript.awk > $@.tmp && mv $@.tmp $@ || \
	    { echo "gort: the linker's script has no place for the hot text; the default layout"; : > $@; }; \
	  rm -f $@.tmp $@.so; \
	else \
	  echo "gort: not GNU ld: libgort.so keeps the linker's default layout"; : > $@; \
	fi

$(B)/$(REALNAME): $(LIB_OBJS) src/shim/gort.map $(B)/gort.ld
	$(SO_LINK) $(SO_LDFLAGS) $$(test -s $(B)/gort.ld && echo -Wl,-T,$(B)/gort.ld) -Wl,-soname,$(SONAME) \
	  $(MODE_LDFLAGS) $(LDFLAGS) -o $@ $(LIB_OBJS) $(LDLIBS_ALL)

$(B)/$(SONAME): $(B)/$(REALNAME)
	ln -sf $(REALNAME) $@

$(SO_LINKS): $(B)/$(SONAME)
	ln -sf $(SONAME) $@

# ---- tests ---------------------------------------------------------------------
# Every test/<tier>/*.c is a program linked with the static library and the
# harness; test/run.sh runs each case in its own process with a timeout.
TEST_SRCS := $(wildcard test/unit/*.c test/api/*.c test/gc/*.c test/sched/*.c test/chan/*.c test/pool/*.c \
  test/wrong/*.c test/stress/*.c)
ifdef NO_SHIM
  # These test the shim, or need libc's own allocations to be gort's; TSan
  # does not support fork() with threads running either.
  TEST_SRCS := $(filter-out test/api/test_libc_surface.c test/stress/test_fork_threads.c \
    test/stress/test_thread_exit.c,$(TEST_SRCS))
endif
TEST_CXX_SRCS := $(if $(NO_SHIM),,$(wildcard test/api/*.cc))
TEST_BINS := $(TEST_SRCS:%.c=$(B)/%) $(TEST_CXX_SRCS:%.cc=$(B)/%)
HARNESS := test/harness/harness.c
TEST_CFLAGS := -std=gnu11 -Iinclude -Isrc -Itest/harness -Wall -Wextra -Wno-format-zero-length -Wno-format-truncation -g -O1 -pthread $(filter -fsanitize=% -DGORT_%,$(MODE_CFLAGS))

$(B)/test/%: test/%.c $(HARNESS) test/harness/test.h $(B)/libgort.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) $< $(HARNESS) -o $@ $(B)/libgort.a $(MODE_LDFLAGS) $(TEST_LINK_EXTRA) -lpthread

$(filter $(B)/test/gc/% $(B)/test/pool/%,$(TEST_BINS)): test/gc/gctest.h
# The scheduler's tests: dladdr names their goroutines' functions in dumps.
$(filter $(B)/test/sched/%,$(TEST_BINS)): test/sched/schedtest.h test/gc/gctest.h
$(filter $(B)/test/sched/%,$(TEST_BINS)): TEST_LINK_EXTRA := -rdynamic
$(filter $(B)/test/chan/%,$(TEST_BINS)): test/chan/chantest.h test/sched/schedtest.h test/gc/gctest.h
$(filter $(B)/test/chan/%,$(TEST_BINS)): TEST_LINK_EXTRA := -rdynamic

$(B)/test/%: test/%.cc $(HARNESS) test/harness/test.h $(B)/libgort.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c $(HARNESS) -o $@.harness.o
	$(CXX) -std=gnu++17 -Iinclude -Itest/harness -g -O1 -pthread $< $@.harness.o -o $@ $(B)/libgort.a -lpthread

# The docs generators (below), built with the tests that check their output.
TOOLS := $(B)/tools/mkmetricsdoc $(B)/tools/mkman
tests: $(TEST_BINS) all $(TOOLS) $(if $(filter release,$(MODE)),valgrind-lib)

# The memcheck-annotated library, for test/preload/valgrind.sh.
valgrind-lib:
	@$(MAKE) --no-print-directory VALGRIND=1 build/valgrind/libgort.so

# Generators of the docs, from the tables in the library (test/preload/docs.sh
# checks that the committed files are what they print).
$(B)/tools/%: tools/%.c $(B)/libgort.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -Iinclude -Isrc $(WARN) -g $< -o $@ $(B)/libgort.a $(MODE_LDFLAGS) -lpthread

test: tests
	@MODE=$(MODE) B=$(B) test/run.sh

stress: tests
	@MODE=$(MODE) B=$(B) TEST_STRESS=long test/run.sh stress gc

# ---- benchmarks, demo, install ---------------------------------------------------
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_CXX_SRCS := $(wildcard bench/*.cc)
BENCH_BINS := $(BENCH_SRCS:%.c=build/%) $(BENCH_CXX_SRCS:%.cc=build/%)
build/bench/%: bench/%.c bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread -Ibench $< -o $@ -lm -ldl

# Sized deallocation made explicit: classic_cxx measures operator delete(void*, size_t).
build/bench/%: bench/%.cc bench/bench.h
	@mkdir -p $(dir $@)
	$(CXX) -std=gnu++17 -O2 -g -pthread -fsized-deallocation -Ibench $< -o $@

# The collector's benchmarks (bench/gc, issue 9): each workload from one C
# source built three ways (gort's collector, bdwgc, malloc/free) and a Go
# version. A peer that cannot be built (libgc-dev or golang-go missing, or a
# libgort.a without the collector yet) is skipped with a message, not an
# error; bench/gc/run.sh then leaves it out of the table.
GCB := build/bench/gc
GCB_WORKLOADS := gcbench bintree largeheap strings
GCB_CFLAGS := -std=gnu11 -O2 -g -pthread -Ibench/gc -Iinclude -Wall -Wextra
GCB_BINS := $(foreach w,$(GCB_WORKLOADS),$(GCB)/$(w)-malloc $(GCB)/$(w)-bdwgc $(GCB)/$(w)-gort $(GCB)/$(w)-gort-wb) \
  $(GCB)/gcgo
GCB_GOCACHE ?= /tmp/gort-gocache

$(GCB)/%-malloc: bench/gc/%.c bench/gc/gcb.h
	@mkdir -p $(dir $@)
	$(CC) $(GCB_CFLAGS) -DIMPL_MALLOC $< -o $@ -lm

$(GCB)/%-bdwgc: bench/gc/%.c bench/gc/gcb.h
	@mkdir -p $(dir $@)
	@echo "$(CC) $(GCB_CFLAGS) -DIMPL_BDWGC $< -o $@ -lgc -lm"
	@$(CC) $(GCB_CFLAGS) -DIMPL_BDWGC $< -o $@ -lgc -lm 2>$@.log && rm -f $@.log || { rm -f $@; \
	  echo "bench-gc: bdwgc skipped: cannot build $@ (apt-get install libgc-dev; see $@.log)" >&2; }

# Compiling must work (gc.h is the fixed API); linking fails until the
# collector is in build/libgort.a.
$(GCB)/%-gort.o: bench/gc/%.c bench/gc/gcb.h include/gort/gc.h include/gort/metrics.h
	@mkdir -p $(dir $@)
	$(CC) $(GCB_CFLAGS) -DIMPL_GORT -c $< -o $@

# gort's barriered objects and write barrier (bench/gc/gcb.h, GCB_WB).
$(GCB)/%-gort-wb: bench/gc/%.c bench/gc/gcb.h include/gort/gc.h include/gort/metrics.h build/libgort.a
	@mkdir -p $(dir $@)
	$(CC) $(GCB_CFLAGS) -DIMPL_GORT -DGCB_WB $< -o $@ build/libgort.a -lpthread -lm

$(GCB)/%-gort: $(GCB)/%-gort.o build/libgort.a
	@echo "$(CC) -pthread $< -o $@ build/libgort.a -lpthread -lm"
	@$(CC) -pthread $< -o $@ build/libgort.a -lpthread -lm 2>$@.log && rm -f $@.log || { rm -f $@; \
	  echo "bench-gc: gort skipped: $@ does not link against build/libgort.a" \
	    "(the collector is not built yet?): $$(grep -o "undefined reference to \`[a-z_]*'" $@.log | sort -u | head -3 | tr '\n' ' ')" >&2; }

$(GCB)/gcgo: $(wildcard bench/gc/go/*.go) bench/gc/go/go.mod
	@mkdir -p $(dir $@)
	@echo "cd bench/gc/go && go build -o $(CURDIR)/$@ ."
	@if ! command -v go >/dev/null; then rm -f $@; \
	  echo "bench-gc: Go skipped: no go command (apt-get install golang-go)" >&2; \
	elif ! (cd bench/gc/go && GOCACHE=$(GCB_GOCACHE) go build -o $(CURDIR)/$@ .); then rm -f $@; \
	  echo "bench-gc: Go skipped: go build failed" >&2; fi

bench-gc: $(GCB_BINS)

# Channels, select and mutexes against Go 1.19 (bench/chan, issue 11).
build/bench/chan/chanbench: bench/chan/chanbench.c build/libgort.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -Iinclude $< -o $@ build/libgort.a -lpthread

build/bench/chan/chango: bench/chan/go/main.go bench/chan/go/go.mod
	@mkdir -p $(dir $@)
	@if ! command -v go >/dev/null; then rm -f $@; \
	  echo "bench-chan: Go skipped: no go command (apt-get install golang-go)" >&2; \
	elif ! (cd bench/chan/go && GOCACHE=$(GCB_GOCACHE) go build -o $(CURDIR)/$@ .); then rm -f $@; \
	  echo "bench-chan: Go skipped: go build failed" >&2; fi

bench-chan: build/bench/chan/chanbench build/bench/chan/chango
	@bench/chan/run.sh

# The pools' benchmark (bench/pool, issue 13): get+put against
# gort_malloc+gort_free, glibc's malloc+free and a mutex free list, single
# thread and 2 threads, and the same loop with Go 1.19's sync.Pool
# (skipped with a message when there is no go command).
POOLB := build/bench/pool
$(POOLB)/poolbench: bench/pool/poolbench.c bench/bench.h include/gort/pool.h build/libgort.a
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread -Iinclude -Wall -Wextra $< -o $@ build/libgort.a -ldl -lpthread

$(POOLB)/poolgo: bench/pool/go/main.go bench/pool/go/go.mod
	@mkdir -p $(dir $@)
	@if ! command -v go >/dev/null; then rm -f $@; \
	  echo "bench-pool: Go skipped: no go command (apt-get install golang-go)" >&2; \
	elif ! (cd bench/pool/go && GOCACHE=$(GCB_GOCACHE) go build -o $(CURDIR)/$@ .); then rm -f $@; \
	  echo "bench-pool: Go skipped: go build failed" >&2; fi

# POOL_MILLIONS: get+put pairs per thread, in millions.
POOL_MILLIONS ?= 50
bench-pool: $(POOLB)/poolbench $(POOLB)/poolgo
	$(POOLB)/poolbench $(POOL_MILLIONS)
	@if [ -x $(POOLB)/poolgo ]; then GOMAXPROCS=2 $(POOLB)/poolgo $(POOL_MILLIONS); fi

bench: build/libgort.a all $(BENCH_BINS) bench-gc
	@bench/run.sh
	@bench/classic.sh
	@bench/rss.sh
	@bench/programs.sh
	@bench/startup.sh
	@GCB_NOBUILD=1 bench/gc/run.sh
	@bench/sched/run.sh
	@$(MAKE) --no-print-directory bench-chan
	@$(MAKE) --no-print-directory bench-pool

demo: build/libgort.a
	@mkdir -p build/examples
	$(CC) -std=gnu11 -O2 -g -Iinclude examples/demo.c -o build/examples/demo build/libgort.a -lpthread
	./build/examples/demo
	$(CC) -std=gnu11 -O2 -g -Iinclude examples/gcdemo.c -o build/examples/gcdemo build/libgort.a -lpthread
	@echo
	GORT_DEBUG=gctrace=1 ./build/examples/gcdemo 2>&1 | awk 'NR <= 6 || !/^gc [0-9]/ { print; next } { n++ } END { if (n) print "... and", n, "more gctrace lines" }'
	$(CC) -std=gnu11 -O2 -g -Iinclude examples/godemo.c -o build/examples/godemo build/libgort.a -rdynamic -lpthread
	@echo
	./build/examples/godemo
	$(CC) -std=gnu11 -O2 -g -Iinclude examples/pipeline.c -o build/examples/pipeline build/libgort.a -lpthread
	@echo
	./build/examples/pipeline
	$(CC) -std=gnu11 -O2 -g -Iinclude examples/pool.c -o build/examples/pool build/libgort.a -lpthread
	@echo
	./build/examples/pool

# Installs this build's variant: the headers, lib$(LIBNAME).a, the shared
# library and its links, $(LIBNAME).pc, the man pages gort(3), gort(7) and
# memcheck's suppressions (share/gort/valgrind.supp).
# uninstall removes what install put there; the headers and man pages,
# which every variant shares, go with the last variant's library.
PUBLIC_HEADERS := $(wildcard include/gort/*.h)
ifeq ($(MODE),tsan)
install uninstall:
	$(error the ThreadSanitizer build is for tests only; install MODE=release or MODE=debug)
else
install: $(B)/libgort.a $(B)/$(REALNAME)
	install -d $(DESTDIR)$(INCLUDEDIR)/gort $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	install -m 644 include/gort.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/gort/
	install -m 644 $(B)/libgort.a $(DESTDIR)$(LIBDIR)/lib$(LIBNAME).a
	install -m 755 $(B)/$(REALNAME) $(DESTDIR)$(LIBDIR)/
	ln -sf $(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/lib$(LIBNAME).so
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	  -e 's|@LIBNAME@|$(LIBNAME)|g; s|@VERSION@|$(VERSION)|' gort.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/$(LIBNAME).pc
	install -m 644 docs/gort.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 docs/gort.7 $(DESTDIR)$(MANDIR)/man7/
	install -d $(DESTDIR)$(DATADIR)/gort
	install -m 644 docs/valgrind.supp $(DESTDIR)$(DATADIR)/gort/

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(REALNAME) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	  $(DESTDIR)$(LIBDIR)/lib$(LIBNAME).so $(DESTDIR)$(LIBDIR)/lib$(LIBNAME).a \
	  $(DESTDIR)$(PKGCONFIGDIR)/$(LIBNAME).pc
	@if ls $(DESTDIR)$(LIBDIR)/libgort*.so.$(MAJOR) >/dev/null 2>&1; then \
	  echo "headers and man pages kept for $$(cd $(DESTDIR)$(LIBDIR) && ls libgort*.so.$(MAJOR))"; \
	else \
	  set -x; rm -f $(DESTDIR)$(INCLUDEDIR)/gort.h $(PUBLIC_HEADERS:include/%=$(DESTDIR)$(INCLUDEDIR)/%) \
	    $(DESTDIR)$(MANDIR)/man3/gort.3 $(DESTDIR)$(MANDIR)/man7/gort.7 \
	    $(DESTDIR)$(DATADIR)/gort/valgrind.supp; \
	  rmdir $(DESTDIR)$(INCLUDEDIR)/gort $(DESTDIR)$(DATADIR)/gort 2>/dev/null || true; \
	fi
endif

docs: $(TOOLS)
	$(B)/tools/mkmetricsdoc > docs/METRICS.md
	$(B)/tools/mkman 3 > docs/gort.3
	$(B)/tools/mkman 7 > docs/gort.7

sizeclasses:
	tools/mksizeclasses.py > src/alloc/sizeclasses.h

# Needs valgrind (callgrind) and a release build of the library and benchmarks.
# The list is the release build's (B=build; the benchmarks live there too).
hottext: build/bench/allocbench build/bench/classic build/bench/classic_cxx
	@test "$(B)" = build || { echo "make hottext: the release build's list (no MODE, no B)"; exit 1; }
	$(MAKE) --no-print-directory all
	tools/mkhottext.sh build > src/shim/hot.ld.new && mv src/shim/hot.ld.new src/shim/hot.ld

clean:
	rm -rf build

# For scripts: `make -s print-LIBNAME MODE=debug` prints gort-debug.
print-%:
	@echo '$($*)'

.PHONY: all test tests stress bench bench-gc bench-chan bench-pool demo install uninstall clean sizeclasses docs valgrind-lib hottext FORCE
.SECONDARY:
