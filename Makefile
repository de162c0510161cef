# gort: one GNU Makefile. See README.md.
#
#   make                 build/libgort.a and build/libgort.so (release)
#   make test            build and run every test; ends with "N passed, N failed"
#   make stress          the long soaks
#   make bench           benchmarks against glibc, jemalloc, tcmalloc, mimalloc
#   make demo            build and run the demo
#   make install PREFIX=/usr/local
#   MODE=debug | tsan    other builds (in build/debug, build/tsan)

MODE ?= release
PREFIX ?= /usr/local
CC ?= cc
CXX ?= c++

ifeq ($(MODE),release)
  B := $(if $(VALGRIND),build/valgrind,build)
  MODE_CFLAGS := -O2 -g
else ifeq ($(MODE),debug)
  B := build/debug
  MODE_CFLAGS := -O1 -g -DGORT_DEBUG_LEVEL=3
else ifeq ($(MODE),tsan)
  # ThreadSanitizer replaces malloc itself: build the allocator without the
  # libc shim and test it through gort_* only.
  B := build/tsan
  MODE_CFLAGS := -O1 -g -fsanitize=thread -DGORT_NO_SHIM
  MODE_LDFLAGS := -fsanitize=thread
  NO_SHIM := 1
else
  $(error MODE must be release, debug or tsan)
endif

ifdef VALGRIND
  MODE_CFLAGS += -DGORT_VALGRIND  # memcheck annotations (src/alloc/vg.h)
endif

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes -Wconversion -Wno-sign-conversion
CFLAGS_ALL := -std=gnu11 -fPIC -fvisibility=hidden -fno-semantic-interposition \
  -ftls-model=initial-exec -fexceptions -Iinclude -Isrc $(WARN) $(MODE_CFLAGS) $(CFLAGS)
CXXFLAGS_ALL := -std=gnu++17 -fPIC -fvisibility=hidden -Iinclude -Isrc -Wall -Wextra $(MODE_CFLAGS) $(CXXFLAGS)
LDLIBS_ALL := -lpthread

LIB_SRCS := $(wildcard src/base/*.c src/os/*.c src/alloc/*.c src/obs/*.c)
ifndef NO_SHIM
  LIB_SRCS += $(wildcard src/shim/*.c)
  LIB_CXX_SRCS := $(wildcard src/shim/*.cc)
endif
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/obj/%.o) $(LIB_CXX_SRCS:%.cc=$(B)/obj/%.o)
HEADERS := $(wildcard include/*.h include/gort/*.h src/*/*.h)

all: $(B)/libgort.a $(B)/libgort.so

$(B)/obj/%.o: %.c $(HEADERS) Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

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
$(B)/libgort.so: $(LIB_OBJS) src/shim/gort.map
	$(SO_LINK) $(SO_LDFLAGS) $(MODE_LDFLAGS) -o $@ $(LIB_OBJS) $(LDLIBS_ALL)

# ---- tests ---------------------------------------------------------------------
# Every test/<tier>/*.c is a program linked with the static library and the
# harness; test/run.sh runs each case in its own process with a timeout.
TEST_SRCS := $(wildcard test/unit/*.c test/api/*.c test/gc/*.c test/wrong/*.c test/stress/*.c)
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
	$(CC) $(TEST_CFLAGS) $< $(HARNESS) -o $@ $(B)/libgort.a $(MODE_LDFLAGS) -lpthread

$(filter $(B)/test/gc/%,$(TEST_BINS)): test/gc/gctest.h

$(B)/test/%: test/%.cc $(HARNESS) test/harness/test.h $(B)/libgort.a
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c $(HARNESS) -o $@.harness.o
	$(CXX) -std=gnu++17 -Iinclude -Itest/harness -g -O1 -pthread $< $@.harness.o -o $@ $(B)/libgort.a -lpthread

tests: $(TEST_BINS) $(B)/libgort.so $(if $(filter release,$(MODE)),docs-check-tool valgrind-lib)

# The memcheck-annotated library, for test/preload/valgrind.sh.
valgrind-lib:
	@$(MAKE) --no-print-directory VALGRIND=1 build/valgrind/libgort.so

docs-check-tool: build/libgort.a
	@mkdir -p build/tools
	$(CC) -std=gnu11 -Iinclude -Isrc tools/mkmetricsdoc.c -o build/tools/mkmetricsdoc build/libgort.a -lpthread

test: tests
	@MODE=$(MODE) B=$(B) test/run.sh

stress: tests
	@MODE=$(MODE) B=$(B) GORT_STRESS=long test/run.sh stress gc

# ---- benchmarks, demo, install ---------------------------------------------------
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:%.c=build/%)
build/bench/%: bench/%.c bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 -g -pthread -Ibench $< -o $@ -lm -ldl

# A copy of the library with the per-thread counters compiled out, only to
# measure what they cost (ALLOCS="gort gort-nostats" bench/run.sh).
build/bench/nostats/libgort.so: $(LIB_SRCS) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -DGORT_BENCH_NO_STATS -shared -Wl,--version-script=src/shim/gort.map $(LIB_SRCS) -o $@ -lpthread

bench: build/libgort.a build/libgort.so $(BENCH_BINS) build/bench/nostats/libgort.so
	@bench/run.sh
	@bench/rss.sh
	@bench/programs.sh

demo: build/libgort.so build/libgort.a
	@mkdir -p build/examples
	$(CC) -std=gnu11 -O2 -g -Iinclude examples/demo.c -o build/examples/demo build/libgort.a -lpthread
	./build/examples/demo

install: build/libgort.a build/libgort.so
	install -d $(DESTDIR)$(PREFIX)/include/gort $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/gort.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 include/gort/*.h $(DESTDIR)$(PREFIX)/include/gort/
	install -m 644 build/libgort.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 build/libgort.so $(DESTDIR)$(PREFIX)/lib/
	sed -e 's|@PREFIX@|$(PREFIX)|' gort.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/gort.pc

docs: build/libgort.a
	@mkdir -p build/tools
	$(CC) -std=gnu11 -Iinclude -Isrc tools/mkmetricsdoc.c -o build/tools/mkmetricsdoc build/libgort.a -lpthread
	build/tools/mkmetricsdoc > docs/METRICS.md

sizeclasses:
	tools/mksizeclasses.py > src/alloc/sizeclasses.h

clean:
	rm -rf build

.PHONY: all test tests stress bench demo install clean sizeclasses docs docs-check-tool valgrind-lib
.SECONDARY:
