// Freed large blocks kept by their thread for the next large malloc
// (alloc/mcache.c, "Large blocks"): reuse, what the stats say, and that
// the memory still goes back (free_os_memory, thread exit). The misuse of
// a kept block is in test/wrong/test_misuse.c.

#include <pthread.h>
#include <string.h>

#include "gort/alloc.h"
#include "gort/metrics.h"
#include "test.h"

enum { SIZE = 40000, PAGES_BYTES = 40960 };  // 5 pages

static gort_memstats_t stats(void) {
  static gort_memstats_t m;  // about 6 KiB: off the stack
  gort_read_memstats(&m);
  return m;
}

TEST(a_freed_large_block_is_reused_by_its_thread) {
  gort_free_os_memory();  // nothing kept from earlier cases
  char *p = gort_malloc(SIZE);
  ASSERT_NOT_NULL(p);
  memset(p, 0x5a, SIZE);
  gort_free(p);
  char *q = gort_malloc(SIZE - 100);
  EXPECT(q == p, "kept block not reused: %p then %p", (void *)p, (void *)q);
  gort_free(q);
  gort_free_os_memory();
  // A quarter more pages than asked for is close enough; more is not.
  char *six = gort_malloc(6 * 8192);
  gort_free(six);
  char *five = gort_malloc(SIZE);
  EXPECT(five == six, "a 6-page block should serve 5 pages");
  EXPECT_EQ_U64(gort_usable_size(five), 6 * 8192);
  gort_free(five);
  gort_free_os_memory();
  char *twelve = gort_malloc(12 * 8192);
  gort_free(twelve);
  char *eight = gort_malloc(8 * 8192);
  EXPECT(eight != twelve, "a 12-page block must not serve 8 pages");
  gort_free(eight);
  gort_free_os_memory();
}

TEST(kept_blocks_count_as_freed_and_reused_ones_as_allocated) {
  gort_free_os_memory();
  gort_memstats_t m0 = stats();
  void *p[8];
  for (int i = 0; i < 8; i++) p[i] = gort_malloc(SIZE);
  for (int i = 0; i < 8; i++) gort_free(p[i]);
  gort_memstats_t m1 = stats();
  EXPECT_EQ_U64(m1.by_size[0].mallocs - m0.by_size[0].mallocs, 8);
  EXPECT_EQ_U64(m1.by_size[0].frees - m0.by_size[0].frees, 8);
  EXPECT_EQ_U64(m1.heap_alloc, m0.heap_alloc, "kept blocks are not live");
  for (int i = 0; i < 8; i++) p[i] = gort_malloc(SIZE);
  gort_memstats_t m2 = stats();
  EXPECT_EQ_U64(m2.by_size[0].mallocs - m1.by_size[0].mallocs, 8);
  EXPECT_EQ_U64(m2.heap_alloc - m1.heap_alloc, 8 * PAGES_BYTES);
  EXPECT_EQ_U64(m2.total_alloc - m1.total_alloc, 8 * PAGES_BYTES);
  for (int i = 0; i < 8; i++) gort_free(p[i]);
  gort_memstats_t m3 = stats();
  EXPECT_EQ_U64(m3.heap_alloc, m0.heap_alloc);
  EXPECT_EQ_U64(m3.by_size[0].mallocs - m3.by_size[0].frees, m0.by_size[0].mallocs - m0.by_size[0].frees);
  gort_free_os_memory();
}

TEST(free_os_memory_takes_kept_blocks_back) {
  gort_free_os_memory();
  uint64_t before = stats().heap_inuse;
  void *p[8];
  for (int i = 0; i < 8; i++) p[i] = gort_malloc(SIZE);
  for (int i = 0; i < 8; i++) gort_free(p[i]);
  uint64_t kept = stats().heap_inuse;
  EXPECT(kept >= before + 3 * PAGES_BYTES, "kept %llu before %llu", (unsigned long long)kept,
         (unsigned long long)before);
  gort_free_os_memory();
  EXPECT(stats().heap_inuse <= before, "after %llu before %llu", (unsigned long long)stats().heap_inuse,
         (unsigned long long)before);
}

static void *churn_large(void *arg) {
  (void)arg;
  for (int round = 0; round < 100; round++) {
    void *p[8];
    for (int i = 0; i < 8; i++) p[i] = gort_malloc(SIZE + (size_t)i * 8192);
    for (int i = 0; i < 8; i++) gort_free(p[i]);
  }
  return NULL;
}

TEST(an_exiting_thread_gives_its_kept_blocks_back) {
  gort_free_os_memory();
  uint64_t before = stats().heap_inuse;
  for (int t = 0; t < 20; t++) {
    pthread_t th;
    pthread_create(&th, NULL, churn_large, NULL);
    pthread_join(th, NULL);
  }
  uint64_t after = stats().heap_inuse;
  // 20 threads keeping up to 1 MiB each would leave 20 MiB; allow slack
  // for the thread caches' small spans.
  EXPECT(after < before + (2u << 20), "after %llu before %llu", (unsigned long long)after,
         (unsigned long long)before);
}

// Blocks freed by a thread that is not their allocator: kept by the
// freeing thread, then reused there.
static void *free_them(void *arg) {
  void **p = arg;
  for (int i = 0; i < 8; i++) gort_free(p[i]);
  for (int i = 0; i < 8; i++) p[i] = gort_malloc(SIZE);
  return NULL;
}

TEST(large_blocks_freed_by_another_thread_stay_usable) {
  void *p[8];
  for (int i = 0; i < 8; i++) {
    p[i] = gort_malloc(SIZE);
    memset(p[i], i, SIZE);
  }
  pthread_t th;
  pthread_create(&th, NULL, free_them, p);
  pthread_join(th, NULL);
  for (int i = 0; i < 8; i++) {
    ASSERT_NOT_NULL(p[i]);
    memset(p[i], 0x11, SIZE);
    gort_free(p[i]);
  }
  gort_memstats_t m = stats();
  EXPECT(m.by_size[0].mallocs >= m.by_size[0].frees);
}
