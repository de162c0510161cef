// Many threads putting and getting at once: no object is ever handed to
// two threads at a time, none is lost, contents are what their holder
// wrote; and the same with collections rotating the pools meanwhile (not
// in the ThreadSanitizer build, which cannot stop the world: see
// test/run.sh; the first case is the one it checks).
//
// Each object carries an owner word: a get swaps in the getter's id and
// expects "pooled" (or "new"), a put swaps "pooled" back and expects its
// own id; a duplicate hand-out shows as a wrong previous value.

#include <pthread.h>
#include <stdatomic.h>

#include "../gc/gctest.h"
#include "gort/alloc.h"
#include "gort/pool.h"
#include "gort/sched.h"
#include "gort/sync.h"

enum { THREADS = 8, WORDS = 14, POOLED = 1 };

typedef struct {
  _Atomic uint64_t owner;  // 0 new, POOLED, or a thread's id (>= 2)
  uint64_t words[WORDS];
} obj_t;

static _Atomic int made;
static _Atomic int failures;
static bool collected_objects;  // gort_gc_alloc rather than gort_malloc

static void *make_obj(void) {
  atomic_fetch_add(&made, 1);
  return collected_objects ? gort_gc_alloc(sizeof(obj_t)) : gort_calloc(1, sizeof(obj_t));
}

static gort_pool_t pool = GORT_POOL_INIT(make_obj, NULL, NULL);

static void fail(const char *what, uint64_t id, uint64_t seen) {
  if (atomic_fetch_add(&failures, 1) < 5)
    fprintf(stderr, "  thread %llu: %s (saw %llu)\n", (unsigned long long)id, what,
            (unsigned long long)seen);
}

static void *worker(void *arg) {
  uint64_t id = (uint64_t)(uintptr_t)arg, seed = harness_seed() + id;
  int iters = 20000 * harness_scale();
  obj_t *held[4];
  for (int it = 0; it < iters && atomic_load(&failures) == 0; it++) {
    int k = 1 + (int)(test_rand(&seed) % 4);
    for (int j = 0; j < k; j++) {
      obj_t *o = gort_pool_get(&pool);
      if (o == NULL) {
        fail("get returned NULL with a new_fn", id, 0);
        return NULL;
      }
      uint64_t was = atomic_exchange(&o->owner, id);
      if (was != POOLED && was != 0) fail("an object handed out twice", id, was);
      for (int w = 0; w < WORDS; w++) o->words[w] = id * 1000 + (uint64_t)w;
      held[j] = o;
    }
    // A chance to switch: a call ThreadSanitizer intercepts on a thread; on a
    // goroutine a yield, after which it may run on another thread (and must
    // then find that thread's pool locals, not its old ones).
    if (it % 64 == 0) {
      if (gort_goroutine_id() != 0)
        gort_yield();
      else
        sched_yield();
    }
    for (int j = 0; j < k; j++) {
      obj_t *o = held[j];
      for (int w = 0; w < WORDS; w++)
        if (o->words[w] != id * 1000 + (uint64_t)w) {
          fail("contents changed while held", id, o->words[w]);
          break;
        }
      uint64_t was = atomic_exchange(&o->owner, POOLED);
      if (was != id) fail("an object taken while held", id, was);
      gort_pool_put(&pool, o);
      held[j] = NULL;
    }
  }
  return NULL;
}

static _Atomic bool stop_collecting;
static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_collecting)) {
    gort_gc_collect();
    gctest_sleep_ms(2);
  }
  return NULL;
}

static void run(bool with_cycles) {
  pthread_t t[THREADS], c;
  for (int i = 0; i < THREADS; i++)
    EXPECT(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 2)) == 0);
  if (with_cycles) EXPECT(pthread_create(&c, NULL, collector, NULL) == 0);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  atomic_store(&stop_collecting, true);
  if (with_cycles) pthread_join(c, NULL);
  EXPECT_EQ_U64(atomic_load(&failures), 0, "see the lines above");
  // Whatever is still pooled is distinct and marked pooled.
  enum { MAXN = 4 * THREADS * 4 };
  obj_t *seen[MAXN];
  int n = 0;
  obj_t *o;
  while (n < MAXN && (o = gort_pool_get(&pool)) != NULL && atomic_load(&o->owner) != 0) {
    EXPECT_EQ_U64(atomic_load(&o->owner), POOLED, "object %d", n);
    for (int i = 0; i < n; i++) EXPECT(seen[i] != o, "object %p drained twice", (void *)o);
    seen[n++] = o;
  }
  EXPECT_LE_U64(n, atomic_load(&made));
  gort_pool_stats_t s;
  gort_pool_stats(&pool, &s);
  EXPECT_LE_U64(s.misses, s.gets);
  EXPECT_EQ_U64(s.misses, atomic_load(&made), "every miss called new_fn once");
}

TEST(many_threads_putting_and_getting_never_share_an_object) { run(false); }

TEST(many_threads_and_collections_rotating_the_pool_never_share_or_lose_an_object) {
  run(true);
}

TEST(collected_objects_stay_intact_in_a_pool_under_collections) {
  collected_objects = true;
  run(true);
}

// The same with goroutines (64 on the Ps, moving between their threads at
// each yield) and plain threads at once.
enum { GOROUTINES = 64 };
static gort_waitgroup_t gwg;

static void goroutine_worker(void *arg) {
  worker(arg);
  gort_waitgroup_done(&gwg);
}

TEST(goroutines_and_threads_putting_and_getting_never_share_an_object) {
  pthread_t t[THREADS / 2];
  gort_waitgroup_add(&gwg, GOROUTINES);
  for (int i = 0; i < GOROUTINES; i++)
    EXPECT_EQ_U64(gort_go(goroutine_worker, (void *)(uintptr_t)(100 + i)), 0);
  for (int i = 0; i < THREADS / 2; i++)
    EXPECT(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 2)) == 0);
  gort_waitgroup_wait(&gwg);
  for (int i = 0; i < THREADS / 2; i++) pthread_join(t[i], NULL);
  EXPECT_EQ_U64(atomic_load(&failures), 0, "see the lines above");
  gort_pool_stats_t s;
  gort_pool_stats(&pool, &s);
  EXPECT_EQ_U64(s.misses, atomic_load(&made), "every miss called new_fn once");
}
