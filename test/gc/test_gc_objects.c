// Collected objects: what keeps them alive (interior pointers, scanned and
// typed words) and what does not (noscan objects, non-pointer words of
// typed objects); gort_gc_base and gort_gc_size; gort_realloc and gort_free
// of collected objects; the tiny allocator, large objects and every size
// class, zeroed when handed out again after a cycle.
//
// As in test_gc_roots.c, collection is seen through weak pointers, and a
// case that needs an object collected requires most of K objects, not all:
// a stale copy of an address on the stack may keep one (see gctest.h).

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gctest.h"
#include "gort/alloc.h"
#include "gort/prof.h"

enum { K = 16, SLACK = 4 };

static gort_weak_t *weak[K];
static void *slot[K];  // the root under test

static uint64_t tag_of(int i) { return 0x0B1EC7 + (uint64_t)i; }

static void *alloc_checked(size_t size) {
  void *p = gort_gc_alloc(size);
  if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc(%zu) failed", size);
  return p;
}

// K objects of size bytes, filled; slot[i] = object i + offset (an
// interior pointer unless offset is 0).
static GCTEST_NOINLINE void make_objects(size_t size, size_t offset) {
  for (int i = 0; i < K; i++) {
    char *p = alloc_checked(size);
    gctest_fill(p, size, tag_of(i));
    weak[i] = gort_gc_weak_make(p);
    slot[i] = p + offset;
  }
}

// How many of the first n_objects objects (of size bytes) are still there, intact.
static GCTEST_NOINLINE int count_intact(size_t size, int n_objects) {
  int n = 0;
  for (int i = 0; i < n_objects; i++) {
    void *p = gort_gc_weak_get(weak[i]);
    n += p != NULL && gctest_check(p, size, tag_of(i));
  }
  return n;
}

static void expect_kept_then_collected(size_t size, size_t offset, const char *what) {
  make_objects(size, offset);
  for (int round = 0; round < 2; round++) {
    gctest_collect();
    EXPECT_EQ_U64(count_intact(size, K), K, "objects of %zu bytes held by %s, cycle %d", size, what,
                  round + 1);
  }
  memset(slot, 0, sizeof slot);
  gctest_collect();
  int cleared = gctest_count_cleared(weak, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d objects of %zu bytes collected after %s was dropped",
         cleared, K, size, what);
}

// ---- interior pointers ---------------------------------------------------------------

TEST(a_pointer_to_the_middle_keeps_an_object_alive) {
  expect_kept_then_collected(256, 128, "a pointer to the middle");
  expect_kept_then_collected(3000, 1501, "an odd pointer to the middle");
}

TEST(a_pointer_to_the_last_byte_keeps_an_object_alive) {
  expect_kept_then_collected(256, 255, "a pointer to the last byte");
  expect_kept_then_collected(24, 23, "a pointer to the last byte");
}

TEST(an_interior_pointer_keeps_a_large_object_alive) {
  expect_kept_then_collected(1 << 20, (1 << 20) - 1, "a pointer to the last byte of 1 MiB");
  expect_kept_then_collected(300000, 150000, "a pointer to the middle of a large object");
}

// ---- gort_gc_base and gort_gc_size ----------------------------------------------------

static const gort_gc_layout_t *one_pointer_layout(void) {
  uint64_t map = 1;  // word 0 of every two
  return gort_gc_layout(&map, 2);
}

static void *alloc_kind(int kind, size_t size) {
  void *p = kind == 0   ? gort_gc_alloc(size)
            : kind == 1 ? gort_gc_alloc_noscan(size)
                        : gort_gc_alloc_typed(size, one_pointer_layout());
  if (p == NULL)
    harness_fail(__FILE__, __LINE__, "allocation of kind %d, %zu bytes failed", kind, size);
  return p;
}

static const char *const kind_name[3] = {"scanned", "noscan", "typed"};

TEST(base_and_size_are_answered_for_every_interior_pointer) {
  // Noscan objects under 16 bytes may share a block (the tiny allocator):
  // their base is the block's, so they start at 16 bytes here.
  static const size_t sizes[] = {16,    17,    24,    100,     1000,   4096,
                                 10000, 32768, 40000, 1 << 20, 3 << 20};
  for (int kind = 0; kind < 3; kind++)
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      size_t size = sizes[s];
      char *p = alloc_kind(kind, size);
      EXPECT(((uintptr_t)p & 15) == 0, "%s object of %zu bytes at %p is not 16-byte aligned",
             kind_name[kind], size, (void *)p);
      size_t usable = gort_gc_size(p);
      EXPECT(usable >= size, "gort_gc_size of a %s object of %zu bytes = %zu", kind_name[kind],
             size, usable);
      size_t offsets[] = {0, 1, 8, size / 2, size - 1, usable - 1};
      for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        void *base = gort_gc_base(p + offsets[o]);
        EXPECT(base == p, "gort_gc_base(%p + %zu) = %p for a %s object of %zu bytes", (void *)p,
               offsets[o], base, kind_name[kind], size);
        EXPECT_EQ_U64(gort_gc_size(p + offsets[o]), usable, "gort_gc_size(%p + %zu), %s, %zu bytes",
                      (void *)p, offsets[o], kind_name[kind], size);
      }
    }
}

static int a_global;

TEST(base_is_null_outside_collected_objects) {
  char on_stack[64];
  char *m = gort_malloc(100);
  EXPECT(gort_gc_base(NULL) == NULL);
  EXPECT(gort_gc_base(m) == NULL, "gort_gc_base of a gort_malloc'd block = %p", gort_gc_base(m));
  EXPECT(gort_gc_base(m + 50) == NULL, "gort_gc_base inside a gort_malloc'd block");
  EXPECT(gort_gc_base(on_stack) == NULL, "gort_gc_base of a stack address");
  EXPECT(gort_gc_base(&a_global) == NULL, "gort_gc_base of a global");
  EXPECT(gort_gc_base((void *)(uintptr_t)16) == NULL, "gort_gc_base(0x10)");
  EXPECT(gort_gc_base((void *)~(uintptr_t)15) == NULL,
         "gort_gc_base of the top of the address space");
  // A freed collected object is no longer one.
  char *p = alloc_checked(100);
  gort_free(p);
  EXPECT(gort_gc_base(p) == NULL, "gort_gc_base of a collected object after gort_free = %p",
         gort_gc_base(p));
  gort_free(m);
}

// ---- noscan and typed objects ---------------------------------------------------------

static void *holder;  // rooted here

TEST(a_noscan_object_does_not_retain_what_it_points_to) {
  void **h = gort_gc_alloc_noscan(K * sizeof(void *));
  holder = h;
  make_objects(100, 0);
  memcpy(h, slot, sizeof slot);
  uintptr_t disguised[K];  // to check the holder's contents later, without being a root
  for (int i = 0; i < K; i++) disguised[i] = (uintptr_t)slot[i] ^ 0xFFFF000000000000ULL;
  memset(slot, 0, sizeof slot);
  gctest_collect();
  int cleared = gctest_count_cleared(weak, K);
  EXPECT(cleared >= K - SLACK,
         "only %d of %d objects collected when only a noscan object held them", cleared, K);
  for (int i = 0; i < K; i++)
    EXPECT(((uintptr_t)h[i] ^ 0xFFFF000000000000ULL) == disguised[i],
           "the noscan holder's word %d changed", i);
  EXPECT(gort_gc_base(h) == h, "the noscan holder itself was collected");
}

// A typed array: elements of four words, words 0 and 2 pointers, 1 and 3
// not. Even objects go in pointer words, odd ones in the others.
TEST(typed_objects_retain_only_through_their_pointer_words) {
  uint64_t map = 0x5;
  const gort_gc_layout_t *layout = gort_gc_layout(&map, 4);
  EXPECT(layout != NULL);
  EXPECT(gort_gc_layout(&map, 4) == layout, "the same layout twice is not interned");
  uint64_t other = 0x6;
  EXPECT(gort_gc_layout(&other, 4) != layout, "different layouts are one");
  void **h = gort_gc_alloc_typed(8 * 4 * sizeof(void *), layout);  // 8 elements
  holder = h;
  make_objects(100, 0);
  for (int i = 0; i < K; i++) {
    int e = i / 2;
    h[e * 4 + (i % 2) + 2 * (e % 2)] = slot[i];
  }
  memset(slot, 0, sizeof slot);
  gctest_collect();
  gctest_collect();
  int kept = 0, collected = 0;
  for (int i = 0; i < K; i++) {
    bool cleared = gort_gc_weak_get(weak[i]) == NULL;
    if (i % 2 == 0)
      kept += !cleared;
    else
      collected += cleared;
  }
  EXPECT_EQ_U64(kept, K / 2, "objects held in pointer words of a typed array");
  EXPECT(collected >= K / 2 - SLACK / 2,
         "only %d of %d objects collected that only non-pointer words of a typed array held",
         collected, K / 2);
}

TEST(a_layout_longer_than_64_words_names_its_pointer_words) {
  uint64_t map[2] = {0, 1ULL << (70 - 64)};  // word 70 of 100
  const gort_gc_layout_t *layout = gort_gc_layout(map, 100);
  void **h = gort_gc_alloc_typed(4 * 100 * sizeof(void *), layout);  // repeated 4 times
  holder = h;
  make_objects(64, 0);
  for (int i = 0; i < 8; i++) h[(i / 2) * 100 + 70 + (i % 2)] = slot[i];  // words 70 and 71
  memset(slot, 0, sizeof slot);
  gctest_collect();
  int kept = 0, collected = 0;
  for (int i = 0; i < 8; i++) {
    bool cleared = gort_gc_weak_get(weak[i]) == NULL;
    if (i % 2 == 0)
      kept += !cleared;
    else
      collected += cleared;
  }
  EXPECT_EQ_U64(kept, 4, "objects held in word 70 of a 100-word layout");
  EXPECT(collected >= 2, "only %d of 4 objects collected that word 71 held", collected);
}

// ---- realloc and free -----------------------------------------------------------------

static gort_weak_t *child_weak[K], *grown_weak[K];
static void *grown[K];  // the root under test

// Object i: a scanned object pointing at a child only it holds, then grown
// and shrunk by gort_realloc through each size in turn; grown[i] keeps the
// result.
static GCTEST_NOINLINE void realloc_through(int i, const size_t *sizes, int n) {
  void **p = alloc_checked(64);
  void *child = alloc_checked(48);
  gctest_fill(child, 48, 7);
  child_weak[i] = gort_gc_weak_make(child);
  p[0] = child;
  gctest_fill(&p[1], 64 - 8, 8);
  size_t keep = 64;
  for (int s = 0; s < n; s++) {
    void **q = gort_realloc(p, sizes[s]);
    if (q == NULL) harness_fail(__FILE__, __LINE__, "gort_realloc to %zu failed", sizes[s]);
    if (gort_gc_base(q) != q)
      harness_fail(__FILE__, __LINE__, "gort_realloc(%p, %zu) = %p, not a collected object",
                   (void *)p, sizes[s], (void *)q);
    if (gort_gc_size(q) < sizes[s]) harness_fail(__FILE__, __LINE__, "gort_gc_size after realloc");
    keep = keep < sizes[s] ? keep : sizes[s];
    if (q[0] != child || !gctest_check(&q[1], keep - 8, 8))
      harness_fail(__FILE__, __LINE__, "gort_realloc to %zu lost the contents", sizes[s]);
    p = q;
  }
  grown[i] = p;
  grown_weak[i] = gort_gc_weak_make(p);
}

static GCTEST_NOINLINE int count_grown_intact(void) {
  int n = 0;
  for (int i = 0; i < K; i++) {
    void *child = gort_gc_weak_get(child_weak[i]);
    n += gort_gc_weak_get(grown_weak[i]) == grown[i] && child != NULL && gctest_check(child, 48, 7);
  }
  return n;
}

TEST(realloc_of_a_collected_object_returns_a_collected_object_with_its_contents) {
  static const size_t sizes[] = {5000, 1 << 20, 200, 32};
  for (int i = 0; i < K; i++) realloc_through(i, sizes, 4);
  for (int round = 0; round < 2; round++) {
    gctest_collect();
    EXPECT_EQ_U64(count_grown_intact(), K,
                  "reallocated objects alive, keeping their children, cycle %d", round + 1);
  }
  memset(grown, 0, sizeof grown);
  gctest_collect();
  int cleared = gctest_count_cleared(grown_weak, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d reallocated objects collected once dropped", cleared,
         K);
}

TEST(free_of_a_collected_object_frees_it_at_once) {
  enum { N = 1000 };
  static void *objs[N];
  for (int i = 0; i < N; i++) objs[i] = alloc_checked((size_t)(16 + i % 300));
  void *large = alloc_checked(1 << 20);
  uint64_t before = gctest_memstats()->heap_objects, bytes_before = gctest_memstats()->heap_alloc;
  for (int i = 0; i < N; i++) gort_free(objs[i]);
  gort_free(large);
  gort_memstats_t *m = gctest_memstats();
  EXPECT(m->heap_objects + N + 1 <= before,
         "HeapObjects %" PRIu64 " -> %" PRIu64 " after freeing %d objects", before, m->heap_objects,
         N + 1);
  EXPECT(m->heap_alloc + (1 << 20) <= bytes_before,
         "HeapAlloc %" PRIu64 " -> %" PRIu64 " after freeing 1 MiB and more", bytes_before,
         m->heap_alloc);
  EXPECT(gort_gc_base(large) == NULL, "the freed large object is still a collected object");
}

// A span that went full in one thread's cache and whose objects another
// thread then frees must take allocations again before any cycle: frees
// keep the live count, and so the pacer's heap, small, and no cycle may
// ever come to sweep it. The full span kept its frees until a sweep, and
// a program that allocated in one thread and freed in another grew by 200
// MB a second with 400 KB live. Here the collector is off: each round a
// thread allocates a batch (its spans go full, and back to the central
// lists as the thread exits) and this one frees it. The objects must keep
// their contents, and the heap must stay near one batch. Every other round
// is of uncollectable objects, with a leak check before the frees: the
// leak check's walk of the lists once took a full span's request to hear
// of its first free, and nothing asked again.
enum { BATCH = 2048, BATCH_BYTES = 48, BATCH_ROUNDS = 200 };

static void *batch[BATCH];

static void *alloc_batch(void *arg) {
  uint64_t round = (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < BATCH; i++) {
    batch[i] = round % 2 ? gort_gc_alloc_uncollectable(BATCH_BYTES) : alloc_checked(BATCH_BYTES);
    if (batch[i] == NULL) harness_fail(__FILE__, __LINE__, "allocation %d of round %" PRIu64 " failed", i, round);
    gctest_fill(batch[i], BATCH_BYTES, round * BATCH + (uint64_t)i);
  }
  return NULL;
}

TEST(objects_freed_by_another_thread_are_reused_without_a_cycle) {
  int percent = gort_gc_set_percent(-1);
  int devnull = open("/dev/null", O_WRONLY);
  EXPECT(devnull >= 0);
  uint32_t cycles = gctest_num_gc();
  uint64_t inuse_before = gctest_memstats()->heap_inuse;
  for (uint64_t round = 0; round < BATCH_ROUNDS; round++) {
    pthread_t t;
    EXPECT(pthread_create(&t, NULL, alloc_batch, (void *)(uintptr_t)round) == 0);
    pthread_join(t, NULL);
    if (round % 2 && round % 10 == 1) EXPECT(gort_leak_check(devnull) >= 0);
    for (int i = 0; i < BATCH; i++) {
      if (!gctest_check(batch[i], BATCH_BYTES, round * BATCH + (uint64_t)i))
        harness_fail(__FILE__, __LINE__, "object %d of round %" PRIu64 " changed", i, round);
      gort_free(batch[i]);
    }
  }
  uint64_t inuse = gctest_memstats()->heap_inuse;
  uint32_t ran = gctest_num_gc() - cycles;
  gort_gc_set_percent(percent);
  close(devnull);
  EXPECT(ran == 0, "%u cycles ran with the collector off", ran);
  EXPECT(inuse < inuse_before + 4 * BATCH * BATCH_BYTES,
         "HeapInuse %" PRIu64 " -> %" PRIu64 " after %d rounds of %d %d-byte objects", inuse_before, inuse,
         BATCH_ROUNDS, BATCH, BATCH_BYTES);
}

// Spans that gort_free emptied must go back to the page heap before it
// grows for another size class, with or without a cycle: frees keep the
// live count low, and a program that allocated and freed 100,000 objects
// of each of 23 sizes in turn kept 214-513 MB in use with 5 KB live.
// Collector off; twelve sizes in turn, each a batch allocated, checked and
// freed; the heap must stay near the largest batch (28.8 MB in all, 4.2
// MB the largest).
enum { EMPTIED_N = 20000, EMPTIED_SIZES = 12 };

static void *emptied[EMPTIED_N];

TEST(spans_emptied_by_frees_go_back_to_the_heap_without_a_cycle) {
  int percent = gort_gc_set_percent(-1);
  uint32_t cycles = gctest_num_gc();
  uint64_t inuse_before = gctest_memstats()->heap_inuse, peak = 0;
  for (int k = 0; k < EMPTIED_SIZES; k++) {
    size_t size = 32 + 16 * (size_t)k;
    for (int i = 0; i < EMPTIED_N; i++) {
      emptied[i] = alloc_checked(size);
      gctest_fill(emptied[i], size, (uint64_t)k * EMPTIED_N + (uint64_t)i);
    }
    for (int i = 0; i < EMPTIED_N; i++) {
      if (!gctest_check(emptied[i], size, (uint64_t)k * EMPTIED_N + (uint64_t)i))
        harness_fail(__FILE__, __LINE__, "object %d of size %zu changed", i, size);
      gort_free(emptied[i]);
    }
    uint64_t inuse = gctest_memstats()->heap_inuse;
    if (inuse > peak) peak = inuse;
  }
  uint32_t ran = gctest_num_gc() - cycles;
  gort_gc_set_percent(percent);
  EXPECT(ran == 0, "%u cycles ran with the collector off", ran);
  uint64_t largest = (uint64_t)EMPTIED_N * (32 + 16 * (EMPTIED_SIZES - 1));
  EXPECT(peak < inuse_before + 2 * largest + (2 << 20),
         "HeapInuse %" PRIu64 " -> %" PRIu64 " at most, over %d sizes of %d objects (the largest batch %" PRIu64 " bytes)",
         inuse_before, peak, EMPTIED_SIZES, EMPTIED_N, largest);
}

// The same spans once the program stops allocating: the walk above runs
// only on an allocation that would grow the heap, so a program that freed
// its objects and went idle kept them until the next allocation (49 MB of
// the last batch above). The scavenger's tick walks once the frees are
// half a second old, and gort_free_os_memory walks at once.
static GCTEST_NOINLINE uint64_t allocate_and_free_batch(size_t size) {
  uint64_t before = gctest_memstats()->heap_inuse;
  for (int i = 0; i < EMPTIED_N; i++) emptied[i] = alloc_checked(size);
  uint64_t grown = gctest_memstats()->heap_inuse - before;
  for (int i = 0; i < EMPTIED_N; i++) gort_free(emptied[i]);
  return grown;
}

TEST(spans_emptied_by_frees_go_back_to_the_heap_when_the_program_goes_idle) {
  int percent = gort_gc_set_percent(-1);
  uint64_t inuse_before = gctest_memstats()->heap_inuse;
  uint64_t grown = allocate_and_free_batch(64);
  EXPECT(grown >= (uint64_t)EMPTIED_N * 64, "HeapInuse grew by only %" PRIu64 " bytes", grown);
  const char *debug = getenv("GORT_DEBUG");
  bool scavenger = debug == NULL || strstr(debug, "scavenge=0") == NULL;  // its tick walks
  double deadline = gctest_now() + 5.0;
  uint64_t inuse;
  while ((inuse = gctest_memstats()->heap_inuse) > inuse_before + grown / 4 && gctest_now() < deadline && scavenger)
    gctest_sleep_ms(20);
  if (scavenger)
    EXPECT(inuse <= inuse_before + grown / 4,
           "HeapInuse %" PRIu64 " -> %" PRIu64 " 5 s after freeing %" PRIu64 " bytes of objects", inuse_before,
           inuse, grown);
  inuse_before = gctest_memstats()->heap_inuse;
  grown = allocate_and_free_batch(96);
  gort_free_os_memory();
  inuse = gctest_memstats()->heap_inuse;
  EXPECT(inuse <= inuse_before + grown / 4,
         "HeapInuse %" PRIu64 " -> %" PRIu64 " after freeing %" PRIu64 " bytes of objects and gort_free_os_memory",
         inuse_before, inuse, grown);
  gort_gc_set_percent(percent);
}

// gort_free of a large object whose span a sweeper (the background one, or
// a thread finishing the last sweep) had taken off its list died with a
// false "double free (collected object)": the free took "on no list" for
// "already freed". One thread collects without pause, so that the held
// objects' spans are swept again every few hundred microseconds, while
// this one frees and replaces them at random. The race needs the sweeper
// to run beside the free, or to lose the CPU, between taking a span and
// putting it back: a few times a second at best, hence seconds of it.
// Every object must keep its contents (a span freed twice would be handed
// out twice) and, once all are freed, the heap must give their pages back
// (a free lost to the race would leak its span, off every list).
// Every slot holds an object before the rounds start: how many rounds fit
// in the time is up to the scheduler (the collecting thread stops this
// one hundreds of times a second, and on a loaded machine it may be
// stopped again before it runs at all), and the checks at the end read
// every slot.
enum { NLARGE = 64, LARGE_BYTES = 40 << 10 };

static _Atomic bool stop_collecting;

static void *collect_until_stopped(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_collecting)) gort_gc_collect();
  return NULL;
}

// An object's first and last 256 bytes: enough to see two objects share
// pages, and cheap enough that the race is tried often.
static void mark(char *p, uint64_t tag) {
  gctest_fill(p, 256, tag);
  gctest_fill(p + LARGE_BYTES - 256, 256, ~tag);
}

static bool intact(const char *p, uint64_t tag) {
  return gctest_check(p, 256, tag) && gctest_check(p + LARGE_BYTES - 256, 256, ~tag);
}

// At most max_rounds rounds (and 3 s of them).
static void free_large_objects_while_collecting(uint64_t max_rounds) {
  static void *held[NLARGE];
  static uint64_t tags[NLARGE];
  gctest_collect();  // the spans the collector's first cycle allocates for itself
  uint64_t inuse_before = gctest_memstats()->heap_inuse;
  uint64_t n = 1;
  for (int i = 0; i < NLARGE; i++, n++) {
    held[i] = alloc_checked(LARGE_BYTES);
    tags[i] = n;
    mark(held[i], n);
  }
  pthread_t collector;
  EXPECT(pthread_create(&collector, NULL, collect_until_stopped, NULL) == 0);
  uint64_t rng = harness_seed(), frees = 0;
  double deadline = gctest_now() + 3.0 * harness_scale();
  for (uint64_t round = 0; round < max_rounds && gctest_now() < deadline; round++, n++) {
    int i = (int)(test_rand(&rng) % NLARGE);
    if (!intact(held[i], tags[i]))
      harness_fail(__FILE__, __LINE__, "large object %d changed by round %" PRIu64, i, round);
    gort_free(held[i]);
    frees++;
    held[i] = alloc_checked(LARGE_BYTES);
    tags[i] = n;
    mark(held[i], n);
  }
  atomic_store(&stop_collecting, true);
  pthread_join(collector, NULL);
  for (int i = 0; i < NLARGE; i++) {
    EXPECT(intact(held[i], tags[i]), "large object %d changed", i);
    for (int j = 0; j < i; j++)
      EXPECT(held[i] != held[j], "objects %d and %d share %p", j, i, held[i]);
  }
  for (int i = 0; i < NLARGE; i++) {
    gort_free(held[i]);
    held[i] = NULL;
  }
  gctest_collect();
  uint64_t inuse = gctest_memstats()->heap_inuse;
  EXPECT(inuse < inuse_before + LARGE_BYTES,
         "HeapInuse %" PRIu64 " -> %" PRIu64 " after %" PRIu64 " frees of %d-byte objects",
         inuse_before, inuse, frees, LARGE_BYTES);
}

TEST(free_of_a_large_object_being_swept_is_not_a_double_free) {
  free_large_objects_while_collecting(UINT64_MAX);
}

INNER_TEST(inner_free_large_while_collecting) { free_large_objects_while_collecting(UINT64_MAX); }

// A starved run: on a loaded machine the case once got 164 rounds in its
// 3 s, its slots were filled as the rounds reached them, and the final
// check read the four never reached: NULL, a segfault that looked like
// the collector's. Fewer rounds than slots must leave every slot checked.
TEST(free_of_large_objects_while_collecting_checks_every_slot_after_few_rounds) {
  free_large_objects_while_collecting(NLARGE / 4);
}

// The same with stop-the-world cycles: the race is the sweep's, not the
// concurrent mark's.
TEST(free_of_a_large_object_being_swept_is_not_a_double_free_without_concurrent_mark) {
  EXPECT(harness_run_inner("inner_free_large_while_collecting", "GORT_DEBUG=gcdirty=none"));
}

// Hardened mode puts a canary after every malloc block; collected objects
// have none, and freeing or resizing one must not look for it (it once
// died with a false "heap overflow" on gort_free of an uncollectable).
INNER_TEST(inner_collected_objects_under_hardened_mode) {
  static const size_t sizes[] = {8, 100, 4000, 200000};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *objs[] = {gort_gc_alloc(sizes[i]), gort_gc_alloc_noscan(sizes[i]),
                    gort_gc_alloc_uncollectable(sizes[i])};
    for (int k = 0; k < 3; k++) {
      EXPECT(objs[k] != NULL, "kind %d, size %zu", k, sizes[i]);
      memset(objs[k], 0x5a, sizes[i]);
      void *q = gort_realloc(objs[k], sizes[i] * 2);
      EXPECT(q != NULL && ((unsigned char *)q)[sizes[i] - 1] == 0x5a, "realloc kind %d, size %zu", k,
             sizes[i]);
      gort_free(q);
    }
  }
}

TEST(collected_objects_are_freed_and_resized_in_hardened_mode) {
  EXPECT(harness_run_inner("inner_collected_objects_under_hardened_mode", "GORT_DEBUG=harden=1"));
}

// ---- the tiny allocator, large objects, every size ------------------------------------

TEST(tiny_noscan_objects_keep_their_contents_and_are_collected) {
  enum { N = 200000, KEEP_EVERY = 97 };
  void **kept = gort_gc_alloc((N / KEEP_EVERY + 1) * sizeof(void *));
  holder = kept;
  gctest_collect();
  uint64_t alloc0 = gctest_memstats()->heap_alloc;
  for (int round = 0; round < 10 * harness_scale(); round++) {
    for (int i = 0; i < N; i++) {
      size_t size = 1 + (size_t)i % 15;
      unsigned char *p = gort_gc_alloc_noscan(size);
      if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc_noscan(%zu) failed", size);
      for (size_t b = 0; b < size; b++)
        if (p[b] != 0)
          harness_fail(__FILE__, __LINE__, "tiny object %p of %zu bytes not zeroed", (void *)p,
                       size);
      memset(p, (int)(i * 7 + round) & 0xFF, size);
      if (i % KEEP_EVERY == 0) kept[i / KEEP_EVERY] = p;
    }
    gctest_collect();
    // The kept ones are intact: no other tiny object overlapped them, and
    // none was freed while a pointer to it remained.
    for (int i = 0; i < N; i += KEEP_EVERY) {
      unsigned char *p = kept[i / KEEP_EVERY];
      for (size_t b = 0; b < 1 + (size_t)i % 15; b++)
        if (p[b] != ((i * 7 + round) & 0xFF))
          harness_fail(__FILE__, __LINE__,
                       "round %d: kept tiny object %d at %p changed at byte %zu", round, i,
                       (void *)p, b);
    }
  }
  uint64_t alloc1 = gctest_memstats()->heap_alloc, grown = alloc1 > alloc0 ? alloc1 - alloc0 : 0;
  // 2 million objects of 1-15 bytes were allocated; about 2% are kept.
  EXPECT(grown < 8 * MiB,
         "HeapAlloc grew by %" PRIu64 " bytes: the dropped tiny objects were not collected", grown);
}

TEST(large_objects_are_collected) {
  static const size_t sizes[K] = {1 << 20, (1 << 20) + 1, 3 << 20, 2 << 20, 1 << 20, 4 << 20,
                                  1500000, 1 << 21,       1 << 20, 1 << 20, 1 << 20, 1 << 20,
                                  1 << 20, 1 << 20,       1 << 20, 1 << 20};
  gctest_collect();
  uint64_t alloc0 = gctest_memstats()->heap_alloc;
  for (int i = 0; i < K; i++) {
    char *p = alloc_kind(i % 3, sizes[i]);
    p[0] = 1, p[sizes[i] - 1] = 2;
    weak[i] = gort_gc_weak_make(p);
    slot[i] = p;
  }
  gctest_collect();
  EXPECT_EQ_U64(gctest_count_cleared(weak, K), 0, "large objects collected while held");
  memset(slot, 0, sizeof slot);
  gctest_collect();
  int cleared = gctest_count_cleared(weak, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d large objects collected", cleared, K);
  uint64_t alloc1 = gctest_memstats()->heap_alloc;
  EXPECT(alloc1 < alloc0 + 16 * MiB,
         "HeapAlloc %" PRIu64 " -> %" PRIu64 " after dropping 23 MiB of large objects", alloc0,
         alloc1);
}

// A large object is scanned in 64 KiB pieces (mgcmark.c, SCAN_PIECE),
// measured from its block's start, which for a typed object is its
// 16-byte header: the words on both sides of each piece's edge, the first
// and the last word keep their targets, in a scanned and in a typed
// holder. The typed one's layout repeats every 3 words (two pointers and
// a non-pointer), which a piece of 8192 words does not divide: a piece
// that restarted the layout would take the third word of some pieces for
// a non-pointer, and one target sits there.
static void *volatile big_holder;  // the root (volatile: a root only ever written)

static bool pointer_word(size_t j) { return j % 3 != 2; }

static GCTEST_NOINLINE int make_held(int typed, size_t size) {
  static const uint64_t two_of_three = 3;
  char *h = typed ? gort_gc_alloc_typed(size, gort_gc_layout(&two_of_three, 3)) : alloc_checked(size);
  if (h == NULL) harness_fail(__FILE__, __LINE__, "a holder of %zu bytes failed", size);
  size_t where[K];
  int n = 0;
  if (!typed) {
    where[n++] = 0;
    for (size_t edge = 65536; edge < size; edge += 65536) {
      where[n++] = edge - 8;
      where[n++] = edge;
    }
    where[n++] = (size - 8) & ~(size_t)7;
  } else {
    // Word j of the object is at h + 8 j; the block, and the pieces, start
    // 16 bytes before h.
    size_t last = size / 8 - 1;
    where[n++] = 0;
    for (size_t edge = 65536; (edge - 16) / 8 + 2 <= last; edge += 65536) {
      size_t first = (edge - 16) / 8, j = first - 1;
      while (!pointer_word(j)) j--;
      where[n++] = j * 8;
      for (j = first; !pointer_word(j); j++) {
      }
      where[n++] = j * 8;
      if (pointer_word(first + 2) && first + 2 != j) where[n++] = (first + 2) * 8;
    }
    while (!pointer_word(last)) last--;
    where[n++] = last * 8;
  }
  if (n > K) harness_fail(__FILE__, __LINE__, "%d targets, more than %d", n, K);
  for (int i = 0; i < n; i++) {
    char *p = alloc_checked(64);
    gctest_fill(p, 64, tag_of(i));
    weak[i] = gort_gc_weak_make(p);
    *(void **)(h + where[i]) = p;
  }
  big_holder = h;
  return n;
}

TEST(every_piece_of_a_large_object_keeps_what_it_points_to) {
  for (int typed = 0; typed < 2; typed++) {
    int n = make_held(typed, 4 * 65536 + 24);
    for (int round = 0; round < 2; round++) {
      gctest_collect();
      EXPECT_EQ_U64(count_intact(64, n), n, "objects held by a %s large object, cycle %d",
                    typed ? "typed" : "scanned", round + 1);
    }
    big_holder = NULL;
    gctest_collect();
    // Not under ThreadSanitizer: the holder, often the heap's first object,
    // lies at the start of the heap's first reservation, an address the
    // sanitizer's runtime (linked into the test, its data a root) keeps.
    if (GCTEST_TSAN) continue;
    int cleared = gctest_count_cleared(weak, n);
    EXPECT(cleared >= n - SLACK, "only %d of %d objects collected after their %s holder was dropped",
           cleared, n, typed ? "typed" : "scanned");
  }
}

// Objects of every size class (and some large ones) of each kind: zeroed
// and aligned when handed out, even from memory a cycle freed; intact while
// held.
static size_t nth_size(int i) {
  if (i < 256) return (size_t)i + 1;                  // 1..256 byte by byte
  if (i < 512) return 256 + (size_t)(i - 256) * 127;  // to 32 KiB
  return 32768 + (size_t)(i - 512) * 40000;           // large
}
enum { NSIZES = 528, PER_SIZE = 4 };

static GCTEST_NOINLINE void allocate_every_size(void ***table, bool check_zero) {
  for (int i = 0; i < NSIZES; i++)
    for (int j = 0; j < PER_SIZE; j++) {
      size_t size = nth_size(i);
      int kind = j % 3;
      if (kind == 1 && size < 16) kind = 0;  // tiny objects are checked above
      unsigned char *p = alloc_kind(kind, size);
      if (size >= 16 && ((uintptr_t)p & 15) != 0)
        harness_fail(__FILE__, __LINE__, "object of %zu bytes at %p not aligned", size, (void *)p);
      if (check_zero)
        for (size_t b = 0; b < size; b++)
          if (p[b] != 0)
            harness_fail(__FILE__, __LINE__, "reused %s object of %zu bytes has byte %zu = %#x",
                         kind_name[kind], size, b, p[b]);
      if (table != NULL) {
        gctest_fill(p, size, (uint64_t)(i * PER_SIZE + j));
        (*table)[i * PER_SIZE + j] = p;
      } else {
        memset(p, 0xFF, size);  // garbage for the next round to find cleared
      }
    }
}

TEST(objects_of_every_size_are_zeroed_when_reused_and_intact_while_held) {
  void **table = gort_gc_alloc(NSIZES * PER_SIZE * sizeof(void *));
  holder = table;
  for (int round = 0; round < 3; round++) {
    allocate_every_size(NULL, round > 0);  // garbage, dirty
    gctest_collect();
  }
  allocate_every_size(&table, true);
  for (int round = 0; round < 2; round++) {
    allocate_every_size(NULL, true);  // more garbage around the held ones
    gctest_collect();
    for (int i = 0; i < NSIZES * PER_SIZE; i++)
      EXPECT(gctest_check(table[i], nth_size(i / PER_SIZE), (uint64_t)i),
             "object %d of %zu bytes changed", i, nth_size(i / PER_SIZE));
  }
}

TEST(impossible_sizes_fail_with_enomem) {
  static const size_t sizes[] = {SIZE_MAX, SIZE_MAX - 15, (size_t)1 << 62};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    errno = 0;
    EXPECT(gort_gc_alloc(sizes[i]) == NULL && errno == ENOMEM, "gort_gc_alloc(%zu)", sizes[i]);
    errno = 0;
    EXPECT(gort_gc_alloc_noscan(sizes[i]) == NULL && errno == ENOMEM, "gort_gc_alloc_noscan(%zu)",
           sizes[i]);
    errno = 0;
    EXPECT(gort_gc_alloc_typed(sizes[i], one_pointer_layout()) == NULL && errno == ENOMEM,
           "gort_gc_alloc_typed(%zu)", sizes[i]);
    errno = 0;
    EXPECT(gort_gc_alloc_uncollectable(sizes[i]) == NULL && errno == ENOMEM,
           "gort_gc_alloc_uncollectable(%zu)", sizes[i]);
  }
}

// The cumulative counts (metrics.h: they only grow) take each collected
// allocation once, when it is handed out: not a cache's whole list at its
// refill, taken back at the next stop (which made them fall after a cycle).
TEST(allocation_counts_grow_by_each_object_and_never_fall_across_a_cycle) {
  gort_metric_sample_t s[] = {{.name = "/gc/heap/allocs:objects"}, {.name = "/gc/heap/allocs:bytes"}};
  gctest_collect();
  gort_metrics_read(s, 2);
  uint64_t objects = s[0].value.u64, bytes = s[1].value.u64;
  void *volatile p = gort_gc_alloc(48);  // after the cycle flushed the caches: a refill
  EXPECT(p != NULL);
  gort_metrics_read(s, 2);
  EXPECT_EQ_U64(s[0].value.u64, objects + 1, "objects after one allocation");
  EXPECT_EQ_U64(s[1].value.u64, bytes + 48, "bytes after one allocation");
  gctest_collect();
  gort_metrics_read(s, 2);
  EXPECT(s[0].value.u64 >= objects + 1 && s[1].value.u64 >= bytes + 48, "the counts fell across a cycle: %llu objects, %llu bytes",
         (unsigned long long)s[0].value.u64, (unsigned long long)s[1].value.u64);
}
