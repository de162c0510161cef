// Spans: runs of pages that the allocator manages as a unit.
//
// See malloc.c for the allocator overview. A span is either free (owned by
// the page heap), small (carved into nelems blocks of one size class) or
// large (one object). Span structs live in a fixalloc inside mheap.c, never
// in the heap they describe, and are recycled when spans merge.
//
// A small span has at most one owner at a time: a thread cache (mcache)
// or, when no thread owns it, its mcentral. Its free blocks are in three
// places:
//   free      blocks freed by the owner, or collected; owner only.
//   remote    blocks of a malloc span freed by other threads: their remote
//             bits (pagemap.h), outside the blocks, until the owner
//             collects them. The span's xfree word holds the span's
//             generation (XFREE_MARK, below) and two flags:
//             XFREE_HAS, some remote bit may be set (set by the freeing
//             thread after its bit, taken by the owner before it
//             collects), and XFREE_NOTIFY, the owner believes the span
//             full and wants to hear of the first remote free (never both).
//             A collected object's span (gc/malloc_gc.c) keeps the older
//             scheme: xfree is a lock-free stack of its remotely freed
//             objects (CAS push, exchange to take all), bit 0 NOTIFY.
//   the owner's class list (mcache.k[class].head), shared by every span
//             the owner has of that class: blocks the owner freed, and
//             lists taken from its spans at refill.
// A fresh span is carved lazily, an OS page of blocks at a time, so that a
// class used for a few blocks touches one page, not the whole span: blocks
// [fresh, nelems) have never been handed out, and their memory is untouched.
// used counts carved blocks outside s->free: handed to the program, freed
// remotely and not collected, or in the owner's class list. used == 0
// means every carved block is in s->free, so the span may go back to the
// page heap.
//
// Invariants:
//   - A span is on at most one list (owner queue, mcentral list or free
//     list), and where says which.
//   - owner changes only by the owner itself, or under the mcentral lock
//     while the span is unowned; so "s->owner == me" is stable to me.
//   - A block's live bit (pagemap.h) is set exactly while it is handed out
//     to the program, or freed remotely and not yet collected by its
//     owner; such a block of a malloc span has its remote bit set (a
//     collected object carries block_tag_freed in its second word
//     instead). A carved block never handed out carries block_tag_fresh,
//     and every other free block 0 (the double-free checks, malloc.c).
//   - A malloc span's remote bits are all clear when it leaves use: each
//     set bit is a block that used still counts.

#ifndef GORT_ALLOC_MSPAN_H
#define GORT_ALLOC_MSPAN_H

#include <stdatomic.h>

#include "../base/base.h"
#include "sizeclasses.h"

#define GORT_PAGE_SHIFT 13
#define GORT_PAGE_SIZE ((uintptr_t)1 << GORT_PAGE_SHIFT)

typedef struct block {
  struct block *next;
  uintptr_t tag;
} block_t;

typedef enum {
  SPAN_FREE = 0,   // in the page heap's free lists
  SPAN_SMALL = 1,  // blocks of one size class
  SPAN_LARGE = 2,  // one object larger than GORT_SMALL_MAX (or over-aligned)
  SPAN_DEAD = 3,   // struct in the fixalloc, not describing any pages
  SPAN_RELEASING = 4,  // free, off the lists while the scavenger releases it
  SPAN_CACHED = 5,     // a freed large block's span, kept by a thread for the next
                       // large block (mcache.c, "Large blocks"): in use, holding nothing
} span_state_t;

// Span kinds (with the size class, Go's spanClass): collected and malloc'd
// objects never share a span, and noscan spans are never scanned. Manual
// spans hold malloc'd blocks freed by hand; the others belong to the
// collector (gc/mgc.c): scanned conservatively, never scanned, scanned by
// a layout in a header word, scanned as roots and never collected
// (uncollectable), the tiny allocator's 16-byte blocks (noscan), and
// scanned conservatively but written through the write barrier, never
// protected for dirty tracking (barriered: gc/barrier.c).
typedef enum {
  KIND_MANUAL = 0,
  KIND_GC_SCAN = 1,
  KIND_GC_NOSCAN = 2,
  KIND_GC_TYPED = 3,
  KIND_GC_UNCOLLECTABLE = 4,
  KIND_GC_TINY = 5,
  KIND_GC_BARRIERED = 6,
  GORT_NUM_KINDS = 7,
} span_kind_t;

#define GORT_NUM_GC_KINDS (GORT_NUM_KINDS - 1)  // kinds 1..6

// Collected kinds whose every word is scanned (typed ones are scanned by
// their layout, uncollectable ones as roots).
GORT_INLINE bool kind_scanned_whole(unsigned kind) { return kind == KIND_GC_SCAN || kind == KIND_GC_BARRIERED; }
// A typed object's first 16 bytes hold its layout; the program's pointer
// is past them.
#define SPAN_TYPED_HEADER 16

// Where a span is listed.
typedef enum {
  WHERE_NONE = 0,
  WHERE_CURRENT,          // an mcache's current span for its class
  WHERE_PARTIAL,          // an mcache's partial queue
  WHERE_FULL,             // an mcache's full list
  WHERE_STASH,            // in an mcache's stash of empty spans
  WHERE_CENTRAL_PARTIAL,  // unowned, in mcentral.partial
  WHERE_CENTRAL_FULL,     // unowned, in mcentral.full
  WHERE_HEAP,             // a free span in the page heap's lists
  WHERE_GC_CACHED,        // a collected span cached by a thread (gc/malloc_gc.c)
  WHERE_GC_PARTIAL,       // a swept collected span with free slots
  WHERE_GC_FULL,          // a swept collected span with none
  WHERE_GC_UNSWEPT,       // a collected span not swept since the last mark (spans moved
                          // to the unswept lists at a mark's end keep their old value)
  WHERE_GC_LARGE,         // a large collected object (swept or not: see sweepgen)
} span_where_t;

#define XFREE_NOTIFY ((uintptr_t)1)
#define XFREE_HAS ((uintptr_t)2)  // malloc spans only (see above)
// A malloc span's xfree word also holds the generation of the span (bits
// 4 and up, from a process-wide counter at each gort__span_init_small)
// and XFREE_MARK, which no collected span's word (0, or a 16-byte-aligned
// list with NOTIFY) has: a remote free that writes the word after its
// block's bit does so with a CAS from a value of the generation it read
// while its block was live, so that a span emptied and recycled meanwhile
// (its struct another span now) fails the CAS (mcache.c, "Frees").
#define XFREE_MARK ((uintptr_t)8)
#define XFREE_FLAGS ((uintptr_t)15)

typedef struct span_link {
  struct span_link *next, *prev;
} span_link_t;

struct mcache;

typedef struct mspan {
  // Line 1: what changes while the span is in use. The owner writes
  // link, free, used and where in its slow paths; other threads write
  // xfree on a remote free that finds XFREE_HAS clear.
  span_link_t link;  // first member: list links; guarded by whoever owns the list
  block_t *free;     // owner only
  uint32_t used;     // see above; owner only
  uint8_t where;     // span_where_t; guarded like link
  int64_t freed_ns;  // free spans: when they became free (the scavenger's clock)
  _Atomic uintptr_t xfree;
  // In a thread's stash of empty spans: the next span of its chain
  // (mcache.c, "Empty spans"); the owner and whoever takes the chain.
  _Atomic(struct mspan *) stash_next;
  // Line 2: what the free checks (malloc.c, live_span) and the remote
  // free read, and what changes only when the span changes hands or
  // state. It was line 1, beside used and free: on rptest's cross-thread
  // frees, each remote free's first read of the span (its kind) then
  // missed on the line the owner had just written, 7% of the run's time.
  // (free_fast reads no span: pagemap.h, page info.)
  uintptr_t base __attribute__((aligned(GORT_CACHELINE)));  // immutable while in use
  _Atomic(struct mcache *) owner;  // see the invariants
  uint8_t state;      // span_state_t; written under the heap lock
  uint8_t kind;       // span_kind_t
  uint8_t sizeclass;  // 0 for large and free spans
  uint8_t needzero;   // 1 if the pages may hold old data
  // (A remote free's note to the owner, and hardened mode's "every free
  // slow", are flags in the page info of the span's pages: pagemap.h.)
  // Large spans: 1 while the heap profiler holds a sample of the block.
  // (A sampled small block is marked by its live bit, kept clear while it
  // is live, so that its free alone takes the slow path: obs/mprof.c.)
  _Atomic uint16_t nsampled;
  // The heap profiler's registry shard for this span's sampled blocks
  // (obs/mprof.c): small spans, set when the span is made for a class
  // (empty), so never while a sampled block lives; large, at the sample.
  uint8_t prof_shard;
  // Collected spans: 1 once an object here had a finalizer or a weak
  // pointer, so that its gort_free looks for them (gc/finalizer.c); 0 when
  // the span is made.
  _Atomic uint8_t specials;
  uint32_t elemsize;  // 0 for large spans (see span_bytes)
  uint32_t divmul;    // ceil(2^32 / elemsize): offset -> index without a divide
  uint32_t fresh;     // blocks carved so far; grows, by the owner; read by free checks
  uint32_t nelems;
  uintptr_t npages;
  uint32_t sweepgen;  // collected spans' sweep state (gc/gc.h); atomic: frees read it
  // Spans are 128 bytes, two cache lines: 40,000 of them describe 1 GiB of
  // small blocks. (Mark bits live outside the span struct, as the live
  // bits do, Go's gcBits.)
} __attribute__((aligned(GORT_CACHELINE))) mspan_t;

_Static_assert(sizeof(mspan_t) == 2 * GORT_CACHELINE, "mspan_t is two cache lines");
_Static_assert(__builtin_offsetof(mspan_t, xfree) < GORT_CACHELINE, "the written fields in line 1");

GORT_INLINE uintptr_t span_bytes(const mspan_t *s) { return s->npages << GORT_PAGE_SHIFT; }

// state is written only under the heap lock, and read by the heap for
// neighbours that other threads own: always a one-byte atomic access, so
// that it is never merged with the owner's writes to the fields beside it.
GORT_INLINE span_state_t span_state(const mspan_t *s) {
  return (span_state_t)__atomic_load_n(&s->state, __ATOMIC_RELAXED);
}
GORT_INLINE void span_set_state(mspan_t *s, span_state_t st) {
  __atomic_store_n(&s->state, (uint8_t)st, __ATOMIC_RELAXED);
}
// elemsize, likewise: a mark assist reads it in a span that the program
// may be freeing and another thread reusing (gc/gc.h, gc_object_bytes).
GORT_INLINE uint32_t span_elemsize(const mspan_t *s) { return __atomic_load_n(&s->elemsize, __ATOMIC_RELAXED); }
GORT_INLINE void span_set_elemsize(mspan_t *s, uint32_t v) { __atomic_store_n(&s->elemsize, v, __ATOMIC_RELAXED); }
GORT_INLINE uintptr_t span_npages(const mspan_t *s) { return __atomic_load_n(&s->npages, __ATOMIC_RELAXED); }
GORT_INLINE void span_set_npages(mspan_t *s, uintptr_t v) { __atomic_store_n(&s->npages, v, __ATOMIC_RELAXED); }

// The tags in a free block's second word (see the invariants).
extern uintptr_t gort__tag_key GORT_HIDDEN;
GORT_INLINE uintptr_t block_tag_freed(uintptr_t a) { return gort__tag_key ^ a; }
GORT_INLINE uintptr_t block_tag_fresh(uintptr_t a) { return (gort__tag_key ^ a) | 1; }

// A span (re)entering use holds no sample.
GORT_INLINE void span_clear_samples(mspan_t *s) {
  atomic_store_explicit(&s->nsampled, 0, memory_order_relaxed);
}

// Index of the element holding offset off, and whether off is its start.
GORT_INLINE uint32_t span_elem_index(const mspan_t *s, uintptr_t off) {
  return (uint32_t)(((uint64_t)off * s->divmul) >> 32);
}
// addr is the start of a block that has been carved (so may be live).
GORT_INLINE bool span_is_elem_start(const mspan_t *s, uintptr_t addr) {
  uintptr_t off = addr - s->base;
  uint32_t i = span_elem_index(s, off);
  return (uintptr_t)i * s->elemsize == off && i < __atomic_load_n(&s->fresh, __ATOMIC_RELAXED);
}

// How many never-used slots of s a carve takes: those that start before
// the next page boundary (at least one), so that a carve touches one page
// more, at most what is left.
GORT_INLINE uint32_t span_carve_count(const mspan_t *s) {
  uint32_t first = s->fresh;
  uintptr_t start = s->base + (uintptr_t)first * s->elemsize;
  uintptr_t page_end = GORT_ALIGN_UP(start + 1, (uintptr_t)4096);
  uint32_t n = (uint32_t)((page_end - start + s->elemsize - 1) / s->elemsize);
  return n > s->nelems - first ? s->nelems - first : n;
}

// Circular doubly linked lists with a sentinel. A zeroed head is an empty
// list too, made circular by its first push: the heads in static tables
// (the collector's 365 central lists) then need no pass at start-up, which
// wrote 6 pages in every process and made every fork copy them.
GORT_INLINE void span_list_init(span_link_t *l) { l->next = l->prev = l; }
GORT_INLINE bool span_list_empty(const span_link_t *l) { return l->next == l || l->next == NULL; }
// Where a walk of l starts (l itself when empty): for (x = begin; x != l; ...).
GORT_INLINE span_link_t *span_list_begin(span_link_t *l) { return l->next != NULL ? l->next : l; }
GORT_INLINE mspan_t *span_list_first(span_link_t *l) {
  return span_list_empty(l) ? NULL : (mspan_t *)l->next;
}
GORT_INLINE void span_list_push(span_link_t *l, mspan_t *s) {
  if (gort_unlikely(l->next == NULL)) span_list_init(l);
  s->link.next = l->next;
  s->link.prev = l;
  l->next->prev = &s->link;
  l->next = &s->link;
}
GORT_INLINE void span_list_push_back(span_link_t *l, mspan_t *s) {
  if (gort_unlikely(l->next == NULL)) span_list_init(l);
  s->link.prev = l->prev;
  s->link.next = l;
  l->prev->next = &s->link;
  l->prev = &s->link;
}
GORT_INLINE void span_list_remove(mspan_t *s) {
  s->link.prev->next = s->link.next;
  s->link.next->prev = s->link.prev;
  s->link.next = s->link.prev = NULL;
}

// Free-list links. In hardened mode (harden.c) a link is stored xor'd with
// a secret key and the block's own address, so that a forged or
// overwritten link decodes to garbage that the pop check rejects. Hardened
// mode never runs the fast paths' pops and pushes (malloc_fast.h), which
// use the raw field; every other site goes through these.
extern bool gort__harden GORT_HIDDEN;
extern uintptr_t gort__link_key GORT_HIDDEN;
GORT_INLINE block_t *block_next(const block_t *b) {
  uintptr_t v = (uintptr_t)b->next;
  if (gort_unlikely(gort__harden)) v ^= gort__link_key ^ (uintptr_t)b;
  return (block_t *)v;
}
GORT_INLINE void block_set_next(block_t *b, const block_t *next) {
  uintptr_t v = (uintptr_t)next;
  if (gort_unlikely(gort__harden)) v ^= gort__link_key ^ (uintptr_t)b;
  b->next = (block_t *)v;
}

// Counters that one thread writes and others read: relaxed atomics that
// compile to a plain add (no lock prefix), and that ThreadSanitizer accepts.
// (The thread caches' counters also give their lists' lengths, mcache.h:
// they cannot be compiled out.)
GORT_INLINE void counter_add(uint64_t *c, uint64_t v) {
  __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}
GORT_INLINE void counter_set(uint64_t *c, uint64_t v) { __atomic_store_n(c, v, __ATOMIC_RELAXED); }
GORT_INLINE uint64_t counter_read(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

// Validates a span's structure (debug builds call it at tier boundaries).
bool gort__mspan_is_valid(const mspan_t *s);

#endif  // GORT_ALLOC_MSPAN_H
