// Thread caches (Go's mcache). See mcache.c for the design.

#ifndef GORT_ALLOC_MCACHE_H
#define GORT_ALLOC_MCACHE_H

#include "mspan.h"

// Empty spans a thread keeps (mcache.c, "Empty spans"): chains of spans of
// up to GORT_STASH_SLOTS classes, GORT_STASH_BASE bytes in all, doubled up
// to GORT_STASH_MAX_SHIFT times for a thread whose spans make round trips
// to the page heap.
#define GORT_STASH_SLOTS 32
#define GORT_STASH_BASE ((uint64_t)1 << 20)
#define GORT_STASH_MAX_SHIFT 3
// Freed large blocks' spans a thread keeps (mcache.c, "Large blocks"): at
// most GORT_LARGE_KEEP_PAGES pages each, GORT_LARGE_KEEP_BUDGET in all.
#define GORT_LARGE_KEEP_SLOTS 8
// Notice slots per cache (mcache_t.notices).
#define GORT_NOTICE_SLOTS 32
#define GORT_LARGE_KEEP_PAGES 16
#define GORT_LARGE_KEEP_BUDGET 128

// The fast paths' state of one size class, in one half cache line: a
// malloc and a free each touch one line of the cache.
//
// The list's length is not stored: a stored length cost each fast path a
// read-modify-write of its own (about 6% of a malloc+free pair). The
// statistics counters the fast paths keep anyway give it: every pop is a
// malloc and every push a free, so len = (nfree - nmalloc) - base, where
// base is moved by the slow paths that change one without the other (a
// refill, a flush, a free that does not push). The free path compares
// nfree - nmalloc with limit = max + base, which says len > max.
typedef struct {
  // Free blocks of any span of this class that the cache owns, live bits
  // clear, counted in their spans' used. Owner only.
  block_t *head;
  // Sharded statistics: written by the owner with counter_add, read by
  // anyone with counter_read.
  uint64_t nmalloc;
  uint64_t nfree;
  int64_t limit;  // a free that makes nfree - nmalloc exceed this flushes; owner only
} class_cache_t;

// The collector's allocation state of one span class (gc/malloc_gc.c):
// the free list of the cached span, which the collector takes back in its
// stop of the world, and the list's length.
typedef struct {
  block_t *head;
  mspan_t *span;
  uint32_t left;
} gc_class_cache_t;

typedef struct mcache {
  class_cache_t k[GORT_NUM_CLASSES];
  // Heap profiling: bytes left until the next sampled allocation.
  int64_t sample_left;
  // What the page info of a span this cache owns, with no flag set, reads
  // under PINFO_FAST_MASK (pagemap.h): its id, shifted; ~0 (matches no
  // page) for the empty cache and for caches past the 65535 ids.
  uint32_t pinfo_owner;
  uint16_t id;  // 1..65535, or 0: none; kept for the life of the struct

  // Slow-path state, owner only.
  mspan_t *cur[GORT_NUM_CLASSES];
  // The bound on each class's list (mcache.c, "list bounds"); see limit.
  int32_t max[GORT_NUM_CLASSES];
  span_link_t partial[GORT_NUM_CLASSES];  // owned spans with free blocks
  span_link_t full[GORT_NUM_CLASSES];     // owned spans with none (NOTIFY set)
  // Empty spans kept for reuse (mcache.c, "Empty spans"): each slot holds
  // a chain of spans of one class, linked through stash_next. Only the
  // owner adds to a chain; it takes one span off with a compare-and-swap,
  // and others take a whole chain with an exchange, so neither reads a
  // span the other may have taken. stash_class[i] is the class of the
  // chain in stash[i] while it is not NULL.
  _Atomic(mspan_t *) stash[GORT_STASH_SLOTS];
  uint8_t stash_class[GORT_STASH_SLOTS];  // owner only
  // Owner only: the bytes stashed as the owner counted them, the bound's
  // doublings, whether a span went to the heap for want of room since the
  // bound last grew, and the last stash_epoch the owner saw.
  uint64_t stash_bytes;
  uint8_t stash_shift;
  bool stash_spilled;
  bool stash_wake;  // the bound grew: wake the scavenger once the refill is done
  bool trim_due;    // a refill took fresh pages: trim idle lists once it is done
  uint32_t stash_epoch_seen;
  // Bumped by whoever takes chains from the stash other than through the
  // owner's own pops (the scavenger, a fork's child, the thread's exit).
  _Atomic uint32_t stash_epoch;
  // Freed large blocks' spans (SPAN_CACHED) kept for reuse, filled and
  // emptied as the stash is; keep_npages[i] is the size of keep[i]'s span.
  _Atomic(mspan_t *) keep[GORT_LARGE_KEEP_SLOTS];
  uint16_t keep_npages[GORT_LARGE_KEEP_SLOTS];  // owner only
  // The adaptive bound on max[] (mcache.c, "list bounds"): per class,
  // whether it flushed since its last refill; and the bytes of growth past
  // the classes' base bounds, against the thread's budget.
  uint8_t flushes[GORT_NUM_CLASSES];
  int64_t grown_bytes;
  // Per class, whether it refilled or flushed since the last pass over
  // idle lists (mcache.c, "list bounds").
  uint8_t active[GORT_NUM_CLASSES];

  // The collector's side (gc/malloc_gc.c), by kind - 1 and class: written
  // by the owner inside a no-stop region, and by the collector with the
  // world stopped. tiny, tiny_off, tiny_meta: the tiny allocator's current
  // block, where its free tail starts, and its metadata (gc/tiny.c). Owner
  // only; the stop reads tiny as a root.
  gc_class_cache_t gc[GORT_NUM_GC_KINDS][GORT_NUM_CLASSES];
  uintptr_t tiny;
  uint32_t tiny_off;
  void *tiny_meta;
  uint64_t gc_nmalloc, gc_bytes;  // small collected objects allocated; counters, as k[].nmalloc
  // Bytes the refills handed this thread since it last saw the pacer (the
  // assists' charge: gc/malloc_gc.c, alloc_small). Owner only.
  uint64_t gc_owed;
  // gcstress: bytes the refills handed this thread since its last stress
  // cycle (gc/malloc_gc.c, alloc_small). Owner only.
  uint64_t gc_stress_owed;
  // Large blocks served from and returned to the stash (k[0].nmalloc and
  // k[0].nfree count them), in bytes; counters, as k[].nmalloc.
  uint64_t large_alloc_bytes, large_free_bytes;

  // Notices: spans of this cache's full lists that a remote free found
  // there (it cleared NOTIFY), for the owner to move back to partial
  // (mcache.c, "Frees"). Any thread fills a slot (CAS from NULL); whoever
  // drains takes each with an exchange. Slots hold span pointers, not
  // links through the spans, so a stale notice (the span changed hands,
  // or its struct was recycled, since) costs a check and nothing more.
  // pending: a slot may be full. overflow: a notice found every slot
  // full; the owner then looks at its full lists. closed: the thread has
  // left (abandon); a notice posted after its last drain is drained by
  // its sender.
  struct {
    _Atomic(struct mspan *) slot[GORT_NOTICE_SLOTS];
    _Atomic uint32_t pending, overflow, closed;
  } notices __attribute__((aligned(GORT_CACHELINE)));

  // Registry, under the caches lock.
  struct mcache *next_all;
  bool alive;
} mcache_t;

// The length of class cls's list (see class_cache_t). Owner only.
GORT_INLINE int64_t cc_len(const mcache_t *c, int cls) {
  const class_cache_t *k = &c->k[cls];
  return (int64_t)(k->nfree - k->nmalloc) - (k->limit - c->max[cls]);
}
GORT_INLINE void cc_set_len(mcache_t *c, int cls, int64_t len) {
  class_cache_t *k = &c->k[cls];
  k->limit = (int64_t)(k->nfree - k->nmalloc) - len + c->max[cls];
}
GORT_INLINE void cc_set_max(mcache_t *c, int cls, int32_t max) {
  int64_t len = cc_len(c, cls);
  c->max[cls] = max;
  cc_set_len(c, cls, len);
}
// Counts a free by the owner that does not push on the list.
GORT_INLINE void cc_count_free_off_list(mcache_t *c, int cls) {
  counter_add(&c->k[cls].nfree, 1);
  c->k[cls].limit++;
}

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
// Refills c->k[cls].head and pops one block; NULL (errno ENOMEM) on failure.
void *gort__mcache_refill(mcache_t *c, int cls);
// Returns block b (live bit clear already) of span s, owned by c, to s's own
// free list (no counting): list moves, and retirement of an empty span.
void gort__mcache_owner_free(mcache_t *c, mspan_t *s, block_t *b);
// Called when a free made class cls's list longer than its max: returns the colder
// half of the list to the blocks' spans.
void gort__mcache_flush_list(mcache_t *c, int cls);
// A free of live block b into unowned span s by c's thread: c adopts s and
// frees as its owner. False if s was adopted meanwhile.
bool gort__mcache_adopt_free(mcache_t *c, mspan_t *s, block_t *b);
// A free of block b of small span s by a thread that does not own s.
void gort__mcache_remote_free(mspan_t *s, block_t *b);
// Collects the frees other threads made into s, which c owns, clearing
// their live bits (malloc.c's checks need them exact).
void gort__mcache_collect_remote(mcache_t *c, mspan_t *s);
// Hands every span of c back (thread exit, fork child).
void gort__mcache_abandon(mcache_t *c);
// Large blocks (mcache.c, "Large blocks"). keep: the calling thread keeps
// the span of freed large manual block s; false if it cannot (the caller
// frees s to the heap); fatal if s was freed meanwhile. take: a kept span
// of npages to npages + npages/4 pages, now SPAN_LARGE, or NULL.
bool gort__mcache_keep_large(mspan_t *s);
mspan_t *gort__mcache_take_large(uintptr_t npages);
// The bytes counted by the large blocks kept and reused, every cache's
// and the retired ones (frees read first, as memstats.c needs).
void gort__mcache_large_bytes(uint64_t *alloc, uint64_t *freed);
// Returns every cache's spare empty spans to the page heap (scavenger),
// and, if self_current, the calling thread's empty current spans too.
// Returns the bytes. Call with no gort lock held.
uint64_t gort__mcache_flush_empty(bool self_current);

// Visits every live cache under the caches lock (stats).
void gort__mcache_foreach(void (*fn)(mcache_t *c, void *arg), void *arg);
// Counters of exited threads, folded in at exit.
void gort__mcache_retired_counts(uint64_t *nmalloc, uint64_t *nfree);
// The collector's allocation counters, every cache's and the retired ones.
void gort__mcache_gc_counts(uint64_t *nmalloc, uint64_t *bytes);
uint64_t gort__mcache_count(void);

void gort__mcache_lock_for_fork(void);
void gort__mcache_unlock_after_fork(int child);

// The process-wide key that tags freed blocks (set once at init).
extern uintptr_t gort__tag_key GORT_HIDDEN;

// Carves the next fresh blocks of s (up to the end of the OS page holding
// the first); returns them as a list in address order, tagged fresh. The
// caller owns s and counts them in s->used.
block_t *gort__mcache_carve(mspan_t *s);
// Sets s's owner (NULL: none), in the span and in its pages' info.
void gort__span_set_owner(mspan_t *s, mcache_t *c);
// Prepares a fresh small span; blocks are carved on demand.
void gort__span_init_small(mspan_t *s, int cls);

// In a forked child: calls fn on each cache the fork quarantined (the
// other threads'); see gort__mcache_unlock_after_fork.
void gort__mcache_foreach_orphaned(void (*fn)(mcache_t *c, void *arg), void *arg);

#endif  // GORT_ALLOC_MCACHE_H
