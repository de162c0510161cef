// Pools' semantics on one thread (include/gort/pool.h): a get after a put
// returns the object; new_fn runs on a miss; reset_fn on every put and
// release_fn on every drop; a NULL put is ignored and a foreign pointer is
// fatal; what a pool holds survives one cycle and is dropped by the second.
//
// The cycles are the collector's (gort_gc_collect), which the
// ThreadSanitizer build cannot run (test/run.sh says why): those cases
// skip there. Drops are released on the pool thread, some time after the
// cycle, so the cases wait for the release counter.

#include <stdatomic.h>

#include "../gc/gctest.h"
#include "gort/alloc.h"
#include "gort/pool.h"

enum { OBJ = 256 };

static _Atomic int made, resets, released;

static void *make_obj(void) {
  atomic_fetch_add(&made, 1);
  return gort_malloc(OBJ);
}
static void reset_obj(void *p) {
  atomic_fetch_add(&resets, 1);
  memset(p, 0, OBJ);
}
static void release_obj(void *p) {
  atomic_fetch_add(&released, 1);
  gort_free(p);
}

static gort_pool_t full = GORT_POOL_INIT(make_obj, reset_obj, release_obj);
static gort_pool_t bare = GORT_POOL_INIT(NULL, NULL, NULL);

static gort_pool_stats_t stats_of(gort_pool_t *p) {
  gort_pool_stats_t s;
  gort_pool_stats(p, &s);
  return s;
}

TEST(a_get_after_a_put_returns_the_object_on_the_same_thread) {
  void *a = gort_malloc(OBJ), *b = gort_malloc(OBJ);
  gort_pool_put(&bare, a);
  EXPECT(gort_pool_get(&bare) == a, "the private slot");
  gort_pool_put(&bare, a);
  gort_pool_put(&bare, b);  // a stays private, b goes to the shared chain
  void *x = gort_pool_get(&bare), *y = gort_pool_get(&bare);
  EXPECT((x == a && y == b) || (x == b && y == a), "x=%p y=%p a=%p b=%p", x, y, a, b);
  EXPECT(gort_pool_get(&bare) == NULL, "an empty pool without new_fn returns NULL");
  for (int i = 0; i < 1000; i++) {  // the fast path, many times over
    gort_pool_put(&bare, a);
    EXPECT(gort_pool_get(&bare) == a, "round %d", i);
  }
  gort_free(a);
  gort_free(b);
}

TEST(new_is_called_on_a_miss_and_counted) {
  void *p = gort_pool_get(&full);
  ASSERT_NOT_NULL(p);
  EXPECT_EQ_U64(atomic_load(&made), 1);
  gort_pool_put(&full, p);
  EXPECT(gort_pool_get(&full) == p, "a hit, not a second new");
  EXPECT_EQ_U64(atomic_load(&made), 1);
  gort_pool_stats_t s = stats_of(&full);
  EXPECT_EQ_U64(s.gets, 2);
  EXPECT_EQ_U64(s.puts, 1);
  EXPECT_EQ_U64(s.misses, 1);
  gort_free(p);
}

TEST(reset_runs_on_every_put_and_the_object_comes_back_reset) {
  char *p = gort_pool_get(&full);
  memset(p, 'x', OBJ);
  gort_pool_put(&full, p);
  EXPECT_EQ_U64(atomic_load(&resets), 1);
  char *q = gort_pool_get(&full);
  EXPECT(q == p);
  for (int i = 0; i < OBJ; i++) EXPECT(q[i] == 0, "byte %d not reset", i);
  gort_free(q);
}

TEST(a_null_put_is_ignored) {
  gort_pool_put(&bare, NULL);
  gort_pool_put(&full, NULL);
  EXPECT(gort_pool_get(&bare) == NULL);
  EXPECT_EQ_U64(atomic_load(&resets), 0, "reset_fn ran on NULL");
  EXPECT_EQ_U64(stats_of(&bare).puts, 0);
}

static char not_ours[64];
static void put_global(void *arg) { gort_pool_put(arg, not_ours + 16); }
static void put_stack(void *arg) {
  char local[32];
  gort_pool_put(arg, local);
}

TEST(a_put_of_a_pointer_gort_did_not_hand_out_is_fatal_with_its_address) {
  char want[64];
  snprintf(want, sizeof want, "gort: fatal error: gort_pool_put: not a pointer gort handed out: %p",
           (void *)(not_ours + 16));
  EXPECT(harness_expect_fatal(put_global, &bare, want));
  EXPECT(harness_expect_fatal(put_stack, &full, "gort_pool_put: not a pointer gort handed out"));
}

// ---- cycles ----------------------------------------------------------------------------

static bool wait_released(int want) { return gctest_wait_count(&released, want); }

TEST(contents_survive_one_cycle_and_are_dropped_after_two) {
  enum { N = 40 };
  void *objs[N];
  for (int i = 0; i < N; i++) objs[i] = gort_malloc(OBJ);
  for (int i = 0; i < N; i++) gort_pool_put(&full, objs[i]);
  gort_gc_collect();
  gctest_sleep_ms(20);
  EXPECT_EQ_U64(atomic_load(&released), 0, "released after one cycle");
  // One cycle moved them to the victim cache: gets still find them all.
  for (int i = 0; i < N; i++) {
    void *p = gort_pool_get(&full);
    bool found = false;
    for (int j = 0; j < N; j++) found |= p == objs[j];
    EXPECT(found, "get %d returned %p, not a pooled object", i, p);
  }
  EXPECT_EQ_U64(atomic_load(&made), 0, "new_fn ran while the victims held objects");
  for (int i = 0; i < N; i++) gort_pool_put(&full, objs[i]);
  gort_gc_collect();
  gort_gc_collect();
  EXPECT(wait_released(N), "released %d of %d after two cycles", atomic_load(&released), N);
  EXPECT_EQ_U64(stats_of(&full).drops, N);
  void *p = gort_pool_get(&full);
  for (int j = 0; j < N; j++) EXPECT(p != objs[j], "a dropped object came back");
  EXPECT_EQ_U64(atomic_load(&made), 1, "the get after the drops is a miss");
  gort_free(p);
}

// Bug: a rotation that dropped an empty victim cache handed it to the pool
// thread all the same, and the pool was not rotated again until the pool
// thread had looked at it: two back-to-back cycles then left the objects
// in the victim cache (released 0 of 40 in a loaded run). Here the pool
// thread is held in another pool's release_fn meanwhile, so the old code
// fails every time.
static _Atomic int unblock;
static void release_blocking(void *p) {
  while (!atomic_load(&unblock)) gctest_sleep_ms(1);
  gort_free(p);
}
static gort_pool_t blocker = GORT_POOL_INIT(NULL, NULL, release_blocking);

TEST(an_empty_drop_does_not_hold_up_the_next_rotation) {
  gort_pool_put(&blocker, gort_malloc(OBJ));
  gort_gc_collect();
  gort_gc_collect();  // the pool thread now waits in release_blocking
  void *a = gort_malloc(OBJ), *b = gort_malloc(OBJ);
  gort_pool_put(&full, a);
  gort_pool_put(&full, b);  // one private, one on the shared chain
  gort_gc_collect();        // both in the victim cache
  void *x = gort_pool_get(&full), *y = gort_pool_get(&full);
  EXPECT(x != NULL && y != NULL && x != y);
  gort_pool_put(&full, x);
  gort_pool_put(&full, y);
  gort_gc_collect();  // drops the (now empty) victims
  EXPECT_EQ_U64(__atomic_load_n(&full.gort_dropping_, __ATOMIC_ACQUIRE), 0,
                "the pool waits for the pool thread with nothing to release");
  gort_gc_collect();  // drops a and b
  atomic_store(&unblock, 1);
  EXPECT(wait_released(2), "released %d of 2 after two cycles", atomic_load(&released));
}

TEST(dropped_malloc_objects_without_release_go_back_to_the_heap) {
  enum { N = 1000 };
  uint64_t before = gctest_memstats()->frees;
  for (int i = 0; i < N; i++) gort_pool_put(&bare, gort_malloc(OBJ));
  gort_gc_collect();
  gort_gc_collect();
  double deadline = gctest_now() + 5;
  while (gctest_memstats()->frees - before < N && gctest_now() < deadline) gctest_sleep_ms(1);
  EXPECT_LE_U64(N, gctest_memstats()->frees - before, "gort_free'd by the pool thread");
  EXPECT_EQ_U64(stats_of(&bare).drops, N);
  EXPECT(gort_pool_get(&bare) == NULL, "the pool is empty");
}

// Uncollectable objects are released by gort_free alone: a drop once left
// them to the collector, and a pool of them grew by all it dropped.
TEST(dropped_uncollectable_objects_without_release_are_freed) {
  enum { N = 1000 };
  uint64_t before = gctest_memstats()->heap_objects;
  for (int i = 0; i < N; i++) gort_pool_put(&bare, gort_gc_alloc_uncollectable(OBJ));
  gort_gc_collect();
  gort_gc_collect();
  double deadline = gctest_now() + 5;
  while (gctest_memstats()->heap_objects >= before + N / 2 && gctest_now() < deadline) gctest_sleep_ms(1);
  uint64_t after = gctest_memstats()->heap_objects;
  EXPECT(after < before + N / 2, "HeapObjects %" PRIu64 " -> %" PRIu64 " after %d dropped", before, after, N);
  EXPECT(gort_pool_get(&bare) == NULL, "the pool is empty");
}

TEST(total_stats_sum_the_pools) {
  gort_pool_put(&bare, gort_malloc(16));
  void *p = gort_pool_get(&full);
  gort_pool_put(&full, p);
  gort_pool_stats_t t;
  gort_pool_stats(NULL, &t);
  EXPECT_EQ_U64(t.puts, 2);
  EXPECT_EQ_U64(t.gets, 1);
  EXPECT_EQ_U64(t.misses, 1);
}
