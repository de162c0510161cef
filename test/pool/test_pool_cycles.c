// Pools and the collector: a collected object held only by a pool stays
// alive while pooled, and is freed two cycles after its last put; with the
// collector off or idle, the scavenger's cycle rotates the pools instead.
//
// Collection is seen through weak pointers, with several objects and a
// little slack, as in test/gc (gctest.h explains why a stale copy on the
// stack may keep one alive).

#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../gc/gctest.h"
#include "gort/alloc.h"
#include "gort/pool.h"

enum { K = 16, SLACK = 4, SIZE = 128 };

static gort_pool_t gcpool = GORT_POOL_INIT(NULL, NULL, NULL);
static gort_weak_t *weak[K];

static uint64_t tag_of(int i) { return 0x9001 + (uint64_t)i; }

// K collected objects, each filled and put; nothing but the pool holds them.
static GCTEST_NOINLINE void put_objects(void) {
  for (int i = 0; i < K; i++) {
    void *p = gort_gc_alloc(SIZE);
    gctest_fill(p, SIZE, tag_of(i));
    weak[i] = gort_gc_weak_make(p);
    gort_pool_put(&gcpool, p);
  }
}

static GCTEST_NOINLINE int count_intact(void) {
  int n = 0;
  for (int i = 0; i < K; i++) {
    void *p = gort_gc_weak_get(weak[i]);
    n += p != NULL && gctest_check(p, SIZE, tag_of(i));
  }
  return n;
}

TEST(a_collected_object_held_only_by_a_pool_lives_two_cycles) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal");
  put_objects();
  gctest_clear_vector_registers();
  gctest_collect();
  EXPECT_EQ_U64(count_intact(), K, "objects in the victim cache after one cycle");
  gctest_collect();
  int cleared = gctest_count_cleared(weak, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d collected two cycles after their put", cleared, K);
  EXPECT(gort_pool_get(&gcpool) == NULL, "the pool is empty");
  gort_pool_stats_t s;
  gort_pool_stats(&gcpool, &s);
  EXPECT_EQ_U64(s.drops, K);
}

// Several cycles with the objects circulating: a pooled object is never
// freed while in use or in the pool.
TEST(objects_that_circulate_survive_any_number_of_cycles) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal");
  put_objects();
  for (int round = 0; round < 6; round++) {
    gctest_collect();
    void *got[K];
    int n = 0;
    while (n < K && (got[n] = gort_pool_get(&gcpool)) != NULL) n++;
    EXPECT_EQ_U64(n, K, "round %d", round);
    EXPECT_EQ_U64(count_intact(), K, "round %d", round);
    for (int i = 0; i < n; i++) gort_pool_put(&gcpool, got[i]);
    memset(got, 0, sizeof got);
  }
}

// ---- the collector off ---------------------------------------------------------------

static _Atomic int released;
static void release_count(void *p) {
  atomic_fetch_add(&released, 1);
  gort_free(p);
}
static gort_pool_t offpool = GORT_POOL_INIT(NULL, NULL, release_count);

INNER_TEST(scavenger_rotation) {
  enum { N = 100 };
  for (int i = 0; i < N; i++) gort_pool_put(&offpool, gort_malloc(1000));
  // The default scavdelay, 500 ms: two rotations within about a second.
  double t0 = gctest_now();
  EXPECT(gctest_wait_count(&released, N), "released %d of %d", atomic_load(&released), N);
  EXPECT(gctest_now() - t0 > 0.4, "dropped after %.3f s: before two rotations were due",
         gctest_now() - t0);
  EXPECT_EQ_U64(gctest_num_gc(), 0, "the collector ran");
  EXPECT(gort_pool_get(&offpool) == NULL);
}

TEST(with_the_collector_off_the_scavenger_rotates_the_pools) {
  EXPECT(harness_run_inner("scavenger_rotation", "GORT_GC=off"));
}

INNER_TEST(scavenger_rotation_after_set_percent) {
  gort_gc_set_percent(-1);
  gort_pool_put(&offpool, gort_malloc(1000));
  EXPECT(gctest_wait_count(&released, 1), "not released");
}

TEST(turning_the_collector_off_hands_rotation_to_the_scavenger) {
  EXPECT(harness_run_inner("scavenger_rotation_after_set_percent", "GORT_DEBUG=scavdelay=20"));
}

// A program that allocates no collected objects never collects; its pools
// are rotated by the scavenger all the same.
TEST(with_the_collector_idle_the_scavenger_rotates_the_pools) {
  enum { N = 50 };
  for (int i = 0; i < N; i++) gort_pool_put(&offpool, gort_malloc(1000));
  EXPECT(gctest_wait_count(&released, N), "released %d of %d", atomic_load(&released), N);
  EXPECT_EQ_U64(gctest_num_gc(), 0, "a collection ran");
}

// ---- fork -------------------------------------------------------------------------

// The pool thread does not survive a fork: the child starts its own when
// its first drop needs releasing.
TEST(a_forked_child_releases_its_pools_drops) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer delays the collector's stop signal");
  gort_pool_put(&offpool, gort_malloc(100));
  gctest_collect();
  gctest_collect();  // the parent's pool thread is running now
  EXPECT(gctest_wait_count(&released, 1));
  pid_t pid = fork();
  if (pid == 0) {
    gort_pool_put(&offpool, gort_malloc(100));
    gort_gc_collect();
    gort_gc_collect();
    _exit(gctest_wait_count(&released, 2) ? 0 : 1);
  }
  int st = 0;
  EXPECT(waitpid(pid, &st, 0) == pid);
  EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's drop was not released (status %d)", st);
}

// The pool thread, idle between rotations, waits where a stop takes it
// without asking it to park or signalling it (gc/gc.h,
// gort__stw_program_wait_ns): before, every stop asked it, waited 0.1 ms
// and then signalled it.
TEST(an_idle_pool_thread_stops_without_being_asked) {
  put_objects();
  gort_gc_collect();
  gort_gc_collect();  // the pool thread has rotated and released
  gctest_wait_threads_idle(10);
  uint64_t asked = gctest_threads_asked_in(10, 10);
  EXPECT(asked == 0, "10 cycles asked or signalled %llu threads", (unsigned long long)asked);
}
