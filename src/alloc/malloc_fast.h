// The allocation and free fast paths, inline, shared by gort_malloc and the
// libc symbols (shim/). See malloc.c for the design.

#ifndef GORT_ALLOC_MALLOC_FAST_H
#define GORT_ALLOC_MALLOC_FAST_H

#include "alloc_init.h"
#include "mcache.h"
#include "pagemap.h"

void *gort__malloc_slow(size_t size) GORT_HIDDEN;
void gort__free_slow(void *p) GORT_HIDDEN;
void gort__free_owned_unlive(void *p) GORT_HIDDEN;

// The size class of a small request (size <= GORT_SMALL_MAX).
GORT_INLINE unsigned size_class(size_t size) {
  if (size <= 1024) return gort__size_to_class16[(size + 15) >> 4];
  return gort__size_to_class128[(size - 1024 + 127) >> 7];
}

// The pop of block b from list k.
GORT_INLINE void malloc_pop(class_cache_t *k, block_t *b) {
  block_t *next = b->next;
  // The next pop reads next's first word: start that load now. Blocks
  // on the list were freed in any order, so it is often not cached.
  __builtin_prefetch(next);
  k->head = next;
  b->tag = 0;  // not fresh: a later free is a free, not a wild pointer
  live_set((uintptr_t)b);
  counter_add(&k->nmalloc, 1);
}

// The heap profiler's countdown rides along: each allocation subtracts its
// size, and the one that crosses zero takes the slow path to be sampled.
// A countdown of GORT_SAMPLE_RECORD (the leak check's) pops all the same
// and hands the block to the record hook, a tail call: the test comes
// after the common case's, which it leaves as it was. (A sample popped
// here too saved it about 60 instructions, but where calls are not tail
// calls (MODE=debug) it added a return address in malloc that the
// profiler's own-frame probes, which take the slow path, never learn: a
// static program's profile then kept malloc's frame in a quarter of its
// stacks.)
GORT_INLINE void *malloc_fast(size_t size) {
  if (gort_likely(size <= GORT_SMALL_MAX)) {
    unsigned cls = size_class(size);
    mcache_t *c = gort__tls_cache;
    class_cache_t *k = &c->k[cls];
    block_t *b = k->head;
    int64_t left = c->sample_left - (int64_t)size;
    if (gort_likely(b != NULL)) {
      if (gort_likely(left >= 0)) {
        malloc_pop(k, b);
        c->sample_left = left;
        return b;
      }
      if (left < GORT_SAMPLE_RECORD / 2) {
        malloc_pop(k, b);
        return gort__mprof_hooks.record_alloc(b, size);
      }
    }
  }
  return gort__malloc_slow(size);
}

// Pushes b, a block of class cls whose span c owns, live bit clear, on c's
// list for the class; past the list's bound, mcache.c returns blocks to
// their spans. Not in hardened mode (mspan.h).
GORT_INLINE void cache_push(mcache_t *c, unsigned cls, block_t *b) {
  class_cache_t *k = &c->k[cls];
  b->next = k->head;
  k->head = b;
  uint64_t nfree = counter_read(&k->nfree) + 1;
  counter_set(&k->nfree, nfree);
  if (gort_unlikely((int64_t)(nfree - counter_read(&k->nmalloc)) > k->limit))
    gort__mcache_flush_list(c, (int)cls);
}

// (Hardened mode never reaches the raw link accesses below: see mspan.h.)
//
// A free by the span's owner of a live block needs no atomic and no lock,
// and reads neither the block nor the span nor anything another thread
// writes often: the page info says the caller owns the span, gives the
// class and says no other thread freed a block of the page meanwhile
// (pagemap.h); the live bit says the block is handed out. The block goes
// on the thread's list for its class, which the next malloc pops
// (mcache.c returns blocks to their spans when the list grows past its
// bound). A clear bit (a sampled block, or misuse) goes to
// gort__free_owned_unlive; everything else (NULL, large, collected,
// remote, pending remote frees, hardened) to gort__free_slow, which checks
// it thoroughly.
GORT_INLINE void free_fast(void *p) {
  uintptr_t a = (uintptr_t)p;
  arena_t *ar = arena_of(a);
  if (gort_likely(ar != NULL)) {
    uint32_t info = atomic_load_explicit(&ar->pinfo[arena_page_index(a)], memory_order_relaxed);
    mcache_t *c = gort__tls_cache;
    uintptr_t i = (a & (GORT_ARENA_SIZE - 1)) >> 4;
    uint64_t bit = 1ULL << (i & 63), *w = ARENA_LIVE_WORD(ar, i);
    // A set live bit marks the start of a carved, handed-out block: no
    // interior pointer (16-byte aligned ones have a clear bit, the others
    // fail the alignment test) and no never-carved slot passes.
    if (gort_likely((info & PINFO_FAST_MASK) == c->pinfo_owner && (a & 15) == 0)) {
      uint64_t live = __atomic_load_n(w, __ATOMIC_RELAXED);
      if (gort_likely((live & bit) != 0)) {
        __atomic_store_n(w, live & ~bit, __ATOMIC_RELAXED);
        cache_push(c, pinfo_class(info), p);
        return;
      }
      gort__free_owned_unlive(p);  // sampled, or misuse
      return;
    }
  }
  gort__free_slow(p);
}

#endif  // GORT_ALLOC_MALLOC_FAST_H
