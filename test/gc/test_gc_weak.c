// Weak pointers (Go's weak.Pointer): gort_gc_weak_get returns the object
// while it is reachable, through any number of cycles and while other
// threads collect, and NULL from the end of the first cycle that finds it
// unreachable; the handle is cleared before the object's finalizer runs,
// even when the finalizer resurrects the object; a weak pointer does not
// keep its target alive, even through another weak pointer; and the
// handle itself is a collected object.
//
// Where a stale copy of an address may keep an object (see gctest.h), a
// case uses K objects and requires most of them to be collected.

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "gctest.h"
#include "gort/alloc.h"

enum { K = 16, SLACK = 4, OBJ_SIZE = 80 };

static gort_weak_t *weak[K];
static void *slot[K];

static uint64_t tag_of(int i) { return 0x3EA4 + (uint64_t)i; }

static GCTEST_NOINLINE void make_objects(void) {
  for (int i = 0; i < K; i++) {
    void *p = gort_gc_alloc(OBJ_SIZE);
    if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc failed");
    gctest_fill(p, OBJ_SIZE, tag_of(i));
    weak[i] = gort_gc_weak_make(p);
    slot[i] = p;
  }
}

static GCTEST_NOINLINE int count_reading_their_object(void) {
  int n = 0;
  for (int i = 0; i < K; i++) {
    void *p = gort_gc_weak_get(weak[i]);
    n += p == slot[i] && gctest_check(p, OBJ_SIZE, tag_of(i));
  }
  return n;
}

TEST(a_weak_pointer_reads_its_object_while_it_is_reachable) {
  make_objects();
  EXPECT_EQ_U64(count_reading_their_object(), K, "before any cycle");
  for (int round = 0; round < 5; round++) {
    gctest_collect();
    EXPECT_EQ_U64(count_reading_their_object(), K, "after cycle %d", round + 1);
  }
}

TEST(a_weak_pointer_reads_null_right_after_the_cycle_that_finds_its_object_unreachable) {
  make_objects();
  gctest_collect();
  memset(slot, 0, sizeof slot);
  gctest_collect();
  int cleared = gctest_count_cleared(weak, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d weak pointers read NULL after the cycle", cleared, K);
  // And they stay NULL: the object is gone, whatever is allocated there now.
  for (int i = 0; i < 1000; i++) gctest_fill(gort_gc_alloc(OBJ_SIZE), OBJ_SIZE, 1);
  gctest_collect();
  EXPECT(gctest_count_cleared(weak, K) >= cleared, "a cleared weak pointer reads an object again");
}

TEST(two_weak_pointers_to_one_object_agree) {
  make_objects();
  gort_weak_t *second[K];
  for (int i = 0; i < K; i++) second[i] = gort_gc_weak_make(slot[i]);
  gctest_collect();
  for (int i = 0; i < K; i++)
    EXPECT(gort_gc_weak_get(second[i]) == slot[i], "second weak pointer %d while reachable", i);
  memset(slot, 0, sizeof slot);
  gctest_collect();
  for (int i = 0; i < K; i++)
    EXPECT((gort_gc_weak_get(weak[i]) == NULL) == (gort_gc_weak_get(second[i]) == NULL),
           "the two weak pointers to object %d disagree", i);
  int cleared = gctest_count_cleared(second, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d objects with two weak pointers collected", cleared,
         K);
}

// ---- weak pointers and finalizers --------------------------------------------------

static _Atomic int finalized, not_cleared_in_finalizer;
static void *resurrected[K];

static void check_weak_then(void *obj, void *arg, bool resurrect) {
  int i = (int)(uintptr_t)arg;
  if (gort_gc_weak_get(weak[i]) != NULL) atomic_fetch_add(&not_cleared_in_finalizer, 1);
  if (resurrect) resurrected[i] = obj;
  atomic_fetch_add(&finalized, 1);
}

static void check_weak(void *obj, void *arg) { check_weak_then(obj, arg, false); }
static void check_weak_and_resurrect(void *obj, void *arg) { check_weak_then(obj, arg, true); }

static void expect_cleared_before_finalizer(void (*fn)(void *, void *)) {
  make_objects();
  for (int i = 0; i < K; i++) gort_gc_set_finalizer(slot[i], fn, (void *)(uintptr_t)i);
  memset(slot, 0, sizeof slot);
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK), "only %d of %d finalizers ran",
         atomic_load(&finalized), K);
  EXPECT_EQ_U64(atomic_load(&not_cleared_in_finalizer), 0,
                "finalizers (of %d) that found their object's weak pointer still set",
                atomic_load(&finalized));
}

TEST(a_weak_pointer_is_cleared_before_its_objects_finalizer_runs) {
  expect_cleared_before_finalizer(check_weak);
}

TEST(a_weak_pointer_stays_cleared_when_the_finalizer_resurrects_its_object) {
  expect_cleared_before_finalizer(check_weak_and_resurrect);
  gctest_sleep_ms(20);
  int resurrected_n = 0;
  for (int round = 0; round < 2; round++) {
    gctest_collect();
    resurrected_n = 0;
    for (int i = 0; i < K; i++) {
      if (resurrected[i] == NULL) continue;
      resurrected_n++;
      EXPECT(gctest_check(resurrected[i], OBJ_SIZE, tag_of(i)), "resurrected object %d damaged", i);
      EXPECT(gort_gc_weak_get(weak[i]) == NULL,
             "the weak pointer to resurrected object %d reads it again", i);
    }
  }
  EXPECT(resurrected_n >= K - SLACK, "only %d objects resurrected", resurrected_n);
}

// ---- weak pointers keep nothing alive ------------------------------------------------

static gort_weak_t *weak_to_handle[K];

// weak[i] -> object i, and weak_to_handle[i] -> the handle weak[i] (a
// collected object like any other); only weak_to_handle is kept.
static GCTEST_NOINLINE void make_weak_chain(void) {
  make_objects();
  for (int i = 0; i < K; i++) {
    weak_to_handle[i] = gort_gc_weak_make(weak[i]);
    weak[i] = NULL;
  }
  memset(slot, 0, sizeof slot);
}

TEST(a_weak_handle_is_itself_collectable) {
  make_weak_chain();
  gctest_collect();
  int cleared = gctest_count_cleared(weak_to_handle, K);
  EXPECT(cleared >= K - SLACK, "only %d of %d dropped weak handles collected", cleared, K);
}

static GCTEST_NOINLINE void make_many_handles(void *target, int n) {
  for (int i = 0; i < n; i++)
    if (gort_gc_weak_make(target) == NULL)
      harness_fail(__FILE__, __LINE__, "gort_gc_weak_make failed");
}

TEST(dropped_weak_handles_do_not_accumulate) {
  static void *target;
  target = gort_gc_alloc(64);
  gctest_collect();
  uint64_t objects0 = gctest_memstats()->heap_objects;
  enum { N = 100000 };
  make_many_handles(target, N);
  gctest_collect();
  uint64_t objects1 = gctest_memstats()->heap_objects;
  EXPECT(objects1 < objects0 + N / 10,
         "HeapObjects %" PRIu64 " -> %" PRIu64 " after %d weak handles were dropped", objects0,
         objects1, N);
  EXPECT(gort_gc_base(target) == target, "the target of the dropped handles was collected");
}

// ---- under concurrent collection -------------------------------------------------------

static _Atomic bool stop;
static _Atomic long reads;

static void *reader(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    for (int i = 0; i < K; i++) {
      void *p = gort_gc_weak_get(weak[i]);
      if (p != slot[i] || !gctest_check(p, OBJ_SIZE, tag_of(i)))
        harness_fail(__FILE__, __LINE__, "weak pointer %d read %p, its object is %p", i, p,
                     slot[i]);
    }
    atomic_fetch_add(&reads, 1);
  }
  return NULL;
}

static void *garbage_maker(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    void *p = gort_gc_alloc(256);
    gort_gc_weak_make(p);  // handles to garbage, cleared as cycles go
  }
  return NULL;
}

TEST(weak_pointers_to_reachable_objects_never_read_null_while_others_collect) {
  make_objects();
  pthread_t t[3];
  pthread_create(&t[0], NULL, reader, NULL);
  pthread_create(&t[1], NULL, reader, NULL);
  pthread_create(&t[2], NULL, garbage_maker, NULL);
  // A second, and on a loaded machine on until the cycles and reads asked
  // for below (at most 20 s).
  double deadline = gctest_now() + 1.0 * harness_scale(), hard_deadline = deadline + 20;
  int cycles = 0;
  while (gctest_now() < deadline ||
         ((cycles <= 5 || atomic_load(&reads) <= 100) && gctest_now() < hard_deadline)) {
    gort_gc_collect();
    cycles++;
  }
  atomic_store(&stop, true);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  EXPECT(cycles > 5 && atomic_load(&reads) > 100, "%d cycles, %ld reads", cycles,
         atomic_load(&reads));
}
