// The page heap (Go's mheap, TCMalloc's PageHeap).
//
// See malloc.c for the allocator overview. The page heap owns every 8 KiB
// page of every arena. It hands out runs of pages as spans to the central
// lists and thread caches (small spans) and to large objects, and takes
// them back, merging neighbouring free runs so that free memory stays in
// as few, as long runs as possible.
//
// Free runs are spans of state SPAN_FREE kept in:
//   exact[n]  for runs of n < 128 pages, LIFO (the last freed is the
//             warmest), with a 128-bit mask of non-empty lists so that the
//             first fit of at least n pages is one count-trailing-zeros;
//   large     for runs of 128 pages or more: best fit, lowest address on a
//             tie (TCMalloc's policy, which keeps fragmentation low), among
//             runs that start on memory the OS still backs before the
//             others (find_large).
// When nothing fits, the heap reserves more address space, with a hint
// just past its last reservation so that they are usually adjacent and
// free runs merge across them. A reservation is what the request needs,
// but at least as much as the heap has already (so reservations double and
// a growing heap makes few mmap calls), 4 MiB at first and at most one
// 64 MiB arena at a time. A small program thus reserves little, and runs
// under `ulimit -v` wherever glibc does (it reserved 64 MiB at its first
// malloc, and ls failed at 80000 KB); and when the OS refuses a
// reservation, one of just the request is tried. Arenas are the page
// map's fixed 64 MiB slots of address space: a reservation may fill part
// of one, or several.
//
// Each page also has a "released" bit (in its arena): the page's memory
// was given back to the OS with madvise (or never touched). Allocation
// clears the bits of the pages it hands out and counts them; the scavenger
// (scavenger.c) sets them. Which pages still hold old data decides whether
// a large calloc must zero its memory: never-touched pages and pages
// released with MADV_DONTNEED read as zero.
//
// Transparent huge pages are the system's business unless the program asks
// (GORT_DEBUG=hugepages=1): then reservations of 64 MiB and more ask for
// them until pages are first released from them ("Huge pages", below,
// has the trade-off measured).
//
// Invariants (all under heap.lock):
//   - Every page of every arena is in exactly one span (free or in use).
//   - No two free spans are adjacent: free merges with free neighbours.
//   - sum(free span pages) == free_pages; released_pages counts set bits.
//
// Zones (mheap.h): dirty-page tracking protects whole reservations (one
// system call each), and only the collector's spans that a mark scans and
// that have no barrier need it, so they get pages of their own: the tracked
// zone, whose reservations start 4 GiB below the main zone's (ZONE_BELOW)
// and whose arenas hold nothing else (a zone that outgrows the gap goes on
// growing down from its start: reserve). malloc's memory stays in the main
// zone, where a program that never collects finds the heap it always had.
// Each zone has its own free lists, hint and growth; a free run never
// merges across zones (coalesce_insert), and a reservation that lands in
// the other zone's arena is given back and tried elsewhere. The arena
// records its zone. The price: free pages of one zone never serve the
// other, so a program whose noscan data follows scanned data that died
// keeps both resident until the scavenger returns the idle ones (GCBench's
// peak RSS went from 34 to 38 MiB when noscan objects left the tracked
// pages: its 4 MB array of doubles no longer reuses the pages of the tree
// it built and dropped before).
//
// Rejected: Go 1.14+'s radix tree of page summaries. It makes finding
// free pages lock-light and scales to huge heaps, but costs far more code;
// our allocations of small spans come from thread caches and central lists
// and hit the page heap rarely, so one lock and O(1) lists suffice for now.

#include "mheap.h"

#include <errno.h>
#include <string.h>

#include "../base/lock.h"
#include "../base/noscan.h"
#include "../base/options.h"
#include "alloc_init.h"
#include "../base/persistent.h"
#include "../os/os.h"
#include "../base/vg.h"

#define NEXACT 128
// Inside the page map's window (pagemap.h), far from libc, the stacks and a
// non-PIE program's brk. The address's high 32 bits matter too: a
// conservative scan (the collector, the leak check) takes any word that
// falls in the heap for a pointer, and two 32-bit ints side by side make a
// word whose high half is the second int. At 256 GiB (high half 64, the
// base until 2026-11) every pair {x, 64} hit the heap, and glibc's own data
// has such pairs; at 0x5c3 << 32 (5.8 TiB, high half 1475) the second int
// must be 1475 to 1475 + (heap size >> 32) (1474 for the tracked zone,
// ZONE_BELOW lower). ThreadSanitizer's application memory ends at 512 GiB
// and it drops hints outside it, so its build keeps the old base.
#if defined(__SANITIZE_THREAD__)
#define ARENA_HINT_START ((uintptr_t)0x4000000000)
#else
#define ARENA_HINT_START ((uintptr_t)0x5c3 << 32)
#endif
#define GROW_FIRST ((uintptr_t)4 << 20)  // the first reservation
#define HUGE_PAGE ((uintptr_t)2 << 20)
#define HUGE_MIN_RESERVATION ((uintptr_t)64 << 20)
#define HUGE_MAX 1024  // ranges asking for huge pages at once: 64 GiB of heap at least
// Where the tracked zone starts, below the main zone's hint: a tracked
// zone of less than this never meets the main one. Close, since
// whatever spans the heap's whole range (the leak check's bitmaps, the
// marker's bounds test) pays for the gap: 64 GiB above cost the leak
// check 1.5 GiB of address space.
#define ZONE_BELOW ((uintptr_t)4 << 30)

// One zone's free runs and growth.
typedef struct {
  span_link_t exact[NEXACT];  // free runs by exact page count
  uint64_t exact_mask[2];     // bit n set: exact[n] is not empty
  span_link_t large;          // free runs of NEXACT pages or more
  uintptr_t hint;             // where to reserve next
  uintptr_t low;              // its lowest reservation's start (0: none yet)
  uint64_t sys_bytes;         // reserved for this zone
} zone_t;

arena_t *gort__arenas[GORT_ARENA_L1];

static struct {
  lock_t lock;                  // rank LOCK_HEAP; guards everything here
  lock_t release_lock;          // rank LOCK_RELEASE; held across one span's release
  zone_t zone[MHEAP_NZONES];
  fixalloc_t spanalloc;         // mspan_t structs
  uintptr_t max_pages;          // the largest run one request may take; set at init
  uintptr_t arena_lo, arena_hi; // bounds of every arena; written under lock, read racily
  bool inited;
  int release_dontneed;         // madvise mode; set once at init
  uint64_t free_pages, inuse_pages, released_pages, small_span_pages;
  uint64_t sys_bytes, arenas;
  uint64_t large_allocs, large_frees, large_alloc_bytes, large_free_bytes;
  uint64_t release_calls, release_failures;
  uint64_t meta_released_bytes;  // metadata pages returned to the OS (may be reused since)
  // Ranges that ask for transparent huge pages (see "Huge pages" below).
  uintptr_t huge_lo[HUGE_MAX], huge_hi[HUGE_MAX];
  uint32_t nhuge;
  uint64_t huge_bytes, huge_withdrawn, huge_withdraw_failures;
  uint32_t releasing;            // spans off the lists while release_lock's holder releases them
  _Atomic uint32_t release_waiters;  // allocations waiting for a release (gort__mheap_alloc_in)
  mheap_grow_hook_t grow_hook;   // set once at start-up
  mheap_recommit_hook_t recommit_hook;  // set once at start-up
  mheap_free_hook_t free_hook;   // set once at start-up
} heap = {.lock = LOCK_INIT, .release_lock = LOCK_INIT, .release_dontneed = 1};
// Its bounds and hints are heap addresses, and the first object of a zone
// lies at the zone's first address (base/noscan.h).
GORT_NOSCAN(heap)

// free_pages and released_pages are written under the lock and read
// without it by the scavenger's wake-up test: relaxed atomic stores
// (counter_set, mspan.h).

static void heap_init_locked(void) {
  for (int z = 0; z < MHEAP_NZONES; z++) {
    for (int i = 0; i < NEXACT; i++) span_list_init(&heap.zone[z].exact[i]);
    span_list_init(&heap.zone[z].large);
  }
  gort__fixalloc_init(&heap.spanalloc, sizeof(mspan_t));
  heap.zone[MHEAP_ZONE_MAIN].hint = ARENA_HINT_START;
  heap.zone[MHEAP_ZONE_TRACKED].hint = ARENA_HINT_START - ZONE_BELOW;
  // One request may take at most the machine's memory plus swap, as the
  // kernel's default overcommit heuristic lets one mapping (so glibc's
  // malloc) have. Above that a request can never be backed, and its page
  // map alone would cost 0.1% of it: 16 TiB once wrote metadata until the
  // OOM killer came. Such requests fail with ENOMEM, as under glibc.
  uint64_t mem = gort__os_memory_bytes();
  if (mem < ((uint64_t)1 << 30)) mem = (uint64_t)1 << 30;
  heap.max_pages = mem >= ((uint64_t)1 << GORT_ADDR_BITS) ? GORT_ARENA_L1 << 13
                                                           : (uintptr_t)(mem >> GORT_PAGE_SHIFT);
  heap.inited = true;
}

static void set_span(uintptr_t addr, mspan_t *s) {
  arena_t *a = arena_of(addr);
  __atomic_store_n(&a->spans[arena_page_index(addr)], s, __ATOMIC_RELAXED);
}

static uintptr_t span_end(const mspan_t *s) { return s->base + span_bytes(s); }

// ---- free lists ----------------------------------------------------------

static zone_t *zone_of(const mspan_t *s) { return &heap.zone[mheap_zone_of(s->base)]; }

static void free_list_insert(mspan_t *s) {
  zone_t *z = zone_of(s);
  s->where = WHERE_HEAP;
  if (s->npages < NEXACT) {
    span_list_push(&z->exact[s->npages], s);
    z->exact_mask[s->npages >> 6] |= 1ULL << (s->npages & 63);
  } else {
    span_list_push(&z->large, s);
  }
}

static void free_list_remove(mspan_t *s) {
  zone_t *z = zone_of(s);
  span_list_remove(s);
  s->where = WHERE_NONE;
  if (s->npages < NEXACT && span_list_empty(&z->exact[s->npages]))
    z->exact_mask[s->npages >> 6] &= ~(1ULL << (s->npages & 63));
}

static mspan_t *find_exact(zone_t *z, uintptr_t npages) {
  for (uintptr_t w = npages >> 6; w < 2; w++) {
    uint64_t m = z->exact_mask[w];
    if (w == npages >> 6) m &= ~0ULL << (npages & 63);
    if (m != 0) return span_list_first(&z->exact[w * 64 + (uintptr_t)__builtin_ctzll(m)]);
  }
  return NULL;
}

static bool page_released(uintptr_t addr);

// Best fit, lowest address on a tie, among the runs whose first page
// holds memory the program used and the OS still backs; among the others
// only if none fits. An allocation takes a run's first pages, and
// released (or never touched) pages cost a fault each and RSS the heap
// already had elsewhere: TCMalloc serves from its normal lists before its
// returned ones for the same reason. With best fit alone, GCBench (bench/gc)
// peaked at 38 MiB instead of 22 whenever its first cycle ran after the
// stretch tree had died: the tree's 16 MB, freed in one run, was larger
// than the never-touched rest of the last reservation, so every span came
// from the latter until it was all touched, while 2,000 free pages that
// had held the tree stayed resident and idle.
static mspan_t *find_large(zone_t *z, uintptr_t npages) {
  mspan_t *best = NULL;
  bool best_warm = false;
  for (span_link_t *l = span_list_begin(&z->large); l != &z->large; l = l->next) {
    mspan_t *s = (mspan_t *)l;
    if (s->npages < npages) continue;
    bool warm = !page_released(s->base);
    if (best == NULL || (warm && !best_warm) ||
        (warm == best_warm && (s->npages < best->npages || (s->npages == best->npages && s->base < best->base)))) {
      best = s;
      best_warm = warm;
    }
  }
  return best;
}

static mspan_t *find_free(zone_t *z, uintptr_t npages) {
  mspan_t *s = npages < NEXACT ? find_exact(z, npages) : NULL;
  return s != NULL ? s : find_large(z, npages);
}

// ---- released bits ---------------------------------------------------------

// A word of released bits covers 64 pages, several spans' worth: the
// release (gort__mheap_release) sets the bits of a span it took off the
// lists without the heap lock, while another thread, under the lock,
// clears those of a neighbouring span it allocates. So every change is an
// atomic read-modify-write of the word. (With plain ones, one of the two
// changes could be lost: ThreadSanitizer caught the race. A lost clear
// left an in-use page marked released; allocated again, it counted as
// zeroed by MADV_DONTNEED though it held old data.)
static bool page_released(uintptr_t addr) {
  arena_t *a = arena_of(addr);
  uintptr_t i = arena_page_index(addr);
  return (__atomic_load_n(&a->released[i >> 6], __ATOMIC_RELAXED) >> (i & 63)) & 1;
}

static void page_set_released(uintptr_t addr, bool on) {
  arena_t *a = arena_of(addr);
  uintptr_t i = arena_page_index(addr);
  if (on)
    __atomic_fetch_or(&a->released[i >> 6], 1ULL << (i & 63), __ATOMIC_RELAXED);
  else
    __atomic_fetch_and(&a->released[i >> 6], ~(1ULL << (i & 63)), __ATOMIC_RELAXED);
}

// ---- growth ------------------------------------------------------------------

static mspan_t *new_span_struct(uintptr_t base, uintptr_t npages, span_state_t state) {
  mspan_t *s = gort__fixalloc_alloc(&heap.spanalloc);
  if (s == NULL) return NULL;
  s->base = base;
  span_set_npages(s, npages);
  span_set_state(s, state);
  return s;
}

static void coalesce_insert(mspan_t *s);

// Where reservations are tried when a zone's hint is taken: all inside the page
// map's window, the first ones below 512 GiB (ThreadSanitizer's limit).
static const uintptr_t fallback_hints[] = {ARENA_HINT_START, (uintptr_t)1 << 37,
                                           (uintptr_t)1 << 40, (uintptr_t)1 << 41,
                                           (uintptr_t)1 << 42};

// Whether every arena slot [base, base + bytes) touches is unused or zone's.
static bool arenas_free_for(uintptr_t base, uintptr_t bytes, int zone) {
  for (uintptr_t i = base >> GORT_ARENA_SHIFT; i <= (base + bytes - 1) >> GORT_ARENA_SHIFT; i++)
    if (gort__arenas[i] != NULL && gort__arenas[i]->zone != zone) return false;
  return true;
}

// Reserves bytes of address space for zone inside the page map's window;
// 0 if the OS refused. Tried in order: the zone's hint (just past its last
// reservation); for the tracked zone, just below its lowest reservation,
// so that once it has grown up to the main zone it goes on growing down
// from where it began instead of jumping far away (which would widen the
// heap's bounds, and with them the marker's bounds test and the leak
// check's bitmaps, by terabytes); then the fallbacks (the tracked zone's
// ZONE_BELOW lower).
#define NFALLBACK (sizeof fallback_hints / sizeof fallback_hints[0])
static uintptr_t reserve(uintptr_t bytes, int zone) {
  zone_t *z = &heap.zone[zone];
  uintptr_t below = zone == MHEAP_ZONE_MAIN ? 0 : ZONE_BELOW, hints[2 + NFALLBACK];
  size_t n = 0;
  hints[n++] = z->hint;
  if (zone != MHEAP_ZONE_MAIN && z->low > bytes) hints[n++] = z->low - bytes;
  for (size_t i = 0; i < NFALLBACK; i++) hints[n++] = fallback_hints[i] - below;
  for (size_t i = 0; i < n; i++) {
    uintptr_t hint = hints[i];
    if (i > 0 && hint == hints[0]) continue;
    int err;
    uintptr_t base = (uintptr_t)gort__os_reserve(hint, bytes, GORT_RESERVE_ALIGN, &err);
    if (base == 0 && err == -ENOMEM) return 0;  // out of address space: no hint helps
    if (base == 0) continue;
    if (base + bytes > base && base + bytes <= ((uintptr_t)1 << GORT_ADDR_BITS) &&
        arenas_free_for(base, bytes, zone))
      return base;
    gort__os_unmap((void *)base, bytes);  // outside the page map, or in the other zone's arena
  }
  return 0;
}

// Gives every arena slot that [base, base + bytes) touches its arena_t;
// slots an earlier reservation touched have one. False if metadata memory
// ran out (the slots registered so far stay, empty: harmless).
static bool register_arenas(uintptr_t base, uintptr_t bytes, int zone) {
  for (uintptr_t i = base >> GORT_ARENA_SHIFT; i <= (base + bytes - 1) >> GORT_ARENA_SHIFT; i++) {
    if (gort__arenas[i] != NULL) continue;
    arena_t *a = gort__persistent_alloc(sizeof(arena_t), 4096);
    if (a == NULL) return false;
    a->base = i << GORT_ARENA_SHIFT;
    a->zone = (uint8_t)zone;
    memset(a->released, 0xff, sizeof a->released);  // never touched: not resident
    __atomic_store_n(&gort__arenas[i], a, __ATOMIC_RELEASE);
    heap.arenas++;
  }
  return true;
}

// The tracked zone's reservations, append-only (adjacent ones merged), for
// the collector's dirty-page tracking (gc/dirty.c), which must register
// every byte of them: written under the heap lock, read without it.
static struct {
  uintptr_t lo[GORT_MAX_RESERVATIONS], hi[GORT_MAX_RESERVATIONS];
  _Atomic uint32_t n;
} resv;
GORT_NOSCAN(resv)

static void add_reservation(uintptr_t base, uintptr_t bytes) {
  uint32_t n = atomic_load_explicit(&resv.n, memory_order_relaxed);
  if (n > 0 && resv.hi[n - 1] == base) {
    __atomic_store_n(&resv.hi[n - 1], base + bytes, __ATOMIC_RELEASE);
    return;
  }
  if (n == GORT_MAX_RESERVATIONS) gort__throw("heap: more than 8192 separate reservations");
  resv.lo[n] = base;
  resv.hi[n] = base + bytes;
  atomic_store_explicit(&resv.n, n + 1, memory_order_release);
}

uint32_t gort__mheap_nreservations(void) { return atomic_load_explicit(&resv.n, memory_order_acquire); }

void gort__mheap_reservation(uint32_t i, uintptr_t *lo, uintptr_t *hi) {
  *lo = resv.lo[i];
  *hi = __atomic_load_n(&resv.hi[i], __ATOMIC_ACQUIRE);
}

// Huge pages (GORT_DEBUG=hugepages=1; off by default). A reservation of
// HUGE_MIN_RESERVATION or more (a zone's once it holds as much, or one
// made for a single request that big) asks the kernel for transparent
// huge pages on its 2 MiB-aligned
// interior (MADV_HUGEPAGE; where the system's setting is `madvise`, the
// common default, nothing else gets them). A first touch then faults in
// 2 MiB at once instead of 4 KiB, and the TLB covers 512 times more heap.
// The price is where the fault goes: a 2 MiB fault zeroes 2 MiB, and a
// thread inside it cannot take the collector's stop signal until it is
// done, so a stop waits for it (about 0.1 ms on ordinary hardware; 3-4 ms
// on a VM whose host backs guest memory lazily). Measured on such a VM
// (bench/gc largeheap, a 1 GiB live cache, noscan values in the main
// zone; IMPLS="gort gort-huge", 3 runs, medians): 608,000 page faults fell
// to 105,000, CPU from 21.3 to 15.1 s (18.6 to 12.7 in a second set), and
// the longest stop rose from 0.78 to 2.60 ms (0.74 to 3.33). Hence opt-in: a program that wants throughput turns it on; the
// default keeps the stops short. (Populating fresh ranges in a blocking
// call would let the stop go on without the faulting thread, but the
// allocating thread may hold locks a stop needs; not done.)
// The scavenger is what makes huge pages dangerous to RSS: it releases
// free pages inside huge ones (the kernel splits them), and khugepaged,
// which scans advised ranges, collapses any 2 MiB range with a page still
// present back into a huge page, refilling what was released with zeros.
// So the first release of pages in an advised range (by the scavenger,
// gort_free_os_memory or the memory limit) withdraws the advice from the
// whole range (MADV_NOHUGEPAGE, so that khugepaged keeps off it; the
// huge pages already there stay until parts of them are released), and
// RSS goes on following the live heap. Advice and withdrawal are per
// reservation, never per release, so that the kernel's mappings do not
// split at every released run. Any release counts, a small span's too:
// in a program that frees as well as grows, the advice mostly serves the
// growth, which is where the faults were. (Where the system's setting is `always`,
// a withdrawn reservation gets fewer huge pages than it would without the
// option; that is the price of RSS that stays down.) Under the lock.
static void huge_advise(uintptr_t base, uintptr_t bytes) {
  if (!gort__opts.hugepages || bytes < HUGE_MIN_RESERVATION || heap.nhuge == HUGE_MAX) return;
  uintptr_t lo = GORT_ALIGN_UP(base, HUGE_PAGE), hi = GORT_ALIGN_DOWN(base + bytes, HUGE_PAGE);
  if (hi <= lo || gort__os_huge_pages((void *)lo, hi - lo, 1) != 0) return;
  heap.huge_lo[heap.nhuge] = lo;
  heap.huge_hi[heap.nhuge] = hi;
  heap.nhuge++;
  heap.huge_bytes += hi - lo;
}

// Takes off the table up to n advised ranges that [lo, hi) overlaps, into
// out; returns how many. Under the lock; the caller withdraws the advice
// after dropping it (the madvise takes the address space's lock for
// writing, which page faults elsewhere may hold for milliseconds).
static uint32_t huge_take(uintptr_t lo, uintptr_t hi, uintptr_t (*out)[2], uint32_t n) {
  uint32_t got = 0;
  for (uint32_t i = 0; i < heap.nhuge && got < n;) {
    if (heap.huge_lo[i] >= hi || lo >= heap.huge_hi[i]) {
      i++;
      continue;
    }
    out[got][0] = heap.huge_lo[i];
    out[got][1] = heap.huge_hi[i];
    got++;
    heap.huge_bytes -= heap.huge_hi[i] - heap.huge_lo[i];
    heap.huge_withdrawn++;
    heap.nhuge--;
    heap.huge_lo[i] = heap.huge_lo[heap.nhuge];
    heap.huge_hi[i] = heap.huge_hi[heap.nhuge];
  }
  return got;
}

// Withdraws the advice of every advised range that the pages about to be
// released, [lo, hi), overlap (a run of them, not the span's extent: a
// free span can reach from pages released into an advised range it
// releases nothing from). The heap lock not held.
// Returns the failures (counted; the range no longer asks in gort's
// table, but the kernel may still think it does).
static uint64_t huge_withdraw(uintptr_t lo, uintptr_t hi) {
  uint64_t failures = 0;
  for (;;) {
    uintptr_t r[16][2];
    lock(&heap.lock);
    uint32_t n = huge_take(lo, hi, r, 16);
    unlock(&heap.lock);
    for (uint32_t i = 0; i < n; i++)
      if (gort__os_huge_pages((void *)r[i][0], r[i][1] - r[i][0], 0) != 0) failures++;
    if (n < 16) return failures;
  }
}

// Reserves address space for at least npages pages of zone and adds it as
// one free span (see the file comment for how much).
static bool grow(uintptr_t npages, int zone) {
  zone_t *z = &heap.zone[zone];
  uintptr_t need = npages << GORT_PAGE_SHIFT;
  if (npages > (GORT_ARENA_L1 << 13)) return false;
  uintptr_t bytes = z->sys_bytes < GROW_FIRST ? GROW_FIRST : z->sys_bytes;
  if (bytes > GORT_ARENA_SIZE) bytes = GORT_ARENA_SIZE;
  if (bytes < need) bytes = need;
  bytes = GORT_ALIGN_UP(bytes, GORT_RESERVE_ALIGN);
  uintptr_t base = reserve(bytes, zone);
  if (base == 0 && bytes > need) base = reserve(bytes = GORT_ALIGN_UP(need, GORT_RESERVE_ALIGN), zone);
  if (base == 0) return false;
  if (!register_arenas(base, bytes, zone)) {
    gort__os_unmap((void *)base, bytes);
    return false;
  }
  // Under memcheck only blocks handed out are addressable, so that its
  // leak scan never reads stale free-list words in gort's free memory.
  VG_NOACCESS((void *)base, bytes);
  mspan_t *s = new_span_struct(base, bytes >> GORT_PAGE_SHIFT, SPAN_FREE);
  if (s == NULL) {
    gort__os_unmap((void *)base, bytes);  // the arenas stay registered and empty: harmless
    return false;
  }
  z->hint = base + bytes;
  if (z->low == 0 || base < z->low) z->low = base;
  z->sys_bytes += bytes;
  huge_advise(base, bytes);
  if (zone == MHEAP_ZONE_TRACKED) {
    add_reservation(base, bytes);
    if (gort__gc_hooks.heap_grew != NULL) gort__gc_hooks.heap_grew(base, bytes);
  }
  if (heap.arena_lo == 0 || base < heap.arena_lo) __atomic_store_n(&heap.arena_lo, base, __ATOMIC_RELAXED);
  if (base + bytes > heap.arena_hi) __atomic_store_n(&heap.arena_hi, base + bytes, __ATOMIC_RELAXED);
  __atomic_store_n(&heap.sys_bytes, heap.sys_bytes + bytes, __ATOMIC_RELAXED);  // read unlocked: resident_hint
  counter_set(&heap.free_pages, heap.free_pages + (s->npages));
  counter_set(&heap.released_pages, heap.released_pages + (s->npages));
  s->freed_ns = 0;  // never used: the scavenger has nothing to do here
  set_span(s->base, s);
  set_span(span_end(s) - GORT_PAGE_SIZE, s);
  coalesce_insert(s);
  return true;
}

// ---- allocation ----------------------------------------------------------

// Splits the first npages pages off free span s (not on a list); the rest
// goes back to the free lists. Returns false if no span struct was available.
static bool split_tail(mspan_t *s, uintptr_t npages) {
  if (s->npages == npages) return true;
  mspan_t *t = new_span_struct(s->base + (npages << GORT_PAGE_SHIFT), s->npages - npages, SPAN_FREE);
  if (t == NULL) return false;
  t->freed_ns = s->freed_ns;
  span_set_npages(s, npages);
  set_span(t->base, t);
  set_span(span_end(t) - GORT_PAGE_SIZE, t);
  free_list_insert(t);
  return true;
}

// Marks the pages of s in use: the page map points at owner (s, but for
// a run joining a grown span), released bits are cleared and counted, and
// s->needzero says whether old data may remain. Returns how many of its
// pages had been released (they are resident again once written:
// recommit_hook).
static uintptr_t mark_inuse_as(mspan_t *s, mspan_t *owner) {
  bool dirty = false;
  uintptr_t released = 0;
  for (uintptr_t p = s->base; p < span_end(s); p += GORT_PAGE_SIZE) {
    arena_t *a = arena_of(p);
    uintptr_t i = arena_page_index(p);
    bool rel = page_released(p);
    if (rel) {
      released++;
      page_set_released(p, false);
    }
    if (i < a->hwm && !(rel && heap.release_dontneed)) dirty = true;
    if (i >= a->hwm) a->hwm = (uint32_t)i + 1;
    __atomic_store_n(&a->spans[i], owner, __ATOMIC_RELAXED);
  }
  s->needzero = dirty;
  counter_set(&heap.released_pages, heap.released_pages - (released));
  counter_set(&heap.free_pages, heap.free_pages - (s->npages));
  heap.inuse_pages += s->npages;
  return released;
}

static uintptr_t mark_inuse(mspan_t *s) { return mark_inuse_as(s, s); }

// Pages that had been released are in use again: the resident bound grew
// without the heap growing, and the memory limit must see it (the
// scavenger's hook releases as much elsewhere if the bound is now past
// the limit). Without the heap lock.
static void recommitted(uintptr_t pages) {
  if (pages != 0 && heap.recommit_hook != NULL) heap.recommit_hook();
}

mspan_t *gort__mheap_alloc(uintptr_t npages, uintptr_t align_pages, span_state_t state) {
  return gort__mheap_alloc_in(npages, align_pages, state, MHEAP_ZONE_MAIN);
}

mspan_t *gort__mheap_alloc_in(uintptr_t npages, uintptr_t align_pages, span_state_t state, int zone) {
  uintptr_t need = npages + align_pages - 1;
  if (npages == 0 || npages > (GORT_ARENA_L1 << 13) || need < npages) {
    errno = ENOMEM;
    return NULL;
  }
  lock(&heap.lock);
  if (gort_unlikely(!heap.inited)) heap_init_locked();
  if (need > heap.max_pages) {
    unlock(&heap.lock);
    errno = ENOMEM;
    return NULL;
  }
  zone_t *z = &heap.zone[zone];
  mspan_t *s = find_free(z, need);
  if (s == NULL && heap.grow_hook != NULL) {
    // Growing: let the scavenger enforce the memory limit first, which may
    // return idle pages to the OS (they stay free and usable here).
    unlock(&heap.lock);
    heap.grow_hook((uint64_t)need << GORT_PAGE_SHIFT);
    lock(&heap.lock);
    s = find_free(z, need);
  }
  if (s == NULL && heap.releasing != 0) {
    // A release has free pages off the lists, the heap's largest run as
    // a rule: wait for it rather than grow. Growing reserved as much again
    // as the zone had (up to an arena) each time an allocation lost this
    // race, and the new run, merged into the big one, was the next
    // release's candidate: a program calling gort_free_os_memory every 50
    // ms while a thread allocated grew 35 MiB of address space a second
    // with 6 MiB in use, and its collector slowed 25-fold. release_lock is
    // held across each span's release, and taken before the heap's lock.
    // Counted only while it cannot be stopped: a waiter that parked for a
    // collection's stop between its count and the lock (at the heap lock's
    // release, a stop pending) held the releaser, in its no-stop region,
    // and so the stop (a reviewer's case: a collected allocation past the
    // memory limit releasing in its grow hook).
    nostop_enter();
    atomic_fetch_add(&heap.release_waiters, 1);
    unlock(&heap.lock);
    lock(&heap.release_lock);
    atomic_fetch_sub(&heap.release_waiters, 1);
    nostop_exit();
    lock(&heap.lock);
    unlock(&heap.release_lock);
    s = find_free(z, need);
  }
  if (s == NULL) {
    if (!grow(need, zone) || (s = find_free(z, need)) == NULL) {
      unlock(&heap.lock);
      errno = ENOMEM;
      return NULL;
    }
  }
  free_list_remove(s);
  uintptr_t align_bytes = align_pages << GORT_PAGE_SHIFT;
  uintptr_t start = GORT_ALIGN_UP(s->base, align_bytes);
  if (start != s->base) {
    // Give the unaligned head back as its own free run.
    uintptr_t head_pages = (start - s->base) >> GORT_PAGE_SHIFT;
    mspan_t *h = new_span_struct(s->base, head_pages, SPAN_FREE);
    if (h == NULL) {
      free_list_insert(s);
      unlock(&heap.lock);
      errno = ENOMEM;
      return NULL;
    }
    h->freed_ns = s->freed_ns;
    set_span(h->base, h);
    set_span(span_end(h) - GORT_PAGE_SIZE, h);
    free_list_insert(h);
    s->base = start;
    span_set_npages(s, s->npages - head_pages);
    set_span(s->base, s);
  }
  if (!split_tail(s, npages)) {
    free_list_insert(s);  // may sit next to h unmerged; harmless and rare
    unlock(&heap.lock);
    errno = ENOMEM;
    return NULL;
  }
  span_set_state(s, state);
  s->where = WHERE_NONE;
  uintptr_t reused = mark_inuse(s);
  if (state == SPAN_SMALL) {
    heap.small_span_pages += npages;
  } else {
    heap.large_allocs++;
    heap.large_alloc_bytes += span_bytes(s);
  }
  unlock(&heap.lock);
  recommitted(reused);
  return s;
}

// ---- free --------------------------------------------------------------------

// Merges free span s (pages mapped at its ends only, not on a list) with
// free neighbours and inserts the result.
static void coalesce_insert(mspan_t *s) {
  int zone = mheap_zone_of(s->base);
  mspan_t *l = span_of(s->base - GORT_PAGE_SIZE);  // NULL past an arena's edge
  if (l != NULL && span_state(l) == SPAN_FREE && mheap_zone_of(l->base) == zone) {
    free_list_remove(l);
    set_span(span_end(l) - GORT_PAGE_SIZE, NULL);  // boundaries become interior
    set_span(s->base, NULL);
    s->base = l->base;
    span_set_npages(s, s->npages + l->npages);
    if (l->freed_ns > s->freed_ns) s->freed_ns = l->freed_ns;
    span_set_state(l, SPAN_DEAD);
    gort__fixalloc_free(&heap.spanalloc, l);
  }
  mspan_t *r = span_of(span_end(s));
  if (r != NULL && span_state(r) == SPAN_FREE && mheap_zone_of(r->base) == zone) {
    free_list_remove(r);
    set_span(r->base, NULL);
    set_span(span_end(s) - GORT_PAGE_SIZE, NULL);
    span_set_npages(s, s->npages + r->npages);
    if (r->freed_ns > s->freed_ns) s->freed_ns = r->freed_ns;
    span_set_state(r, SPAN_DEAD);
    gort__fixalloc_free(&heap.spanalloc, r);
  }
  set_span(s->base, s);
  set_span(span_end(s) - GORT_PAGE_SIZE, s);
  free_list_insert(s);
}

static void free_locked(mspan_t *s) {
  if (s->state == SPAN_SMALL) {
    heap.small_span_pages -= s->npages;
    // Every kind: collected spans are made by gort__span_init_small too,
    // and a free page's info must read 0, or a large block made there
    // later, whose first page's info is set only outside hardened mode,
    // would read as a page of a small span (the heap profiler takes the
    // registry shard of a small block from it: obs/mprof.c).
    gort__span_pinfo_clear(s);
  } else if (s->state == SPAN_LARGE) {  // (a SPAN_CACHED one was counted freed when kept)
    heap.large_frees++;
    heap.large_free_bytes += span_bytes(s);
  }
  heap.inuse_pages -= s->npages;
  counter_set(&heap.free_pages, heap.free_pages + (s->npages));
  for (uintptr_t p = s->base + GORT_PAGE_SIZE; p + GORT_PAGE_SIZE < span_end(s); p += GORT_PAGE_SIZE)
    set_span(p, NULL);
  span_set_state(s, SPAN_FREE);
  s->sizeclass = 0;
  span_set_elemsize(s, 0);
  s->free = NULL;
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  atomic_store_explicit(&s->xfree, 0, memory_order_relaxed);
  s->freed_ns = gort__nanotime();
  coalesce_insert(s);
}

void gort__mheap_free(mspan_t *s) {
  lock(&heap.lock);
  gort_check(s->state == SPAN_SMALL || s->state == SPAN_LARGE || s->state == SPAN_CACHED,
             "mheap: free of a span not in use");
  free_locked(s);
  unlock(&heap.lock);
  if (heap.free_hook != NULL) heap.free_hook();
}

void gort__mheap_free_large(mspan_t *s, uintptr_t addr) {
  lock(&heap.lock);
  // Re-read under the lock: a concurrent double free loses here.
  if (span_of(addr) != s || s->state != SPAN_LARGE) {
    unlock(&heap.lock);
    gort__fatal("free(): double free or invalid pointer (large object)", (void *)addr);
  }
  if (s->base != addr) {
    unlock(&heap.lock);
    gort__fatal("free(): interior pointer (not the start of a block)", (void *)addr);
  }
  free_locked(s);
  unlock(&heap.lock);
  if (heap.free_hook != NULL) heap.free_hook();
}

bool gort__mheap_grow_in_place(mspan_t *s, uintptr_t npages) {
  if (npages <= s->npages) return true;
  uintptr_t extra = npages - s->npages;
  lock(&heap.lock);
  mspan_t *r = span_of(span_end(s));
  if (r == NULL || span_state(r) != SPAN_FREE || r->npages < extra ||
      mheap_zone_of(r->base) != mheap_zone_of(s->base)) {
    unlock(&heap.lock);
    return false;
  }
  free_list_remove(r);
  if (!split_tail(r, extra)) {
    free_list_insert(r);
    unlock(&heap.lock);
    return false;
  }
  // r now covers exactly the pages to take; make it part of s.
  // r's pages are counted in use and mapped to s. (They were mapped to a
  // copy of r on this stack until 2026-12-06, then to s: a marker that
  // read the page map meanwhile followed the pointer into a dead frame.)
  uint8_t old_needzero = s->needzero;
  uintptr_t reused = mark_inuse_as(r, s);
  span_set_npages(s, npages);
  s->needzero = old_needzero | r->needzero;
  heap.large_alloc_bytes += extra << GORT_PAGE_SHIFT;
  span_set_state(r, SPAN_DEAD);
  gort__fixalloc_free(&heap.spanalloc, r);
  unlock(&heap.lock);
  recommitted(reused);
  return true;
}

// ---- release to the OS ---------------------------------------------------------

void gort__mheap_arena_range(uintptr_t *lo, uintptr_t *hi) {
  *lo = __atomic_load_n(&heap.arena_lo, __ATOMIC_RELAXED);
  *hi = __atomic_load_n(&heap.arena_hi, __ATOMIC_RELAXED);
}

void gort__mheap_set_release_mode(int dontneed) { heap.release_dontneed = dontneed; }
void gort__mheap_set_grow_hook(mheap_grow_hook_t hook) { heap.grow_hook = hook; }
void gort__mheap_set_recommit_hook(mheap_recommit_hook_t hook) { heap.recommit_hook = hook; }
void gort__mheap_set_free_hook(mheap_free_hook_t hook) { heap.free_hook = hook; }

uint64_t gort__mheap_resident_hint(void) {
  // Racy by design, as below: the recommit hook's test, which must not take
  // the heap lock at every span allocation.
  uint64_t sys = __atomic_load_n(&heap.sys_bytes, __ATOMIC_RELAXED);
  uint64_t r = __atomic_load_n(&heap.released_pages, __ATOMIC_RELAXED) << GORT_PAGE_SHIFT;
  return sys > r ? sys - r : 0;
}

uint64_t gort__mheap_unreleased_free_bytes(void) {
  // Racy by design: a hint for the scavenger's wake-up test on the free path.
  uint64_t f = __atomic_load_n(&heap.free_pages, __ATOMIC_RELAXED);
  uint64_t r = __atomic_load_n(&heap.released_pages, __ATOMIC_RELAXED);
  return f > r ? (f - r) << GORT_PAGE_SHIFT : 0;
}

uint64_t gort__mheap_present_bound(void) {
  // Racy, as above: in-use spans' pages (touched or not) and free pages
  // not returned to the OS, both zones: never below what is present.
  return (__atomic_load_n(&heap.inuse_pages, __ATOMIC_RELAXED) << GORT_PAGE_SHIFT) +
         gort__mheap_unreleased_free_bytes();
}

// The unreleased pages of [lo, hi), counted up to cap: a word of the
// released bitmap (64 pages, never across an arena) at a time.
static uintptr_t unreleased_pages(uintptr_t lo, uintptr_t hi, uintptr_t cap) {
  uintptr_t n = 0;
  while (lo < hi && n < cap) {
    arena_t *a = arena_of(lo);
    uintptr_t i = arena_page_index(lo), left = (hi - lo) >> GORT_PAGE_SHIFT, k = 64 - (i & 63);
    if (k > left) k = left;
    uint64_t w = ~__atomic_load_n(&a->released[i >> 6], __ATOMIC_RELAXED) >> (i & 63);
    if (k < 64) w &= (1ULL << k) - 1;
    n += (uintptr_t)__builtin_popcountll(w);
    lo += k << GORT_PAGE_SHIFT;
  }
  return n;
}

// Picks a free span with unreleased pages idle for at least min_age_ns
// (any span if min_age_ns < 0), taking it off the free lists so that its
// pages can be released without the lock. Largest first: fewer madvise
// calls; for a release of everything, the span with the most unreleased
// pages, for a bounded one (bounded) the first span of the largest size
// that has any. The walk runs under the heap lock: counting each page of
// each free span it passed, and always to the end for the most, one
// bounded release of 1 MiB took 8.5 ms on a fragmented 3 GiB heap
// (bench/limitrelease.c: 40,000 free runs of 5 pages; medians of 3); now
// 1.9 ms, nearly all of it the madvise calls. Pages are counted a bitmap
// word at a time.
static mspan_t *take_release_candidate(int64_t min_age_ns, int64_t now, bool bounded) {
  mspan_t *best = NULL;
  uintptr_t best_unreleased = 0;
  // Lists are scanned from the largest runs down, each size in both zones.
  for (int i = NEXACT; i >= 1 && best == NULL; i--) {
    for (int zi = 0; zi < MHEAP_NZONES; zi++) {
      zone_t *z = &heap.zone[zi];
      span_link_t *list = i == NEXACT ? &z->large : &z->exact[i];
      for (span_link_t *l = span_list_begin(list); l != list; l = l->next) {
        mspan_t *s = (mspan_t *)l;
        if (min_age_ns >= 0 && (s->freed_ns == 0 || now - s->freed_ns < min_age_ns)) continue;
        uintptr_t unreleased = unreleased_pages(s->base, span_end(s), bounded ? 1 : UINTPTR_MAX);
        if (unreleased > best_unreleased) {
          best = s;
          best_unreleased = unreleased;
          if (bounded) goto take;
        }
      }
    }
  }
take:
  if (best != NULL) {
    free_list_remove(best);
    span_set_state(best, SPAN_RELEASING);  // neighbours must not merge with it meanwhile
    heap.releasing++;
  }
  return best;
}

// Returns the pages of [lo, hi) inside [base, base + len) to the OS; false
// if there were none or the OS refused.
static uint64_t release_inner(uintptr_t base, uintptr_t len, uintptr_t lo, uintptr_t hi) {
  lo = GORT_ALIGN_UP(lo < base ? base : lo, (uintptr_t)4096);
  hi = GORT_ALIGN_DOWN(hi > base + len ? base + len : hi, (uintptr_t)4096);
  if (lo >= hi || gort__os_release((void *)lo, hi - lo, heap.release_dontneed) != 0) return 0;
  return hi - lo;
}

// The metadata of released pages [run, end) of free span s: the live,
// mark and remote bits of those pages (all clear: nothing in them is handed out or
// marked; sweep clears a span's mark bits before it frees it) and the page
// map entries of s's interior pages (all NULL: pagemap.h). Whole metadata
// pages only; they read as zero when next used. s is off the lists, so
// nothing writes either meanwhile.
static uint64_t release_meta(const mspan_t *s, uintptr_t run, uintptr_t end) {
  uint64_t bytes = 0;
  uintptr_t in_lo = s->base + GORT_PAGE_SIZE, in_hi = span_end(s) - GORT_PAGE_SIZE;
  for (uintptr_t a0 = run; a0 < end;) {
    arena_t *a = arena_of(a0);
    uintptr_t a1 = GORT_ALIGN_DOWN(a0, GORT_ARENA_SIZE) + GORT_ARENA_SIZE;
    if (a1 > end) a1 = end;
    uintptr_t off0 = a0 - a->base, off1 = a1 - a->base;
    // Two bits (live, mark) per 16 bytes: a byte of bitmap per 64 bytes.
    bytes += release_inner((uintptr_t)a->bits, sizeof a->bits, (uintptr_t)a->bits + (off0 >> 6),
                           (uintptr_t)a->bits + (off1 >> 6));
    // And the remote bits (clear too: the span left use with none set).
    bytes += release_inner((uintptr_t)a->xbits, sizeof a->xbits, (uintptr_t)a->xbits + (off0 >> 7),
                           (uintptr_t)a->xbits + (off1 >> 7));
    uintptr_t m0 = a0 > in_lo ? a0 : in_lo, m1 = a1 < in_hi ? a1 : in_hi;
    if (m0 < m1)
      bytes += release_inner((uintptr_t)a->spans, sizeof a->spans,
                             (uintptr_t)&a->spans[(m0 - a->base) >> GORT_PAGE_SHIFT],
                             (uintptr_t)&a->spans[(m1 - a->base) >> GORT_PAGE_SHIFT]);
    a0 = a1;
  }
  return bytes;
}

uint64_t gort__mheap_release(uint64_t max_bytes, int64_t min_age_ns) {
  uint64_t released = 0;
  bool bounded = max_bytes != UINT64_MAX;
  int64_t now = gort__nanotime();
  // The release lock keeps a span off the lists only while it is held, so
  // that fork (which takes it) never copies a span in mid-release.
  lock(&heap.release_lock);
  lock(&heap.lock);
  if (!heap.inited) heap_init_locked();
  while (released < max_bytes) {
    // The pages this release still wants (all, unbounded).
    uint64_t left = max_bytes - released;
    uintptr_t want = !bounded ? UINTPTR_MAX
                              : (uintptr_t)((left >> GORT_PAGE_SHIFT) + ((left & (GORT_PAGE_SIZE - 1)) != 0));
    mspan_t *s = take_release_candidate(min_age_ns, now, bounded);
    if (s == NULL) break;
    bool withdraw = heap.nhuge != 0;
    unlock(&heap.lock);
    uint64_t huge_failures = 0;
    // Release maximal runs of unreleased pages, from the span's top down,
    // and no more pages than the release still wants: an allocation takes
    // a free span's first pages (split_tail), so its last ones are those
    // idle longest. The span is off the lists, so nothing allocates these
    // pages while we work without the lock; the released bits are ours to
    // read until we put the span back.
    uintptr_t top = 0, calls = 0, failures = 0, done = 0, meta = 0;
    for (uintptr_t p = span_end(s); done < want; p -= GORT_PAGE_SIZE) {
      // [p - page, p) is the page below p; at the base, the run ends.
      bool rel = p == s->base || page_released(p - GORT_PAGE_SIZE);
      uintptr_t lo = p;
      if (!rel) {
        if (top == 0) top = p;
        lo = p - GORT_PAGE_SIZE;
        if (((top - lo) >> GORT_PAGE_SHIFT) < want - done) continue;  // the run is enough: release it now
      }
      if (top != 0) {
        calls++;
        if (withdraw) huge_failures += huge_withdraw(lo, top);
        if (gort__os_release((void *)lo, top - lo, heap.release_dontneed) == 0) {
          for (uintptr_t q = lo; q < top; q += GORT_PAGE_SIZE) page_set_released(q, true);
          done += (top - lo) >> GORT_PAGE_SHIFT;
          meta += release_meta(s, lo, top);
        } else {
          failures++;  // counted, and tried again on a later cycle
          break;
        }
        top = 0;
      }
      if (lo == s->base) break;  // (at the base, lo is p)
    }
    lock(&heap.lock);
    counter_set(&heap.released_pages, heap.released_pages + (done));
    heap.meta_released_bytes += meta;
    heap.release_calls += calls;
    heap.release_failures += failures;
    heap.huge_withdraw_failures += huge_failures;
    released += done << GORT_PAGE_SHIFT;
    span_set_state(s, SPAN_FREE);
    heap.releasing--;
    coalesce_insert(s);
    if (failures != 0) break;
    // Let a fork or another releaser in between spans, and an allocation
    // that waits for this release: the locks barge, and the waiter would
    // otherwise wait for every span of a release of everything. Bounded:
    // a waiter descheduled for long waits for the next span instead.
    unlock(&heap.lock);
    unlock(&heap.release_lock);
    for (int i = 0; i < 1000 && atomic_load(&heap.release_waiters) != 0; i++) gort__os_yield();
    lock(&heap.release_lock);
    lock(&heap.lock);
  }
  // A release of everything (the explicit call) also returns the pages of
  // span structs that coalescing left unused: 40,000 spans described 1 GiB
  // of small blocks. Not a release the memory limit bounds.
  if (min_age_ns < 0 && !bounded)
    heap.meta_released_bytes += gort__fixalloc_release(&heap.spanalloc, heap.release_dontneed);
  unlock(&heap.lock);
  unlock(&heap.release_lock);
  return released;
}

// ---- stats, validation, fork ------------------------------------------------------

void gort__mheap_read_stats(heap_stats_t *out) {
  lock(&heap.lock);
  out->sys_bytes = heap.sys_bytes;
  out->inuse_bytes = heap.inuse_pages << GORT_PAGE_SHIFT;
  out->free_bytes = heap.free_pages << GORT_PAGE_SHIFT;
  out->released_bytes = heap.released_pages << GORT_PAGE_SHIFT;
  out->large_allocs = heap.large_allocs;
  out->large_frees = heap.large_frees;
  out->large_alloc_bytes = heap.large_alloc_bytes;
  out->large_free_bytes = heap.large_free_bytes;
  out->small_span_pages = heap.small_span_pages;
  out->release_calls = heap.release_calls;
  out->release_failures = heap.release_failures;
  out->huge_bytes = heap.huge_bytes;
  out->huge_withdrawn = heap.huge_withdrawn;
  out->huge_withdraw_failures = heap.huge_withdraw_failures;
  out->arenas = heap.arenas;
  out->span_structs = heap.spanalloc.inuse;
  out->span_structs_sys = heap.spanalloc.sys;
  unlock(&heap.lock);
}

static bool check_free_span(const mspan_t *s, uint64_t *pages, uint64_t *released) {
  if (span_state(s) != SPAN_FREE || s->where != WHERE_HEAP) return false;
  if (span_of(s->base) != s || span_of(span_end(s) - GORT_PAGE_SIZE) != s) return false;
  for (uintptr_t p = s->base + GORT_PAGE_SIZE; p + GORT_PAGE_SIZE < span_end(s); p += GORT_PAGE_SIZE)
    if (span_of(p) != NULL) return false;
  // No free neighbour may remain unmerged.
  if (arena_of(span_end(s)) != NULL) {
    mspan_t *r = span_of(span_end(s));
    if (r != NULL && span_state(r) == SPAN_FREE && mheap_zone_of(r->base) == mheap_zone_of(s->base))
      return false;
  }
  *released += s->npages - unreleased_pages(s->base, span_end(s), UINTPTR_MAX);
  *pages += s->npages;
  return true;
}

bool gort__mheap_is_valid(void) {
  lock(&heap.lock);
  bool ok = true;
  uint64_t pages = 0, released = 0;
  for (int zi = 0; heap.inited && zi < MHEAP_NZONES; zi++) {
    zone_t *z = &heap.zone[zi];
    for (int i = 0; i <= NEXACT && ok; i++) {
      span_link_t *list = i == NEXACT ? &z->large : &z->exact[i];
      bool nonempty = !span_list_empty(list);
      if (i > 0 && i < NEXACT && nonempty != (bool)((z->exact_mask[i >> 6] >> (i & 63)) & 1))
        ok = false;
      for (span_link_t *l = span_list_begin(list); l != list && ok; l = l->next) {
        mspan_t *s = (mspan_t *)l;
        if (i < NEXACT ? s->npages != (uintptr_t)i : s->npages < NEXACT) ok = false;
        if (mheap_zone_of(s->base) != zi) ok = false;
        if (!check_free_span(s, &pages, &released)) ok = false;
      }
    }
  }
  if (ok && (pages != heap.free_pages || released != heap.released_pages)) ok = false;
  if (ok && (heap.free_pages + heap.inuse_pages) << GORT_PAGE_SHIFT != heap.sys_bytes) ok = false;
  unlock(&heap.lock);
  return ok;
}

void gort__mheap_lock_for_fork(void) {
  lock(&heap.release_lock);
  lock(&heap.lock);
}

void gort__mheap_unlock_after_fork(int child) {
  if (child) {
    // Allocations queued on release_lock at the fork are threads the child
    // does not have: a count left at 1 made its every release yield for
    // ever (found by a reviewer's fork during a release).
    atomic_store(&heap.release_waiters, 0);
    lock_reinit(&heap.lock);
    lock_reinit(&heap.release_lock);
  } else {
    unlock(&heap.lock);
    unlock(&heap.release_lock);
  }
}
