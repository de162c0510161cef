// Pools' figures where an operator reads them: gort_pool_stats per pool
// and in total, MemStats, the /gort/pool/ metrics, and the exit summary.

#include <stdio.h>
#include <unistd.h>

#include "../gc/gctest.h"
#include "gort/alloc.h"
#include "gort/pool.h"
#include "obs/heapstats.h"

static void *make(void) { return gort_malloc(64); }
static gort_pool_t a = GORT_POOL_INIT(make, NULL, NULL);
static gort_pool_t b = GORT_POOL_INIT(NULL, NULL, NULL);

// a: 3 gets (2 misses), 2 puts; b: 1 get (a miss), 1 put.
static void use_pools(void) {
  void *x = gort_pool_get(&a), *y = gort_pool_get(&a);
  gort_pool_put(&a, x);
  gort_pool_put(&a, y);
  void *z = gort_pool_get(&a);
  (void)z;
  EXPECT(gort_pool_get(&b) == NULL);
  gort_pool_put(&b, gort_malloc(32));
}

static uint64_t metric(const char *name) {
  gort_metric_sample_t s = {.name = name};
  gort_metrics_read(&s, 1);
  EXPECT(s.kind == GORT_METRIC_UINT64, "metric %s unknown", name);
  return s.value.u64;
}

TEST(per_pool_and_total_figures_count_every_call) {
  use_pools();
  gort_pool_stats_t s;
  gort_pool_stats(&a, &s);
  EXPECT_EQ_U64(s.gets, 3);
  EXPECT_EQ_U64(s.puts, 2);
  EXPECT_EQ_U64(s.misses, 2);
  gort_pool_stats(&b, &s);
  EXPECT_EQ_U64(s.gets, 1);
  EXPECT_EQ_U64(s.misses, 1);
  gort_pool_stats(NULL, &s);
  EXPECT_EQ_U64(s.gets, 4);
  EXPECT_EQ_U64(s.puts, 3);
  EXPECT_EQ_U64(s.misses, 3);
  EXPECT_EQ_U64(s.drops, 0);
}

TEST(memstats_and_metrics_carry_the_totals) {
  use_pools();
  gort_memstats_t *m = gctest_memstats();
  EXPECT_EQ_U64(m->pool_gets, 4);
  EXPECT_EQ_U64(m->pool_puts, 3);
  EXPECT_EQ_U64(m->pool_misses, 3);
  EXPECT_EQ_U64(metric("/gort/pool/gets:calls"), 4);
  EXPECT_EQ_U64(metric("/gort/pool/puts:calls"), 3);
  EXPECT_EQ_U64(metric("/gort/pool/misses:calls"), 3);
  EXPECT_EQ_U64(metric("/gort/pool/drops:objects"), 0);
}

TEST(drops_are_counted_per_pool_and_in_the_metrics) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal");
  use_pools();
  gort_gc_collect();
  gort_gc_collect();
  gort_pool_stats_t s;
  gort_pool_stats(&a, &s);
  EXPECT_EQ_U64(s.drops, 1, "a held one object");
  gort_pool_stats(&b, &s);
  EXPECT_EQ_U64(s.drops, 1, "b held one object");
  EXPECT_EQ_U64(metric("/gort/pool/drops:objects"), 2);
}

static void summary(char *out, size_t n) {
  FILE *f = tmpfile();
  EXPECT(f != NULL);
  EXPECT(gort__heap_print_summary(fileno(f)) == 0);
  rewind(f);
  size_t got = fread(out, 1, n - 1, f);
  out[got] = 0;
  fclose(f);
}

TEST(the_stats_summary_shows_pools_once_one_is_used) {
  static char text[16384];
  summary(text, sizeof text);
  EXPECT(strstr(text, "PoolGets") == NULL, "pool lines before any pool was used:\n%s", text);
  use_pools();
  summary(text, sizeof text);
  EXPECT(strstr(text, "PoolGets                  4 (3 misses)") != NULL, "summary:\n%s", text);
  EXPECT(strstr(text, "PoolPuts                  3 (0 dropped)") != NULL, "summary:\n%s", text);
}
