// The collector sees goroutines: an object referenced only from a parked
// goroutine's stack, from a goroutine running on another thread, or from
// the goroutine that runs the collection survives every cycle intact; once
// the goroutines are gone, the objects are collected.

#include "../gc/gctest.h"
#include "schedtest.h"

enum { K = 16, SLACK = 4, OBJ = 200 };

static gort_weak_t *weak[K];
static gort_waitgroup_t started, gate, finished;
static _Atomic int bad;

static uint64_t tag_of(int i) { return 0x7a90 + (uint64_t)i; }

// Allocates object i and returns its address as an integer (the caller
// keeps it on its own stack).
static GCTEST_NOINLINE uintptr_t make(int i) {
  void *p = gort_gc_alloc(OBJ);
  if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc failed");
  gctest_fill(p, OBJ, tag_of(i));
  weak[i] = gort_gc_weak_make(p);
  return (uintptr_t)p;
}

static GCTEST_NOINLINE void check(int i, uintptr_t held) {
  void *w = gort_gc_weak_get(weak[i]);
  if (w == NULL || (uintptr_t)w != held || !gctest_check(w, OBJ, tag_of(i))) {
    fprintf(stderr, "  object %d: weak %p, held %p\n", i, w, (void *)held);
    atomic_fetch_add(&bad, 1);
  }
}

static void parked_holder(void *arg) {
  int i = (int)(intptr_t)arg;
  volatile uintptr_t held = make(i);  // the only reference: this stack
  gort_waitgroup_done(&started);
  gort_waitgroup_wait(&gate);  // parked while the collector runs
  check(i, held);
  gort_waitgroup_done(&finished);
}

static GCTEST_NOINLINE int count_cleared(void) { return gctest_count_cleared(weak, K); }

TEST(an_object_held_only_by_a_parked_goroutine_survives) {
  gort_waitgroup_add(&gate, 1);
  gort_waitgroup_add(&started, K);
  gort_waitgroup_add(&finished, K);
  for (int i = 0; i < K; i++) EXPECT(gort_go(parked_holder, (void *)(intptr_t)i) == 0);
  gort_waitgroup_wait(&started);
  gctest_collect();
  gctest_collect();
  EXPECT(count_cleared() == 0, "%d of %d collected while parked goroutines held them", count_cleared(), K);
  gort_waitgroup_done(&gate);
  gort_waitgroup_wait(&finished);
  EXPECT(atomic_load(&bad) == 0);
  // The goroutines are gone: so are the references.
  for (int i = 0; i < 5000 && gort_num_goroutine() != 0; i++) gctest_sleep_ms(1);
  gctest_clear_vector_registers();
  gctest_collect();
  EXPECT(count_cleared() >= K - SLACK, "only %d of %d collected after their goroutines ended",
         count_cleared(), K);
}

static void self_collector(void *arg) {
  (void)arg;
  volatile uintptr_t held = make(0);
  gctest_collect();  // the collector runs on this goroutine's stack
  gctest_collect();
  check(0, held);
  gort_waitgroup_done(&finished);
}

TEST(a_goroutine_that_collects_keeps_its_own_objects) {
  gort_waitgroup_add(&finished, 1);
  EXPECT(gort_go(self_collector, NULL) == 0);
  gort_waitgroup_wait(&finished);
  EXPECT(atomic_load(&bad) == 0);
}

static _Atomic int ready, collected;

static void running_holder(void *arg) {
  (void)arg;
  volatile uintptr_t held = make(0);
  atomic_store(&ready, 1);
  while (!atomic_load(&collected)) {
  }  // running on its thread, no safe point, while main collects
  check(0, held);
  gort_waitgroup_done(&finished);
}

TEST(an_object_held_by_a_running_goroutine_survives) {
  gort_maxprocs(2);
  gort_waitgroup_add(&finished, 1);
  EXPECT(gort_go(running_holder, NULL) == 0);
  while (!atomic_load(&ready)) gctest_sleep_ms(1);
  gctest_collect();
  gctest_collect();
  atomic_store(&collected, 1);
  gort_waitgroup_wait(&finished);
  EXPECT(atomic_load(&bad) == 0);
}

// ---- goroutines mutate while the world stops under them ---------------------------------------
//
// Goroutines build and check linked lists of collected objects whose only
// roots are their stacks and registers (saved on their stacks at each
// switch), yielding and sleeping between links, so that cycles find them
// running, runnable, parked, mid-switch and on either thread; the main
// thread and one of the goroutines collect meanwhile. A node that is freed
// while reachable is reused with other contents: its tag no longer matches.

typedef struct node {
  struct node *next;
  uint64_t tag;
  uint64_t pad[6];
} gnode_t;

enum { MUTATORS = 32, LIST = 40 };
static _Atomic int mutators_stop;
static _Atomic long lists_checked, nodes_bad;

static uint64_t node_tag(int who, int round, int i) {
  return ((uint64_t)who << 40) ^ ((uint64_t)round << 16) ^ (uint64_t)i ^ 0x5eed;
}

static NOINLINE gnode_t *build(int who, int round) {
  gnode_t *head = NULL;
  for (int i = 0; i < LIST; i++) {
    gnode_t *n = gort_gc_alloc(sizeof *n);
    if (n == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc failed");
    n->tag = node_tag(who, round, i);
    n->next = head;
    head = n;
    if (i % 8 == 0) gort_yield();            // runnable, maybe stolen
    if (i % 13 == 0) gort_sleep(50 * 1000);  // parked on a timer
  }
  return head;
}

static NOINLINE void verify(gnode_t *head, int who, int round) {
  int i = LIST - 1;
  for (gnode_t *n = head; n != NULL; n = n->next, i--) {
    if (i < 0 || n->tag != node_tag(who, round, i)) {
      atomic_fetch_add(&nodes_bad, 1);
      return;
    }
    if (i % 16 == 0) gort_yield();
  }
  if (i != -1) atomic_fetch_add(&nodes_bad, 1);
  atomic_fetch_add(&lists_checked, 1);
}

static void mutator(void *arg) {
  int who = (int)(intptr_t)arg;
  for (int round = 0; !atomic_load(&mutators_stop); round++) {
    gnode_t *a = build(who, round);
    gnode_t *b = build(who, round + 1000000);
    if (who == 0 && round % 4 == 0) gctest_collect();  // a goroutine collects too
    verify(a, who, round);
    verify(b, who, round + 1000000);
  }
  gort_waitgroup_done(&finished);
}

TEST(lists_stay_intact_while_goroutines_mutate_and_threads_collect) {
  SKIP_IF(SCHEDTEST_TSAN, "ThreadSanitizer delays the collector's stop signal (test/run.sh)");
  gort_maxprocs(2);
  gort_waitgroup_add(&finished, MUTATORS);
  for (int i = 0; i < MUTATORS; i++) EXPECT(gort_go(mutator, (void *)(intptr_t)i) == 0);
  // A second and a half, and on a loaded machine on until the lists
  // checked below (at most 20 s).
  double end = gctest_now() + 1.5 * harness_scale(), hard_end = end + 20;
  int cycles = 0;
  while (gctest_now() < end || (atomic_load(&lists_checked) <= 100 && gctest_now() < hard_end)) {
    gctest_collect();
    cycles++;
    gctest_sleep_ms(2);
  }
  atomic_store(&mutators_stop, 1);
  gort_waitgroup_wait(&finished);
  fprintf(stderr, "  %d cycles from main, %ld lists checked\n", cycles, atomic_load(&lists_checked));
  EXPECT(atomic_load(&nodes_bad) == 0, "%ld lists broken", atomic_load(&nodes_bad));
  EXPECT(atomic_load(&lists_checked) > 100, "only %ld lists checked", atomic_load(&lists_checked));
}
