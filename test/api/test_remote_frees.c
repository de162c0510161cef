// Frees by threads that do not own the block's span (alloc/mcache.c,
// "Frees"): the remote bits, the notices that give a full span back to its
// owner (more full spans at once than a cache has notice slots, so the
// overflow path runs too), and notices that reach a thread that is leaving.
// Each case checks contents and that no block is handed out twice.

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gort/alloc.h"
#include "gort/metrics.h"
#include "test.h"

enum {
  SIZE = 48,
  SPAN_BLOCKS = 682,      // class 48 B: 682 blocks per 32 KiB span
  SPANS = 80,             // full spans at once: more than the 32 notice slots
  N = SPANS * SPAN_BLOCKS,
};

static void *blocks[N], *again[N];

static uint64_t heap_inuse(void) {
  static gort_memstats_t m;  // about 6 KiB: off the stack
  gort_read_memstats(&m);
  return m.heap_inuse;
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

// Whether v[0..n) holds n distinct addresses (sorts v).
static bool distinct(void **v, size_t n) {
  qsort(v, n, sizeof *v, cmp_ptr);
  for (size_t i = 1; i < n; i++)
    if (v[i] == v[i - 1]) return false;
  return true;
}

// Runs fn on a new thread and waits for it: a thread whose cache, and so
// whose spans, are its own.
static void on_fresh_thread(void *(*fn)(void *)) {
  pthread_t t;
  pthread_create(&t, NULL, fn, NULL);
  pthread_join(t, NULL);
}

static void *free_range(void *arg) {
  size_t *r = arg;  // [from, to) of blocks
  for (size_t i = r[0]; i < r[1]; i++) {
    uint64_t w;
    memcpy(&w, blocks[i], sizeof w);
    if (w != (uint64_t)i) abort();  // contents lost while live
    gort_free(blocks[i]);
  }
  return NULL;
}

// Frees blocks[from, to) on two other threads at once.
static void free_remotely(size_t from, size_t to) {
  pthread_t t[2];
  size_t r[2][2] = {{from, from + (to - from) / 2}, {from + (to - from) / 2, to}};
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, free_range, r[i]);
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
}

static void fill(size_t n) {
  for (size_t i = 0; i < n; i++) {
    blocks[i] = gort_malloc(SIZE);
    uint64_t w = i;
    memcpy(blocks[i], &w, sizeof w);
  }
}

// Runs on a fresh thread, whose spans are all its own.
static void *owner_gets_its_full_spans_back(void *arg) {
  (void)arg;
  fill(N);  // SPANS full spans, each on the full list with NOTIFY set
  free_remotely(0, N);
  uint64_t before = heap_inuse();
  for (size_t i = 0; i < N; i++) {
    again[i] = gort_malloc(SIZE);
    memset(again[i], 0xa5, SIZE);
  }
  uint64_t after = heap_inuse();
  // The freed spans serve the new blocks: at most a span or two more.
  EXPECT_LE_U64(after, before + 2 * 32768, "the spans other threads emptied were not reused");
  EXPECT(distinct(again, N), "a block was handed out twice");
  for (size_t i = 0; i < N; i++) gort_free(again[i]);
  return NULL;
}

TEST(full_spans_emptied_by_other_threads_serve_their_owner_again) {
  on_fresh_thread(owner_gets_its_full_spans_back);
}

// Another thread frees every block of the owner's full spans while the
// owner goes on allocating (its refills take the notices and the remote
// bits as they land), then the owner allocates as many again.
static void *owner_allocates_while_others_free(void *arg) {
  (void)arg;
  fill(N);
  pthread_t t;
  static size_t r[2] = {0, N};
  pthread_create(&t, NULL, free_range, r);
  static void *mine[SPAN_BLOCKS * 4];
  for (size_t i = 0; i < SPAN_BLOCKS * 4; i++) {
    mine[i] = gort_malloc(SIZE);
    memset(mine[i], 0x3c, SIZE);
  }
  pthread_join(t, NULL);
  for (size_t i = 0; i < N; i++) again[i] = gort_malloc(SIZE);
  // No address of again may be one of mine (all still live).
  static void *all[N + SPAN_BLOCKS * 4];
  memcpy(all, again, sizeof(void *) * N);
  memcpy(all + N, mine, sizeof mine);
  EXPECT(distinct(all, N + SPAN_BLOCKS * 4), "a live block was handed out again");
  for (size_t i = 0; i < N; i++) gort_free(again[i]);
  for (size_t i = 0; i < SPAN_BLOCKS * 4; i++) gort_free(mine[i]);
  return NULL;
}

TEST(an_owner_allocating_while_others_free_into_its_spans) {
  on_fresh_thread(owner_allocates_while_others_free);
}

// The owner exits while the others free: their notices reach a cache that
// is being abandoned, or has been; the blocks must still all come back.
static void *fill_and_leave(void *arg) {
  pthread_barrier_t *b = arg;
  fill(N);
  pthread_barrier_wait(b);
  return NULL;  // exits: its spans go to the central lists
}

TEST(notices_to_a_thread_that_has_left) {
  for (int round = 0; round < 4; round++) {
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    pthread_t owner;
    pthread_create(&owner, NULL, fill_and_leave, &b);
    pthread_barrier_wait(&b);
    free_remotely(0, N);  // races with the owner's exit
    pthread_join(owner, NULL);
    pthread_barrier_destroy(&b);
    // A new thread (perhaps on the old one's cache) takes the spans back.
    on_fresh_thread(owner_gets_its_full_spans_back);
  }
}

// One block per span (32 KiB), each handed to another thread that frees
// it: every remote free empties a span, most of them full, and its bit and
// its notice race with the owner's refills. A span the owner put back on
// its full list after taking its flag and before the bit landed was never
// looked at again (a reviewer's probe: 7-32 of them after 3 million
// blocks). After all are freed the heap must be back where it started.
enum { BIG = 32768, RING = 8, HANDOFFS = 3000000 };
static _Atomic(void *) ring[RING];
static _Atomic bool ring_done;

static void *ring_consumer(void *arg) {
  (void)arg;
  for (unsigned i = 0;; ) {
    void *p = atomic_exchange(&ring[i % RING], NULL);
    if (p != NULL) {
      gort_free(p);
      i++;
      continue;
    }
    if (!atomic_load(&ring_done)) continue;
    bool any = false;
    for (int k = 0; k < RING; k++) any |= atomic_load(&ring[k]) != NULL;
    if (!any) return NULL;
  }
}

static void *ring_owner(void *arg) {
  (void)arg;
  pthread_t t;
  pthread_create(&t, NULL, ring_consumer, NULL);
  uint64_t before = heap_inuse();
  for (long n = 0; n < HANDOFFS; n++) {
    void *p = gort_malloc(BIG);
    memset(p, 1, 64);
    while (atomic_load(&ring[n % RING]) != NULL) {
    }
    atomic_store(&ring[n % RING], p);
  }
  atomic_store(&ring_done, true);
  pthread_join(t, NULL);
  for (int k = 0; k < 4; k++) gort_free(gort_malloc(BIG));  // refills: the notices are taken
  gort_free_os_memory();
  uint64_t after = heap_inuse();
  EXPECT_LE_U64(after, before + 2 * BIG, "spans emptied by remote frees stayed in use (%llu of 32 KiB)",
                (unsigned long long)((after - before) / BIG));
  return NULL;
}

TEST(spans_emptied_by_a_remote_free_each_are_all_given_back) {
  on_fresh_thread(ring_owner);
}
