// API tests of include/gort/metrics.h: MemStats that add up, metrics by
// Go's names, and figures that move as the program allocates.

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "gort/alloc.h"
#include "gort/metrics.h"
#include "test.h"

static void check_consistent(const gort_memstats_t *m, const char *when) {
  EXPECT_EQ_U64(m->heap_inuse + m->heap_idle, m->heap_sys, "%s", when);
  EXPECT_LE_U64(m->heap_released, m->heap_idle, "%s", when);
  EXPECT_EQ_U64(m->mallocs - m->frees, m->heap_objects, "%s", when);
  EXPECT_LE_U64(m->heap_alloc, m->heap_inuse, "%s", when);
  EXPECT_LE_U64(m->heap_alloc, m->total_alloc, "%s", when);
  EXPECT_LE_U64(m->heap_sys, m->sys, "%s", when);
  uint64_t mallocs = 0, frees = 0;
  for (int i = 0; i < GORT_NUM_SIZE_CLASSES; i++) {
    mallocs += m->by_size[i].mallocs;
    frees += m->by_size[i].frees;
    EXPECT_LE_U64(m->by_size[i].frees, m->by_size[i].mallocs, "class %d %s", i, when);
  }
  EXPECT_EQ_U64(mallocs, m->mallocs, "%s", when);
  EXPECT_EQ_U64(frees, m->frees, "%s", when);
}

TEST(known_allocations_show_in_memstats) {
  // Frees enough to start the scavenger thread now: creating a thread
  // allocates (its DTV) through malloc, which is gort's (libgort.a always
  // brings it along), and would count among the figures below.
  gort_free(gort_malloc(8 << 20));
  gort_memstats_t a, b;
  gort_read_memstats(&a);
  enum { N = 10000 };
  static void *p[N];
  for (int i = 0; i < N; i++) p[i] = gort_malloc(1000);  // class 1024
  void *big = gort_malloc(1 << 20);
  gort_read_memstats(&b);
  EXPECT_EQ_U64(b.heap_objects - a.heap_objects, N + 1);
  EXPECT_EQ_U64(b.heap_alloc - a.heap_alloc, (uint64_t)N * 1024 + (1 << 20));
  EXPECT_EQ_U64(b.mallocs - a.mallocs, N + 1);
  check_consistent(&b, "after allocating");
  for (int i = 0; i < N; i++) gort_free(p[i]);
  gort_free(big);
  gort_read_memstats(&b);
  EXPECT_EQ_U64(b.heap_objects, a.heap_objects);
  EXPECT_EQ_U64(b.heap_alloc, a.heap_alloc);
  check_consistent(&b, "after freeing");
}

static _Atomic int stop;

static void *churn(void *arg) {
  uint64_t r = (uintptr_t)arg;
  void *slot[512] = {0};
  while (!atomic_load(&stop)) {
    int i = (int)(test_rand(&r) % 512);
    gort_free(slot[i]);
    slot[i] = gort_malloc((size_t)(test_rand(&r) % (test_rand(&r) % 8 ? 2000 : 100000)));
  }
  for (int i = 0; i < 512; i++) gort_free(slot[i]);
  return NULL;
}

TEST(memstats_add_up_under_multithreaded_churn) {
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
  for (int k = 0; k < 300; k++) {
    gort_memstats_t m;
    gort_read_memstats(&m);
    EXPECT_EQ_U64(m.heap_inuse + m.heap_idle, m.heap_sys, "read %d", k);
    EXPECT_LE_U64(m.frees, m.mallocs, "read %d", k);
    EXPECT_LE_U64(m.heap_alloc, m.total_alloc, "read %d", k);
    EXPECT(m.heap_alloc < (1ULL << 40), "HeapAlloc went negative: %llu", (unsigned long long)m.heap_alloc);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  gort_memstats_t m;
  gort_read_memstats(&m);
  check_consistent(&m, "after the threads exited");
}

TEST(metrics_read_by_go_names_agree_with_memstats) {
  void *p = gort_malloc(5000);
  gort_metric_sample_t s[] = {{.name = "/gc/heap/allocs:objects"},
                              {.name = "/gc/heap/objects:objects"},
                              {.name = "/memory/classes/heap/released:bytes"},
                              {.name = "/memory/classes/total:bytes"},
                              {.name = "/no/such/metric:bytes"},
                              {.name = NULL}};
  gort_metrics_read(s, 6);
  gort_memstats_t m;
  gort_read_memstats(&m);
  EXPECT(s[0].kind == GORT_METRIC_UINT64 && s[0].value.u64 == m.mallocs);
  EXPECT(s[1].value.u64 == m.heap_objects);
  EXPECT(s[2].value.u64 == m.heap_released);
  EXPECT(s[3].value.u64 == m.sys);
  EXPECT(s[4].kind == GORT_METRIC_BAD && s[5].kind == GORT_METRIC_BAD, "unknown names read as bad");
  gort_free(p);
}

TEST(every_listed_metric_reads_and_names_are_unique) {
  const gort_metric_desc_t *d;
  size_t n = gort_metrics_all(&d);
  EXPECT(n >= 15);
  for (size_t i = 0; i < n; i++) {
    gort_metric_sample_t s = {.name = d[i].name};
    gort_metrics_read(&s, 1);
    EXPECT(s.kind == d[i].kind, "%s", d[i].name);
    EXPECT(d[i].description != NULL && d[i].description[0] != '\0', "%s", d[i].name);
    EXPECT(strchr(d[i].name, ':') != NULL && d[i].name[0] == '/', "%s has the /path:unit form", d[i].name);
    for (size_t j = 0; j < i; j++) EXPECT(strcmp(d[i].name, d[j].name) != 0, "%s twice", d[i].name);
  }
}
