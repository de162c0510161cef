// Finalizers, with Go's semantics: a finalizer runs once, on the finalizer
// thread, after a cycle found its object unreachable; the object and all
// it reaches are intact when it runs and stay so until it returns; it may
// resurrect the object, which a later cycle collects once dropped again
// (without finalizing it twice); a chain A -> B finalizes A first and B in
// a later cycle; a cycle of finalizable objects is never finalized (as in
// Go: each keeps the other reachable from a finalizable object); a NULL
// finalizer clears one. Finalizers run asynchronously: every case waits for
// them with a bounded poll (gctest_wait_count, up to 5 s).
//
// Where conservative scanning may keep an object through a stale copy of
// its address, a case uses K objects and requires most of them (see
// gctest.h). Records never hold an object's address in the clear (that
// would be a root): they keep it disguised.

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gctest.h"
#include "gort/alloc.h"

enum { K = 16, SLACK = 4, OBJ_SIZE = 96 };

#define DISGUISE(p) ((uintptr_t)(p) ^ 0xFFFF00000000FFFFULL)
#define UNDISGUISE(u) ((void *)((u) ^ 0xFFFF00000000FFFFULL))

typedef struct {
  _Atomic int runs;
  _Atomic int seq;  // order among all finalizer runs
  _Atomic bool on_main_thread;
  _Atomic bool intact;     // the object and what it reaches, as the finalizer saw them
  _Atomic uintptr_t seen;  // the object it was given, disguised
  uintptr_t obj;           // the object it was set on, disguised
} record_t;

static record_t rec[K], rec_b[K];
static _Atomic int finalized, next_seq;
static pthread_t main_thread;
static gort_weak_t *weak[K];
static void *slot[K];

static uint64_t tag_of(int i) { return 0xF1A1 + (uint64_t)i; }

// An object: word 0 points at the next object of its chain (or NULL), the
// rest is filled with its tag.
static void *new_obj(int tag, void *next) {
  void **p = gort_gc_alloc(OBJ_SIZE);
  if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc failed");
  p[0] = next;
  gctest_fill(&p[1], OBJ_SIZE - 8, (uint64_t)tag);
  return p;
}

static bool obj_intact(void *p, int tag) {
  return gctest_check((void **)p + 1, OBJ_SIZE - 8, (uint64_t)tag);
}

static void note(void *obj, void *arg) {
  record_t *r = arg;
  atomic_store(&r->seen, DISGUISE(obj));
  atomic_store(&r->on_main_thread, pthread_equal(pthread_self(), main_thread));
  atomic_store(&r->seq, atomic_fetch_add(&next_seq, 1) + 1);
  atomic_fetch_add(&r->runs, 1);
  atomic_fetch_add(&finalized, 1);
}

static void record_finalizer(void *obj, void *arg) { note(obj, arg); }

// K objects with record_finalizer (record rec[i]), each the head of a
// chain of `depth` more objects; slot[i] holds object i.
static GCTEST_NOINLINE void make_finalizable(int depth, void (*fn)(void *, void *)) {
  for (int i = 0; i < K; i++) {
    void *chain = NULL;
    for (int d = depth; d > 0; d--) chain = new_obj(1000 * i + d, chain);
    void *p = new_obj((int)tag_of(i), chain);
    rec[i].obj = DISGUISE(p);
    weak[i] = gort_gc_weak_make(p);
    gort_gc_set_finalizer(p, fn, &rec[i]);
    slot[i] = p;
  }
}

static void drop_all(void) { memset(slot, 0, sizeof slot); }

static int count_runs(record_t *r) {
  int n = 0;
  for (int i = 0; i < K; i++) n += atomic_load(&r[i].runs) > 0;
  return n;
}

static void expect_at_most_once(record_t *r, const char *what) {
  for (int i = 0; i < K; i++)
    EXPECT(atomic_load(&r[i].runs) <= 1, "%s %d finalized %d times", what, i, r[i].runs);
}

__attribute__((constructor)) static void remember_main_thread(void) {
  main_thread = pthread_self();
}

// The finalizer thread held the objects it finalized: copies of their
// addresses may linger in its registers (saved in its signal frame when
// the collector stops it) and its dead stack, and keep them, and what they
// reach, alive. Before a case expects finalized objects to be collected, it
// runs FLUSHERS more finalizers of throwaway objects, which overwrite both.
enum { FLUSHERS = 64 };
static _Atomic int flushed;

static void flush_finalizer(void *obj, void *arg) {
  (void)obj, (void)arg;
  gctest_clobber_stack();
  gctest_clear_vector_registers();
  atomic_fetch_add(&flushed, 1);
}

static GCTEST_NOINLINE void make_flushers(void) {
  for (int i = 0; i < FLUSHERS; i++) gort_gc_set_finalizer(new_obj(i, NULL), flush_finalizer, NULL);
}

static void flush_finalizer_thread(void) {
  int before = atomic_load(&flushed);
  make_flushers();
  gctest_collect();
  EXPECT(gctest_wait_count(&flushed, before + FLUSHERS - SLACK), "only %d of %d finalizers ran",
         atomic_load(&flushed) - before, FLUSHERS);
  gctest_sleep_ms(20);  // the last ones return
}

// ---- when and how a finalizer runs ------------------------------------------------

TEST(a_finalizer_runs_once_on_another_thread_after_its_object_is_unreachable) {
  make_finalizable(0, record_finalizer);
  for (int round = 0; round < 2; round++) gctest_collect();
  gctest_sleep_ms(20);
  EXPECT_EQ_U64(atomic_load(&finalized), 0, "finalizers ran while their objects were reachable");
  drop_all();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK),
         "only %d of %d finalizers ran within 5 s of the cycle", atomic_load(&finalized), K);
  for (int round = 0; round < 3; round++) gctest_collect();
  gctest_sleep_ms(50);
  expect_at_most_once(rec, "object");
  for (int i = 0; i < K; i++) {
    if (atomic_load(&rec[i].runs) == 0) continue;
    EXPECT(!atomic_load(&rec[i].on_main_thread), "finalizer %d ran on the main thread", i);
    EXPECT(atomic_load(&rec[i].seen) == rec[i].obj, "finalizer %d was given %p, not its object %p",
           i, UNDISGUISE(atomic_load(&rec[i].seen)), UNDISGUISE(rec[i].obj));
    EXPECT(gort_gc_weak_get(weak[i]) == NULL,
           "object %d finalized but its weak pointer still reads it", i);
  }
}

static _Atomic bool gate_open;

// Checks the object and its chain of 3, once the main thread has reused
// whatever the cycle freed (a chain freed too early is then overwritten).
static void check_chain_finalizer(void *obj, void *arg) {
  record_t *r = arg;
  for (int ms = 0; !atomic_load(&gate_open) && ms < 10000; ms++) gctest_sleep_ms(1);
  int i = (int)(r - rec);
  bool ok = obj_intact(obj, (int)tag_of(i));
  void **p = ((void **)obj)[0];
  for (int d = 1; d <= 3; d++, p = p != NULL ? p[0] : NULL)
    ok = ok && p != NULL && obj_intact(p, 1000 * i + d);
  atomic_store(&r->intact, ok);
  note(obj, arg);
}

TEST(an_object_and_all_it_reaches_are_intact_when_its_finalizer_runs) {
  make_finalizable(3, check_chain_finalizer);  // each object heads a chain of 3 more
  drop_all();
  gctest_collect();
  for (int i = 0; i < 1024; i++) memset(gort_gc_alloc(OBJ_SIZE), 0xEE, OBJ_SIZE);  // reuse
  atomic_store(&gate_open, true);
  EXPECT(gctest_wait_count(&finalized, K - SLACK), "only %d of %d finalizers ran",
         atomic_load(&finalized), K);
  for (int i = 0; i < K; i++)
    if (atomic_load(&rec[i].runs) > 0)
      EXPECT(atomic_load(&rec[i].intact),
             "object %d or its chain was damaged before its finalizer ran", i);
}

// ---- resurrection -------------------------------------------------------------------

static void *resurrected[K];

static void resurrect(void *obj, void *arg) {
  record_t *r = arg;
  resurrected[r - rec] = obj;
  note(obj, arg);
}

// How many resurrected objects (and their children) are damaged or gone.
static GCTEST_NOINLINE int count_resurrected_damaged(void) {
  int n = 0;
  for (int i = 0; i < K; i++) {
    void *p = resurrected[i];
    if (p == NULL) continue;
    void **child = ((void **)p)[0];
    n += !(obj_intact(p, (int)tag_of(i)) && child != NULL && obj_intact(child, 1000 * i + 1) &&
           gort_gc_base(p) == p);
  }
  return n;
}

static GCTEST_NOINLINE void weaken_resurrected(void) {
  for (int i = 0; i < K; i++)
    weak[i] = resurrected[i] != NULL ? gort_gc_weak_make(resurrected[i]) : NULL;
}

TEST(a_resurrected_object_stays_valid_and_is_collected_once_dropped_again) {
  make_finalizable(1, resurrect);
  drop_all();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK), "only %d of %d finalizers ran",
         atomic_load(&finalized), K);
  for (int round = 0; round < 3; round++) {
    gctest_collect();
    EXPECT_EQ_U64(count_resurrected_damaged(), 0,
                  "resurrected objects (or their children) damaged or freed, cycle %d", round + 1);
  }
  gctest_sleep_ms(50);
  expect_at_most_once(rec, "resurrected object");
  // Dropped again: collected, never finalized a second time.
  weaken_resurrected();
  memset(resurrected, 0, sizeof resurrected);
  flush_finalizer_thread();
  gctest_collect();
  int cleared = 0, resurrected_n = 0;
  for (int i = 0; i < K; i++)
    if (weak[i] != NULL) resurrected_n++, cleared += gort_gc_weak_get(weak[i]) == NULL;
  EXPECT(cleared >= resurrected_n - SLACK,
         "only %d of %d resurrected objects collected once dropped again", cleared, resurrected_n);
  gctest_sleep_ms(50);
  expect_at_most_once(rec, "resurrected object");
}

// ---- chains and cycles --------------------------------------------------------------

static void finalize_b(void *obj, void *arg) { note(obj, arg); }

// Pairs A -> B, both finalizable; slot holds the As.
static GCTEST_NOINLINE void make_pairs(bool cyclic) {
  for (int i = 0; i < K; i++) {
    void **b = new_obj(2000 + i, NULL);
    void **a = new_obj((int)tag_of(i), b);
    if (cyclic) b[0] = a;
    rec[i].obj = DISGUISE(a);
    rec_b[i].obj = DISGUISE(b);
    gort_gc_set_finalizer(a, record_finalizer, &rec[i]);
    gort_gc_set_finalizer(b, finalize_b, &rec_b[i]);
    slot[i] = a;
  }
}

TEST(a_chain_is_finalized_one_link_per_cycle) {
  make_pairs(false);
  drop_all();
  uint32_t gc0 = gctest_num_gc();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK), "only %d of %d heads finalized",
         atomic_load(&finalized), K);
  gctest_sleep_ms(20);
  if (gctest_num_gc() == gc0 + 1)  // no other cycle ran: the tails must wait for one
    EXPECT_EQ_U64(count_runs(rec_b), 0, "tails finalized in the cycle that found their heads");
  int heads = count_runs(rec);
  flush_finalizer_thread();  // a cycle
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, heads + heads - SLACK),
         "%d of %d tails finalized in the later cycles", count_runs(rec_b), heads);
  for (int i = 0; i < K; i++)
    if (atomic_load(&rec_b[i].runs) > 0)
      EXPECT(
          atomic_load(&rec[i].runs) == 1 && atomic_load(&rec[i].seq) < atomic_load(&rec_b[i].seq),
          "pair %d: tail finalized (#%d) before its head (#%d)", i, rec_b[i].seq, rec[i].seq);
  expect_at_most_once(rec, "head");
  expect_at_most_once(rec_b, "tail");
}

TEST(a_cycle_of_finalizable_objects_is_never_finalized) {
  make_pairs(true);                   // A -> B -> A
  void **self = new_obj(3000, NULL);  // and one object pointing at itself
  self[0] = self;
  static record_t self_rec;
  gort_gc_set_finalizer(self, record_finalizer, &self_rec);
  uintptr_t self_disguised = DISGUISE(self);
  self = NULL;
  drop_all();
  for (int round = 0; round < 3; round++) gctest_collect();
  gctest_sleep_ms(200);
  EXPECT_EQ_U64(atomic_load(&finalized), 0, "finalizers of objects in cycles ran");
  // Never finalized, so never freed: they are all still there. Break each
  // cycle (B no longer points back at A): the chain A -> B is finalized.
  self = UNDISGUISE(self_disguised);
  EXPECT(obj_intact(self, 3000) && self[0] == self, "the self-referencing object was freed");
  for (int i = 0; i < K; i++) {
    void **a = UNDISGUISE(rec[i].obj), **b = a[0];
    EXPECT(obj_intact(a, (int)tag_of(i)) && b == UNDISGUISE(rec_b[i].obj) &&
               obj_intact(b, 2000 + i) && b[0] == a,
           "cycle %d was freed or damaged", i);
    b[0] = NULL;
  }
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK),
         "only %d of %d heads finalized after their cycles were broken", atomic_load(&finalized),
         K);
}

// ---- what a finalizer may do ----------------------------------------------------------

static void *_Atomic made[K];  // lists built by finalizers

static void allocating_finalizer(void *obj, void *arg) {
  record_t *r = arg;
  int i = (int)(r - rec);
  void **list = NULL;
  for (int n = 0; n < 100; n++) {  // collected objects, kept
    void **p = gort_gc_alloc(64);
    p[0] = list;
    p[1] = (void *)(uintptr_t)(0xA500000000000000ULL | (uint64_t)n);
    list = p;
  }
  for (int n = 0; n < 2000; n++) {  // garbage enough to start cycles from this thread
    void *g = gort_gc_alloc(4096);
    if (g == NULL) harness_fail(__FILE__, __LINE__, "allocation in a finalizer failed");
  }
  for (int n = 0; n < 1000; n++) {
    void *m = gort_malloc((size_t)(16 + n));
    memset(m, n & 0xFF, (size_t)(16 + n));
    gort_free(m);
  }
  atomic_store(&made[i], list);
  note(obj, arg);
}

static bool list_intact(void **p) {
  for (int n = 99; n >= 0; n--, p = p[0])
    if (p == NULL || p[1] != (void *)(uintptr_t)(0xA500000000000000ULL | (uint64_t)n)) return false;
  return p == NULL;
}

TEST(a_finalizer_may_allocate_collected_and_malloc_memory) {
  make_finalizable(0, allocating_finalizer);
  drop_all();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK), "only %d of %d finalizers ran",
         atomic_load(&finalized), K);
  gctest_collect();
  gctest_collect();
  for (int i = 0; i < K; i++)
    if (atomic_load(&made[i]) != NULL)
      EXPECT(list_intact(atomic_load(&made[i])), "the list finalizer %d built was damaged", i);
}

static void collecting_finalizer(void *obj, void *arg) {
  gort_gc_collect();
  void *p = new_obj(1, NULL);  // and gives a new object a finalizer
  gort_gc_set_finalizer(p, record_finalizer, &rec_b[(record_t *)arg - rec]);
  note(obj, arg);
}

TEST(a_finalizer_may_run_a_collection_and_set_finalizers) {
  make_finalizable(0, collecting_finalizer);
  drop_all();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK), "only %d of %d finalizers ran",
         atomic_load(&finalized), K);
  int first = count_runs(rec);
  gctest_collect();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, first + first - SLACK),
         "only %d of the %d finalizers set by finalizers ran", count_runs(rec_b), first);
}

static void slow_finalizer(void *obj, void *arg) {
  gctest_sleep_ms(3000);
  note(obj, arg);
}

TEST(a_slow_finalizer_does_not_hold_up_collections) {
  make_finalizable(0, slow_finalizer);
  drop_all();
  gctest_collect();
  gctest_sleep_ms(10);  // a finalizer is now sleeping, most likely
  double t0 = gctest_now();
  for (int round = 0; round < 3; round++) {
    void *garbage = gort_gc_alloc(1000);
    (void)garbage;
    gctest_collect();
  }
  double took = gctest_now() - t0;
  EXPECT(took < 2.0, "three cycles took %.1f s while a finalizer slept", took);
}

// The finalizer thread, idle, waits where a stop takes it without asking
// it to park or signalling it: before, every stop asked it, waited 0.1 ms
// and then signalled it.
TEST(an_idle_finalizer_thread_stops_without_being_asked) {
  flush_finalizer_thread();  // the thread exists, and is idle
  gctest_wait_threads_idle(0);
  uint64_t asked = gctest_threads_asked_in(10, 0);
  EXPECT(asked == 0, "10 cycles asked or signalled %llu threads", (unsigned long long)asked);
}

// ---- clearing a finalizer, and many finalizers -----------------------------------------

TEST(a_null_finalizer_clears_the_finalizer) {
  make_finalizable(0, record_finalizer);
  for (int i = 0; i < K; i++) gort_gc_set_finalizer(slot[i], NULL, NULL);
  drop_all();
  gctest_collect();
  int cleared = gctest_count_cleared(weak, K);
  gctest_collect();
  gctest_sleep_ms(100);
  EXPECT_EQ_U64(atomic_load(&finalized), 0, "cleared finalizers ran");
  EXPECT(cleared >= K - SLACK,
         "only %d of %d objects collected in the first cycle without their finalizers", cleared, K);
}

enum { MANY = 10000 };
static _Atomic unsigned char many_runs[MANY];

static void count_finalizer(void *obj, void *arg) {
  (void)obj;
  atomic_fetch_add(&many_runs[(uintptr_t)arg], 1);
  atomic_fetch_add(&finalized, 1);
}

static GCTEST_NOINLINE void make_many(void) {
  for (uintptr_t i = 0; i < MANY; i++) {
    void *p = gort_gc_alloc(1024);
    if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc failed");
    gort_gc_set_finalizer(p, count_finalizer, (void *)i);
  }
}

TEST(many_finalizers_run_exactly_once_and_their_objects_are_then_collected) {
  gctest_collect();
  uint64_t alloc0 = gctest_memstats()->heap_alloc;
  make_many();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, MANY - MANY / 50), "%d of %d finalizers ran",
         atomic_load(&finalized), MANY);
  gctest_collect();  // the finalized objects go in this cycle
  gctest_collect();
  gctest_sleep_ms(50);
  for (int i = 0; i < MANY; i++)
    EXPECT(atomic_load(&many_runs[i]) <= 1, "finalizer %d ran %d times", i, many_runs[i]);
  uint64_t alloc1 = gctest_memstats()->heap_alloc;
  EXPECT(alloc1 < alloc0 + MANY * 1024 / 4,
         "HeapAlloc %" PRIu64 " -> %" PRIu64 " after 10 MB of finalized objects were dropped",
         alloc0, alloc1);
}
