// Concurrent marking: the program runs while the collector marks, and
// moves pointers behind the marker's back in the two ways it can, a store
// by the program into a page of an object already scanned, and a write by
// the kernel (read(2)) into such a page. The only reference to each object
// is moved into an old, already-marked holder while a cycle marks, and
// then taken away from every root: the object must survive every cycle
// with its contents intact. Each case runs again with gccheckmark (every
// concurrent mark checked against a stop-the-world one), with
// gcdirty=none (the stop-the-world mark) and with gcdirty=mprotect.

#define _GNU_SOURCE  // sched_setaffinity
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gctest.h"
#include "gort/alloc.h"

#define SLOTS 64
#define OBJ_BYTES 96
#define ITERS 60000
#define MIN_CYCLES 4

// The marker walks a long list one cell at a time. Its head points at
// holder A, which is therefore black early in every mark; its tail is
// holder G, gray or white until the very end. Objects move from G to A
// and back while cycles run: a move from G to A after A was scanned, with
// G's copy dropped before G is scanned, leaves the object's only pointer
// in a black object, on a page written during the mark: without the
// rescan of written pages it would be freed.
// The holders' addresses are kept masked, so that no root points at them
// (a root would make G black at the first stop); the mutator unmasks one
// only for the length of a move.
#define MASK ((uintptr_t)0x5a5a000000000000)
static void **volatile list_head;  // volatile: never read, but it must stay a root
static volatile uintptr_t hidden[2];  // A (scanned early), G (scanned last)
#define HOLD(h) ((void **)(hidden[h] ^ MASK))
static uint64_t tags[2][SLOTS];
static void *volatile in_transit;  // the one root an object passes through
static _Atomic bool stop;
static _Atomic uint64_t cycles;
static int fds[2] = {-1, -1};
static int barriered;  // bit h: holder h is from gort_gc_alloc_barriered, written through the barrier
static bool ballasted;  // inner_moves_with_guests: too few cycles to judge the heap's protection

const char *gort__dirty_sample(uint64_t *present, uint64_t *written);
void gort__dirty_handovers(uint64_t *handed, uint64_t *taken);
uint32_t gort__mheap_nreservations(void);
void gort__mheap_reservation(uint32_t i, uintptr_t *lo, uintptr_t *hi);

static void store(int h, void **slot, void *v) {
  if (barriered & (1 << h)) gort_gc_write_ptr(slot, v);
  else *slot = v;
}

static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    gort_gc_collect();
    atomic_fetch_add(&cycles, 1);
  }
  return NULL;
}

static GCTEST_NOINLINE void *new_tagged(uint64_t tag) {
  void *p = gort_gc_alloc(OBJ_BYTES);
  if (p != NULL) gctest_fill(p, OBJ_BYTES, tag);
  return p;
}

// The moved objects have a child each (word 0, a noscan object), which
// only a scan of its parent keeps: a parent marked and never scanned
// loses it.
static GCTEST_NOINLINE void *new_parent(uint64_t tag) {
  void **p = gort_gc_alloc(OBJ_BYTES), *c = gort_gc_alloc_noscan(OBJ_BYTES);
  if (p == NULL || c == NULL) return NULL;
  gctest_fill(c, OBJ_BYTES, ~tag);
  gctest_fill(p + 1, OBJ_BYTES - sizeof(void *), tag);
  p[0] = c;
  return p;
}

static bool parent_intact(void **p, uint64_t tag) {
  return gort_gc_base(p) == p && gctest_check(p + 1, OBJ_BYTES - sizeof(void *), tag) && gort_gc_base(p[0]) == p[0] &&
         gctest_check(p[0], OBJ_BYTES, ~tag);
}

static void check_slots(void) {
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < SLOTS; i++) {
      void **p = HOLD(h)[i];
      if (p == NULL) continue;
      EXPECT(gort_gc_base(p) == p, "holder %d slot %d: %p is no longer a collected object", h, i, (void *)p);
      EXPECT(gctest_check(p + 1, OBJ_BYTES - sizeof(void *), tags[h][i]),
             "holder %d slot %d: contents changed (freed?)", h, i);
      EXPECT(gort_gc_base(p[0]) == p[0] && gctest_check(p[0], OBJ_BYTES, ~tags[h][i]),
             "holder %d slot %d: the child %p was freed (its parent marked, never scanned?)", h, i, p[0]);
    }
}

// Moves the object in slot j of holder `from` to slot i of holder `to`,
// through one root, the kernel's pipe buffer when by_read, and drops
// every other copy.
static GCTEST_NOINLINE void move(int from, int j, int to, int i, bool by_read) {
  in_transit = HOLD(from)[j];
  if (in_transit == NULL) return;
  store(from, &HOLD(from)[j], NULL);
  uint64_t tag = tags[from][j];
  if (by_read) {
    void *v = in_transit;
    EXPECT(write(fds[1], &v, sizeof v) == (ssize_t)sizeof v, "write");
    v = NULL;
    // The kernel writes the only lasting copy into the holder's page.
    EXPECT(read(fds[0], &HOLD(to)[i], sizeof(void *)) == (ssize_t)sizeof(void *), "read");
  } else {
    store(to, &HOLD(to)[i], in_transit);
  }
  tags[to][i] = tag;
  in_transit = NULL;
}

static void *new_holder(int h) {
  size_t n = SLOTS * sizeof(void *);
  return barriered & (1 << h) ? gort_gc_alloc_barriered(n) : gort_gc_alloc(n);
}

static GCTEST_NOINLINE void build(void) {
  void **g = new_holder(1);
  ASSERT_NOT_NULL(g, "gort_gc_alloc");
  for (int i = 0; i < SLOTS; i++) {
    tags[1][i] = (uint64_t)i + 1;
    store(1, &g[i], new_parent(tags[1][i]));
  }
  void **cell = gort_gc_alloc(32);
  ASSERT_NOT_NULL(cell, "gort_gc_alloc");
  cell[1] = g;  // the tail holds G
  hidden[1] = (uintptr_t)g ^ MASK;
  for (int i = 0; i < 200000; i++) {
    void **c = gort_gc_alloc(32);
    ASSERT_NOT_NULL(c, "gort_gc_alloc");
    c[0] = cell;
    cell = c;
  }
  void **a = new_holder(0);
  ASSERT_NOT_NULL(a, "gort_gc_alloc");
  cell[1] = a;  // the head holds A
  hidden[0] = (uintptr_t)a ^ MASK;
  list_head = cell;
}

// Builds the holders, makes every object old, and starts the thread that
// collects beside the moves.
static pthread_t build_and_collect_beside(void) {
  build();
  gctest_clobber_stack();
  gctest_collect();
  atomic_store(&stop, false);
  atomic_store(&cycles, 0);
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, collector, NULL) == 0, "pthread_create");
  return t;
}

static void run_moves(bool by_read) {
  if (by_read) EXPECT(pipe(fds) == 0, "pipe");
  pthread_t t = build_and_collect_beside();
  uint64_t rng = harness_seed();
  // At least ITERS moves and MIN_CYCLES cycles beside them (gccheckmark's
  // cycles are slow), within a bound.
  double deadline = gctest_now() + 20;
  for (uint64_t k = 1; k <= ITERS || (atomic_load(&cycles) < MIN_CYCLES && gctest_now() < deadline); k++) {
    int i = (int)(test_rand(&rng) % SLOTS), j = (int)(test_rand(&rng) % SLOTS);
    if (k % 2) {
      move(1, j, 0, i, by_read);  // G to A: the dangerous way
    } else {
      move(0, j, 1, i, false);  // back, so that G never runs dry
    }
    if (k % 4096 == 0) check_slots();
  }
  // The moves write two pages of a heap of over a thousand: with uffd the
  // heap stays protected between these cycles (dirty.c, "Between
  // cycles"), so the moves above ran against a protection left from the
  // cycle before as well as against a fresh one. (Read while the moves'
  // cycles run: two quiet collects would say the same of any program.)
  uint64_t present, written;
  const char *after = gort__dirty_sample(&present, &written);
  // The decision weighs the last 16 cycles' samples (dirty.c): the
  // ballasted run's slower cycles may not have left the build's behind.
  if (strcmp(gort__dirty_name(), "uffd") == 0 && !ballasted)
    EXPECT(strcmp(after, "protected") == 0, "the heap was %s between cycles: %llu of %llu sampled pages written", after,
           (unsigned long long)written, (unsigned long long)present);
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  gctest_collect();
  gctest_collect();
  check_slots();
  EXPECT(atomic_load(&cycles) >= 2, "only %llu cycles ran beside the program",
         (unsigned long long)atomic_load(&cycles));
  gctest_expect_forced_backend();
  if (by_read) close(fds[0]), close(fds[1]);
}

INNER_TEST(inner_moves_by_store) { run_moves(false); }
INNER_TEST(inner_moves_by_barrier) {
  barriered = 3;
  run_moves(false);
}
// A barriered (the black one), G tracked: objects move from a tracked
// holder into a barriered one, which only the new value's shade sees.
// One way only, slowly, so that each move is likely to fall in a mark
// before G is scanned and no later move back to G can rescue the object.
static void *move_and_exit(void *arg) {
  int i = (int)(uintptr_t)arg;
  move(1, i, 0, i, false);
  return NULL;
}

static void moves_into_barriered(bool by_threads) {
  barriered = 1;
  pthread_t t = build_and_collect_beside();
  while (atomic_load(&cycles) < 1) usleep(100);
  for (int i = 0; i < SLOTS; i++) {
    if (by_threads) {  // each a short-lived thread, whose barrier buffer must outlive it
      pthread_t m;
      EXPECT(pthread_create(&m, NULL, move_and_exit, (void *)(uintptr_t)i) == 0, "pthread_create");
      pthread_join(m, NULL);
    } else {
      move(1, i, 0, i, false);
    }
    usleep(300);
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  gctest_collect();
  gctest_collect();
  check_slots();
  gctest_expect_forced_backend();
}

INNER_TEST(inner_moves_into_barriered) { moves_into_barriered(false); }
INNER_TEST(inner_moves_into_barriered_by_exiting_threads) { moves_into_barriered(true); }
INNER_TEST(inner_moves_by_read) { run_moves(true); }

TEST(objects_moved_into_marked_objects_during_the_mark_survive) { run_moves(false); }

TEST(objects_written_into_marked_objects_by_read_during_the_mark_survive) { run_moves(true); }

TEST(moves_during_the_mark_survive_under_gccheckmark) {
  EXPECT(harness_run_inner("inner_moves_by_store", "GORT_DEBUG=gccheckmark=1"));
  EXPECT(harness_run_inner("inner_moves_by_read", "GORT_DEBUG=gccheckmark=1"));
}

// Guests (gctest.h): the mover, parked for final stops, rescans written
// pages and drains beside the collector, on its own stack below the stack
// pointer the root scan starts from.
INNER_TEST(inner_moves_with_guests) {
  gctest_hold_ballast(true);
  uint64_t g0 = gort__gc_mark_guests_came();
  ballasted = true;
  run_moves(false);
  gctest_expect_guests_since(g0);  // came, not joined: whether a guest finds work depends on timing
}

TEST(moves_survive_with_the_program_marking_in_final_stops) {
  EXPECT(harness_run_inner("inner_moves_with_guests", ""));
  EXPECT(harness_run_inner("inner_moves_with_guests", "GORT_DEBUG=gccheckmark=1"));
}

TEST(moves_survive_with_the_stop_the_world_mark) {
  EXPECT(harness_run_inner("inner_moves_by_store", "GORT_DEBUG=gcdirty=none"));
  EXPECT(harness_run_inner("inner_moves_by_read", "GORT_DEBUG=gcdirty=none,gccheckmark=1"));
}

// Barriered holders are never protected: the barrier alone tells the mark
// of the moves. Under gccheckmark a move the barrier missed is fatal.
TEST(objects_moved_between_barriered_objects_during_the_mark_survive) {
  EXPECT(harness_run_inner("inner_moves_by_barrier", ""));
  EXPECT(harness_run_inner("inner_moves_by_barrier", "GORT_DEBUG=gccheckmark=1"));
  if (!GCTEST_TSAN)  // no mprotect backend under ThreadSanitizer, which owns SIGSEGV
    EXPECT(harness_run_inner("inner_moves_by_barrier", "GORT_DEBUG=gcdirty=mprotect,gccheckmark=1"));
  EXPECT(harness_run_inner("inner_moves_by_barrier", "GORT_DEBUG=gcdirty=none"));
}

TEST(objects_moved_from_tracked_into_barriered_objects_during_the_mark_survive) {
  EXPECT(harness_run_inner("inner_moves_into_barriered", ""));
  EXPECT(harness_run_inner("inner_moves_into_barriered", "GORT_DEBUG=gccheckmark=1"));
  if (!GCTEST_TSAN)  // no mprotect backend under ThreadSanitizer, which owns SIGSEGV
    EXPECT(harness_run_inner("inner_moves_into_barriered", "GORT_DEBUG=gcdirty=mprotect,gccheckmark=1"));
  EXPECT(harness_run_inner("inner_moves_into_barriered_by_exiting_threads", ""));
  EXPECT(harness_run_inner("inner_moves_into_barriered_by_exiting_threads", "GORT_DEBUG=gccheckmark=1"));
}

// Only objects a concurrent mark scans from the heap and that have no
// barrier lie in the ranges the dirty tracker protects (conservatively
// scanned and typed ones), small and large; malloc's blocks, barriered,
// noscan (tiny ones too) and uncollectable objects (roots, rescanned whole
// in the final stop) outside.
TEST(only_scanned_unbarriered_objects_lie_in_the_tracked_heap) {
  static const uint64_t ptrmap[1] = {1};
  const gort_gc_layout_t *l = gort_gc_layout(ptrmap, 2);
  ASSERT_NOT_NULL(l);
  void *objs[] = {gort_malloc(64),               gort_malloc(1 << 20),          gort_gc_alloc_barriered(64),
                  gort_gc_alloc_barriered(5000), gort_gc_alloc_barriered(1 << 20), gort_gc_alloc_noscan(8),
                  gort_gc_alloc_noscan(64),      gort_gc_alloc_noscan(1 << 20), gort_gc_alloc_uncollectable(64),
                  gort_gc_alloc(64),             gort_gc_alloc(1 << 20),        gort_gc_alloc_typed(64, l),
                  gort_gc_alloc_typed(1 << 20, l)};
  enum { MALLOCS = 2, TINY = 5, UNCOLLECTABLE = 8, FIRST_TRACKED = 9, N = sizeof objs / sizeof objs[0] };
  for (size_t k = 0; k < N; k++) {
    ASSERT_NOT_NULL(objs[k], "allocation %zu", k);
    bool tracked = false;
    for (uint32_t i = 0; i < gort__mheap_nreservations(); i++) {
      uintptr_t lo, hi;
      gort__mheap_reservation(i, &lo, &hi);
      tracked |= (uintptr_t)objs[k] >= lo && (uintptr_t)objs[k] < hi;
    }
    EXPECT(tracked == (k >= FIRST_TRACKED), "object %zu (%p) %s tracked", k, objs[k], tracked ? "is" : "is not");
    if (k >= MALLOCS && k != TINY)
      EXPECT(gort_gc_base((char *)objs[k] + 4) == objs[k], "object %zu is a collected object", k);
  }
  for (size_t k = 0; k < N; k++)
    if (k < TINY || k == UNCOLLECTABLE) gort_free(objs[k]);  // malloc's, barriered, uncollectable
}

// The mprotect backend (write-protected granules and a SIGSEGV handler):
// the store and the read(2) into a written page (gort's read wrapper opens
// the page first; without it read fails with EFAULT), a heap grown during
// the mark, and goroutines as mutators.
// Marks here are short, so a lost write is caught in about one run of
// three: each runs four times.
TEST(moves_survive_with_mprotect_dirty_tracking) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_moves_by_store", "GORT_DEBUG=gcdirty=mprotect"));
  EXPECT(harness_run_inner("inner_moves_by_read", "GORT_DEBUG=gcdirty=mprotect"));
  for (int i = 0; i < 4; i++) {
    EXPECT(harness_run_inner("inner_moves_by_store", "GORT_DEBUG=gcdirty=mprotect,gccheckmark=1"));
    EXPECT(harness_run_inner("inner_moves_by_read", "GORT_DEBUG=gcdirty=mprotect,gccheckmark=1"));
  }
}

TEST(moves_into_a_grown_heap_and_to_goroutines_survive_with_mprotect_dirty_tracking) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_moves_into_new_large", "GORT_DEBUG=gcdirty=mprotect,gccheckmark=1"));
  EXPECT(harness_run_inner("inner_goroutine_holders", "GORT_DEBUG=gcdirty=mprotect,gccheckmark=1"));
}

// The backend in use is named at the first cycle under gctrace.
INNER_TEST(inner_one_cycle) { gctest_collect(); }

TEST(gctrace_names_the_marking_and_its_dirty_page_backend) {
  char path[] = "/tmp/gort-gcdirty-XXXXXX";
  int fd = mkstemp(path);
  EXPECT(fd >= 0, "mkstemp");
  close(fd);
  char self[256], cmd[768];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  EXPECT(n > 0, "readlink /proc/self/exe");
  self[n > 0 ? n : 0] = '\0';
  snprintf(cmd, sizeof cmd, "GORT_DEBUG=gctrace=1 %s inner_one_cycle 2>%s >/dev/null", self, path);
  EXPECT(system(cmd) == 0, "inner run failed: %s", cmd);
  FILE *f = fopen(path, "r");
  char line[256] = "";
  bool found = false, priced = false;
  while (f != NULL && fgets(line, sizeof line, f) != NULL)
    if (strncmp(line, "gc: ", 4) == 0 && strstr(line, " marking, dirty pages from ") != NULL) {
      found = true;
      // uffd measures what protection costs here (dirty.c, uffd_measure)
      priced = strstr(line, "from uffd") == NULL || strstr(line, "a first write to a protected page") != NULL;
      printf("  %s", line);
      break;
    }
  if (f != NULL) fclose(f);
  unlink(path);
  EXPECT(found, "no line naming the marking and the dirty-page backend");
  EXPECT(priced, "the uffd backend's line names no prices: %s", line);
}

// /gc/pauses:seconds counts every stop (two per concurrent cycle, one per
// stop-the-world one) and /gort/gc/dirty/rescanned:pages grows with cycles
// that ran while the program wrote.
static uint64_t pause_count(void) {
  gort_metric_sample_t s = {.name = "/gc/pauses:seconds"};
  gort_metrics_read(&s, 1);
  EXPECT(s.kind == GORT_METRIC_FLOAT64_HISTOGRAM, "kind %d", (int)s.kind);
  uint64_t n = 0;
  for (int i = 0; i < GORT_METRIC_HIST_BUCKETS; i++) {
    n += s.value.hist.counts[i];
    EXPECT(s.value.hist.buckets[i] < s.value.hist.buckets[i + 1], "buckets ascend");
  }
  return n;
}

TEST(the_pause_histogram_counts_every_stop) {
  uint64_t before = pause_count();
  uint32_t gc0 = gctest_num_gc();
  for (int i = 0; i < 5; i++) gctest_collect();
  uint64_t stops = pause_count() - before;
  uint32_t cycles = gctest_num_gc() - gc0;
  gort_memstats_t *m = gctest_memstats();
  EXPECT_EQ_U64(stops, (uint64_t)cycles * (m->gc_concurrent ? 2 : 1), "stops for %u cycles (concurrent: %u)",
                cycles, m->gc_concurrent);
  printf("  %u cycles, %llu stops, marking %s\n", cycles, (unsigned long long)stops,
         m->gc_concurrent ? "concurrent" : "with the world stopped");
}

TEST(rescanned_pages_are_counted) {
  SKIP_IF(!gctest_memstats()->gc_concurrent && gctest_num_gc() > 0, "cycles mark with the world stopped here");
  run_moves(false);
  gort_metric_sample_t s = {.name = "/gort/gc/dirty/rescanned:pages"};
  gort_metrics_read(&s, 1);
  gort_memstats_t *m = gctest_memstats();
  if (!m->gc_concurrent) harness_skip("the kernel gives no dirty-page tracking: cycles stop the world");
  EXPECT(s.value.u64 > 0 && s.value.u64 == m->gc_dirty_pages, "%llu pages (memstats %llu)",
         (unsigned long long)s.value.u64, (unsigned long long)m->gc_dirty_pages);
}

// dirty.c, "Who unprotects": a small heap that the program rewrites
// between cycles (so that each disarm unprotects it) is unprotected by
// the program's next allocation slow path, not by the worker. Only a
// disarm that ran counts as taken.
// Rewrites N small objects until the given cycles have run; the counts
// of disarms handed over and taken meanwhile.
static uint32_t churn_for_cycles(uint32_t want, uint64_t *handed, uint64_t *taken) {
  enum { N = 16384 };
  void **objs = gort_gc_alloc(N * sizeof(void *));
  ASSERT_NOT_NULL(objs, "gort_gc_alloc");
  uint64_t handed0, taken0;
  gort__dirty_handovers(&handed0, &taken0);
  uint32_t gc0 = gctest_num_gc();
  double deadline = gctest_now() + 20;
  while (gctest_num_gc() - gc0 < want && gctest_now() < deadline)
    for (int i = 0; i < N; i++) {
      uint64_t *o = gort_gc_alloc(64);
      ASSERT_NOT_NULL(o, "gort_gc_alloc");
      o[0] = (uint64_t)i;
      objs[i] = o;
    }
  gort__dirty_handovers(handed, taken);
  *handed -= handed0, *taken -= taken0;
  for (int i = 0; i < N; i++) EXPECT_EQ_U64(((uint64_t *)objs[i])[0], (uint64_t)i, "object %d", i);
  return gctest_num_gc() - gc0;
}

static bool handing_over_here(void) {
  gctest_collect();  // the backend is probed at the first cycle
  return strcmp(gort__dirty_name(), "uffd") == 0 && gctest_memstats()->gc_concurrent;
}

TEST(a_small_heaps_disarm_falls_to_the_allocating_thread) {
  if (!handing_over_here()) harness_skip("handed over only with uffd tracking and concurrent marking");
  uint64_t handed, taken;
  uint32_t cycles_run = churn_for_cycles(24, &handed, &taken);
  printf("  %u cycles, %llu disarms handed over, %llu taken by the program\n", cycles_run,
         (unsigned long long)handed, (unsigned long long)taken);
  EXPECT(handed >= 8, "only %llu of %u cycles handed their disarm over", (unsigned long long)handed, cycles_run);
  // Not every one: a next cycle's arm drops a hand-over no allocation took
  // first (under gcstress a forced cycle may come before any).
  EXPECT(taken >= handed / 2, "the program took %llu of %llu disarms handed over", (unsigned long long)taken,
         (unsigned long long)handed);
}

// A heap of more than DISARM_PROGRAM_MAX_PAGES (64 MiB) keeps its disarm
// on the worker, from the first cycle on: the size test once read the
// dirty tracker's samples, empty then (a reviewer's find: a program whose
// first object was 512 MiB would have unprotected it on its own thread).
static void *volatile first_object;

INNER_TEST(inner_large_heap_disarms) {
  // The process's first allocation, so that no cycle has run: one object
  // of 80 MiB, written through.
  first_object = gort_gc_alloc_noscan(80 << 20);
  ASSERT_NOT_NULL(first_object, "gort_gc_alloc_noscan");
  memset(first_object, 1, 80 << 20);
  uint64_t handed, taken;
  uint32_t cycles_run = churn_for_cycles(6, &handed, &taken);
  uint64_t ever, ever_taken;
  gort__dirty_handovers(&ever, &ever_taken);
  printf("  %u cycles, %llu disarms handed over\n", gctest_num_gc(), (unsigned long long)ever);
  EXPECT(cycles_run >= 2, "only %u cycles ran", cycles_run);
  EXPECT(ever == 0, "%llu of %u cycles handed an 80 MiB heap's disarm to the program", (unsigned long long)ever,
         gctest_num_gc());
}

TEST(a_large_heaps_disarm_stays_the_workers) {
  if (!handing_over_here()) harness_skip("handed over only with uffd tracking and concurrent marking");
  EXPECT(harness_run_inner("inner_large_heap_disarms", ""));
}

// The first cycle (mgc.c, first_cycle_main) comes even when the program
// allocates nothing after the allocation that reached the trigger: a
// program that then waits (for a finalizer, say) once never saw it.
static void *volatile first_garbage;

INNER_TEST(inner_first_cycle_without_more_allocation) {
  uint32_t gc0 = gctest_num_gc();
  // 4.5 MiB: just past the first trigger (4 MiB), so that activating the
  // collector (milliseconds) ends after the last allocation.
  for (int i = 0; i < 4608; i++) first_garbage = gort_gc_alloc(1024);
  double deadline = gctest_now() + 5;
  while (gctest_num_gc() == gc0 && gctest_now() < deadline) usleep(1000);
  EXPECT(gctest_num_gc() > gc0, "no cycle in 5 s after the heap passed its first trigger");
}

TEST(the_first_cycle_comes_without_more_allocation) {
  EXPECT(harness_run_inner("inner_first_cycle_without_more_allocation", ""));
}

// Goroutines as mutators: objects, all old, circulate between a heap
// array and the stacks of goroutines parked in a receive: the main thread
// takes one from the array, clears the slot, and hands it to a goroutine
// through an unbuffered channel (written straight into the parked
// goroutine's stack), which hands back the one it held, while cycles run.
// The final stop rescans only goroutines that ran or were readied since
// the first stop: a hand-off must count, or an object that lives only on
// a parked goroutine's stack is freed.
#include "gort/chan.h"
#include "gort/sched.h"

#define NG 16
typedef struct {
  void *p;
  uint64_t tag;
} msg_t;
static gort_chan_t *to_g[NG], *from_g;
static void **pool;
static uint64_t pool_tag[SLOTS];

static GCTEST_NOINLINE void holder_g(void *arg) {
  int i = (int)(uintptr_t)arg;
  msg_t mine = {NULL, 0}, msg;
  while (gort_chan_recv(to_g[i], &msg)) {
    gort_chan_send(from_g, &mine);  // the old one back, checked by main
    mine = msg;
  }
  gort_chan_send(from_g, &mine);
}

static void run_goroutine_holders(void) {
  pool = gort_gc_alloc(SLOTS * sizeof(void *));
  ASSERT_NOT_NULL(pool, "gort_gc_alloc");
  for (int i = 0; i < SLOTS; i++) {
    pool_tag[i] = (uint64_t)i + 1;
    pool[i] = new_tagged(pool_tag[i]);
  }
  from_g = gort_chan_make(sizeof(msg_t), 0);
  for (int i = 0; i < NG; i++) {
    to_g[i] = gort_chan_make(sizeof(msg_t), 0);
    EXPECT(gort_go(holder_g, (void *)(uintptr_t)i) == 0, "gort_go");
  }
  gctest_collect();  // everything is old from here on
  atomic_store(&stop, false);
  atomic_store(&cycles, 0);
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, collector, NULL) == 0, "pthread_create");
  uint64_t rng = harness_seed();
  int bad = 0;
  double deadline = gctest_now() + 20;
  for (uint64_t k = 1; k <= 20000 || (atomic_load(&cycles) < MIN_CYCLES && gctest_now() < deadline); k++) {
    int j = (int)(test_rand(&rng) % SLOTS);
    if (pool[j] == NULL) continue;
    msg_t msg = {pool[j], pool_tag[j]}, back;
    pool[j] = NULL;
    gort_chan_send(to_g[k % NG], &msg);
    msg.p = NULL;
    gort_chan_recv(from_g, &back);
    if (back.p != NULL && (gort_gc_base(back.p) != back.p || !gctest_check(back.p, OBJ_BYTES, back.tag))) bad++;
    pool[j] = back.p, pool_tag[j] = back.tag;
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  for (int i = 0; i < NG; i++) {
    msg_t back;
    gort_chan_close(to_g[i]);
    gort_chan_recv(from_g, &back);
    if (back.p != NULL && (gort_gc_base(back.p) != back.p || !gctest_check(back.p, OBJ_BYTES, back.tag))) bad++;
  }
  EXPECT_EQ_U64(bad, 0, "objects held only on parked goroutines' stacks changed (freed)");
  gctest_expect_forced_backend();
  EXPECT(atomic_load(&cycles) >= 2, "only %llu cycles", (unsigned long long)atomic_load(&cycles));
}

INNER_TEST(inner_goroutine_holders) { run_goroutine_holders(); }

TEST(objects_handed_to_parked_goroutines_during_the_mark_survive) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer holds the stop signal back from a thread blocked in a call it intercepts");
  run_goroutine_holders();
  EXPECT(harness_run_inner("inner_goroutine_holders", "GORT_DEBUG=gccheckmark=1"));
}

// The heap grows during the mark: objects move from G into new 1 MiB
// objects (allocated black, in reservations made during the mark), whose
// pages must be rescanned like any other written page. (The rescan once
// cut written pages to the heap's bounds as the mark began, and these
// objects were freed.)
#define NBIG 96
static void **big[NBIG];
static uint64_t big_tag[NBIG];

static void run_moves_into_new_large(void) {
  pthread_t t = build_and_collect_beside();
  int nbig = 0;
  for (int k = 0; nbig < NBIG && k < 10 * NBIG; k++) {
    int j = k % SLOTS;
    void **b = gort_gc_alloc(1 << 20);
    ASSERT_NOT_NULL(b, "gort_gc_alloc(1 MiB)");
    in_transit = HOLD(1)[j];
    if (in_transit != NULL) {
      b[0] = in_transit;
      big_tag[nbig] = tags[1][j];
      HOLD(1)[j] = NULL;
      big[nbig++] = b;
    }
    in_transit = NULL;
    b = NULL;
    usleep(1000);
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  gctest_collect();
  gctest_collect();
  int bad = 0;
  for (int i = 0; i < nbig; i++) {
    if (!parent_intact(big[i][0], big_tag[i])) bad++;
  }
  EXPECT_EQ_U64(bad, 0, "of %d objects moved into objects of a heap grown during the mark", nbig);
  gctest_expect_forced_backend();
  EXPECT(atomic_load(&cycles) >= 2, "only %llu cycles", (unsigned long long)atomic_load(&cycles));
}

INNER_TEST(inner_moves_into_new_large) { run_moves_into_new_large(); }

TEST(objects_moved_into_a_heap_grown_during_the_mark_survive) {
  EXPECT(harness_run_inner("inner_moves_into_new_large", ""));
  EXPECT(harness_run_inner("inner_moves_into_new_large", "GORT_DEBUG=gccheckmark=1"));
}

// MemStats readers take the figures' lock while cycles write it with the
// world stopped: a reader stopped while holding it hung the collector (seen
// once in test_gc_mutator). Readers on two threads race cycles back to back;
// a hang ends in the harness's timeout.
static void *stats_reader(void *arg) {
  (void)arg;
  gort_memstats_t m;
  while (!atomic_load(&stop)) gort_read_memstats(&m);
  return NULL;
}

TEST(memstats_readers_never_hang_a_cycle) {
  atomic_store(&stop, false);
  atomic_store(&cycles, 0);
  pthread_t r[2], t;
  for (int i = 0; i < 2; i++) EXPECT(pthread_create(&r[i], NULL, stats_reader, NULL) == 0, "pthread_create");
  EXPECT(pthread_create(&t, NULL, collector, NULL) == 0, "pthread_create");
  double end = gctest_now() + 2;
  while (gctest_now() < end) {
    void *p = gort_gc_alloc(64);  // keep the allocator and the stops busy too
    (void)p;
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  for (int i = 0; i < 2; i++) pthread_join(r[i], NULL);
  printf("  %llu cycles with two MemStats readers\n", (unsigned long long)atomic_load(&cycles));
  EXPECT(atomic_load(&cycles) > 10, "cycles ran");
}

// Objects the mark has queued may be freed by the program, and their pages
// taken at once by other objects: the mark reads a span's kind and then
// the object's header, racing the span's change of hands, and took the
// bytes of whatever object was there for a typed object's layout: the
// mark worker crashed (a hostile test, within 3 s on one CPU, where a
// preempted worker leaves the race open for a whole time slice). Now a
// header that names no layout is scanned conservatively. Two threads
// allocate, free, reallocate (small and large, plain, noscan and typed)
// and drop objects while a third collects, all on one CPU.
enum { CHURN_SLOTS = 2048 };
static void *volatile churn_slot[CHURN_SLOTS];
static const gort_gc_layout_t *churn_layout;
static uint32_t churn_large_every = 30;  // one realloc in this many makes a large object

static uint32_t churn_rand(uint32_t *r) { return (*r = *r * 1103515245u + 12345u) >> 8; }

static void *churn_new(uint32_t *r) {
  size_t size;
  void *p;
  switch (churn_rand(r) % 4) {
  case 0: size = 16 + churn_rand(r) % 200; p = gort_gc_alloc(size); break;
  case 1: size = 16 + churn_rand(r) % 200; p = gort_gc_alloc_noscan(size); break;
  case 2: size = 24 * (1 + churn_rand(r) % 8); p = gort_gc_alloc_typed(size, churn_layout); break;
  default:
    size = churn_rand(r) % 20 == 0 ? 33000 + churn_rand(r) % 40000 : 16;
    p = gort_gc_alloc_noscan(size);
  }
  if (p != NULL) memset(p, 0x5e, size);  // no layout, no pointer
  return p;
}

static void *churner(void *arg) {
  uint32_t r = 77 + 1000 * (uint32_t)(uintptr_t)arg;
  int lo = (int)(uintptr_t)arg * CHURN_SLOTS / 2;
  while (!atomic_load(&stop)) {
    int i = lo + (int)(churn_rand(&r) % (CHURN_SLOTS / 2));
    void *p = churn_slot[i];
    if (p == NULL) {
      churn_slot[i] = churn_new(&r);
      continue;
    }
    switch (churn_rand(&r) % 3) {
    case 0: gort_free(p); churn_slot[i] = NULL; break;
    case 1: churn_slot[i] = NULL; break;  // dropped
    default: {
      size_t size = churn_rand(&r) % churn_large_every == 0 ? 40000 : 16 + churn_rand(&r) % 400;
      void *q = gort_realloc(p, size);
      if (q != NULL) memset(q, 0x5e, size);
      churn_slot[i] = q;
    }
    }
  }
  return NULL;
}

static void run_churn(bool one_cpu, int ms) {
  uint64_t map = 4;  // the third word of three may point
  churn_layout = gort_gc_layout(&map, 3);
  cpu_set_t all, one;
  EXPECT(sched_getaffinity(0, sizeof all, &all) == 0, "sched_getaffinity");
  CPU_ZERO(&one);
  for (int c = 0; c < CPU_SETSIZE; c++)
    if (CPU_ISSET(c, &all)) {
      CPU_SET(c, &one);
      break;
    }
  if (one_cpu) EXPECT(sched_setaffinity(0, sizeof one, &one) == 0, "sched_setaffinity");  // the threads inherit it
  atomic_store(&stop, false);
  atomic_store(&cycles, 0);
  pthread_t t[3];
  EXPECT(pthread_create(&t[0], NULL, collector, NULL) == 0, "pthread_create");
  for (uintptr_t k = 0; k < 2; k++) EXPECT(pthread_create(&t[1 + k], NULL, churner, (void *)k) == 0, "pthread_create");
  gctest_sleep_ms(ms);
  atomic_store(&stop, true);
  for (int k = 0; k < 3; k++) pthread_join(t[k], NULL);
  if (one_cpu) sched_setaffinity(0, sizeof all, &all);
  for (int i = 0; i < CHURN_SLOTS; i++) churn_slot[i] = NULL;
  printf("  %llu cycles\n", (unsigned long long)atomic_load(&cycles));
  EXPECT(atomic_load(&cycles) > 10, "cycles ran");
}

TEST(objects_freed_and_reused_during_the_mark_are_scanned_safely) { run_churn(true, 3000); }

// The same churn, on every CPU, with every concurrent mark checked against
// a stop-the-world one. The check followed the dead words of objects freed
// during the mark (see mgcmark.c, keep_freed_marked) and reported what
// only they reached as lost: 4 runs in 4 of a hostile test, and once in
// make test (test_sched_hostile's gccheckmark case).
INNER_TEST(inner_churn) { run_churn(false, 4000); }

TEST(frees_during_the_mark_pass_gccheckmark) {
  EXPECT(harness_run_inner("inner_churn", "GORT_DEBUG=gccheckmark=1"));
}

// The churn with every scan of a queued object pausing between its read
// of the span's state and the rest (gcscanwindow), as a preempted marker
// would, so that frees land there. A large object freed in the window
// read as size 0, and its typed scan ran on past the heap's end: once in
// CI without the pause; with it, a SEGV in 6 runs of 9 before the fix.
INNER_TEST(inner_churn_window) {
  churn_large_every = 2;  // many large typed objects, the ones whose scans ran on
  run_churn(false, 3000);
}

TEST(frees_inside_a_scans_span_reads_are_survived) {
  EXPECT(harness_run_inner("inner_churn_window", "GORT_DEBUG=gccheckmark=1,gcscanwindow=1"));
}
