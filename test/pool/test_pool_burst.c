// A burst through a pool does not pin memory: 256 MiB of buffers put into
// a pool go back to the heap two rotations later, and from there to the OS
// (gort_free_os_memory), so the resident set falls back near where it
// started. Once with the collector's cycles, once with the collector off
// (the scavenger's rotation; that one also runs under ThreadSanitizer,
// where the heap's resident bound stands for RSS).

#include "../gc/gctest.h"
#include "gort/alloc.h"
#include "gort/pool.h"

#define BURST (256 * MiB)

static gort_pool_t small = GORT_POOL_INIT(NULL, NULL, NULL);  // 4 KiB buffers
static gort_pool_t large = GORT_POOL_INIT(NULL, NULL, NULL);  // 128 KiB buffers

// What gort keeps resident: the process's RSS; under ThreadSanitizer,
// whose shadow memory stays resident whatever gort releases, the heap's
// own resident bound (HeapSys - HeapReleased) instead.
static uint64_t rss_mib(void) {
  if (GCTEST_TSAN) {
    gort_memstats_t *m = gctest_memstats();
    return (m->heap_sys - m->heap_released) / MiB;
  }
  return (uint64_t)harness_rss_bytes() / MiB;
}

// Half the burst in small buffers, half in large ones, every page touched,
// all put into the pools at once (the peak).
static GCTEST_NOINLINE void burst(void) {
  enum { SMALL = 4096, LARGE = 128 * 1024 };
  for (uint64_t i = 0; i < BURST / 2 / SMALL; i++) {
    void *p = gort_malloc(SMALL);
    memset(p, 1, SMALL);
    gort_pool_put(&small, p);
  }
  for (uint64_t i = 0; i < BURST / 2 / LARGE; i++) {
    void *p = gort_malloc(LARGE);
    memset(p, 1, LARGE);
    gort_pool_put(&large, p);
  }
}

// Polls until the resident set, after a release to the OS, is below
// limit; at most 10 s (the pool thread frees the drops after the cycle).
// Waits until RSS is under limit and every object of the burst has been
// dropped. A rotation that finds its pool's last drop still being released
// skips it (pool.c), so on a loaded machine the last few can come a
// rotation later than RSS falls: wait for both.
static bool rss_falls_below(uint64_t limit) {
  const uint64_t all = BURST / 2 / 4096 + BURST / 2 / (128 * 1024);
  double deadline = gctest_now() + 20;
  do {
    gort_free_os_memory();
    gort_pool_stats_t s;
    gort_pool_stats(NULL, &s);
    if (rss_mib() < limit && s.drops >= all) return true;
    gctest_sleep_ms(20);
  } while (gctest_now() < deadline);
  return false;
}

// With the collector: one cycle keeps the burst (the victim cache), the
// second drops it. Without: the scavenger's rotations, every scavdelay
// (500 ms), drop it within about a second.
static void expect_burst_released(bool collector) {
  gort_free_os_memory();
  uint64_t base = rss_mib();
  burst();
  uint64_t peak = rss_mib();
  // (Unless rotations already dropped part of a slow burst: a loaded
  // machine, ThreadSanitizer, more than scavdelay without a collection.)
  gort_pool_stats_t during;
  gort_pool_stats(NULL, &during);
  if (during.drops == 0)
    EXPECT(peak >= base + BURST / MiB * 3 / 4, "the burst did not raise RSS: %llu -> %llu MiB",
           (unsigned long long)base, (unsigned long long)peak);
  if (collector) {
    gort_gc_collect();
    gort_free_os_memory();
    // Unless the scavenger rotated the pools during a slow burst as well
    // (none rotated them for scavdelay): then the burst may be gone.
    gort_pool_stats_t s;
    gort_pool_stats(NULL, &s);
    if (s.drops == 0)
      EXPECT(rss_mib() > base + BURST / MiB / 2, "released after one cycle: %llu MiB",
             (unsigned long long)rss_mib());
    gort_gc_collect();
  }
  uint64_t limit = base + 32;
  EXPECT(rss_falls_below(limit), "RSS %llu MiB after two rotations: base %llu, peak %llu",
         (unsigned long long)rss_mib(), (unsigned long long)base, (unsigned long long)peak);
  gort_pool_stats_t s;
  gort_pool_stats(NULL, &s);
  EXPECT_EQ_U64(s.drops, BURST / 2 / 4096 + BURST / 2 / (128 * 1024));
}

TEST(a_burst_through_a_pool_is_released_two_cycles_later) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal");
  expect_burst_released(true);
}

INNER_TEST(burst_with_the_collector_off) { expect_burst_released(false); }

TEST(a_burst_is_released_by_the_scavengers_rotations_with_the_collector_off) {
  EXPECT(harness_run_inner("burst_with_the_collector_off", "GORT_GC=off"));
}
