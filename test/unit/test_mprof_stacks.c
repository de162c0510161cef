// The heap profiler's stacks (obs/mprof.c): with every allocation sampled
// (GORT_MEMPROFILERATE=1), each site's count must be exactly the number of
// allocations it made, whether its stack was walked or recognized from the
// thread's memo (a kept walk, tagged with its slot: mprof.c, "walk
// memos"). The sites share one allocating helper, so their stacks differ
// only in a return address above it and the first frames' states are the
// same; there are more of them than a memo keeps, called in a shuffled
// order, so that slots are evicted and rebuilt under new tags; and some
// calls come from threads that exit, whose memos the next threads take.

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "gort/alloc.h"
#include "obs/mprof.h"
#include "test.h"

#define NSITES 12
#define CALLS 20000
#define THREADS 6
#define THREAD_CALLS 3000

// The sites live in a section of their own, so that a return address in
// it names the site whose code starts highest below it.
extern const char __start_gort_test_sites[], __stop_gort_test_sites[];

static void *volatile sink_p;
static volatile int sink;

__attribute__((noinline)) static void alloc_leaf(size_t n) {
  void *p = gort_malloc(n);  // not malloc: the ThreadSanitizer build has no shim
  sink_p = p;
  gort_free(p);
  sink++;  // no tail call: the site's frame stays on the stack
}

#define SITE(k)                                                                          \
  __attribute__((noinline, used, section("gort_test_sites"))) static void site##k(size_t n) { \
    alloc_leaf(n);                                                                       \
    sink += k;                                                                           \
  }
SITE(0) SITE(1) SITE(2) SITE(3) SITE(4) SITE(5) SITE(6) SITE(7) SITE(8) SITE(9) SITE(10) SITE(11)
static void (*const sites[NSITES])(size_t) = {site0, site1, site2, site3, site4,  site5,
                                               site6, site7, site8, site9, site10, site11};

static uint64_t expected[NSITES];
static _Atomic uint64_t expected_threads[NSITES];

static uint32_t next_rand(uint32_t *x) {
  *x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
  return *x;
}

static int site_of_pc(uintptr_t pc) {
  if (pc < (uintptr_t)__start_gort_test_sites || pc >= (uintptr_t)__stop_gort_test_sites) return -1;
  int best = -1;
  for (int k = 0; k < NSITES; k++)
    if ((uintptr_t)sites[k] <= pc && (best < 0 || (uintptr_t)sites[k] > (uintptr_t)sites[best])) best = k;
  return best;
}

static uint64_t got_allocs[NSITES], got_frees[NSITES];
static int mixed;  // buckets whose stack holds two sites (none should)

static void count_bucket(const bucket_t *b, void *arg) {
  (void)arg;
  int site = -1;
  for (uint32_t i = 0; i < b->depth; i++) {
    int k = site_of_pc(b->pcs[i]);
    if (k < 0) continue;
    if (site >= 0 && k != site) mixed++;
    site = k;
  }
  if (site < 0) return;
  got_allocs[site] += b->allocs;
  got_frees[site] += b->frees;
}

static void *thread_calls(void *arg) {
  uint32_t x = (uint32_t)(uintptr_t)arg;
  for (int i = 0; i < THREAD_CALLS; i++) {
    int k = (int)(next_rand(&x) % NSITES);
    sites[k](8 + i % 200);
    atomic_fetch_add(&expected_threads[k], 1);
  }
  return NULL;
}

INNER_TEST(every_sample_counts_for_its_own_stack_inner) {
  uint32_t x = 0x2545F491u;
  for (int i = 0; i < CALLS; i++) {
    // Runs of one site, then jumps: the memo's last-found slot hits, and
    // the others are looked up, evicted and rebuilt.
    int k = (int)(next_rand(&x) % NSITES);
    int run = 1 + (int)(next_rand(&x) % 4);
    for (int j = 0; j < run; j++) {
      sites[k](16 + (size_t)(i % 64) * 8);
      expected[k]++;
    }
  }
  for (int t = 0; t < THREADS; t++) {  // one at a time: each takes the last one's memo
    pthread_t th;
    EXPECT(pthread_create(&th, NULL, thread_calls, (void *)(uintptr_t)(0x9E3779B9u + t)) == 0);
    pthread_join(th, NULL);
  }
  gort__mprof_foreach(count_bucket, NULL);
  EXPECT(mixed == 0, "%d buckets hold two sites", mixed);
  for (int k = 0; k < NSITES; k++) {
    uint64_t want = expected[k] + atomic_load(&expected_threads[k]);
    EXPECT_EQ_U64(got_allocs[k], want, "site %d's allocations", k);
    EXPECT_EQ_U64(got_frees[k], want, "site %d's frees", k);
  }
}

TEST(every_sample_counts_for_its_own_stack) {
  EXPECT(harness_run_inner("every_sample_counts_for_its_own_stack_inner", "GORT_MEMPROFILERATE=1"));
}

// The registry of sampled blocks (mprof.c, reg_delete): tens of thousands
// of blocks live at once, freed in random order by their owner and by
// another thread, so that tables grow and runs of entries are shifted back
// over freed slots again and again. An entry lost or left behind shows as
// a false "double free" at its block's free, or as counts that differ
// from what was done.
#define CHURN_BLOCKS 40000
#define CHURN_ROUNDS 6

extern const char __start_gort_test_churn[], __stop_gort_test_churn[];
static void *churn_blocks[CHURN_BLOCKS];
static uint64_t churn_mallocs, churn_frees;

__attribute__((noinline, used, section("gort_test_churn"))) static void *churn_alloc(size_t n) {
  void *p = gort_malloc(n);
  sink++;  // no tail call
  return p;
}

static void *free_odd_half(void *arg) {
  (void)arg;
  for (int i = 1; i < CHURN_BLOCKS; i += 2)
    if (churn_blocks[i] != NULL) gort_free(churn_blocks[i]), churn_blocks[i] = NULL, churn_frees++;
  return NULL;
}

static uint64_t churn_got_allocs, churn_got_frees;
static void count_churn(const bucket_t *b, void *arg) {
  (void)arg;
  for (uint32_t i = 0; i < b->depth; i++)
    if (b->pcs[i] >= (uintptr_t)__start_gort_test_churn && b->pcs[i] < (uintptr_t)__stop_gort_test_churn) {
      churn_got_allocs += b->allocs;
      churn_got_frees += b->frees;
      return;
    }
}

INNER_TEST(the_registry_keeps_every_live_sample_through_random_frees_inner) {
  uint32_t x = 0x12345u;
  for (int round = 0; round < CHURN_ROUNDS; round++) {
    for (int i = 0; i < CHURN_BLOCKS; i++)
      if (churn_blocks[i] == NULL) churn_blocks[i] = churn_alloc(1 + next_rand(&x) % 3000), churn_mallocs++;
    for (int i = 0; i < CHURN_BLOCKS / 2; i++) {
      int k = (int)(next_rand(&x) % CHURN_BLOCKS);
      if (churn_blocks[k] != NULL) gort_free(churn_blocks[k]), churn_blocks[k] = NULL, churn_frees++;
    }
  }
  pthread_t th;  // remote frees: their records are taken from the owner's shard
  EXPECT(pthread_create(&th, NULL, free_odd_half, NULL) == 0);
  pthread_join(th, NULL);
  gort__mprof_foreach(count_churn, NULL);
  EXPECT_EQ_U64(churn_got_allocs, churn_mallocs, "sampled allocations");
  EXPECT_EQ_U64(churn_got_frees, churn_frees, "sampled frees");
  for (int i = 0; i < CHURN_BLOCKS; i++) gort_free(churn_blocks[i]);
}

TEST(the_registry_keeps_every_live_sample_through_random_frees) {
  EXPECT(harness_run_inner("the_registry_keeps_every_live_sample_through_random_frees_inner", "GORT_MEMPROFILERATE=1"));
}
