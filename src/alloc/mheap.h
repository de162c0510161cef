// The page heap (Go's mheap). See mheap.c.

#ifndef GORT_ALLOC_MHEAP_H
#define GORT_ALLOC_MHEAP_H

#include "pagemap.h"

typedef struct {
  uint64_t sys_bytes;        // arena address space reserved (HeapSys)
  uint64_t inuse_bytes;      // pages in in-use spans (HeapInuse)
  uint64_t free_bytes;       // pages in free spans, released or not (HeapIdle)
  uint64_t released_bytes;   // free pages returned to the OS (HeapReleased)
  uint64_t large_allocs, large_frees;          // objects > 32 KiB
  uint64_t large_alloc_bytes, large_free_bytes;
  uint64_t small_span_pages;                   // pages in small spans
  uint64_t release_calls, release_failures;    // madvise calls and failures
  uint64_t arenas;
  uint64_t span_structs, span_structs_sys;     // mspan_t metadata
  uint64_t huge_bytes;       // heap now asking for transparent huge pages (GORT_DEBUG=hugepages)
  uint64_t huge_withdrawn;   // ranges whose advice a release withdrew
  uint64_t huge_withdraw_failures;  // of those, the ones the kernel refused (MADV_NOHUGEPAGE)
} heap_stats_t;

// Allocates npages pages whose first page is aligned to align_pages pages
// (a power of two; 1 for none) as a span of the given state. Returns NULL,
// with errno ENOMEM, when the OS refuses memory. Takes the heap lock.
mspan_t *gort__mheap_alloc(uintptr_t npages, uintptr_t align_pages, span_state_t state);

// Zones: the heap's pages in two sets of arenas that never share an arena
// or a free run. The tracked zone holds only the collector's spans whose
// writes a concurrent mark must see (gc/malloc_gc.c: conservatively
// scanned, typed, uncollectable); its reservations are listed below for
// dirty-page tracking. The main zone holds everything else: malloc's
// spans, and collected objects that are never scanned or have a barrier.
enum { MHEAP_ZONE_MAIN = 0, MHEAP_ZONE_TRACKED = 1, MHEAP_NZONES = 2 };
mspan_t *gort__mheap_alloc_in(uintptr_t npages, uintptr_t align_pages, span_state_t state, int zone);
GORT_INLINE int mheap_zone_of(uintptr_t addr) { return arena_of(addr)->zone; }
// Returns an in-use span's pages to the heap (coalescing); s is recycled.
void gort__mheap_free(mspan_t *s);
// Grows a large span to npages by taking the free pages right after it.
// Returns false (s unchanged) if they are not free.
bool gort__mheap_grow_in_place(mspan_t *s, uintptr_t npages);
// Checks under the heap lock that s is an in-use large span starting at
// addr, then frees it; fatal (double free / bad pointer) otherwise.
void gort__mheap_free_large(mspan_t *s, uintptr_t addr);

// Returns free pages to the OS, up to max_bytes (a page more at most):
// those of any free span if min_age_ns < 0, otherwise of free spans idle
// for at least min_age_ns; the top pages of the spans with the most first.
// Returns the bytes released. Does not hold the heap lock across madvise.
uint64_t gort__mheap_release(uint64_t max_bytes, int64_t min_age_ns);
void gort__mheap_set_release_mode(int dontneed);
// The lowest and highest address of any arena (both 0 before the first);
// a hint read without the lock: the collector's quick "not the heap" test.
void gort__mheap_arena_range(uintptr_t *lo, uintptr_t *hi);
// Free bytes not yet released: what the scavenger could return now.
uint64_t gort__mheap_unreleased_free_bytes(void);
// HeapSys - HeapReleased without the heap lock: a hint.
uint64_t gort__mheap_resident_hint(void);
// An upper bound of the heap's pages present in memory, in bytes, without
// the heap lock: in-use spans' pages and free pages not released.
uint64_t gort__mheap_present_bound(void);
// Heap-growth hook: called (without the heap lock) before the heap grows
// by bytes; the scavenger uses it to enforce the memory limit.
typedef void (*mheap_grow_hook_t)(uint64_t bytes);
void gort__mheap_set_grow_hook(mheap_grow_hook_t hook);
// Recommit hook: called (without the heap lock) after an allocation took
// pages that had been released to the OS.
typedef void (*mheap_recommit_hook_t)(void);
void gort__mheap_set_recommit_hook(mheap_recommit_hook_t hook);
// Free hook: called (without the heap lock) after pages became free.
typedef void (*mheap_free_hook_t)(void);
void gort__mheap_set_free_hook(mheap_free_hook_t hook);

void gort__mheap_read_stats(heap_stats_t *out);
bool gort__mheap_is_valid(void);  // walks every free list (debug, tests)
void gort__mheap_lock_for_fork(void);
void gort__mheap_unlock_after_fork(int child);

// The tracked zone's reservations of address space (adjacent ones merged;
// the count only grows, and the last one may grow): for dirty-page
// tracking.
// Each starts and ends on a multiple of GORT_RESERVE_ALIGN, so that the
// mprotect tracker's granules (gc/dirty_mprotect.c) are all heap or none.
#define GORT_RESERVE_ALIGN ((uintptr_t)64 << 10)
#define GORT_MAX_RESERVATIONS 8192
uint32_t gort__mheap_nreservations(void);
void gort__mheap_reservation(uint32_t i, uintptr_t *lo, uintptr_t *hi);

#endif  // GORT_ALLOC_MHEAP_H
