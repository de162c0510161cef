// Unit tests of the thread cache's list bounds (src/alloc/mcache.c, "list
// bounds"): a class that a program frees past its bound and allocates
// again grows its bound, and the growth a thread holds stays within its
// budget however many classes do it.

#include <pthread.h>
#include <stdint.h>

#include "alloc/malloc_fast.h"
#include "alloc/mcache.h"
#include "gort/alloc.h"
#include "test.h"

#define KiB 1024
#define MiB (1024 * 1024)

// What a thread's class lists hold, in bytes of blocks.
static int64_t held_bytes(const mcache_t *c) {
  int64_t sum = 0;
  for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) sum += cc_len(c, cls) * gort__class_size[cls];
  return sum;
}

// The most the base bounds let a thread hold: about 64 KiB a class, at
// least 2 blocks (mcache.c, list_base).
static int64_t base_bytes(void) {
  int64_t sum = 0;
  for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
    int64_t n = 64 * KiB / gort__class_size[cls];
    n = n < 2 ? 2 : n > 1024 ? 1024 : n;
    sum += n * gort__class_size[cls];
  }
  return sum;
}

// A batch of n blocks of size, allocated then all freed, rounds times.
static void oscillate(size_t size, int n, int rounds) {
  void *p[1024];
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < n; i++) p[i] = gort_malloc(size);
    for (int i = 0; i < n; i++) gort_free(p[i]);
  }
}

static void *grows_its_bound(void *arg) {
  (void)arg;
  oscillate(4096, 200, 12);  // 800 KiB: past the 64 KiB base bound
  mcache_t *c = gort__tls_cache;
  int cls = (int)size_class(4096);
  EXPECT(c->max[cls] >= 200, "bound %d after 12 batches of 200", c->max[cls]);
  // All but the few the heap profiler sampled (their frees go past the list).
  EXPECT(cc_len(c, cls) >= 190, "the list keeps %lld of the batch", (long long)cc_len(c, cls));
  return NULL;
}

TEST(a_class_freed_past_its_bound_and_allocated_again_grows_its_bound) {
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, grows_its_bound, NULL) == 0);
  pthread_join(t, NULL);
}

static void *stays_within_budget(void *arg) {
  (void)arg;
  gort_free(gort_malloc(16));  // the thread's cache exists from its first malloc
  mcache_t *c = gort__tls_cache;
  EXPECT(c != &gort__empty_cache, "no cache after a malloc");
  int64_t limit = base_bytes() + 4 * MiB;
  // Every class from 1 KiB up, each in turn and then all again: together
  // they would grow past the budget many times over.
  for (int pass = 0; pass < 3; pass++)
    for (size_t size = 1024; size <= 32 * KiB; size += 1024) {
      oscillate(size, size <= 8 * KiB ? 400 : 150, 6);
      int64_t held = held_bytes(c);
      EXPECT(held <= limit, "pass %d size %zu: lists hold %lld KiB, limit %lld KiB", pass, size,
             (long long)(held / KiB), (long long)(limit / KiB));
    }
  // The last classes still got to grow: halving made room for them.
  int cls = (int)size_class(32 * KiB);
  EXPECT(cc_len(c, cls) > 2, "the last class holds %lld blocks", (long long)cc_len(c, cls));
  return NULL;
}

TEST(a_thread_holds_no_more_than_its_budget_past_the_base_bounds) {
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, stays_within_budget, NULL) == 0);
  pthread_join(t, NULL);
}



static void *gives_back_idle_growth(void *arg) {
  (void)arg;
  oscillate(512, 1000, 12);  // 500 KiB: the 512-byte class's list grows to hold it
  mcache_t *c = gort__tls_cache;
  int idle = (int)size_class(512), busy = (int)size_class(2048);
  EXPECT(cc_len(c, idle) >= 900, "the 512-byte list keeps %lld of the batch", (long long)cc_len(c, idle));
  // The program moves on to 2 KiB blocks: their fresh pages come after
  // passes that trim the idle list, whose blocks then serve the new size.
  oscillate(2048, 1000, 12);
  EXPECT(cc_len(c, idle) <= 2 * 128, "the idle 512-byte list still holds %lld blocks",
         (long long)cc_len(c, idle));
  EXPECT(cc_len(c, busy) >= 450, "the 2 KiB list in use keeps only %lld of its 512",
         (long long)cc_len(c, busy));
  return NULL;
}

// mcache.c, "list bounds": a grown list that its program stopped using
// gives its blocks back before the thread takes fresh pages.
TEST(an_idle_class_gives_back_its_growth_when_the_thread_needs_pages) {
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, gives_back_idle_growth, NULL) == 0);
  pthread_join(t, NULL);
}
