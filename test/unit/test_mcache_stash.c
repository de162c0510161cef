// Unit tests of the thread cache's stash of empty spans (src/alloc/mcache.c,
// "Empty spans"): a thread that frees batches larger than the stash's base
// bound grows the bound, so that its later batches make no round trip to
// the page heap; a take of the stash by another thread (the scavenger,
// gort_free_os_memory) returns every span exactly once, whatever the owner
// does meanwhile, and puts the bound back to its base.

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "alloc/malloc_fast.h"
#include "alloc/mcache.h"
#include "alloc/mheap.h"
#include "gort/alloc.h"
#include "test.h"

#define KiB 1024
#define MiB (1024 * 1024)
enum { BATCH = 1600, SIZE = 4096 };  // 6.4 MiB: 200 spans of 32 KiB

static uint64_t heap_inuse(void) {
  heap_stats_t hs;
  gort__mheap_read_stats(&hs);
  return hs.inuse_bytes;
}

// Allocates a batch, writes each block, checks them all, frees them.
static void batch_round(void **p, uint64_t *inuse_full, uint64_t *inuse_empty) {
  for (int i = 0; i < BATCH; i++) {
    p[i] = gort_malloc(SIZE);
    EXPECT(p[i] != NULL, "malloc failed");
    memset(p[i], (unsigned char)i, SIZE);
  }
  for (int i = 0; i < BATCH; i++) {
    const unsigned char *b = p[i];
    EXPECT(b[0] == (unsigned char)i && b[SIZE - 1] == (unsigned char)i, "block %d was handed out twice", i);
  }
  if (inuse_full != NULL) *inuse_full = heap_inuse();
  for (int i = 0; i < BATCH; i++) gort_free(p[i]);
  if (inuse_empty != NULL) *inuse_empty = heap_inuse();
}

static void *keeps_its_batches(void *arg) {
  (void)arg;
  static void *p[BATCH];
  for (int r = 0; r < 6; r++) batch_round(p, NULL, NULL);
  mcache_t *c = gort__tls_cache;
  EXPECT(c->stash_shift > 0, "the stash's bound did not grow after 6 batches of 6.4 MiB");
  // A later batch's spans stay with the thread: the heap's pages in use do
  // not fall by the batch when it is freed. (The scavenger may take the
  // stash in the middle of one batch: one of several suffices.)
  uint64_t least_drop = UINT64_MAX;
  for (int r = 0; r < 5; r++) {
    uint64_t full, empty;
    batch_round(p, &full, &empty);
    uint64_t drop = full > empty ? full - empty : 0;
    if (drop < least_drop) least_drop = drop;
  }
  EXPECT(least_drop < 2 * MiB, "every batch gave %llu KiB back to the heap",
         (unsigned long long)(least_drop / KiB));
  // gort_free_os_memory takes the stash and the bound starts over.
  gort_free_os_memory();
  batch_round(p, NULL, NULL);
  EXPECT(c->stash_shift <= 1, "the bound is still %d doublings up after a take", c->stash_shift);
  return NULL;
}

TEST(a_thread_that_frees_large_batches_keeps_their_spans) {
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, keeps_its_batches, NULL) == 0);
  pthread_join(t, NULL);
}

// ---- takes while the owner works ----

static atomic_bool stop_taking;

static void *taker(void *arg) {
  (void)arg;
  while (!atomic_load(&stop_taking)) gort_free_os_memory();
  return NULL;
}

static void *batches_of_mixed_classes(void *arg) {
  (void)arg;
  static const size_t sizes[] = {2048, 4096, 3072, 4096, 1024};
  enum { N = 1200 };
  void *p[N];  // per thread
  for (int r = 0; r < 60; r++) {
    size_t size = sizes[r % 5];
    for (int i = 0; i < N; i++) {
      p[i] = gort_malloc(size);
      EXPECT(p[i] != NULL, "malloc failed");
      memset(p[i], (unsigned char)(i + r), size);
    }
    for (int i = 0; i < N; i++) {
      const unsigned char *b = p[i];
      EXPECT(b[0] == (unsigned char)(i + r) && b[size - 1] == (unsigned char)(i + r),
             "round %d: block %d was handed out twice", r, i);
    }
    for (int i = 0; i < N; i++) gort_free(p[i]);
  }
  return NULL;
}

// Every span a take removes goes to the heap once: the owner's pops and
// pushes race with the taker's exchanges, and a span lost or given twice
// would show as a block handed out twice or as pages in use that nothing
// holds once all is freed and taken.
TEST(takes_of_the_stash_while_its_owner_works_lose_and_duplicate_nothing) {
  gort_free_os_memory();
  uint64_t before = heap_inuse();
  pthread_t t, w[2];
  atomic_store(&stop_taking, false);
  EXPECT(pthread_create(&t, NULL, taker, NULL) == 0);
  for (int i = 0; i < 2; i++) EXPECT(pthread_create(&w[i], NULL, batches_of_mixed_classes, NULL) == 0);
  for (int i = 0; i < 2; i++) pthread_join(w[i], NULL);
  atomic_store(&stop_taking, true);
  pthread_join(t, NULL);
  gort_free_os_memory();
  uint64_t after = heap_inuse();
  EXPECT(after < before + 2 * MiB, "%llu KiB in use after everything was freed and taken (%llu before)",
         (unsigned long long)(after / KiB), (unsigned long long)(before / KiB));
}
