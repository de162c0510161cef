// The tiny allocator's objects (noscan, under 16 bytes, several to a
// 16-byte block: gc/tiny.c) one by one: gort_usable_size, gort_gc_size and
// gort_gc_base answer for the object, not its block; gort_free frees it,
// and a block whose objects are all freed is reused without a cycle, by
// whichever thread frees the last; finalizers and weak pointers take a
// tiny object; realloc keeps one in place; and a thread's current block
// survives cycles while nothing points at it.

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "gctest.h"
#include "gort/alloc.h"

enum { N = 4096 };

static unsigned char *objs[N];
static size_t sizes[N], usable[N];

static size_t size_of_index(int i) { return 1 + (size_t)(i * 7 + i / 15) % 15; }

// Allocates objs[0..n) of mixed sizes and fills each to its usable size.
static void allocate_objects(int n) {
  for (int i = 0; i < n; i++) {
    sizes[i] = size_of_index(i);
    objs[i] = gort_gc_alloc_noscan(sizes[i]);
    if (objs[i] == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc_noscan(%zu) failed", sizes[i]);
  }
}

TEST(each_tiny_object_answers_for_its_own_bytes) {
  allocate_objects(N);
  for (int i = 0; i < N; i++) {
    size_t u = gort_usable_size(objs[i]);
    EXPECT(u >= sizes[i] && u <= 16 - ((uintptr_t)objs[i] & 15),
           "object %d of %zu bytes at %p: usable size %zu", i, sizes[i], (void *)objs[i], u);
    EXPECT_EQ_U64(gort_gc_size(objs[i]), u, "gort_gc_size of object %d", i);
    for (size_t k = 0; k < u; k++)
      if (gort_gc_base(objs[i] + k) != objs[i]) {
        EXPECT(0, "gort_gc_base(%p + %zu) is %p, not object %d's start", (void *)objs[i], k,
               gort_gc_base(objs[i] + k), i);
        break;
      }
    memset(objs[i], i & 0xFF, u);  // the whole usable size is the object's own
    usable[i] = u;
  }
  for (int i = 0; i < N; i++) {
    size_t u = usable[i];  // (it may grow since: a block's tail joins its last object)
    for (size_t k = 0; k < u; k++)
      if (objs[i][k] != (i & 0xFF)) {
        EXPECT(0, "object %d (%p, usable %zu) changed at byte %zu: a neighbour wrote it", i,
               (void *)objs[i], u, k);
        break;
      }
  }
  for (int i = 0; i < N; i++) gort_free(objs[i]);
}

TEST(realloc_of_a_tiny_object_keeps_its_contents) {
  char *p = gort_gc_alloc_noscan(5);
  memcpy(p, "abcd", 5);
  size_t u = gort_usable_size(p);
  EXPECT(gort_realloc(p, u) == p, "a realloc within the usable size stays in place");
  char *q = gort_realloc(p, 40);
  if (!(q != NULL)) harness_fail(__FILE__, __LINE__, "realloc to 40 bytes");
  EXPECT(strcmp(q, "abcd") == 0, "contents after growing: %s", q);
  char *r = gort_realloc(q, 3);
  if (!(r != NULL)) harness_fail(__FILE__, __LINE__, "realloc to 3 bytes");
  EXPECT(memcmp(r, "abc", 3) == 0, "contents after shrinking");
  gort_free(r);
}

// ---- frees, without a cycle ----------------------------------------------------------

static void *free_all(void *arg) {
  int from = (int)(intptr_t)arg;
  for (int i = from; i < N; i += 2) gort_free(objs[i]);
  return NULL;
}

static uint64_t tiny_round(bool other_thread_frees_half) {
  allocate_objects(N);
  if (other_thread_frees_half) {
    pthread_t t;
    if (!(pthread_create(&t, NULL, free_all, (void *)(intptr_t)1) == 0)) harness_fail(__FILE__, __LINE__, "pthread_create");
    free_all((void *)(intptr_t)0);
    pthread_join(t, NULL);
  } else {
    for (int i = 0; i < N; i++) gort_free(objs[i]);
  }
  return gctest_memstats()->heap_alloc;
}

TEST(freed_tiny_objects_give_their_blocks_back_without_a_cycle) {
  int old = gort_gc_set_percent(-1);  // no cycle may do it instead
  uint32_t gc0 = gctest_num_gc();
  for (int pass = 0; pass < 2; pass++) {
    bool threads = pass == 1;
    uint64_t first = tiny_round(threads), last = first;
    for (int round = 0; round < 200; round++) last = tiny_round(threads);
    // 200 rounds of 4096 objects: about 4 MB if the frees did nothing.
    EXPECT(last < first + 512 * 1024,
           "%s: HeapAlloc went from %" PRIu64 " to %" PRIu64 " bytes over 200 rounds",
           threads ? "half freed by another thread" : "freed by their thread", first, last);
  }
  const char *debug = getenv("GORT_DEBUG");
  if (debug == NULL || strstr(debug, "gcstress") == NULL)  // which collects at every refill
    EXPECT_EQ_U64(gctest_num_gc(), gc0, "cycles run with the collector off");
  gort_gc_set_percent(old);
}

// A thread's last block is released when it exits, and freed if its
// objects were: with the collector off nothing else would ever free it.
static void *allocate_free_and_exit(void *arg) {
  bool unregister = arg != NULL;
  unsigned char *p[3];
  for (int i = 0; i < 3; i++) p[i] = gort_gc_alloc_noscan(4);  // one block, with a tail
  for (int i = 0; i < 3; i++) gort_free(p[i]);
  if (unregister) gort_gc_unregister_thread();
  return NULL;
}

TEST(an_exiting_thread_frees_its_last_tiny_block) {
  int old = gort_gc_set_percent(-1);
  for (int pass = 0; pass < 2; pass++) {
    uint64_t alloc0 = gctest_memstats()->heap_alloc;
    for (int i = 0; i < 2000; i++) {
      pthread_t t;
      if (pthread_create(&t, NULL, allocate_free_and_exit, pass ? (void *)1 : NULL) != 0)
        harness_fail(__FILE__, __LINE__, "pthread_create");
      pthread_join(t, NULL);
    }
    uint64_t alloc1 = gctest_memstats()->heap_alloc, grown = alloc1 > alloc0 ? alloc1 - alloc0 : 0;
    EXPECT(grown < 2000 * 16 / 4, "%s: HeapAlloc grew by %" PRIu64 " bytes over 2000 threads",
           pass ? "threads that unregistered" : "registered threads", grown);
  }
  gort_gc_set_percent(old);
}

// ---- the collector -----------------------------------------------------------------

static void *volatile sink;

enum { F = 64 };
static _Atomic int finalized;
static gort_weak_t *weak[F];

static void count_finalized(void *obj, void *arg) {
  (void)obj, (void)arg;
  atomic_fetch_add(&finalized, 1);
}

// Objects of 3 bytes, several to a block: most are not at a block's start.
static GCTEST_NOINLINE void make_finalizable(void) {
  int unaligned = 0;
  for (int i = 0; i < F; i++) {
    char *p = gort_gc_alloc_noscan(3);
    unaligned += ((uintptr_t)p & 15) != 0;
    gort_gc_set_finalizer(p, count_finalized, NULL);
    weak[i] = gort_gc_weak_make(p);
    EXPECT(gort_gc_weak_get(weak[i]) == p, "a weak pointer to tiny object %d", i);
  }
  EXPECT(unaligned > F / 2, "only %d of %d objects inside a block", unaligned, F);
  // Moves this thread to a block of its own, so that none of theirs is
  // its current one (which the collector keeps).
  sink = gort_gc_alloc_noscan(15);
}

// One cycle finds them all: objects that share a block are finalized
// together (a cycle that queued one per block, and marked it at once,
// found the rest only in the next cycles).
TEST(finalizers_and_weak_pointers_take_tiny_objects) {
  atomic_store(&finalized, 0);
  make_finalizable();
  gctest_collect();
  // A stale copy of an address keeps a whole block: up to four objects.
  EXPECT(gctest_wait_count(&finalized, F - 16), "%d of %d finalizers ran after one cycle",
         atomic_load(&finalized), F);
  gctest_collect();
  EXPECT(gctest_count_cleared(weak, F) >= F - 16, "%d of %d weak pointers cleared",
         gctest_count_cleared(weak, F), F);
}

static uintptr_t hidden;  // the first object's address, disguised: not a root

static GCTEST_NOINLINE void start_a_block(void) {
  sink = gort_gc_alloc_noscan(15);  // a full block: the next object starts one
  char *p = gort_gc_alloc_noscan(2);
  p[0] = 'x';
  hidden = ~(uintptr_t)p;
}

TEST(a_threads_current_block_survives_cycles_with_nothing_pointing_at_it) {
  start_a_block();
  gctest_collect();
  gctest_collect();
  char *first = (char *)~hidden;
  char *next = gort_gc_alloc_noscan(2);  // placed in the same block
  EXPECT(next == first + 2, "the next object went to %p, not beside %p", (void *)next, (void *)first);
  EXPECT(first[0] == 'x', "the block was freed and reused: its first byte is %d", first[0]);
  EXPECT(gort_gc_base(first) == first, "the first object is still an object");
}

// ---- under load ----------------------------------------------------------------------

// Two producers hand tiny objects, filled to their usable size, to two
// consumers that check and free them, while a third thread collects
// without pause; each producer also frees some of its own objects at once
// and keeps some to the end. A block freed while an object in it was
// live, or an object placed over another's bytes, shows as a changed byte.
enum { PAIRS = 2, RING = 256, KEPT = 4096 };

typedef struct {
  unsigned char *p;
  uint32_t tag, size;  // size: its usable size when filled (it may grow later)
} handed_t;

static struct {
  handed_t ring[RING];
  _Atomic uint32_t head, tail;
  _Atomic int done;
  handed_t kept[KEPT];
  int nkept;
  int bad;
} pair[PAIRS];

static _Atomic int producing;

static uint32_t fill(unsigned char *p, uint32_t tag) {
  size_t u = gort_usable_size(p);
  memset(p, (int)(tag & 0xFF) | 1, u);
  return (uint32_t)u;
}

static bool intact(handed_t e) {
  if (gort_usable_size(e.p) < e.size) return false;  // a usable size never shrinks
  for (size_t k = 0; k < e.size; k++)
    if (e.p[k] != ((e.tag & 0xFF) | 1)) return false;
  return true;
}

static void *produce(void *arg) {
  int w = (int)(intptr_t)arg;
  uint32_t x = 12345u + (uint32_t)w;
  const char *debug = getenv("GORT_DEBUG");
  bool stress = debug != NULL && strstr(debug, "gcstress") != NULL;  // a cycle at every refill
  int n = (stress ? 20000 : 100000) * harness_scale();
  for (int i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    size_t size = 1 + (x >> 16) % 15;
    unsigned char *p = gort_gc_alloc_noscan(size);
    if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc_noscan(%zu) failed", size);
    uint32_t tag = x >> 8, u = fill(p, tag);
    switch ((x >> 4) % 8) {
    case 0:
      gort_free(p);  // freed by its own thread, often in its current block
      break;
    case 1:
      if (pair[w].nkept < KEPT) {
        pair[w].kept[pair[w].nkept++] = (handed_t){p, tag, u};
        break;
      }
      __attribute__((fallthrough));
    default: {
      uint32_t t = atomic_load(&pair[w].tail);
      while (t - atomic_load(&pair[w].head) == RING) sched_yield();
      pair[w].ring[t % RING] = (handed_t){p, tag, u};
      atomic_store(&pair[w].tail, t + 1);
    }
    }
  }
  atomic_store(&pair[w].done, 1);
  atomic_fetch_sub(&producing, 1);
  return NULL;
}

static void *consume(void *arg) {
  int w = (int)(intptr_t)arg;
  for (;;) {
    uint32_t h = atomic_load(&pair[w].head);
    if (h == atomic_load(&pair[w].tail)) {
      if (atomic_load(&pair[w].done) && h == atomic_load(&pair[w].tail)) break;
      sched_yield();
      continue;
    }
    handed_t e = pair[w].ring[h % RING];
    if (!intact(e)) pair[w].bad++;
    gort_free(e.p);
    atomic_store(&pair[w].head, h + 1);
  }
  return NULL;
}

static void *collect_while_producing(void *arg) {
  (void)arg;
  while (atomic_load(&producing) > 0) gort_gc_collect();
  return NULL;
}

// With collect false, the collector is off, and HeapAlloc must not grow by
// more than the kept objects' blocks: every other block was freed by the
// thread whose free or release left it with no live object.
static void run_load_ex(bool collect) {
  int old = collect ? 0 : gort_gc_set_percent(-1);
  uint64_t alloc0 = gctest_memstats()->heap_alloc;
  pthread_t t[2 * PAIRS + 1];
  memset(pair, 0, sizeof pair);
  atomic_store(&producing, PAIRS);
  for (int w = 0; w < PAIRS; w++) {
    pthread_create(&t[2 * w], NULL, produce, (void *)(intptr_t)w);
    pthread_create(&t[2 * w + 1], NULL, consume, (void *)(intptr_t)w);
  }
  if (collect) pthread_create(&t[2 * PAIRS], NULL, collect_while_producing, NULL);
  for (int i = 0; i < 2 * PAIRS + collect; i++) pthread_join(t[i], NULL);
  if (!collect) {
    // 200,000 objects of 1-15 bytes went through about 125,000 blocks; the
    // kept ones hold at most 2 x 4096, and each producer its current one.
    uint64_t alloc1 = gctest_memstats()->heap_alloc, grown = alloc1 > alloc0 ? alloc1 - alloc0 : 0;
    EXPECT(grown <= (uint64_t)(PAIRS * KEPT + 64) * 16, "HeapAlloc grew by %" PRIu64 " bytes with the collector off",
           grown);
  }
  for (int w = 0; w < PAIRS; w++) {
    EXPECT(pair[w].bad == 0, "pair %d: %d handed objects changed", w, pair[w].bad);
    int changed = 0;
    for (int i = 0; i < pair[w].nkept; i++) {
      changed += !intact(pair[w].kept[i]);
      gort_free(pair[w].kept[i].p);
    }
    EXPECT(changed == 0, "pair %d: %d of %d kept objects changed", w, changed, pair[w].nkept);
  }
  if (!collect) gort_gc_set_percent(old);
}

static void run_load(void) { run_load_ex(true); }

TEST(tiny_objects_freed_across_threads_while_cycles_run_leave_their_neighbours_intact) { run_load(); }

TEST(tiny_blocks_freed_across_threads_are_all_returned_with_the_collector_off) { run_load_ex(false); }

INNER_TEST(inner_load) { run_load(); }

// The collector's checking modes: gccheckmark marks every cycle a second
// time, alone, and dies on an object the first mark missed; gcstress
// collects at every allocation slow path.
TEST(tiny_objects_under_load_stay_intact_under_gccheckmark_and_gcstress) {
  EXPECT(harness_run_inner("inner_load", "GORT_DEBUG=gccheckmark=1"));
  if (!GCTEST_TSAN) EXPECT(harness_run_inner("inner_load", "GORT_DEBUG=gcstress=1"));  // minutes there
}
