// Thread caches (Go's mcache). See mcache.c for the design.

#ifndef GORT_ALLOC_MCACHE_H
#define GORT_ALLOC_MCACHE_H

#include "mspan.h"

typedef struct mcache {
  // Fast path: the free list of the current span of each class. Owner only.
  block_t *alloc[GORT_NUM_CLASSES];
  // Per-thread counters (sharded statistics). Written by the owner with
  // counter_add, read by anyone with counter_read.
  uint64_t nmalloc[GORT_NUM_CLASSES];
  uint64_t nfree[GORT_NUM_CLASSES];
  // Heap profiling: bytes left until the next sampled allocation.
  int64_t sample_left;

  // Slow-path state, owner only.
  mspan_t *cur[GORT_NUM_CLASSES];
  span_link_t partial[GORT_NUM_CLASSES];  // owned spans with free blocks
  span_link_t full[GORT_NUM_CLASSES];     // owned spans with none (NOTIFY set)
  // One empty span kept per class. Atomic: the scavenger may take it (an
  // empty span receives no frees, so taking it races with nothing else).
  _Atomic(mspan_t *) stash[GORT_NUM_CLASSES];

  // Blocks freed by other threads into this cache's full spans (the first
  // remote free after NOTIFY). Lock-free stack; the owner takes all.
  _Atomic(block_t *) delayed __attribute__((aligned(GORT_CACHELINE)));

  // Registry, under the caches lock.
  struct mcache *next_all;
  bool alive;
} mcache_t;

extern mcache_t gort__empty_cache GORT_HIDDEN;
extern GORT_TLS mcache_t *gort__tls_cache GORT_HIDDEN;

// The calling thread's cache, created on first use; NULL if out of memory.
// Not for a thread past its exit hook (see gort__mcache_thread_exited).
mcache_t *gort__mcache_get(void);
// The calling thread has run its exit hook: it must not get a cache again.
bool gort__mcache_thread_exited(void);
// An allocation of class cls for such a thread; NULL (errno ENOMEM) on failure.
void *gort__mcache_alloc_late(int cls);
// Counts a free by a thread with no cache.
void gort__mcache_count_orphan_free(int cls);
// Refills c->alloc[cls] and pops one block; NULL (errno ENOMEM) on failure.
void *gort__mcache_refill(mcache_t *c, int cls);
// A free of block b (tagged free already) by s's owner, c: the slow-path
// twin of free_fast's push (no counting).
void gort__mcache_owner_free(mcache_t *c, mspan_t *s, block_t *b);
// A free into a span owned by c that needs a list move or a retirement.
void gort__mcache_owner_free_slow(mcache_t *c, mspan_t *s);
// A free of block b (tagged free) into unowned span s by c's thread: c
// adopts s and frees as its owner. False if s was adopted meanwhile.
bool gort__mcache_adopt_free(mcache_t *c, mspan_t *s, block_t *b);
// A free of block b of small span s by a thread that does not own s.
void gort__mcache_remote_free(mspan_t *s, block_t *b);
// Searches c's lists for b (confirming a suspected double free).
bool gort__mcache_owns_free_block(mcache_t *c, mspan_t *s, const block_t *b);
// Hands every span of c back (thread exit, fork child).
void gort__mcache_abandon(mcache_t *c);
// Returns every cache's spare empty spans to the page heap (scavenger),
// and, if self_current, the calling thread's empty current spans too.
// Returns the bytes. Call with no gort lock held.
uint64_t gort__mcache_flush_empty(bool self_current);

// Visits every live cache under the caches lock (stats).
void gort__mcache_foreach(void (*fn)(mcache_t *c, void *arg), void *arg);
// Counters of exited threads, folded in at exit.
void gort__mcache_retired_counts(uint64_t *nmalloc, uint64_t *nfree);
uint64_t gort__mcache_count(void);

void gort__mcache_lock_for_fork(void);
void gort__mcache_unlock_after_fork(int child);

// The process-wide key that tags free blocks (set once at init).
extern uintptr_t gort__tag_key GORT_HIDDEN;

// Builds the free list of a fresh small span: every block tagged free.
void gort__span_init_small(mspan_t *s, int cls);

#endif  // GORT_ALLOC_MCACHE_H
