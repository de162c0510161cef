// The page map: address -> span in O(1), and "not ours" for any other
// address, lock-free.
//
// The heap lives in 64 MiB arenas (as Go's). A flat table indexed by
// address >> 26 holds one arena_t pointer per arena of the lowest 8 TiB of
// the address space (2^17 entries, 1 MiB of zero pages in .bss, touched
// only where arenas exist), where mheap.c places the heap. An arena_t
// holds, per 8 KiB page, the span that owns it. So lookup is two dependent
// loads, and any address outside our arenas (stack, globals, another mmap,
// or a kernel address) reads a NULL arena. The window is not the whole
// 47-bit space because .bss counts against `ulimit -v` like any mapping:
// covering 128 TiB took 16 MiB of it (#15); 8 TiB bounds the heap far
// above any machine it runs on.
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
#define GORT_ADDR_BITS 43
#define GORT_ARENA_L1 ((uintptr_t)1 << (GORT_ADDR_BITS - GORT_ARENA_SHIFT))

// One bit per 16-byte granule of the arena (malloc.c, "Misuse checks").
#define GORT_LIVE_WORDS (GORT_ARENA_SIZE >> 10)

typedef struct arena {
  mspan_t *spans[GORT_PAGES_PER_ARENA];  // written under the heap lock; read lock-free
  // One bit per page: the page was returned to the OS (or never touched).
  // Guarded by the heap lock.
  uint64_t released[GORT_PAGES_PER_ARENA / 64];
  uintptr_t base;
  uint32_t hwm;  // pages [0, hwm) have been handed out at least once; heap lock
  // The live bits: set while the small block starting at that granule is
  // handed out to the program. Outside the blocks, so that a free checks
  // it without loading the block (a cache miss per free in programs whose
  // frees are far from their mallocs). Written only by the span's owner
  // (the owning thread, or whoever holds the mcentral lock of an unowned
  // span) with relaxed loads and stores; read by anyone. Pages of it whose
  // arena pages were all released are released too (mheap.c).
  uint64_t live[GORT_LIVE_WORDS] __attribute__((aligned(4096)));
  // The collector's mark bits, at the same granules (gc/mgcmark.c): set
  // with atomic ORs by the mark workers, cleared by the sweep of the span.
  uint64_t mark[GORT_LIVE_WORDS];
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

// The live bit of the block at addr, which must lie in an arena.
GORT_INLINE uint64_t *live_word(uintptr_t addr, uint64_t *bit) {
  arena_t *a = __atomic_load_n(&gort__arenas[addr >> GORT_ARENA_SHIFT], __ATOMIC_RELAXED);
  uintptr_t i = (addr & (GORT_ARENA_SIZE - 1)) >> 4;
  *bit = 1ULL << (i & 63);
  return &a->live[i >> 6];
}
GORT_INLINE bool live_test(uintptr_t addr) {
  uint64_t bit, *w = live_word(addr, &bit);
  return (__atomic_load_n(w, __ATOMIC_RELAXED) & bit) != 0;
}
// Owner only (see arena_t.live): plain read-modify-writes.
GORT_INLINE void live_set(uintptr_t addr) {
  uint64_t bit, *w = live_word(addr, &bit);
  __atomic_store_n(w, __atomic_load_n(w, __ATOMIC_RELAXED) | bit, __ATOMIC_RELAXED);
}
GORT_INLINE void live_clear(uintptr_t addr) {
  uint64_t bit, *w = live_word(addr, &bit);
  __atomic_store_n(w, __atomic_load_n(w, __ATOMIC_RELAXED) & ~bit, __ATOMIC_RELAXED);
}

// The mark bit of the object at addr (in an arena): the word and the bit.
GORT_INLINE uint64_t *mark_word(uintptr_t addr, uint64_t *bit) {
  arena_t *a = __atomic_load_n(&gort__arenas[addr >> GORT_ARENA_SHIFT], __ATOMIC_RELAXED);
  uintptr_t i = (addr & (GORT_ARENA_SIZE - 1)) >> 4;
  *bit = 1ULL << (i & 63);
  return &a->mark[i >> 6];
}

#endif  // GORT_ALLOC_PAGEMAP_H
