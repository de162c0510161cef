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
  // Changed by atomic read-modify-writes only (mheap.c, "released bits").
  uint64_t released[GORT_PAGES_PER_ARENA / 64];
  uintptr_t base;
  uint32_t hwm;  // pages [0, hwm) have been handed out at least once; heap lock
  uint8_t zone;  // the page heap's zone its pages belong to (mheap.h); set once
  // The live and mark bits of the arena's 16-byte granules, interleaved a
  // word of each at a time: bits[2k] (live) and bits[2k + 1] (mark) cover
  // the 64 granules of the arena's k-th KiB. The marker tests a live bit
  // and then sets the mark bit beside it: one cache miss, not two (with the
  // two in separate arrays the live bit's load was a third of the marker's
  // time on a 512 MiB heap).
  //   live: set while the small block starting at that granule is handed
  //     out to the program. Outside the blocks, so that a free checks it
  //     without loading the block (a cache miss per free in programs whose
  //     frees are far from their mallocs). Written only by the span's owner
  //     (the owning thread, or whoever holds the mcentral lock of an
  //     unowned span) with relaxed loads and stores; read by anyone.
  //   mark: the collector's (gc/mgcmark.c): set with atomic ORs by the mark
  //     workers, cleared by the sweep of the span.
  // Pages of it whose arena pages were all released are released too
  // (mheap.c).
  uint64_t bits[2 * GORT_LIVE_WORDS] __attribute__((aligned(4096)));
  // Per page, what the owner's free fast path needs of the page's span
  // (pinfo_* below), so that it never loads the span struct.
  _Atomic uint32_t pinfo[GORT_PAGES_PER_ARENA];
  // The remote bits of the arena's 16-byte granules, as the live bits:
  // set (atomic OR) by a thread that frees a block of a malloc span that
  // another thread owns, taken (atomic exchange, a word at a time) by the
  // owner when it collects (mcache.c, "Frees"). A block whose bit is set is
  // free but not yet collected: its live bit is still set. The freeing
  // thread writes only here, never the block, so the block's line stays
  // with the thread that will hand it out again; in a list threaded
  // through the blocks, the owner's walk of that list waited on one
  // cross-core miss per block. In their own array, not beside the live
  // bits, whose lines the owner writes on every malloc.
  _Atomic uint64_t xbits[GORT_LIVE_WORDS] __attribute__((aligned(4096)));
} arena_t;

// The live word of granule i (of its arena) and the mark word beside it.
#define ARENA_LIVE_WORD(a, i) (&(a)->bits[((i) >> 6) << 1])
#define ARENA_MARK_WORD(a, i) (&(a)->bits[(((i) >> 6) << 1) | 1])

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
  return ARENA_LIVE_WORD(a, i);
}
GORT_INLINE bool live_test(uintptr_t addr) {
  uint64_t bit, *w = live_word(addr, &bit);
  return (__atomic_load_n(w, __ATOMIC_RELAXED) & bit) != 0;
}
// Owner only (see arena_t.bits): plain read-modify-writes.
GORT_INLINE void live_set(uintptr_t addr) {
  uint64_t bit, *w = live_word(addr, &bit);
  __atomic_store_n(w, __atomic_load_n(w, __ATOMIC_RELAXED) | bit, __ATOMIC_RELAXED);
}
GORT_INLINE void live_clear(uintptr_t addr) {
  uint64_t bit, *w = live_word(addr, &bit);
  __atomic_store_n(w, __atomic_load_n(w, __ATOMIC_RELAXED) & ~bit, __ATOMIC_RELAXED);
}

// The remote bit of the block at addr, which must lie in an arena.
GORT_INLINE _Atomic uint64_t *remote_word(uintptr_t addr, uint64_t *bit) {
  arena_t *a = __atomic_load_n(&gort__arenas[addr >> GORT_ARENA_SHIFT], __ATOMIC_RELAXED);
  uintptr_t i = (addr & (GORT_ARENA_SIZE - 1)) >> 4;
  *bit = 1ULL << (i & 63);
  return &a->xbits[i >> 6];
}
GORT_INLINE bool remote_test(uintptr_t addr) {
  uint64_t bit;
  _Atomic uint64_t *w = remote_word(addr, &bit);
  return (atomic_load_explicit(w, memory_order_relaxed) & bit) != 0;
}

// The page info of a page of a small manual span: its owner's cache id
// (bits 16-31; 0 while no thread owns it), its size class (bits 8-15) and
// flags (bits 0-7); for the first page of a large manual block,
// PINFO_LARGE and its page count (bits 8-31); 0 for every other page. The owner's free reads this
// word and the live bit and nothing else of the span: with a working set
// of blocks spread over hundreds of spans, the load of the span struct was
// the free path's one cache miss (a quarter of thread-1t's profile, in the
// compare of the owner it fed). A word per page rather than per span: the
// lookup is then the page map's own index, and a span's few pages (2 to 5
// for small spans) are all written where its owner or flags change, which
// is never on a fast path.
//   PINFO_PENDING  a remote free into the span, of a block on this page,
//                  awaits the owner (mcache.c, "Frees"): the owner's free
//                  into the page goes to the slow path, which collects first.
//   PINFO_SLOW     every free into the span goes to the slow path (hardened
//                  mode).
//   PINFO_LARGE    the page starts a live large manual block of info >> 8
//                  pages (malloc.c, "Realloc"): realloc's commonest case,
//                  a buffer growing within its pages, then reads neither
//                  the span table nor the span (about two misses after the
//                  copies that fill a buffer). A flag in the low byte, so
//                  that the owner's free never matches it. Set where such
//                  a block is handed out or grows (not in hardened mode,
//                  nor past 2^24 pages), cleared where it is freed; a page
//                  without it is asked of the span as before.
//   PINFO_SHARD    (bits 3-5, small spans) the heap profiler's registry
//                  shard for the span's sampled blocks (obs/mprof.c): the
//                  id of the thread the span was made for, mod 8, the same
//                  as the span's prof_shard. A field, not a flag: the
//                  owner's free ignores it. With it here the profiler's
//                  sample and the sampled block's free read neither the
//                  span table nor the span, each a cache miss in programs
//                  whose blocks spread over hundreds of spans (two misses
//                  of a sample's four in glibc's thread shape).
#define PINFO_PENDING 1u
#define PINFO_SLOW 2u
#define PINFO_LARGE 4u
#define PINFO_SHARD_SHIFT 3
#define PINFO_SHARDS 8u
#define PINFO_SHARD_MASK ((PINFO_SHARDS - 1) << PINFO_SHARD_SHIFT)
#define PINFO_LARGE_MAX_PAGES ((1u << 24) - 1)
#define PINFO_FLAGS 0xFFu
#define PINFO_OWNER_SHIFT 16
// (info & PINFO_FAST_MASK) == the calling cache's pinfo_owner: the caller
// owns the span and no flag is set (the shard field may hold anything).
#define PINFO_FAST_MASK (0xFFFF00FFu & ~PINFO_SHARD_MASK)

GORT_INLINE _Atomic uint32_t *pinfo_word(uintptr_t addr) {
  arena_t *a = __atomic_load_n(&gort__arenas[addr >> GORT_ARENA_SHIFT], __ATOMIC_RELAXED);
  return &a->pinfo[arena_page_index(addr)];
}
GORT_INLINE unsigned pinfo_class(uint32_t info) { return (info >> 8) & 0xFF; }
// Whether info is that of a page of a small span, malloc's or the
// collector's (a class, and not a large block's first page; a free page
// and the other pages of a large span read 0: mheap.c, free_locked).
GORT_INLINE bool pinfo_is_small(uint32_t info) {
  return (info & PINFO_LARGE) == 0 && pinfo_class(info) != 0;
}
GORT_INLINE unsigned pinfo_shard(uint32_t info) { return (info & PINFO_SHARD_MASK) >> PINFO_SHARD_SHIFT; }
GORT_INLINE uint32_t pinfo_shard_bits(unsigned id) { return (id % PINFO_SHARDS) << PINFO_SHARD_SHIFT; }

// Span-wide page info (mspan.c). Init and clear run while no other thread
// can reach the span's blocks; the others race with remote frees setting
// PINFO_PENDING, so they keep the flags with atomic read-modify-writes.
// Sets every page of small span s to class cls, flags, no owner.
void gort__span_pinfo_init(const mspan_t *s, unsigned cls, uint32_t flags);
// Sets the owner id of every page of s (0: none), keeping class and flags.
void gort__span_pinfo_set_owner(const mspan_t *s, uint32_t id);
// Zeroes the info of every page of s: it leaves use as a small span.
void gort__span_pinfo_clear(const mspan_t *s);
// Clears PINFO_PENDING on every page of s; returns whether any had it.
bool gort__span_pinfo_take_pending(const mspan_t *s);
// Moves the blocks of malloc span s whose remote bits are set into s->free
// (their bits and live bits cleared; used counts them back); returns how
// many. The caller owns s, or holds the mcentral lock with s unowned.
uint32_t gort__span_take_remote(mspan_t *s);

// The mark bit of the object at addr (in an arena): the word and the bit.
GORT_INLINE uint64_t *mark_word(uintptr_t addr, uint64_t *bit) {
  arena_t *a = __atomic_load_n(&gort__arenas[addr >> GORT_ARENA_SHIFT], __ATOMIC_RELAXED);
  uintptr_t i = (addr & (GORT_ARENA_SIZE - 1)) >> 4;
  *bit = 1ULL << (i & 63);
  return ARENA_MARK_WORD(a, i);
}

#endif  // GORT_ALLOC_PAGEMAP_H
