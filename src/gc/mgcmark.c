// Marking: roots, the gray queue, parallel mark workers (Go: mgcmark.go,
// mgcwork.go; bdwgc: mark.c, mark_rts.c).
//
// See mgc.c for the collector's design. Marking is tri-color: an object is
// white until its mark bit is set, gray while it is marked and queued, and
// black once scanned. The queue is explicit, never recursion: each worker
// keeps a work buffer (510 object addresses in a 4 KiB page) and trades
// full ones through a global list, where idle workers take them (work
// stealing at the granularity of a buffer). Buffers come from persistent
// memory and are reused every cycle, so the queue's memory is bounded by
// the largest queue ever seen. A worker, and a mark assist, scans each
// object sixteen pops after it prefetched the object's first line
// (inflight_t), and marks each word it reads eight words after it
// prefetched the word's page-map entry and mark bits ("Candidates"):
// marking is a walk of cache misses, and a few in flight overlap them.
// Small objects are queued with their size, and scanned without looking
// up their span again ("Scanning without the span").
//
// If no buffer can be had (the OS refuses memory mid-cycle), the object is
// still marked but not queued, and the cycle remembers the overflow. After
// the queue drains it walks every marked object of the scanned kinds and
// scans it again (re-scanning a black object only re-finds marked
// objects), queueing what it finds, until a pass ends without overflow:
// no reachable object is lost, at the price of time (bdwgc's mark stack
// overflow handling).
//
// Conservative scanning: a word keeps an object alive if its value is an
// address inside the object (interior pointers included), resolved in
// three steps: the arena bounds (a compare), the page map (two loads), the
// span's element index (a multiply by the reciprocal). Words that point
// into free slots (live bit clear), free pages, malloc'd (manual) spans or
// past the span's last element are ignored. Noscan objects are marked and
// never queued; typed objects are scanned only at the words their layout
// names.
//
// Roots, all scanned by the collecting thread before the workers start:
// every registered thread's stack and static TLS (stw.c), the saved stack
// of every goroutine that is not on a thread and every live goroutine's
// argument (sched/stack.c), the writable
// segments of every loaded object (dl_iterate_phdr, read just before the
// stop and checked again from inside the walk that stops the world:
// gort__gc_stop_the_world), registered
// ranges, every live uncollectable object, and the queue of finalizers not
// yet run (finalizer.c). No pointer need reach an uncollectable object, so
// the roots' scan sets its mark bit itself and counts its bytes as marked:
// it survives every cycle, and the live count must hold it (mgc.c).
//
// The marked bytes: each object is counted by whoever sets its mark bit
// (an atomic OR when others mark beside it), once per cycle. An object
// allocated black, or freed by gort_free, has its bit set already and is
// not counted here (mgc.c, "The live count", says where it is).
//
// The price of atomic marks. While the program runs beside the mark, a
// mark bit is set with a locked instruction (the program's allocations,
// barriers and frees set bits in the same words, and a plain
// read-modify-write could drop theirs: a live object freed). On our VMs a
// locked bit set costs 4.5 ns more than a plain store even on a hot line,
// and it waits for the line where a store would not: in GCBench with
// barriered objects (bench/gc, gort-wb) it held 55% of mark_value's
// samples, and the whole run took 0.74 s of CPU against 0.68 with plain
// sets (measured unsafely, 5 interleaved runs; 2026-12-02). Tried and
// dropped (2026-12-03): a byte per 16-byte granule in an array of its own
// (bdwgc's parallel mode), set with plain stores. With the world stopped
// and two workers, binary-trees' longest stop fell 10% (8.5-8.9 -> 7.8
// ms) and mark_value's samples by 30%, but the byte is a second line to
// miss beside the live bit, which the interleaved words share, so the
// mark as a whole gained little: GCBench's stops were within noise, and
// the 1 GiB cache (gcdirty=none, 2 runs each) took 6% more CPU (13.1 ->
// 13.9 s, the sweep reading 64 bytes per KiB) and 118 MiB more RSS (2233
// -> 2351; a byte per 16 is 1/16 of the heap). A byte per object, in the
// span as Go's gcmarkBits, would cost a 512 B object one byte, not 32;
// it needs the sweep to walk objects rather than bitmap words. Another
// lead, not built: one locked OR per word for the objects of one scan
// that share it.
//
// Mark workers: one per usable CPU beside the collecting thread (at most
// 7), gort's own threads that sleep on a futex between cycles, used when
// the last cycle found at least 4 MiB live (PARALLEL_MIN says why). Each
// joins a drain when it wakes, if the drain is not over by then: a stop
// never waits for a helper to wake ("Joining a drain").

#define _GNU_SOURCE
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "../alloc/mheap.h"
#include "../base/noscan.h"
#include "../base/options.h"
#include "../base/persistent.h"
#include "../base/vg.h"
#include "../os/os.h"
#include "../sched/sched.h"
#include "gc.h"
#include "gort/gc.h"
#include "tiny.h"

#define WB_N 510

typedef struct workbuf {
  struct workbuf *next;
  uint64_t n;
  uintptr_t obj[WB_N];
} workbuf_t;

#define CAND_DEPTH 8  // see "Candidates"

typedef struct {
  workbuf_t *cur;
  uint64_t bytes, objects;
  uint64_t scan_bytes;  // of them, the bytes of objects queued to be scanned
  // The words a drain found and will mark CAND_DEPTH words later
  // ("Candidates"); empty outside drain_queue and an assist's loop.
  uint32_t cn, cat;
  bool rescanning;  // in rescan_run_x: the words' objects are mostly marked already (mark_value)
  uintptr_t cand[CAND_DEPTH];
  // The collecting thread's drains and rescans beside the program give
  // way (gort__gc_give_way) at this time; 0 in stops, helpers and assists.
  int64_t give_way;
  bool guest;  // a program thread parked for the stop ("Guests"): yields when idle, never sleeps
  // Each worker's own lines: mark_value writes bytes and objects for
  // every object it marks, and with two 32-byte workers in one line the
  // two cores took that line from each other at every mark (parallel
  // marking ran at half the speed of one worker; see PARALLEL_MIN). 128,
  // not 64: the CPU fetches lines in adjacent pairs.
} __attribute__((aligned(128))) worker_t;

#define MAX_WORKERS 8

// The final stop's work is the last written pages and what they reach,
// not the live heap, so it keeps the old 64 MiB: on GCBench (8-16 MiB
// live) the whole stop takes about 0.3 ms, and helpers there were not
// measured.
#define FINISH_PARALLEL_MIN (64ULL << 20)

static struct {
  lock_t lock;       // rank LOCK_CENTRAL; guards full, empty
  workbuf_t *full;   // buffers waiting to be scanned
  workbuf_t *empty;  // spare buffers
  _Atomic uint64_t team;  // who is in the drain: see "Joining a drain"
  _Atomic uint32_t gen;  // bumped when idle workers should look again
  _Atomic bool overflow;
  uintptr_t lo, hi;  // arena bounds, set per cycle
  worker_t workers[MAX_WORKERS];
  int nworkers;      // including the collecting thread
  bool parallel;     // this cycle's drains use the helpers
  bool atomic;       // marks are atomic ORs (helpers, or the program runs beside the mark)
  _Atomic uint64_t assist_bytes;  // marked by assists (mgc.c's pacer)
  _Atomic uint64_t assist_scan_bytes;  // of them, queued to be scanned
  uint64_t scan_bytes_last;  // the last mark's scan_bytes (gort__gc_mark_scan_bytes)
  _Atomic int assists;            // assists holding a buffer now
  _Atomic bool hungry;            // an assist found the queue empty: the worker shares
  _Atomic uint32_t start;  // bumped to start the helpers
  _Atomic bool guest_armed;     // this stop's drain takes guests ("Guests")
  _Atomic int guests_left;      // guest places not yet claimed (may go below 0)
  int guests_max;               // the places the arm made
  _Atomic uint64_t guest_epoch; // the team's epoch at the arm: guests join a later one
  _Atomic int guests_in;        // guests between their claim and their leaving
  _Atomic uint64_t guests_joined;  // drains guests joined, ever (gctrace=2, tests)
  _Atomic uint64_t guests_came;    // places guests claimed, ever (tests)
  _Atomic bool rescan_first;  // this drain's workers first take rescan pieces (the final stop)
  _Atomic bool wb_flush;      // barriers hand their buffers over at once (barrier.c)
  bool helpers_started;
  bool defer;        // this cycle's drains defer their words ("Candidates")
} mark = {.lock = LOCK_INIT};
GORT_NOSCAN(mark)  // lo is the heap's first address: base/noscan.h

// ---- the queue ---------------------------------------------------------------------

// Joining a drain. mark.team packs the drain's epoch, whether it is
// closed to newcomers, its members and how many of them are idle. The
// collecting thread opens a drain (a new epoch, itself its one member) and
// wakes the helpers; a helper joins when it runs, unless the drain is
// closed by then, and a drain is over when every member is idle and no
// work is queued. The collecting thread then closes it and marks it done:
// no member may leave idle after that, so work queued later (the
// program's assists, the next drain) is never taken by a member of a
// drain that ended. So the drain waits only for helpers that are working:
// it used to count every helper in from the start and wait until each
// had woken, found nothing left and gone idle. On a VM a sleeping
// helper's CPU halts, and the host took milliseconds to run it again: the
// 1 GiB cache under a memory limit had final stops whose drain of a few
// pages took 10-19 ms (gctrace=2's "drain" part), waiting for a helper to
// wake. A member changes the word only while its epoch is current (a
// compare-and-swap), so a helper that wakes late in a drain long over
// touches neither that drain's count nor the next one's queue.
#define TEAM_IDLE 1ULL
#define TEAM_MEMBER (1ULL << 16)
#define TEAM_DONE (1ULL << 62)    // over: no member leaves idle
#define TEAM_CLOSED (1ULL << 63)  // no helper joins
#define TEAM_EPOCHS 0x3fffffffULL
static uint32_t team_idle(uint64_t s) { return (uint32_t)(s & 0xffff); }
static uint32_t team_members(uint64_t s) { return (uint32_t)((s >> 16) & 0xffff); }
static uint64_t team_epoch(uint64_t s) { return (s >> 32) & TEAM_EPOCHS; }
static bool team_over(uint64_t s) { return team_idle(s) == team_members(s); }

// Adds d to the word, if the drain of epoch ep is still the current one
// and not done.
static bool team_add(uint64_t ep, uint64_t d, uint64_t *now) {
  uint64_t s = atomic_load(&mark.team);
  do {
    if (team_epoch(s) != ep || (s & TEAM_DONE)) return false;
  } while (!atomic_compare_exchange_weak(&mark.team, &s, s + d));
  *now = s + d;
  return true;
}

// Opens the next drain with the calling thread as its one member; closed
// to helpers unless open.
static uint64_t team_open(bool open) {
  uint64_t ep = (team_epoch(atomic_load(&mark.team)) + 1) & TEAM_EPOCHS;
  atomic_store(&mark.team, (ep << 32) | TEAM_MEMBER | (open ? 0 : TEAM_CLOSED));
  return ep;
}

// Joins the drain of epoch ep, if it is still open.
static bool team_join(uint64_t ep) {
  uint64_t s = atomic_load(&mark.team);
  do {
    if (team_epoch(s) != ep || (s & (TEAM_CLOSED | TEAM_DONE))) return false;
  } while (!atomic_compare_exchange_weak(&mark.team, &s, s + TEAM_MEMBER));
  return true;
}

// Wakes idle workers: there is work, or the drain is over.
static void wake_idle(void) {
  atomic_fetch_add(&mark.gen, 1);
  gort__os_futex_wake(&mark.gen, INT32_MAX);
}

static void put_full(workbuf_t *b) {
  lock(&mark.lock);
  b->next = mark.full;
  __atomic_store_n(&mark.full, b, __ATOMIC_RELEASE);  // idle workers and assists peek without the lock
  unlock(&mark.lock);
  if (team_idle(atomic_load(&mark.team)) > 0) wake_idle();
}

static workbuf_t *get_full(void) {
  if (__atomic_load_n(&mark.full, __ATOMIC_RELAXED) == NULL) return NULL;
  lock(&mark.lock);
  workbuf_t *b = mark.full;
  if (b != NULL) __atomic_store_n(&mark.full, b->next, __ATOMIC_RELAXED);
  unlock(&mark.lock);
  return b;
}

static workbuf_t *get_empty(void) {
  lock(&mark.lock);
  workbuf_t *b = mark.empty;
  if (b != NULL) mark.empty = b->next;
  unlock(&mark.lock);
  if (b == NULL) b = gort__persistent_alloc(sizeof *b, 64);
  if (b != NULL) b->n = 0;
  return b;
}

static void put_empty(workbuf_t *b) {
  lock(&mark.lock);
  b->next = mark.empty;
  mark.empty = b;
  unlock(&mark.lock);
}

// A queue entry: an object's address, and in its low 4 bits (objects
// are 16-byte aligned) its size in granules when it is a small object
// scanned whole of at most SMALL_TAG_MAX bytes, else 0 ("Scanning without
// the span").
#define SMALL_TAG_MAX 240
#define ENTRY_OBJ(e) ((e) & ~(uintptr_t)15)
#define ENTRY_BYTES(e) (((e) & 15) << 4)

__attribute__((noinline)) static void push_slow(worker_t *w, uintptr_t e) {
  if (w->cur != NULL) put_full(w->cur);
  if ((w->cur = get_empty()) == NULL) {
    atomic_store(&mark.overflow, true);  // marked, not queued: see the file comment
    return;
  }
  w->cur->obj[w->cur->n++] = e;
}

GORT_INLINE void push(worker_t *w, uintptr_t e) {
  workbuf_t *b = w->cur;
  if (gort_unlikely(b == NULL || b->n == WB_N)) {
    push_slow(w, e);
    return;
  }
  b->obj[b->n++] = e;
}

// ---- marking one word -----------------------------------------------------------

// The arena bounds that mark_value tests, from the heap's now. The
// background worker updates them while the program's barriers read them
// (gort__gc_barrier_shade): word-sized and only ever growing, so a
// barrier that reads the old bounds misses only objects allocated black.
static void bounds_update(void) {
  uintptr_t lo, hi;
  gort__mheap_arena_range(&lo, &hi);
  __atomic_store_n(&mark.lo, lo, __ATOMIC_RELAXED);
  __atomic_store_n(&mark.hi, hi, __ATOMIC_RELAXED);
}

// Scanning reads memory that the program may be writing (a concurrent
// mark): racy by design, and made safe by the dirty-page rescan, so
// ThreadSanitizer is told not to look at these reads.
#define RACY_READS __attribute__((no_sanitize("thread")))

// Marks the object v points into, if any; queues it if it must be scanned.
RACY_READS GORT_INLINE void mark_value(worker_t *w, uintptr_t v) {
  VG_DEFINE_VALUE(v);  // memcheck builds only: base/vg.h
  if (v < __atomic_load_n(&mark.lo, __ATOMIC_RELAXED) || v >= __atomic_load_n(&mark.hi, __ATOMIC_RELAXED)) return;
  arena_t *a = arena_of(v);
  if (gort_unlikely(a == NULL)) return;
  // A rescan's words point mostly at marked objects (the large-heap
  // benchmark's final stop rescans table pages whose every entry the mark
  // reached), and a word that points at an object's start needs only the
  // bits of its own granule: live and marked, there is nothing to do, and
  // the span's entry and struct, two more misses, go unread. The bits'
  // line (live and mark words side by side, pagemap.h) is the one
  // mark_deferred prefetched. Both bits: a marked granule alone may be
  // the inside of an unmarked object, since gort__gc_premark_span marks
  // every granule whose live bit is clear (gccheckmark found objects
  // lost so). This rests on live bits lying only on block starts of the
  // span that maps the page, and on a span leaving use with all of them
  // clear (the sweep keeps live & mark and frees only empty spans; a large
  // free clears its bit first): a path that left a live bit inside a
  // block would make this skip an unmarked object. Final stops there:
  // 2.0 -> 1.8 us a page. Not in drains, whose words point mostly at
  // unmarked objects: the test cost binary-trees 4% of its CPU.
  if (w->rescanning) {
    uintptr_t g = (v & (GORT_ARENA_SIZE - 1)) >> 4;
    uint64_t gbit = 1ULL << (g & 63);
    if (__atomic_load_n(ARENA_LIVE_WORD(a, g), __ATOMIC_RELAXED) & __atomic_load_n(ARENA_MARK_WORD(a, g), __ATOMIC_RELAXED) & gbit)
      return;
  }
  mspan_t *s = __atomic_load_n(&a->spans[arena_page_index(v)], __ATOMIC_RELAXED);
  if (s == NULL) return;
  uint8_t kind = s->kind;
  if (kind == KIND_MANUAL || kind == KIND_GC_UNCOLLECTABLE) return;  // the latter are roots
  uintptr_t obj, size;
  span_state_t st = span_state(s);
  if (st == SPAN_SMALL) {
    uintptr_t off = v - s->base;
    size = s->elemsize;
    if (off >= (uintptr_t)s->nelems * size) return;
    uint32_t i = span_elem_index(s, off);
    obj = s->base + (uintptr_t)i * size;
  } else if (st == SPAN_LARGE) {
    obj = s->base;
    size = span_bytes(s);
  } else {
    return;
  }
  // obj's arena is v's but where a span crosses into the next arena, or
  // where s's fields were read across a change (pages_map_to): then obj
  // may lie in an arena never registered.
  if (gort_unlikely(((obj ^ v) >> GORT_ARENA_SHIFT) != 0) && (a = arena_of(obj)) == NULL) return;
  uintptr_t i = (obj & (GORT_ARENA_SIZE - 1)) >> 4;
  uint64_t bit = 1ULL << (i & 63), *lw = ARENA_LIVE_WORD(a, i), *mw = ARENA_MARK_WORD(a, i);
  if (!(__atomic_load_n(lw, __ATOMIC_RELAXED) & bit)) return;  // a free slot
  if (__atomic_load_n(mw, __ATOMIC_RELAXED) & bit) return;
  if (mark.atomic) {
    if (__atomic_fetch_or(mw, bit, __ATOMIC_RELAXED) & bit) return;  // another worker won
  } else {
    __atomic_store_n(mw, __atomic_load_n(mw, __ATOMIC_RELAXED) | bit, __ATOMIC_RELAXED);
  }
  w->bytes += size;
  w->objects++;
  if (kind_scanned_whole(kind)) {
    w->scan_bytes += size;
    // Tagged only within one page: a tagged entry is scanned with no
    // checks, and if s changed while its fields were read, size may be
    // another span's; obj's own page is mapped (its live bit is set).
    bool tag = st == SPAN_SMALL && size <= SMALL_TAG_MAX && ((obj ^ (obj + size - 1)) >> GORT_PAGE_SHIFT) == 0;
    push(w, tag ? obj | (size >> 4) : obj);
  } else if (kind == KIND_GC_TYPED) {
    w->scan_bytes += size;
    push(w, obj);
  }
}

// Candidates. Marking a word is a chain of dependent loads: the page
// map's entry, the span, the live and mark bits. On a heap larger than
// the caches each can miss, and the object prefetch (inflight_t) covers
// only the scanned object's own line. So a drain does not mark a word
// when it reads it: it prefetches the word's page-map entry and the line
// of bits beside its granule (an object's bits are on its words' line
// unless it straddles a 4 KiB boundary), loads that entry half-way and
// prefetches the span's line it names, and marks the word CAND_DEPTH
// words later, from w->cand. Only drain_queue and the assist's loop defer
// (scan_object_d); they empty w->cand before they return
// (cand_flush), since a word left there would be a reachable object never
// marked; so do rescans of written pages, which flush at the end of each
// run (rescan_run). Roots and the overflow pass mark at once. Only for
// a mark that last found CAND_MIN or more live: where the metadata fits
// in the caches the extra work cost more than the misses it hid
// (binary-trees, 15 MiB live, gcdirty=none: p99 stop 8.5-8.9 -> 9.9-11.3
// ms; GCBench 3.0-3.2 -> 3.2-6.0), while the 1 GiB cache's stops fell by
// a third. A heap's span structs take 1/64 of it, its bits 1/256: at 64
// MiB, a megabyte of them. Under gccheckmark every mark defers, and the
// check's own mark does not, so that the tests' small heaps check it.
RACY_READS GORT_INLINE void mark_deferred(worker_t *w, uintptr_t v) {
  if (v < __atomic_load_n(&mark.lo, __ATOMIC_RELAXED) || v >= __atomic_load_n(&mark.hi, __ATOMIC_RELAXED)) return;
  arena_t *a = arena_of(v);
  if (gort_unlikely(a == NULL)) return;
  __builtin_prefetch(&a->spans[arena_page_index(v)]);
  __builtin_prefetch(ARENA_LIVE_WORD(a, (v & (GORT_ARENA_SIZE - 1)) >> 4));
  if (w->cn >= CAND_DEPTH / 2) {
    uintptr_t m = w->cand[(w->cat + w->cn - CAND_DEPTH / 2) % CAND_DEPTH];
    mspan_t *ms = __atomic_load_n(&arena_of(m)->spans[arena_page_index(m)], __ATOMIC_RELAXED);
    if (ms != NULL) __builtin_prefetch(&ms->base);
  }
  if (w->cn < CAND_DEPTH) {
    w->cand[(w->cat + w->cn++) % CAND_DEPTH] = v;
    return;
  }
  uintptr_t old = w->cand[w->cat];
  w->cand[w->cat] = v;
  w->cat = (w->cat + 1) % CAND_DEPTH;
  mark_value(w, old);
}

#define CAND_MIN (64ULL << 20)

RACY_READS static void cand_flush(worker_t *w) {
  for (; w->cn > 0; w->cn--, w->cat = (w->cat + 1) % CAND_DEPTH) mark_value(w, w->cand[w->cat]);
}

// At a mark's end: a word left in a worker's candidates would be an
// object reached and never marked, freed live.
static void cand_check(void) {
  for (int i = 0; i < mark.nworkers; i++)
    if (mark.workers[i].cn != 0) gort__throw("gc: a mark worker ended with words it never marked");
}

GORT_INLINE void mark_word_of(worker_t *w, uintptr_t v, bool defer) {
  if (defer) mark_deferred(w, v);
  else mark_value(w, v);
}

RACY_READS GORT_INLINE void scan_range_x(worker_t *w, uintptr_t lo, uintptr_t hi, bool defer) {
  lo = GORT_ALIGN_UP(lo, (uintptr_t)8);
  for (uintptr_t p = lo; p + 8 <= hi; p += 8) mark_word_of(w, *(const uintptr_t *)p, defer);
}


// Whether l, a typed object's header word, names a layout. A concurrent
// mark may scan a queued object after the program freed it and its pages
// became another span's: the span says typed while the header still holds
// the old object's bytes. Read as a layout they crashed the mark worker (a
// hostile test: realloc of large typed objects during marks). Any word is
// safe to test: it is read only inside the reservation, which is mapped
// whole. A header that fails is scanned conservatively, which is always
// safe (layouts the reservation could not hold fail too).
RACY_READS GORT_INLINE bool layout_valid(const struct gort_gc_layout *l) {
  uintptr_t a = (uintptr_t)l, lo = atomic_load_explicit(&gort__gc_layouts_lo, memory_order_relaxed),
            hi = atomic_load_explicit(&gort__gc_layouts_hi, memory_order_relaxed);
  if (lo == 0 || a < lo || a > hi - sizeof *l || (a & 15) != 0 || l->check != (a ^ GORT_LAYOUT_KEY)) return false;
  return l->nwords != 0 && l->nwords <= (hi - (uintptr_t)l->bits) / 8 * 64 &&
         (uintptr_t)(l->bits + (l->nwords + 63) / 64) <= hi;
}

// The pointer words of typed object obj (size bytes) in [lo, hi). Nothing
// outside the object's header and words is read, whatever size is. A
// large object that the program freed while the worker read its span
// once read as size 0 (the span's state, read again, said free, and a
// large span's elemsize is 0): the count of words wrapped, and the
// ThreadSanitizer build's worker read on from the 5-page object to 16
// bytes past the end of the collected heap's first 4 MiB, never mapped
// (test_gc_concurrent's gccheckmark churn, once in CI).
RACY_READS GORT_INLINE void scan_typed_x(worker_t *w, uintptr_t obj, uintptr_t size, uintptr_t lo, uintptr_t hi,
                                         bool defer) {
  if (size <= SPAN_TYPED_HEADER) return;
  if (hi > obj + size) hi = obj + size;
  const struct gort_gc_layout *l = (const struct gort_gc_layout *)__atomic_load_n((uintptr_t *)obj, __ATOMIC_ACQUIRE);
  if (l == NULL) return;  // being allocated: its words are still zero
  if (gort_unlikely(!layout_valid(l))) {
    scan_range_x(w, lo > obj ? lo : obj, hi, defer);
    return;
  }
  const uintptr_t *words = (const uintptr_t *)(obj + SPAN_TYPED_HEADER);
  if (lo < (uintptr_t)words) lo = (uintptr_t)words;
  if (lo >= hi) return;
  uintptr_t i = (lo - (uintptr_t)words) / 8, end = (hi - (uintptr_t)words + 7) / 8;
  for (uintptr_t k = i % l->nwords; i < end; i++) {
    if ((l->bits[k >> 6] >> (k & 63)) & 1) mark_word_of(w, words[i], defer);
    if (++k == l->nwords) k = 0;
  }
}

// Whether the pages of [obj, obj + size) after obj's own still map to s
// (obj's named s when the caller looked). The caller read s's fields one
// at a time while the program may be freeing s and the heap merging,
// splitting or reusing its struct: fields read at different moments can
// describe a range that was never one span's, running past the end of a
// reservation into memory never mapped (one did: scan_typed_x). A page
// that the page map names a span for was reserved by the heap, which
// never unmaps: whatever s has become, the scan then reads only mapped
// memory. A live object's pages all name its span, so none is ever
// refused; an object on one page costs no load here.
RACY_READS GORT_INLINE bool pages_map_to(const mspan_t *s, uintptr_t obj, uintptr_t size) {
  for (uintptr_t p = GORT_ALIGN_DOWN(obj, GORT_PAGE_SIZE) + GORT_PAGE_SIZE; p < obj + size; p += GORT_PAGE_SIZE)
    if (span_of(p) != s) return false;
  return true;
}

// A test's knob (GORT_DEBUG=gcscanwindow=N): one in N scans of a queued
// object sleep between reading its span's state and the rest of it, as a
// marker preempted there would, so that the program's frees, and the page
// heap's merges and reuse of the span, land in the window. The size-0
// scan of scan_typed_x met CI once without it; with it, test_gc_concurrent's
// window case crashed in 6 runs of 9 before the fix.
static GORT_NOINLINE void scan_window(void) {
  static _Atomic uint64_t n;
  if (atomic_fetch_add_explicit(&n, 1, memory_order_relaxed) % (uint64_t)gort__opts.gcscanwindow == 0)
    gort__os_sleep_ns(20 * 1000);
}

#define SCAN_PIECE ((uintptr_t)64 << 10)

// Scanning without the span. Most objects a mark scans are small and
// scanned whole, and mark_value has just read their span: it queues
// them with their size in the entry's low bits, and they are scanned
// without the page map, the span or its checks (on binary-trees, with one
// worker and the world stopped, those and the calls around them were a
// third of the mark's samples). Reading the bytes is safe whatever
// happened to the slot since it was queued: heap memory is never
// unmapped, and scanning a slot the program freed, or pages another span
// took since, only marks conservatively.
RACY_READS GORT_INLINE void scan_object_x(worker_t *w, uintptr_t e, bool defer) {
  uintptr_t n = ENTRY_BYTES(e);
  if (gort_likely(n != 0)) {
    const uintptr_t *p = (const uintptr_t *)ENTRY_OBJ(e), *end = p + n / 8;
    for (; p < end; p++) mark_word_of(w, *p, defer);
    return;
  }
  uintptr_t obj = e;
  mspan_t *s = span_of(obj);
  // During a concurrent mark the program may gort_free a queued large
  // object: its pages then belong to a free span or to another span.
  // Nothing it pointed to needs this mark's help any more.
  if (s == NULL) return;
  span_state_t st = span_state(s);
  uint8_t kind = s->kind;
  if ((st != SPAN_SMALL && st != SPAN_LARGE) ||
      (!kind_scanned_whole(kind) && kind != KIND_GC_TYPED && kind != KIND_GC_UNCOLLECTABLE))
    return;
  if (gort_unlikely(gort__opts.gcscanwindow > 0)) scan_window();
  uintptr_t size = gc_object_bytes_in(s, st);  // 0 if s was freed since st was read
  if (size == 0 || obj < s->base || obj + size > s->base + span_bytes(s)) return;  // a stale page-map entry
  if (!pages_map_to(s, obj, size)) return;
  // A large object in pieces, so that a drain beside the program gives way
  // within it: the 1 GiB cache's table, one object of megabytes, took the
  // worker's CPU for 2-4 ms a scan from a thread the kernel had waiting.
  // (A piece re-reads a typed object's layout, checked each time.)
  for (uintptr_t lo = obj, end = obj + size; lo < end; lo += SCAN_PIECE) {
    uintptr_t hi = end - lo > SCAN_PIECE ? lo + SCAN_PIECE : end;
    if (kind != KIND_GC_TYPED) scan_range_x(w, lo, hi, defer);
    else scan_typed_x(w, obj, size, lo, hi, defer);
    if (w->give_way != 0 && hi < end) gort__gc_give_way(&w->give_way);  // between pieces only
  }
}

RACY_READS static void scan_object(worker_t *w, uintptr_t e) { scan_object_x(w, e, false); }
// The drain's: its words go to w->cand ("Candidates").
RACY_READS static void scan_object_d(worker_t *w, uintptr_t e) { scan_object_x(w, e, true); }
// A drain's or an assist's scan: deferring or not, each compiled apart.
GORT_INLINE void scan_drained(worker_t *w, uintptr_t e, bool defer) {
  if (defer) scan_object_d(w, e);
  else scan_object(w, e);
}

// Whether a mark that last found last_marked live defers its words.
static bool defer_for(uint64_t last_marked) { return last_marked >= CAND_MIN || gort__gc_checkmark; }

// ---- draining -----------------------------------------------------------------

__attribute__((noinline)) static bool pop_slow(worker_t *w, uintptr_t *obj) {
  workbuf_t *b = get_full();
  if (b == NULL) return false;
  if (w->cur != NULL) put_empty(w->cur);
  w->cur = b;
  *obj = b->obj[--b->n];
  return true;
}

GORT_INLINE bool pop(worker_t *w, uintptr_t *obj) {
  workbuf_t *b = w->cur;
  if (gort_likely(b != NULL && b->n > 0)) {
    *obj = b->obj[--b->n];
    return true;
  }
  return pop_slow(w, obj);
}

// Gives half of w's buffer to the others (they are idle and the global
// list is empty: a depth-first graph such as a tree never fills a buffer).
static void share(worker_t *w) {
  workbuf_t *b = get_empty();
  if (b == NULL) return;
  uint64_t half = w->cur->n / 2;
  memcpy(b->obj, w->cur->obj, half * sizeof b->obj[0]);
  memmove(w->cur->obj, w->cur->obj + half, (w->cur->n - half) * sizeof b->obj[0]);
  b->n = half;
  w->cur->n -= half;
  put_full(b);
}

// Objects are scanned PREFETCH_DEPTH pops after their first line was
// prefetched: the marker's time goes to cache misses on the objects it
// scans (61% of scan_object's samples sat on the load of an object's first
// word, on GCBench), and a few objects in flight overlap them. An object
// taken into the ring is scanned, or pushed back by inflight_return.
#define PREFETCH_DEPTH 16
typedef struct {
  uintptr_t obj[PREFETCH_DEPTH];
  unsigned n, at;  // objects in flight; the oldest one's slot
} inflight_t;

// The next object to scan, popped PREFETCH_DEPTH pops ago; false when
// w's queue and the ring are empty.
GORT_INLINE bool inflight_next(worker_t *w, inflight_t *r, uintptr_t *obj) {
  uintptr_t o;
  while (r->n < PREFETCH_DEPTH && pop(w, &o)) {
    __builtin_prefetch((const void *)o);
    r->obj[(r->at + r->n) % PREFETCH_DEPTH] = o;
    r->n++;
  }
  if (r->n == 0) return false;
  *obj = r->obj[r->at];
  r->at = (r->at + 1) % PREFETCH_DEPTH;
  r->n--;
  return true;
}

// The objects still in flight back on w's queue (an assist that stops early).
static void inflight_return(worker_t *w, inflight_t *r) {
  for (; r->n > 0; r->n--, r->at = (r->at + 1) % PREFETCH_DEPTH) push(w, r->obj[r->at]);
}

// Scans what w's queue holds, and what that queues, until it is empty;
// the ring and w->cand are empty again on return.
static void drain_queue(worker_t *w) {
  inflight_t ring = {.n = 0};
  bool defer = mark.defer;
  for (uint32_t k = 0;; k++) {
    uintptr_t obj;
    if (!inflight_next(w, &ring, &obj)) {
      if (w->cn == 0) return;
      cand_flush(w);  // may queue more
      continue;
    }
    scan_drained(w, obj, defer);
    if ((k & 255) == 0 && w->give_way != 0) gort__gc_give_way(&w->give_way);
    if ((k & 63) == 0 &&
        (team_idle(atomic_load_explicit(&mark.team, memory_order_relaxed)) > 0 ||
         atomic_load_explicit(&mark.hungry, memory_order_relaxed)) &&
        w->cur != NULL && w->cur->n >= 16 && __atomic_load_n(&mark.full, __ATOMIC_RELAXED) == NULL) {
      atomic_store_explicit(&mark.hungry, false, memory_order_relaxed);
      share(w);
    }
  }
}

// Scans until every worker is out of work. An idle worker spins briefly,
// then sleeps until work is shared or the last worker goes idle.
// w is a member of the drain of epoch ep. The collecting thread never
// sleeps here: its drain is a stop's, and on a VM its own wake-up could
// take as long as a helper's ("Joining a drain"); it yields instead.
static void drain(worker_t *w, uint64_t ep) {
  uint64_t s;
  for (;;) {
    drain_queue(w);
    if (!team_add(ep, TEAM_IDLE, &s)) gort__throw("gc: a working mark worker's drain ended");
    if (team_over(s)) wake_idle();
    for (int spins = 0;; spins++) {
      if (__atomic_load_n(&mark.full, __ATOMIC_ACQUIRE) != NULL) {
        if (!team_add(ep, -TEAM_IDLE, &s)) return;  // a later drain's work: not ours
        break;
      }
      uint32_t g = atomic_load(&mark.gen);
      s = atomic_load(&mark.team);
      if (team_epoch(s) != ep || (team_over(s) && __atomic_load_n(&mark.full, __ATOMIC_ACQUIRE) == NULL))
        return;
      if (spins < 200)
        gort__cpu_relax();
      else if (w == &mark.workers[0] || w->guest)
        gort__os_yield();
      else
        gort__os_futex_wait(&mark.gen, g);
    }
  }
}

static uint64_t rescan_pieces(worker_t *w, uint64_t budget);
static void assist_end(worker_t *w);

// Guests. A helper asleep on its futex is woken onto the CPU of the
// thread that wakes it: the kernel's search for an idle CPU gives up on a
// busy machine (the last-level cache looks loaded), so the wakee goes to
// the waker's CPU, unless its own last one is idle, and preempts the
// waker there. In a concurrent cycle's final stop the waker is the
// background worker: on the 256 MiB cache (bench/gc) the helper ran on
// the worker's CPU in every stop that used it and rescanned every piece
// itself, one CPU in use and the program's idle. And a helper woken onto
// an idle CPU of a VM starts 40-50 us later (the halted vCPU's wake-up),
// a third of such a stop's drain. But the stop's own parked threads were
// each running on a CPU the moment they parked. So a final stop whose
// drain will use the helpers (gort__gc_mark_guest_arm) takes, instead of
// up to nworkers - 1 of them, the first threads that park for it as
// guests (gort__gc_mark_guest, from stw.c's park, also in the stop
// signal's handler, which parks only outside every no-stop region, so
// the interrupted code holds no lock the mark takes; only on the thread's
// own stack, with room to spare): a guest waits, running and yielding,
// until the stop's drain opens, joins that drain and no later one with a
// worker of its own on its stack, rescans and drains like a helper, and
// parks on. Its frames lie below a pad under the stack pointer it
// published, so the root scan, which reads 128 bytes below that pointer,
// never reads them; nothing it holds there is the only reference to an
// object anyway: what it scans is marked already. A guest that leaves
// without joining (the drain came later than GUEST_WAIT_NS, or the stop
// was given up) gives its place back; the drain wakes only the helpers
// that no guest holds a place for; the mark waits only for guests that
// joined, and only while they return (the drain's end is theirs too). A
// guest runs at its thread's scheduling priority: a program that runs its
// threads at a low one may see its final stops wait for them, as for a
// helper a busy machine did not run. On the cache (4 runs each,
// gctrace=2, the last 6 final stops of each) the drain went from 0.144
// ms a stop, 4.4 us a rescanned page, to 0.049 ms, 1.6 us. The tests
// cannot make a guest's share of the work matter: its pages rarely hold
// the only pointer to an object the mark has not seen, and a guest that
// skips its pieces passed them (gccheckmark included); the code it runs
// is the helpers'.
#define GUEST_WAIT_NS 2000000  // a guest gives up waiting for the drain after this

void gort__gc_mark_guest_arm(uint64_t last_marked) {
  bool want = mark.helpers_started && mark.nworkers > 1 && last_marked >= FINISH_PARALLEL_MIN;
  mark.guests_max = want ? mark.nworkers - 1 : 0;
  atomic_store(&mark.guests_left, mark.guests_max);
  atomic_store(&mark.guest_epoch, team_epoch(atomic_load(&mark.team)));
  atomic_store(&mark.guest_armed, want);
}

uint64_t gort__gc_mark_guests(void) { return atomic_load_explicit(&mark.guests_joined, memory_order_relaxed); }
uint64_t gort__gc_mark_guests_came(void) { return atomic_load_explicit(&mark.guests_came, memory_order_relaxed); }

// Guests that claimed a place in this stop.
static int guests_claimed(void) {
  if (!atomic_load(&mark.guest_armed)) return 0;
  int left = atomic_load(&mark.guests_left);
  return mark.guests_max - (left > 0 ? left : 0);
}

// Joins the stop's drain (epoch ep) as a guest and works in it; false if
// the mark is past it. Counted in guests_in before the look at armed (both
// sequentially consistent, as the mark's disarm and its look at
// guests_in): the mark either waits for this guest or this guest sees the
// mark done. Only a guest that joins is waited for, and then only while
// it returns: a member's work ends with the drain.
static bool guest_join(uint64_t ep) {
  atomic_fetch_add(&mark.guests_in, 1);
  bool joined = atomic_load(&mark.guest_armed) && team_join(ep);
  if (joined) {
    atomic_fetch_add_explicit(&mark.guests_joined, 1, memory_order_relaxed);
    worker_t w = {.guest = true};
    VG_ENTER();  // memcheck builds: base/vg.h
    if (atomic_load(&mark.rescan_first)) rescan_pieces(&w, UINT64_MAX);
    drain(&w, ep);
    assist_end(&w);
    VG_LEAVE();
  }
  atomic_fetch_sub(&mark.guests_in, 1);
  return joined;
}

void gort__gc_mark_guest(uint32_t stop) {
  if (!atomic_load_explicit(&mark.guest_armed, memory_order_relaxed)) return;
  if (atomic_fetch_sub(&mark.guests_left, 1) <= 0) return;
  atomic_fetch_add_explicit(&mark.guests_came, 1, memory_order_relaxed);
  // The stop's drain is the first one opened after the arm: a guest never
  // joins a later one (an overflow's, checkmark's).
  uint64_t ep = (atomic_load(&mark.guest_epoch) + 1) & TEAM_EPOCHS;
  int64_t until = gort__nanotime() + GUEST_WAIT_NS;
  for (unsigned k = 0; atomic_load(&mark.guest_armed) && gort__stw_holds(stop); k++) {
    if (team_epoch(atomic_load(&mark.team)) == ep) {
      if (guest_join(ep)) return;
      break;
    }
    if ((k & 15) != 15) {
      gort__cpu_relax();
    } else {
      gort__os_yield();  // the collecting thread may share this CPU
      if (gort__nanotime() >= until) break;
    }
  }
  // Gone without working: a helper may have the place (drain_all).
  atomic_fetch_add(&mark.guests_left, 1);
}

static void *helper_main(void *arg) {
  worker_t *w = arg;
  // Only drains started from now on: a helper started in a forked child
  // would otherwise join a drain of the parent's that is long over, and
  // never finish it.
  uint32_t seen = atomic_load(&mark.start);
  for (;;) {
    uint32_t now;
    while ((now = atomic_load(&mark.start)) == seen) gort__os_futex_wait(&mark.start, seen);
    seen = now;
    // The drain open now, if any: the one start announced, or a later one.
    uint64_t ep = team_epoch(atomic_load(&mark.team));
    if (!team_join(ep)) continue;
    VG_ENTER();  // memcheck builds: base/vg.h
    if (atomic_load(&mark.rescan_first)) rescan_pieces(w, UINT64_MAX);
    drain(w, ep);
    VG_LEAVE();
  }
  return NULL;
}

// Drains the queue with every worker (the world is stopped).
static void drain_all(void) {
  worker_t *me = &mark.workers[0];
  if (me->cur != NULL && me->cur->n > 0) {
    put_full(me->cur);  // share the roots' work
    me->cur = NULL;
  }
  bool helpers = mark.helpers_started && mark.parallel && mark.nworkers > 1;
  uint64_t ep = team_open(helpers);
  if (helpers) {
    atomic_fetch_add(&mark.start, 1);
    int wake = mark.nworkers - 1 - guests_claimed();  // "Guests"
    if (wake > 0) gort__os_futex_wake(&mark.start, wake);
  }
  // A worker still rescanning is not idle, so no drain ends before the
  // pieces are all done and what they found is drained.
  if (atomic_load(&mark.rescan_first)) rescan_pieces(me, UINT64_MAX);
  // Done once over: a helper that joined after the drain looked over
  // (it finds nothing, all the pieces taken) goes idle again first.
  for (;;) {
    drain(me, ep);
    uint64_t s = atomic_load(&mark.team);
    if (team_over(s) && __atomic_load_n(&mark.full, __ATOMIC_ACQUIRE) == NULL &&
        atomic_compare_exchange_strong(&mark.team, &s, s | TEAM_CLOSED | TEAM_DONE))
      break;
    if (!team_add(ep, -TEAM_IDLE, &s)) gort__throw("gc: the collecting thread's drain was taken over");
  }
}

void gort__gc_mark_drain(void) { drain_all(); }

// ---- roots -----------------------------------------------------------------------

// Roots are scanned with the world stopped, where the heap's bounds hold
// still: read once here, they leave a word outside the heap (most of the
// globals and stacks) a subtraction and a compare. Through mark_value,
// which reloads its atomic bounds for every word, a static program's
// 120 KiB of globals (libc's, the loader's, its own) took 16-20 us of
// each stop, about half of the roots' time.
RACY_READS static void scan_root(uintptr_t lo, uintptr_t hi, void *arg) {
  (void)arg;
  worker_t *w = &mark.workers[0];
  uintptr_t heap_lo = __atomic_load_n(&mark.lo, __ATOMIC_RELAXED);
  uintptr_t heap_len = __atomic_load_n(&mark.hi, __ATOMIC_RELAXED) - heap_lo;
  for (uintptr_t p = GORT_ALIGN_UP(lo, (uintptr_t)8); p + 8 <= hi; p += 8) {
    uintptr_t v = *(const uintptr_t *)p;
    VG_DEFINE_VALUE(v);  // memcheck builds only: base/vg.h
    if (gort_unlikely(v - heap_lo < heap_len)) mark_value(w, v);
  }
}

#define MAX_SEGMENTS 1024
static struct {
  uintptr_t lo[MAX_SEGMENTS], hi[MAX_SEGMENTS];
  bool gort[MAX_SEGMENTS];     // one of libgort.so's own: never a root of the collector's
  int n;
  uintptr_t self_lo, self_hi;  // libgort.so's own segments
} segs;
GORT_NOSCAN(segs)
GORT_NOSCAN(gort__arenas)

static int find_self(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size, (void)arg;
  uintptr_t me = (uintptr_t)&find_self;
  uintptr_t lo = UINTPTR_MAX, hi = 0;
  bool mine = false;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
    if (a < lo) lo = a;
    if (b > hi) hi = b;
    if (me >= a && me < b) mine = true;
  }
  // Only a shared libgort: linked statically, gort's data is the program's.
  if (mine && info->dlpi_name != NULL && info->dlpi_name[0] != '\0') {
    segs.self_lo = lo;
    segs.self_hi = hi;
  }
  return 0;
}

// The loader's counts of loads and unloads when the segments were read.
static struct {
  unsigned long long adds, subs;
  bool first, stale, gave_up;
} loads;

static int collect_segment(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size, (void)arg;
  if (loads.first) loads.first = false, loads.adds = info->dlpi_adds, loads.subs = info->dlpi_subs;
  for (int i = 0; i < info->dlpi_phnum && segs.n < MAX_SEGMENTS; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
    segs.gort[segs.n] = a >= segs.self_lo && b <= segs.self_hi;
    segs.lo[segs.n] = a;
    segs.hi[segs.n] = b;
    segs.n++;
  }
  return 0;
}

// Reads the loaded objects' writable segments; never with the world
// stopped (a stopped thread may hold the loader's lock).
static void read_segments(void) {
  segs.n = 0;
  if (segs.self_hi == 0) dl_iterate_phdr(find_self, NULL);
  loads.first = true;
  dl_iterate_phdr(collect_segment, NULL);
}

// Stops the world from inside dl_iterate_phdr, holding the loader's list
// lock (glibc's dl_load_write_lock, which dlopen takes to add an object
// and dlclose around unlinking and unmapping one), so that no registered
// thread is stopped between dlclose's unmapping and its unlinking; if
// the loader's counts moved since read_segments, the segments are read
// again in the same walk. (Read before the stop only, a segment that
// dlclose unmapped meanwhile was scanned anyway: a thread looping
// dlopen/dlclose crashed a collecting program in every run; and a library
// dlopen'ed mid-cycle was no root at its final stop.) Not covered: a
// thread gort does not stop (unregistered) may still dlclose during the
// stop. Stopped threads may hold the loader's other locks (a dlopen
// waiting for the list lock): nothing in a stop may call into the loader.
//
// A thread that waits for the list lock with the stop signal blocked (a
// handler that walks the loaded objects with every signal masked, as
// gort's own SIGQUIT dump does through dladdr) cannot park while the lock
// is held: after STOP_IN_LOADER_NS the stop is undone and tried again,
// and after STOP_IN_LOADER_TRIES the world is stopped without the lock,
// as before it was taken, the segments read just before.
#define STOP_IN_LOADER_NS (5 * 1000 * 1000)
#define STOP_IN_LOADER_TRIES 3

static int stop_holding_the_loader(struct dl_phdr_info *info, size_t size, void *arg) {
  if (loads.first) {
    loads.first = false;
    if (!gort__stw_stop_within(STOP_IN_LOADER_NS)) {
      gort__stw_start();
      loads.gave_up = true;
      return 1;
    }
    loads.stale = info->dlpi_adds != loads.adds || info->dlpi_subs != loads.subs;
    if (!loads.stale) return 1;  // the list read before stands
    segs.n = 0;
  }
  return collect_segment(info, size, arg);
}

void gort__gc_stop_the_world(void) {
  for (int tries = 0; tries < STOP_IN_LOADER_TRIES; tries++) {
    if (tries > 0) {
      _Atomic uint32_t never = 0;
      gort__os_futex_wait_ns(&never, 0, 1000 * 1000);  // a millisecond for the thread to get the lock
      read_segments();
    }
    loads.first = true;
    loads.gave_up = false;
    dl_iterate_phdr(stop_holding_the_loader, NULL);
    if (loads.first) break;  // no object at all: cannot happen (the program is one)
    if (!loads.gave_up) return;
  }
  read_segments();
  gort__stw_stop();
}

// A segment, less gort's own tables that hold no collected object when
// gort is linked statically (base/noscan.h; the page map, 16 MiB of
// pointers to metadata, among them).
static void scan_segment(uintptr_t lo, uintptr_t hi) { gort__noscan_foreach_gap(lo, hi, scan_root, NULL); }

static struct {
  lock_t lock;   // rank LOCK_CENTRAL; guards the ranges
  uintptr_t *lo, *hi;
  size_t n, cap;
} roots = {.lock = LOCK_INIT};

static bool roots_grow(void) {
  size_t cap = roots.cap ? roots.cap * 2 : 64;
  uintptr_t *lo = gort__persistent_alloc(cap * sizeof *lo, 16), *hi = gort__persistent_alloc(cap * sizeof *hi, 16);
  if (lo == NULL || hi == NULL) return false;
  if (roots.n) {
    memcpy(lo, roots.lo, roots.n * sizeof *lo);
    memcpy(hi, roots.hi, roots.n * sizeof *hi);
  }
  roots.lo = lo, roots.hi = hi, roots.cap = cap;  // the old arrays stay: persistent memory
  return true;
}

// Ranges are kept disjoint: an add merges what it overlaps, a remove cuts.
void gort_gc_add_roots(void *start, void *end) {
  uintptr_t a = (uintptr_t)start, b = (uintptr_t)end;
  if (a >= b) return;
  gort__start_ensure();
  lock(&roots.lock);
  size_t j = 0;
  for (size_t i = 0; i < roots.n; i++) {
    if (roots.hi[i] < a || roots.lo[i] > b) {
      roots.lo[j] = roots.lo[i], roots.hi[j] = roots.hi[i], j++;
    } else {
      if (roots.lo[i] < a) a = roots.lo[i];
      if (roots.hi[i] > b) b = roots.hi[i];
    }
  }
  roots.n = j;
  if (roots.n == roots.cap && !roots_grow()) {
    unlock(&roots.lock);
    gort__warn("gort_gc_add_roots: out of memory; range %p not added", start);
    return;
  }
  roots.lo[roots.n] = a, roots.hi[roots.n] = b, roots.n++;
  unlock(&roots.lock);
}

void gort_gc_remove_roots(void *start, void *end) {
  uintptr_t a = (uintptr_t)start, b = (uintptr_t)end;
  if (a >= b) return;
  lock(&roots.lock);
  for (size_t i = 0; i < roots.n; i++) {
    uintptr_t lo = roots.lo[i], hi = roots.hi[i];
    if (hi <= a || lo >= b) continue;
    if (lo < a && hi > b) {  // a hole in the middle: split
      if (roots.n == roots.cap && !roots_grow()) break;
      roots.hi[i] = a;
      roots.lo[roots.n] = b, roots.hi[roots.n] = hi, roots.n++;
      continue;
    }
    if (lo < a) roots.hi[i] = a;
    else if (hi > b) roots.lo[i] = b;
    else {
      roots.lo[i] = roots.lo[roots.n - 1], roots.hi[i] = roots.hi[roots.n - 1];
      roots.n--;
      i--;
    }
  }
  unlock(&roots.lock);
}

// A live uncollectable object is a root: no pointer need reach it, so
// mark_value never marks one. Its bit is set here instead, and its bytes
// counted the first time, as any marked object's: it survives the cycle,
// and the live count (mgc.c) must hold what a later gort_free of it takes
// back. The roots' scans of the first and final stops find it set.
static void root_object(uintptr_t obj, uintptr_t size) {
  uint64_t bit, *mw = mark_word(obj, &bit);
  if ((__atomic_fetch_or(mw, bit, __ATOMIC_RELAXED) & bit) == 0) {
    mark.workers[0].bytes += size;
    mark.workers[0].scan_bytes += size;
    mark.workers[0].objects++;
  }
  scan_root(obj, obj + size, NULL);
}

// Every live object of the uncollectable spans on one list (world stopped:
// the spans are the collector's, so gort_free's pending frees are applied
// first, and a freed holder stops being a root at once).
static void scan_uncollectable_list(span_link_t *list) {
  for (span_link_t *l = span_list_begin(list), *next; l != list; l = next) {
    next = l->next;  // a full span that had frees moves to the partial list
    mspan_t *s = (mspan_t *)l;
    if (s->kind != KIND_GC_UNCOLLECTABLE) continue;
    if (span_state(s) == SPAN_SMALL) gort__gc_collect_frees_listed(s);
    if (span_state(s) == SPAN_LARGE) {
      if (live_test(s->base)) root_object(s->base, span_bytes(s));
      continue;
    }
    for (uint32_t i = 0; i < s->fresh; i++) {
      uintptr_t obj = s->base + (uintptr_t)i * s->elemsize;
      if (live_test(obj)) root_object(obj, s->elemsize);
    }
  }
}

// only_ran: the final stop of a concurrent mark, which rescans only the
// goroutines that ran since the first stop scanned them all (a goroutine
// that did not run has not changed its stack).
static void scan_roots_ex(bool only_ran) {
  gort__stw_foreach_stack(scan_root, NULL);
  gort__sched_foreach_stack_ran(scan_root, NULL, only_ran);  // goroutines not on a thread
  for (int i = 0; i < segs.n; i++)
    if (!segs.gort[i]) scan_segment(segs.lo[i], segs.hi[i]);
  for (size_t i = 0; i < roots.n; i++) scan_root(roots.lo[i], roots.hi[i], NULL);
  for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
    gcentral_t *g = &gort__gcentral[KIND_GC_UNCOLLECTABLE - 1][cls];
    scan_uncollectable_list(&g->partial);
    scan_uncollectable_list(&g->full);
    scan_uncollectable_list(&g->unswept);
  }
  scan_uncollectable_list(&gort__gclarge.swept);
  scan_uncollectable_list(&gort__gclarge.unswept);
  gort__gc_finalizers_roots(scan_root, NULL);
  gort__gc_tiny_roots(scan_root, NULL);
}

static void scan_roots(void) { scan_roots_ex(false); }

// ---- overflow ------------------------------------------------------------------------

static void rescan_marked_list(span_link_t *list) {
  worker_t *w = &mark.workers[0];
  for (span_link_t *l = span_list_begin(list); l != list; l = l->next) {
    mspan_t *s = (mspan_t *)l;
    if (!kind_scanned_whole(s->kind) && s->kind != KIND_GC_TYPED) continue;
    uint32_t n = span_state(s) == SPAN_LARGE ? 1 : s->fresh;
    for (uint32_t i = 0; i < n; i++) {
      uintptr_t obj = s->base + (uintptr_t)i * s->elemsize;
      // A marked slot may be free (premarked for allocation during a mark,
      // or freed by gort_free): its first word is then a link, not a layout.
      if (live_test(obj) && gort__gc_is_marked(obj)) scan_object(w, obj);
    }
  }
}

// Until a pass ends without overflow: rescan every marked object.
static void handle_overflow(void) {
  while (atomic_exchange(&mark.overflow, false)) {
    static const int scanned[] = {KIND_GC_SCAN, KIND_GC_TYPED, KIND_GC_BARRIERED};
    for (size_t k = 0; k < sizeof scanned / sizeof scanned[0]; k++)
      for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
        gcentral_t *g = &gort__gcentral[scanned[k] - 1][cls];
        rescan_marked_list(&g->partial);
        rescan_marked_list(&g->full);
        rescan_marked_list(&g->unswept);
      }
    rescan_marked_list(&gort__gclarge.swept);
    rescan_marked_list(&gort__gclarge.unswept);
    drain_all();
  }
}

// ---- the write barrier's gray objects (barrier.c) --------------------------------------

// Each thread keeps the objects its barrier shaded in a work buffer of its
// own, which goes to the queue when full, when the thread leaves, and in
// the final stop, so that a barrier takes no lock but once per buffer.
void gort__gc_barrier_shade(gthread_t *t, uintptr_t v) {
  worker_t w = {.cur = t->wbuf};
  mark_value(&w, v);
  t->wbuf = w.cur;
  if (w.bytes != 0) {  // marked it: counted as an assist's marks are
    atomic_fetch_add_explicit(&mark.assist_bytes, w.bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&mark.assist_scan_bytes, w.scan_bytes, memory_order_relaxed);
    if (w.scan_bytes != 0 && atomic_load_explicit(&mark.wb_flush, memory_order_relaxed))
      gort__gc_barrier_release(t);
  }
}

void gort__gc_barrier_release(gthread_t *t) {
  workbuf_t *b = t->wbuf;
  if (b == NULL) return;
  t->wbuf = NULL;
  if (b->n > 0) put_full(b);
  else put_empty(b);
}

void gort__gc_barrier_flush_now(void) { atomic_store(&mark.wb_flush, true); }

// The final stop: every thread's buffer to the queue. One the stop could
// not reach may be writing its buffer still: left alone, and every marked
// object is rescanned instead (as after an overflow).
static void take_barrier_buffer(gthread_t *t) {
  if (!t->unstoppable) gort__gc_barrier_release(t);
  else if (__atomic_load_n(&t->wbuf, __ATOMIC_RELAXED) != NULL) atomic_store(&mark.overflow, true);
}

// ---- the mark -----------------------------------------------------------------------

bool gort__gc_is_marked(uintptr_t obj) {
  uint64_t bit, *w = mark_word(obj, &bit);
  return (__atomic_load_n(w, __ATOMIC_RELAXED) & bit) != 0;
}

void gort__gc_mark_children(uintptr_t obj) { scan_object(&mark.workers[0], obj); }

void gort__gc_mark_object(uintptr_t obj) {
  mspan_t *s = span_of(obj);
  uint64_t bit, *w = mark_word(obj, &bit);
  if (__atomic_fetch_or(w, bit, __ATOMIC_RELAXED) & bit) return;
  mark.workers[0].bytes += gc_object_bytes(s);
  mark.workers[0].objects++;
}

uint64_t gort__gc_mark_bytes(void) {
  uint64_t b = 0, scan = 0;
  b += atomic_exchange(&mark.assist_bytes, 0);
  scan += atomic_exchange(&mark.assist_scan_bytes, 0);
  for (int i = 0; i < mark.nworkers; i++) {
    b += mark.workers[i].bytes;
    scan += mark.workers[i].scan_bytes;
    mark.workers[i].bytes = 0;
    mark.workers[i].objects = 0;
    mark.workers[i].scan_bytes = 0;
  }
  mark.scan_bytes_last = scan;
  return b;
}

uint64_t gort__gc_mark_scan_bytes(void) { return mark.scan_bytes_last; }

void gort__gc_mark_prepare(void) { read_segments(); }

void gort__gc_foreach_segment(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg, bool with_gort) {
  for (int i = 0; i < segs.n; i++)
    if (with_gort || !segs.gort[i]) fn(segs.lo[i], segs.hi[i], arg);
}

// ---- checkmark ---------------------------------------------------------------------

// A small object gort_free'd during a concurrent mark is marked by its
// free and never scanned ("The live count", mgc.c): its words are dead,
// and whatever only they reach is garbage. It stays a block with its live
// bit set until its owner takes it back, and a stale pointer (a dead stack
// slot) may still reach it. The check's mark would scan it and follow its
// dead words, and report as lost what only they reach: a false report,
// under load, in test_sched_hostile and in hostile tests that free while
// cycles run. So the check starts with those blocks marked, as the mark it
// checks had them: bits the first mark set, on live blocks that carry the
// freed tag (mspan.h; a live object's second word matches it only by a
// 2^-64 chance).
static void keep_freed_marked(arena_t *a, const uint64_t *saved, size_t words) {
  for (size_t w = 0; w < words; w++)
    for (uint64_t bits = saved[w]; bits != 0; bits &= bits - 1) {
      uintptr_t obj = a->base + ((w * 64 + (uintptr_t)__builtin_ctzll(bits)) << 4);
      mspan_t *s = __atomic_load_n(&a->spans[arena_page_index(obj)], __ATOMIC_RELAXED);
      if (s == NULL || span_state(s) != SPAN_SMALL || s->kind == KIND_MANUAL || s->kind == KIND_GC_TINY) continue;
      uintptr_t granule = (obj & (GORT_ARENA_SIZE - 1)) >> 4;
      uint64_t bit = 1ULL << (granule & 63);
      if (!(__atomic_load_n(ARENA_LIVE_WORD(a, granule), __ATOMIC_RELAXED) & bit)) continue;
      if (((const block_t *)obj)->tag != block_tag_freed(obj)) continue;
      __atomic_fetch_or(ARENA_MARK_WORD(a, w << 6), bit, __ATOMIC_RELAXED);
    }
}

// Saves the mark bits of every arena in use, clears them, marks again on
// this thread alone, and dies if the second mark set a bit the first did
// not (Go's gccheckmark). The bits end as the union of both marks.
// An arena may grow while this runs (a thread the stop does not hold yet,
// one being created, takes pages): only the words saved are compared,
// and the saved count, not the arena's new one, says how many (reading
// past the saved copy crashed test_sched_hostile's gccheckmark case,
// once in make test and once in a loop of about 260 runs).
static void checkmark(void) {
  uintptr_t lo, hi;
  gort__mheap_arena_range(&lo, &hi);
  lo = GORT_ALIGN_DOWN(lo, GORT_ARENA_SIZE);  // reservations need not fill whole arenas
  size_t narenas = (GORT_ALIGN_UP(hi, GORT_ARENA_SIZE) - lo) >> GORT_ARENA_SHIFT;
  int err;
  size_t table = GORT_ALIGN_UP(narenas * (sizeof(uint64_t *) + sizeof(size_t)) + 1, (size_t)4096);
  uint64_t **save = gort__os_reserve(0, table, 4096, &err);
  if (save == NULL) gort__throw("gccheckmark: out of memory");
  size_t *saved_words = (size_t *)(save + narenas);
  for (size_t i = 0; i < narenas; i++) {
    arena_t *a = gort__arenas[(lo >> GORT_ARENA_SHIFT) + i];
    if (a == NULL || a->hwm == 0) continue;
    size_t words = ((size_t)a->hwm << GORT_PAGE_SHIFT) >> 10;
    saved_words[i] = words;
    save[i] = gort__os_reserve(0, GORT_ALIGN_UP(words * 8, (size_t)4096), 4096, &err);
    if (save[i] == NULL) gort__throw("gccheckmark: out of memory");
    // Atomic, as every access below: a thread that takes pages meanwhile
    // may set bits in these words (a span allocated black), and a plain
    // read and clear, or OR back, could drop its bit.
    for (size_t w = 0; w < words; w++)
      save[i][w] = __atomic_exchange_n(ARENA_MARK_WORD(a, w << 6), 0, __ATOMIC_RELAXED);
    keep_freed_marked(a, save[i], words);
  }
  worker_t *me = &mark.workers[0];
  uint64_t bytes = me->bytes, objects = me->objects, scan_bytes = me->scan_bytes;
  scan_roots();
  bool parallel_was = mark.parallel, atomic_was = mark.atomic, defer_was = mark.defer;
  mark.parallel = mark.atomic = false;  // alone
  mark.defer = false;  // the plainest mark checks the deferring one
  drain_all();
  handle_overflow();
  mark.parallel = parallel_was, mark.atomic = atomic_was, mark.defer = defer_was;
  me->bytes = bytes, me->objects = objects, me->scan_bytes = scan_bytes;
  for (size_t i = 0; i < narenas; i++) {
    arena_t *a = gort__arenas[(lo >> GORT_ARENA_SHIFT) + i];
    if (save[i] == NULL) continue;
    size_t words = saved_words[i];
    for (size_t w = 0; w < words; w++) {
      uint64_t *m = ARENA_MARK_WORD(a, w << 6);
      uint64_t extra = __atomic_load_n(m, __ATOMIC_RELAXED) & ~save[i][w];
      if (extra != 0) {
        uintptr_t obj = a->base + ((w * 64 + (uintptr_t)__builtin_ctzll(extra)) << 4);
        gort__fatal("gccheckmark: an object reachable from the roots was not marked", (void *)obj);
      }
      __atomic_fetch_or(m, save[i][w], __ATOMIC_RELAXED);
    }
    gort__os_unmap(save[i], GORT_ALIGN_UP(words * 8, (size_t)4096));
  }
  gort__os_unmap(save, table);
}

void gort__gc_mark_fork(int phase) {
  lock_t *all[] = {&roots.lock, &mark.lock};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (phase == 0) lock(all[i]); else if (phase == 1) unlock(all[i]); else lock_reinit(all[i]);
  }
}

void gort__gc_mark_after_fork_child(void) {
  // No cycle runs across a fork (the cycle lock), so no guest is armed or
  // in; and none would be waited for in the child.
  atomic_store(&mark.guest_armed, false);
  atomic_store(&mark.guests_in, 0);
  atomic_store(&mark.guests_left, 0);
  mark.helpers_started = false;  // their threads are gone; restarted at the next cycle
  mark.nworkers = 1;
  mark.parallel = mark.atomic = false;
}

int gort__gc_mark_workers(void) { return mark.parallel ? mark.nworkers : 1; }

int gort__gc_cpus(void) { return mark.nworkers > 0 ? mark.nworkers : 1; }

void gort__gc_mark_init(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < n) n = CPU_COUNT(&set);
  if (n < 1) n = 1;
  if (n > MAX_WORKERS) n = MAX_WORKERS;
  mark.nworkers = (int)n;
  for (int i = 1; i < mark.nworkers; i++)
    if (gort__stw_internal_thread(helper_main, &mark.workers[i]) != 0) {
      mark.nworkers = i;
      break;
    }
  mark.helpers_started = mark.nworkers > 1;
}

// Helpers are woken for a mark of PARALLEL_MIN bytes or more last found
// live. Below it the mark is short either way (GCBench depth 12 and
// binary-trees depth 14, 1-4 MiB live, stopped 0.4-0.9 ms with helpers
// from 0, 1 or 4 MiB or without them: 3 noisy runs each, no difference
// seen), so the smallest heaps keep the helpers asleep. Until 2026-12-03
// this was 64 MiB, because two workers marked in twice the time of one
// (binary-trees, 15 MiB live); the cause was false sharing (worker_t),
// not the locked OR, which costs a lone worker 13-15% (gcdirty=none with
// atomic marks forced: GCBench's longest stop 3.5 -> 4.1 ms,
// binary-trees' 13.4 -> 15.1). With each worker on its own lines
// (gcdirty=none, bench/gc/run.sh 3): GCBench depth 16's longest stop 3.55
// -> 2.95 ms and binary-trees depth 18's 13.4 -> 8.4, for 18-20% more CPU
// (0.33 -> 0.39 s, 1.53 -> 1.85).
#define PARALLEL_MIN (4ULL << 20)

void gort__gc_mark(uint64_t last_marked) {
  mark.parallel = mark.helpers_started && last_marked >= PARALLEL_MIN;
  mark.atomic = mark.parallel;
  mark.defer = defer_for(last_marked);
  bounds_update();
  scan_roots();
  drain_all();
  handle_overflow();
  cand_check();
  if (gort__gc_checkmark) checkmark();
}

// ---- concurrent marking (mgc.c, "Concurrent marking") ------------------------------

// The first stop: every root marked and queued; the program then runs
// beside the mark, so marks are atomic from here on.
uint64_t gort__gc_mark_begin(uint64_t last_marked) {
  mark.atomic = true;
  mark.defer = defer_for(last_marked);
  mark.parallel = false;
  bounds_update();
  uint64_t before = mark.workers[0].objects;
  scan_roots();
  uint64_t found = mark.workers[0].objects - before;
  worker_t *me = &mark.workers[0];
  if (me->cur != NULL && me->cur->n > 0) {
    put_full(me->cur);
    me->cur = NULL;
  }
  return found;
}

// The background worker's drain, the program running: alone (the helpers
// sleep; 2 cores would otherwise leave the program none).
void gort__gc_mark_drain_concurrent(void) {
  // Objects the heap grew by since the stop are allocated black; words
  // pointing there need no marking, but the bounds must cover them for
  // the rescans of the pages they are on.
  bounds_update();
  // An assist may hold a buffer it took from the queue (it gives back what
  // it did not scan): the drain is over only when no assist holds one and
  // the queue is empty, else the final stop would do the rest.
  mark.workers[0].give_way = gort__nanotime() + GC_GIVE_WAY_NS;
  for (int naps = 0;; naps++) {
    drain(&mark.workers[0], team_open(false));
    if (atomic_load(&mark.assists) == 0 && __atomic_load_n(&mark.full, __ATOMIC_ACQUIRE) == NULL) break;
    // An assist holds the rest of the work for at most its budget: wait
    // without taking a core from the program (2 cores: spinning here cost
    // GCBench a third of its CPU).
    if (naps < 20) gort__cpu_relax();
    else gort__os_sleep_ns(20000);
  }
  mark.workers[0].give_way = 0;
}

// A mark assist (an allocating thread, in a no-stop region so that no stop
// finds its buffer half-scanned): scans objects from the shared queue
// until it has scanned budget bytes or spent ASSIST_MAX_NS, and returns
// its buffer to it. The time bound: bytes are a poor measure of the time
// a scan takes (a 32-byte object whose one pointer leads to a cold line
// of a 2 GiB heap costs as much as a 512-byte one in cache), and a 512
// KiB budget of the large-heap benchmark's entries took the program
// 10 ms per assist, one after another, for a whole cycle.
#define ASSIST_MAX_OBJECT (64 << 10)
#define ASSIST_MAX_NS 250000
#define ASSIST_CLOCK_EVERY 32

// An assist's buffer back to the queue, and what it marked into the count.
static void assist_end(worker_t *w) {
  if (w->cur != NULL) {
    if (w->cur->n > 0) put_full(w->cur);
    else put_empty(w->cur);
  }
  atomic_fetch_add(&mark.assist_bytes, w->bytes);
  atomic_fetch_add(&mark.assist_scan_bytes, w->scan_bytes);
}

// The bytes of the object an untagged entry names, by its span now (0
// if it has none): racy, as the scan's own reads (scan_object_x); only
// the assist's budget depends on it.
RACY_READS static uintptr_t entry_span_bytes(uintptr_t obj) {
  mspan_t *s = span_of(obj);
  return s != NULL ? gc_object_bytes(s) : 0;
}

uint64_t gort__gc_mark_assist(uint64_t budget) {
  if (__atomic_load_n(&mark.full, __ATOMIC_RELAXED) == NULL) {
    // The worker keeps a deep graph's work in its own buffer (a tree never
    // fills one): ask it to share, for this thread's next assist.
    atomic_store_explicit(&mark.hungry, true, memory_order_relaxed);
    return 0;
  }
  atomic_fetch_add(&mark.assists, 1);
  worker_t w = {0};
  uintptr_t obj;
  uint64_t scanned = 0;
  // A stop that arrives meanwhile waits for this no-stop region: the
  // assist gives up at once (its buffer and ring go back to the queue), so that
  // it never lengthens a stop by more than one object.
  int64_t deadline = gort__nanotime() + ASSIST_MAX_NS;
  // The objects are prefetched, as the worker's are (drain_queue): an
  // assist scans objects the worker queued, cold in this core's cache.
  inflight_t ring = {.n = 0};
  for (unsigned k = 1;
       scanned < budget && !__atomic_load_n(&gort__stop_pending, __ATOMIC_RELAXED) && inflight_next(&w, &ring, &obj);
       k++) {
    if (k % ASSIST_CLOCK_EVERY == 0 && gort__nanotime() > deadline) {
      push(&w, obj);
      break;
    }
    // A large object is the worker's: scanned whole inside the no-stop
    // region, a table of megabytes held every stop for milliseconds.
    uintptr_t size = ENTRY_BYTES(obj);
    if (size == 0) {
      // The program freed this large object after it was queued: its pages
      // are free (no span) or another span's, which scan_object tells apart.
      if ((size = entry_span_bytes(obj)) == 0) continue;
    }
    if (size > ASSIST_MAX_OBJECT) {
      push(&w, obj);
      break;
    }
    scan_drained(&w, obj, mark.defer);
    scanned += size;
  }
  cand_flush(&w);
  inflight_return(&w, &ring);
  assist_end(&w);
  atomic_fetch_sub(&mark.assists, 1);
  return scanned;
}

// Rescans what the program may have changed in the pages [lo, hi): the
// marked (black or gray) objects on them, only their words on these pages;
// unmarked objects are scanned whole when something marks them. Racy
// while the program runs (the span may be changing): a wrong guess only
// marks too much, and the next collect or the final stop covers the rest.
// On a large heap (mark.defer) the words are marked through the
// candidates, as a drain marks them: the words of a written page point
// anywhere in the heap, and marked one at a time each was a chain of
// misses. The 1 GiB cache's final stop rescanned a page in 8-12 us so.
RACY_READS GORT_INLINE void rescan_run_x(worker_t *w, uintptr_t lo, uintptr_t hi, bool defer) {
  // The heap's bounds now, not the mark's: a reservation made during the
  // mark holds only black objects, and the pointers stored into them are
  // what this rescan is for (with the mark's older bounds its pages were
  // cut away, and objects reachable only from them were freed).
  uintptr_t heap_lo, heap_hi;
  gort__mheap_arena_range(&heap_lo, &heap_hi);
  if (lo < heap_lo) lo = heap_lo;
  if (hi > heap_hi) hi = heap_hi;
  w->rescanning = true;
  while (lo < hi) {
    uintptr_t pend = GORT_ALIGN_DOWN(lo, (uintptr_t)GORT_PAGE_SIZE) + GORT_PAGE_SIZE;
    if (pend > hi) pend = hi;
    arena_t *a = arena_of(lo);
    mspan_t *s = a != NULL ? __atomic_load_n(&a->spans[arena_page_index(lo)], __ATOMIC_RELAXED) : NULL;
    uint8_t kind = s != NULL ? s->kind : KIND_MANUAL;
    if (kind_scanned_whole(kind) || kind == KIND_GC_TYPED || kind == KIND_GC_UNCOLLECTABLE) {
      bool root = kind == KIND_GC_UNCOLLECTABLE, typed = kind == KIND_GC_TYPED;
      span_state_t st = span_state(s);
      uintptr_t base = s->base, size;
      if (st == SPAN_LARGE) {
        // The header at base is read only if base's page is still s's.
        uintptr_t bytes = span_bytes(s);
        if (lo - base < bytes && span_of(base) == s && live_test(base) && (root || gort__gc_is_marked(base))) {
          if (typed) scan_typed_x(w, base, bytes, lo, pend, defer);
          else scan_range_x(w, lo, pend, defer);
        }
      } else if (st == SPAN_SMALL && lo >= base && (size = span_elemsize(s)) != 0) {  // 0: being freed
        uintptr_t end = base + (uintptr_t)s->nelems * size;
        uintptr_t obj = base + (lo - base) / size * size;
        // An object begun on an earlier page has its header and live bit
        // there: read only if that page is s's too (see pages_map_to).
        if (obj < GORT_ALIGN_DOWN(lo, GORT_PAGE_SIZE) && span_of(obj) != s) obj += size;
        for (; obj < pend && obj < end; obj += size) {
          if (!live_test(obj) || !(root || gort__gc_is_marked(obj))) continue;
          uintptr_t from = obj > lo ? obj : lo, to = obj + size < pend ? obj + size : pend;
          if (typed) scan_typed_x(w, obj, size, from, to, defer);
          else scan_range_x(w, from, to, defer);
        }
      }
    }
    lo = pend;
  }
  if (defer) cand_flush(w);  // no word left unmarked when the run is done
  w->rescanning = false;
}

RACY_READS static void rescan_run(uintptr_t lo, uintptr_t hi, void *arg) {
  if (mark.defer) rescan_run_x(arg, lo, hi, true);
  else rescan_run_x(arg, lo, hi, false);
}

// The written pages of a pre-cleaning round, as pieces of at most
// PIECE_PAGES pages that the worker and assisting threads claim one at a
// time: a program that writes faster than one worker rescans then pays
// for its writes by rescanning too (Go's assists, for pages), which slows
// it until the rounds converge. Pieces live in persistent memory, grown
// by doubling (at most one per written page of the heap).
#define PIECE_PAGES 16
// An assist that saw a round open may claim its first piece only after
// the worker closed that round and began to collect the next one (it counts
// itself a holder after its look at open): the pieces it reads are then
// being written. So n is published with release after the piece it counts,
// and the array's address (which a grown array replaces; the old ones,
// never freed, keep their prefix) is atomic: an assist that read n past
// an old array's end reads the new address. ThreadSanitizer found the
// race in a clean-clone run (test_gc_concurrent, objects_moved_into_...).
static struct {
  uintptr_t (*_Atomic piece)[2];
  size_t cap;
  _Atomic size_t n, next;  // pieces, and the next to claim
  _Atomic int holders;     // threads rescanning a claimed piece
  _Atomic bool open;       // assists may claim
} rescan;

static void add_pieces(uintptr_t lo, uintptr_t hi, void *arg) {
  bool *ok = arg;
  for (uintptr_t p = lo; p < hi; p += PIECE_PAGES << 12) {
    size_t n = atomic_load_explicit(&rescan.n, memory_order_relaxed);
    uintptr_t(*piece)[2] = atomic_load_explicit(&rescan.piece, memory_order_relaxed);
    if (n == rescan.cap) {
      size_t cap = rescan.cap ? rescan.cap * 2 : 4096;
      uintptr_t (*grown)[2] = gort__persistent_alloc(cap * sizeof *grown, 64);
      if (grown == NULL) {
        *ok = false;  // the caller rescans everything marked instead
        return;
      }
      if (n) memcpy(grown, piece, n * sizeof *grown);
      piece = grown, rescan.cap = cap;
      atomic_store_explicit(&rescan.piece, grown, memory_order_release);
    }
    piece[n][0] = p;
    piece[n][1] = p + (PIECE_PAGES << 12) < hi ? p + (PIECE_PAGES << 12) : hi;
    atomic_store_explicit(&rescan.n, n + 1, memory_order_release);
  }
}

// Rescans pieces until none is left or budget pages are done; returns
// the pages done.
static uint64_t rescan_pieces(worker_t *w, uint64_t budget) {
  uint64_t done = 0;
  atomic_fetch_add(&rescan.holders, 1);
  while (done < budget && !(w != &mark.workers[0] && __atomic_load_n(&gort__stop_pending, __ATOMIC_RELAXED))) {
    size_t i = atomic_fetch_add(&rescan.next, 1);
    if (i >= atomic_load_explicit(&rescan.n, memory_order_acquire)) break;
    uintptr_t *piece = atomic_load_explicit(&rescan.piece, memory_order_acquire)[i];
    uintptr_t lo = piece[0], hi = piece[1];
    rescan_run(lo, hi, w);
    done += (hi - lo) >> 12;
    gort__gc_give_way(&w->give_way);
  }
  atomic_fetch_sub(&rescan.holders, 1);
  return done;
}

// An allocating thread's share of a pre-cleaning round (in a no-stop
// region); false if there is none to take.
bool gort__gc_mark_assist_pages(uint64_t budget) {
  if (!atomic_load_explicit(&rescan.open, memory_order_acquire)) return false;
  worker_t w = {0};
  uint64_t done = rescan_pieces(&w, budget);
  assist_end(&w);
  return done > 0;
}

// The written pages as pieces (rescan); false, and an overflow, if the
// tracking or the pieces' memory failed. reprotect: a pre-cleaning round's
// collect, after which writes must be seen again; the final stop's need
// not be (dirty.c, "The final stop's collect").
static bool collect_pieces(uint64_t *pages, bool reprotect) {
  bool ok = true;
  atomic_store(&rescan.n, 0);
  atomic_store(&rescan.next, 0);
  if (!gort__dirty_collect(add_pieces, &ok, pages, reprotect) || !ok) {
    atomic_store(&mark.overflow, true);
    return false;
  }
  return true;
}

// Collects the pages written since the last collect (protecting them
// again) and rescans them. False if the tracking failed: the final stop
// then rescans every marked object (as after an overflow). concurrent: a
// pre-cleaning round, shared with assists; else the final stop's, alone.
bool gort__gc_mark_rescan_dirty(uint64_t *pages, bool concurrent) {
  worker_t *me = &mark.workers[0];
  if (!concurrent) {
    if (!gort__dirty_collect(rescan_run, me, pages, false)) {
      atomic_store(&mark.overflow, true);
      return false;
    }
    return true;
  }
  if (!collect_pieces(pages, true)) return false;
  atomic_store_explicit(&rescan.open, true, memory_order_release);
  me->give_way = gort__nanotime() + GC_GIVE_WAY_NS;
  rescan_pieces(me, UINT64_MAX);
  me->give_way = 0;
  atomic_store(&rescan.open, false);
  // An assist may still be in its last piece (its gray objects then go to
  // the queue, which the round's drain or the final stop takes).
  while (atomic_load(&rescan.holders) != 0) gort__cpu_relax();
  return true;
}

// The final stop: the roots again, the last written pages, the drain with
// every worker, the overflow pass, gccheckmark. With the helpers (a live
// heap of FINISH_PARALLEL_MIN or more), the written pages are pieces that every
// worker takes before it drains: the large-heap benchmark's final stop
// rescans 20-170 pages, at 2-6 us each since rescans mark through the
// candidates (8-12 before), the largest part of that stop. Its collect
// does not protect the pages again, as the single worker's does not
// (dirty.c). t[1] is then the collect alone, t[2] the rescan too.
void gort__gc_mark_finish(uint64_t last_marked, uint64_t *dirty_pages, int64_t t[3]) {
  bounds_update();
  int64_t t0 = gort__nanotime();
  scan_roots_ex(true);
  gort__stw_foreach_thread(take_barrier_buffer);
  atomic_store(&mark.wb_flush, false);
  int64_t t1 = gort__nanotime();
  mark.parallel = mark.helpers_started && last_marked >= FINISH_PARALLEL_MIN;
  if (mark.parallel) {
    if (collect_pieces(dirty_pages, false)) atomic_store(&mark.rescan_first, true);
  } else {
    gort__gc_mark_rescan_dirty(dirty_pages, false);
  }
  int64_t t2 = gort__nanotime();
  drain_all();
  atomic_store(&mark.rescan_first, false);
  atomic_store(&mark.guest_armed, false);
  while (atomic_load(&mark.guests_in) != 0) gort__os_yield();  // no guest in the mark after this
  t[0] = t1 - t0, t[1] = t2 - t1, t[2] = gort__nanotime() - t2;
  handle_overflow();
  cand_check();
  if (gort__gc_checkmark) checkmark();
  mark.atomic = false;
}

// Allocation black: every free slot of s is marked, so the objects a cache
// hands out of it during the mark survive it (the sweep keeps live & mark,
// and a free slot's live bit stays clear). A word at a time, atomically:
// markers set bits in the same words.
void gort__gc_premark_span(mspan_t *s) {
  size_t nwords = span_bytes(s) >> 10;
  for (size_t w = 0; w < nwords; w++) {
    uint64_t bit, *live = live_word(s->base + (w << 10), &bit), *m = mark_word(s->base + (w << 10), &bit);
    __atomic_fetch_or(m, ~__atomic_load_n(live, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
  }
}

// A span new to the collector outside a mark: no stray mark bit (a
// concurrent marker may have set one while the pages belonged to another
// span) may keep a future object alive.
void gort__gc_clear_span_marks(mspan_t *s) {
  size_t nwords = span_bytes(s) >> 10;
  for (size_t w = 0; w < nwords; w++) {
    uint64_t bit, *m = mark_word(s->base + (w << 10), &bit);
    if (__atomic_load_n(m, __ATOMIC_RELAXED) != 0) __atomic_store_n(m, 0, __ATOMIC_RELAXED);
  }
}

// ---- roots for the leak check ------------------------------------------------------

// Calls fn on every live object of the uncollectable spans on one list, as
// scan_uncollectable_list scans them.
static void foreach_uncollectable(span_link_t *list, void (*fn)(uintptr_t lo, uintptr_t hi, void *arg),
                                  void *arg) {
  for (span_link_t *l = span_list_begin(list), *next; l != list; l = next) {
    next = l->next;  // a full span that had frees moves to the partial list
    mspan_t *s = (mspan_t *)l;
    if (s->kind != KIND_GC_UNCOLLECTABLE) continue;
    if (span_state(s) == SPAN_SMALL) gort__gc_collect_frees_listed(s);
    if (span_state(s) == SPAN_LARGE) {
      if (live_test(s->base)) fn(s->base, s->base + span_bytes(s), arg);
      continue;
    }
    for (uint32_t i = 0; i < s->fresh; i++) {
      uintptr_t obj = s->base + (uintptr_t)i * s->elemsize;
      if (live_test(obj)) fn(obj, obj + s->elemsize, arg);
    }
  }
}

// The roots scan_roots scans besides the stacks and the loaded objects'
// segments: registered ranges, live uncollectable objects, the queue of
// finalizers not yet run. With the world stopped and the cycle lock held
// (gort__gc_run_stopped). For the leak check (leakcheck.c), which keeps
// its own list of segments and stacks; keep in step with scan_roots.
void gort__gc_foreach_root_range(void (*fn)(uintptr_t lo, uintptr_t hi, void *arg), void *arg) {
  for (size_t i = 0; i < roots.n; i++) fn(roots.lo[i], roots.hi[i], arg);
  for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
    gcentral_t *g = &gort__gcentral[KIND_GC_UNCOLLECTABLE - 1][cls];
    foreach_uncollectable(&g->partial, fn, arg);
    foreach_uncollectable(&g->full, fn, arg);
    foreach_uncollectable(&g->unswept, fn, arg);
  }
  foreach_uncollectable(&gort__gclarge.swept, fn, arg);
  foreach_uncollectable(&gort__gclarge.unswept, fn, arg);
  gort__gc_finalizers_roots(fn, arg);
}
