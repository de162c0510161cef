// The page map: address -> span in O(1), and "not ours" for any other
// address, lock-free.
//
// The heap lives in 64 MiB arenas (as Go's). A flat table indexed by
// address >> 26 holds one arena_t pointer per arena of the 47-bit user
// address space (2^21 entries, 16 MiB of zero pages in .bss, touched only
// where arenas exist). An arena_t holds, per 8 KiB page, the span that owns
// it. So lookup is two dependent loads, and any address outside our arenas
// (stack, globals, another mmap, or a kernel address) reads a NULL arena.
//
// Within an arena, every page of an in-use span maps to the span; for a
// free span only its first and last pages do (for coalescing), and interior
// pages map to NULL, so a stale pointer into free memory never finds a
// span struct that was recycled for other pages.
//
// Arena metadata (span table, released-page bitmap) comes from persistent
// memory, never from the arena itself.

#ifndef GORT_ALLOC_PAGEMAP_H
#define GORT_ALLOC_PAGEMAP_H

#include "mspan.h"

#define GORT_ARENA_SHIFT 26
#define GORT_ARENA_SIZE ((uintptr_t)1 << GORT_ARENA_SHIFT)
#define GORT_PAGES_PER_ARENA (GORT_ARENA_SIZE >> GORT_PAGE_SHIFT)
#define GORT_ADDR_BITS 47
#define GORT_ARENA_L1 ((uintptr_t)1 << (GORT_ADDR_BITS - GORT_ARENA_SHIFT))

typedef struct arena {
  mspan_t *spans[GORT_PAGES_PER_ARENA];  // written under the heap lock; read lock-free
  // One bit per page: the page was returned to the OS (or never touched).
  // Guarded by the heap lock.
  uint64_t released[GORT_PAGES_PER_ARENA / 64];
  uintptr_t base;
  uint32_t hwm;  // pages [0, hwm) have been handed out at least once; heap lock
} arena_t;

extern arena_t *gort__arenas[GORT_ARENA_L1] GORT_HIDDEN;

GORT_INLINE arena_t *arena_of(uintptr_t addr) {
  uintptr_t i = addr >> GORT_ARENA_SHIFT;
  if (gort_unlikely(i >= GORT_ARENA_L1)) return NULL;
  return __atomic_load_n(&gort__arenas[i], __ATOMIC_ACQUIRE);
}

GORT_INLINE uintptr_t arena_page_index(uintptr_t addr) {
  return (addr >> GORT_PAGE_SHIFT) & (GORT_PAGES_PER_ARENA - 1);
}

// The span owning addr, or NULL: not ours, or an interior page of a free span.
GORT_INLINE mspan_t *span_of(uintptr_t addr) {
  arena_t *a = arena_of(addr);
  if (gort_unlikely(a == NULL)) return NULL;
  return __atomic_load_n(&a->spans[arena_page_index(addr)], __ATOMIC_RELAXED);
}

#endif  // GORT_ALLOC_PAGEMAP_H
