// The allocator's part of start-up (base/start.c runs it) and the hooks
// the allocator declares for the layers above it.

#ifndef GORT_ALLOC_ALLOC_INIT_H
#define GORT_ALLOC_ALLOC_INIT_H

#include <stdatomic.h>
#include <stddef.h>

#include "../base/base.h"
#include "../base/start.h"

// Keys, modes and the scavenger's hooks; allocates nothing (start step 2).
void gort__alloc_init(void);
// The allocator's fork handlers (fork.c); may allocate (start step 3).
void gort__alloc_init_late(void);

// The heap profiler's hooks, filled in by obs/mprof.c (an upward call
// through a hook this layer declares). sample_alloc runs after a sampled
// allocation by the thread that made it, outside every allocator lock,
// and returns the bytes until the next sample; it clears a small block's
// live bit (the thread owns the span) or sets a large span's nsampled.
// is_sampled says whether p is a live sampled block; sample_free runs
// before such a block is freed, and says whether p was one (the free path
// of a small block asks it alone: one lookup, not two). All may be NULL
// (no profiler).
typedef struct {
  int64_t (*sample_alloc)(void *p, size_t size);
  bool (*is_sampled)(const void *p);
  bool (*sample_free)(void *p);
  int64_t (*first_interval)(void);
  // realloc kept block p, now of size bytes (the leak check's record).
  void (*resized)(void *p, size_t size);
  // The leak check's record of every allocation (obs/leakcheck.c): when
  // set, sample() hands each allocation that reaches it straight here,
  // and malloc_fast each small one (GORT_SAMPLE_RECORD, below), as a
  // tail call, and returns what this returns (p). It chains sample_alloc
  // itself. A tail
  // call, so that the stack it captures holds no allocator frame of
  // sample's or of the entry points that tail-called sample: fewer frames
  // to check on each repeat (leakcheck.c, cost).
  void *(*record_alloc)(void *p, size_t size);
} gort_mprof_hooks_t;
// The countdown (mcache_t.sample_left) of a thread whose every allocation
// goes to record_alloc, set only once record_alloc is: malloc_fast pops
// as usual and tail-calls the hook; the other paths reach sample(), which
// sets the countdown back to this (hardened mode keeps -1 instead: its
// allocations take the slow path, which records too). Far enough below
// zero that no size taken from it comes back up, or wraps.
#define GORT_SAMPLE_RECORD (INT64_MIN / 2)
extern gort_mprof_hooks_t gort__mprof_hooks GORT_HIDDEN;

// The collector's hooks (gc/), filled in at start-up when it is linked:
// calls on collected objects that reach the allocator's entry points.
struct mspan;
struct mcache;
typedef struct {
  // gort_free of live collected object p of span s (p checked already).
  void (*free)(void *p, struct mspan *s);
  // gort_realloc of live collected object p of span s to size bytes.
  void *(*realloc)(void *p, struct mspan *s, size_t size);
  // The usable bytes of live collected object p of span s.
  size_t (*usable)(const void *p, const struct mspan *s);
  // A thread's cache is going away: give back its collector state.
  void (*cache_exit)(struct mcache *c);
  // The heap's tracked zone reserved [base, base + bytes) (the heap lock
  // held; may be NULL): the collector's dirty tracking covers it from its
  // first write.
  void (*heap_grew)(uintptr_t base, uintptr_t bytes);
  // The scavenger's background cycle: spans that gort_free emptied, once
  // the frees are old enough, go back to the page heap. True while such
  // frees wait. (gc/malloc_gc.c, "spans emptied by gort_free")
  bool (*idle)(void);
  // gort_free_os_memory: the same, at once.
  void (*reclaim)(void);
} gort_gc_hooks_t;
extern gort_gc_hooks_t gort__gc_hooks GORT_HIDDEN;

#endif  // GORT_ALLOC_ALLOC_INIT_H
