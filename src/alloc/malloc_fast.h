// The allocation and free fast paths, inline, shared by gort_malloc and the
// libc symbols (shim/). See malloc.c for the design.

#ifndef GORT_ALLOC_MALLOC_FAST_H
#define GORT_ALLOC_MALLOC_FAST_H

#include "mcache.h"
#include "pagemap.h"

void *gort__malloc_slow(size_t size) GORT_HIDDEN;
void gort__free_slow(void *p) GORT_HIDDEN;

// The size class of a small request (size <= GORT_SMALL_MAX).
GORT_INLINE unsigned size_class(size_t size) {
  if (size <= 1024) return gort__size_to_class16[(size + 15) >> 4];
  return gort__size_to_class128[(size - 1024 + 127) >> 7];
}

// The heap profiler's countdown rides along: each allocation subtracts its
// size, and the one that crosses zero takes the slow path to be sampled.
GORT_INLINE void *malloc_fast(size_t size) {
  if (gort_likely(size <= GORT_SMALL_MAX)) {
    unsigned cls = size_class(size);
    mcache_t *c = gort__tls_cache;
    block_t *b = c->alloc[cls];
    int64_t left = c->sample_left - (int64_t)size;
    if (gort_likely(b != NULL && left >= 0)) {
      c->alloc[cls] = b->next;
      c->sample_left = left;
      b->tag = 0;
      counter_add(&c->nmalloc[cls], 1);
      return b;
    }
  }
  return gort__malloc_slow(size);
}

// (Hardened mode never reaches the raw link accesses below: see mspan.h.)
//
// A free by the span's owner of a well-formed, tagged-live block needs no
// atomic and no lock. Everything else (NULL, large, remote, suspicious)
// goes to gort__free_slow, which checks it thoroughly.
GORT_INLINE void free_fast(void *p) {
  uintptr_t a = (uintptr_t)p;
  mspan_t *s = span_of(a);
  mcache_t *c = gort__tls_cache;
  if (gort_likely(s != NULL && atomic_load_explicit(&s->owner, memory_order_relaxed) == c)) {
    block_t *b = p;
    uintptr_t tag = gort__tag_key ^ a;
    if (gort_likely(span_is_elem_start(s, a) && b->tag != tag &&
                    atomic_load_explicit(&s->nsampled, memory_order_relaxed) == 0)) {
      b->tag = tag;
      b->next = s->free;
      s->free = b;
      counter_add(&c->nfree[s->sizeclass], 1);
      if (gort_unlikely(--s->used == 0 || s->where == WHERE_FULL))
        gort__mcache_owner_free_slow(c, s);
      return;
    }
  }
  gort__free_slow(p);
}

#endif  // GORT_ALLOC_MALLOC_FAST_H
