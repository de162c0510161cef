// The leak check's mark (LeakSanitizer's and bdwgc's find-leak idea, on
// gort's heap).
//
// See obs/leakcheck.c for the leak check as a whole (recording, reports,
// options); this file answers its one question: which malloc blocks does
// nothing reachable point to? It is the collector's mark with two changes:
// every malloc block it reaches is scanned conservatively (the collector
// never looks inside malloc blocks), and its marks are its own.
//
// A check (gort__gc_leak_scan):
//   1. Before the stop: map the mark's memory, pause the background
//      sweeper.
//   2. Stop the world with the collector's own stop, as a cycle does
//      (gort__gc_run_stopped_with_segments: the cycle lock, so no
//      collection runs meanwhile; no stopped thread holds a gort lock or
//      is midway through its cache; the stop made from inside the
//      loader's walk of its objects, so that the segments listed are the
//      ones mapped until the restart: read before the stop, as this check
//      once did, a library that a thread dlclose'd meanwhile was scanned
//      anyway and the check crashed in every run of test/leak/dlchurn.c).
//      A thread that frees a block is either stopped or has not started
//      the free: frees during the check are never half-seen.
//   3. Mark from the roots. They are the collector's roots (stw.c,
//      mgcmark.c) plus each thread's glibc descriptor (struct pthread, at
//      the thread pointer: the DTV with dynamic TLS blocks and the
//      thread-specific data arrays hang from it) and gort's own data (its
//      few malloc'd records, such as the exit values of threads not yet
//      joined, are listed there). A word keeps a block if it points
//      anywhere inside it, interior pointers included, as in the collector;
//      blocks reached only through interior pointers are counted, so the
//      report can say how many were called reachable that way. Reached
//      malloc blocks and scanned collected objects are scanned word by word.
//   4. Walk every in-use malloc span in address order: each live block not
//      marked is leaked. Live means its live bit is set and its remote bit
//      is clear (no remote free awaits collection: pagemap.h), or it
//      is a sample of the heap profiler (which keeps the bit clear).
//   5. Classify the leaked blocks (LeakSanitizer's terms): a block that
//      another leaked block points to is an indirect leak, the others are
//      direct. A group of leaked blocks that only point to each other (a
//      dropped circular list) would then have no direct leak, and reports
//      would show only consequences: from each such group not reached from
//      a direct leak, the block of lowest address is called direct too.
//   6. Hand each leaked block to the caller (its id and size are the
//      caller's), restart the world, resume the sweeper.
//
// Memory: three bitmaps of one bit per 16-byte granule of the arenas in
// use (marked, reached by a pointer to its start, live sample), the mark
// stack and the list of leaked blocks, all reserved from the OS for the
// check and unmapped after it; pages are touched only where blocks are.
// Nothing here allocates from gort's heap, which is stopped.
//
// What it cannot see (said again in README.md): pointers kept only in
// memory gort does not scan (a program's own mmap'd regions, kernel
// buffers, registers of threads gort does not know), or hidden (xor'd,
// compressed, on disk); a block so kept is reported as leaked. A stale
// copy of a pointer in a dead stack slot keeps a block, so a leak can be
// missed. Both are the limits of every conservative leak checker.
//
// Threads gort does not know (made with a raw clone, or before gort
// started, when it is dlopen'ed late) are not stopped and their stacks are
// not scanned: what only they hold is reported as leaked. Looked at for
// #14, not done: /proc/self/task lists them (read with getdents64, since
// opendir allocates) and tgkill reaches each with the stop signal, but
//   - the handler finds its record through TLS (self), and a clone without
//     CLONE_SETTLS shares its parent's thread pointer: it would take the
//     parent's record. The handler would have to key on gettid() and use
//     no TLS at all on that path;
//   - such a thread's stack has no known bounds: not glibc's (below the
//     thread pointer), so the mapping holding its sp (/proc/self/maps,
//     read before the stop) or, if its stack is a malloc block, that
//     block; a guess either way, and a whole heap arena if wrong;
//   - a thread that blocks the signal never stops, so the stop needs a
//     time limit and the report a warning, and the collector's own stop
//     (which shares this code) would need the same, or to leave them out;
//   - a thread can clone between the listing and the signals.
// Each is solvable, but together they change the stop protocol that every
// collection relies on, for threads that programs rarely make; the report
// says nothing of them meanwhile. Threads made through pthread_create
// before gort's start are the likelier case (a library constructor that
// ran first): those have glibc's layout, so their stacks' bounds are
// known, and the tid-keyed handler alone would cover them.

#define _GNU_SOURCE
#include "leakcheck.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "../alloc/mheap.h"
#include "../base/noscan.h"
#include "../os/os.h"
#include "../sched/sched.h"
#include "gc.h"

// The mark stack and the list of leaked blocks hold at most one entry per
// block: sized for the heap's blocks of 16 bytes, capped (the mark then
// rescans on overflow; leaks past the cap go unreported, and the report
// says so).
#define MAX_ENTRIES ((size_t)1 << 26)

enum { BM_MARK, BM_START, BM_EXTRA, BM_N };

typedef struct {
  uintptr_t addr, size;  // start, usable bytes
  uintptr_t scan;        // bytes that may hold pointers (scan_bytes)
} leak_t;

enum { L_POINTED = 1, L_COVERED = 2, L_DIRECT = 4 };

// One check's state; guarded by check_lock (one check at a time).
static struct {
  uintptr_t lo, hi;          // the arenas' address range
  uintptr_t arena0;          // lo's arena index
  size_t narenas;
  uint64_t *bits;            // BM_N bitmaps of GORT_LIVE_WORDS words per arena
  size_t bits_bytes;
  size_t cap;                // entries of the stack and of the leak list
  uintptr_t *stack;          // the mark stack
  size_t nstack, stack_cap;
  bool overflow;             // a push found the stack full: rescan (see mark_overflow)
  bool retry;                // threads were starting: stop again later
  leak_t *leaks;
  uint8_t *flags;            // per leak, L_*
  size_t nleaks, leaks_cap;
  size_t descriptor_bytes;   // sizeof(struct pthread), 0 if unknown
  const gc_leak_visitor_t *v;
  gc_leak_stats_t *st;
} lc;
GORT_NOSCAN(lc)

static _Atomic uint32_t check_lock;  // a raw futex lock: a waiter must stay stoppable

// ---- bitmaps ----------------------------------------------------------------------

// The word and bit of granule addr in bitmap which; addr lies in [lo, hi).
static inline uint64_t *bm_word(int which, uintptr_t addr, uint64_t *bit) {
  uintptr_t ai = (addr >> GORT_ARENA_SHIFT) - lc.arena0;
  uintptr_t g = (addr & (GORT_ARENA_SIZE - 1)) >> 4;
  *bit = 1ULL << (g & 63);
  return &lc.bits[(ai * BM_N + (uintptr_t)which) * GORT_LIVE_WORDS + (g >> 6)];
}

static inline bool bm_test(int which, uintptr_t addr) {
  uint64_t bit, *w = bm_word(which, addr, &bit);
  return (*w & bit) != 0;
}

// Sets the bit; returns whether it was set before.
static inline bool bm_set(int which, uintptr_t addr) {
  uint64_t bit, *w = bm_word(which, addr, &bit);
  bool was = (*w & bit) != 0;
  *w |= bit;
  return was;
}

static void add_extra(uintptr_t addr, void *ctx) {
  (void)ctx;
  if (addr >= lc.lo && addr < lc.hi && arena_of(addr) != NULL) bm_set(BM_EXTRA, addr);
}

// ---- which blocks are live --------------------------------------------------------

// The block v points into, if it is live: its start in *obj and its bytes
// in *size. s is v's span (in use or not: a stale span struct only makes
// this say no).
static bool live_block(mspan_t *s, uintptr_t v, uintptr_t *obj, uintptr_t *size) {
  span_state_t st = span_state(s);
  if (st == SPAN_LARGE) {
    *obj = s->base;
    *size = span_bytes(s);
    return s->kind == KIND_MANUAL || live_test(s->base);
  }
  if (st != SPAN_SMALL) return false;
  uintptr_t es = s->elemsize, off = v - s->base;
  uint32_t n = __atomic_load_n(&s->fresh, __ATOMIC_RELAXED);
  if (es == 0 || v < s->base || off >= (uintptr_t)n * es || off >= span_bytes(s)) return false;
  uintptr_t o = s->base + (uintptr_t)span_elem_index(s, off) * es;
  *obj = o;
  *size = es;
  if (s->kind != KIND_MANUAL) return live_test(o);
  if (live_test(o)) return !remote_test(o);  // not a pending remote free
  return bm_test(BM_EXTRA, o);
}

static bool scanned_kind(const mspan_t *s) {
  return s->kind == KIND_MANUAL || kind_scanned_whole(s->kind) || s->kind == KIND_GC_TYPED ||
         s->kind == KIND_GC_UNCOLLECTABLE;
}

// ---- the mark ----------------------------------------------------------------------

static void push(uintptr_t obj) {
  if (lc.nstack == lc.stack_cap) {
    lc.overflow = true;  // marked, not queued: mark_overflow finds it
    return;
  }
  lc.stack[lc.nstack++] = obj;
}

static inline void mark_value(uintptr_t v) {
  if (v < lc.lo || v >= lc.hi) return;
  arena_t *a = arena_of(v);
  if (a == NULL) return;
  mspan_t *s = __atomic_load_n(&a->spans[arena_page_index(v)], __ATOMIC_RELAXED);
  uintptr_t obj, size;
  if (s == NULL || !live_block(s, v, &obj, &size)) return;
  uintptr_t start = obj + (s->kind == KIND_GC_TYPED ? SPAN_TYPED_HEADER : 0);
  if (v == start) bm_set(BM_START, obj);
  if (bm_set(BM_MARK, obj)) return;
  if (scanned_kind(s)) push(obj);
}

// Racy by design, as the collector's scan (mgcmark.c, RACY_READS): gort's
// own globals are in the segments it reads, and the scavenger, which no
// stop stops, writes some of them.
__attribute__((no_sanitize("thread"))) static void scan_range(uintptr_t lo, uintptr_t hi, void *arg) {
  (void)arg;
  lo = GORT_ALIGN_UP(lo, (uintptr_t)8);
  for (uintptr_t p = lo; p + 8 <= hi; p += 8) mark_value(*(const uintptr_t *)p);
}

// The bytes of block obj (of span s, usable bytes size) that may hold
// pointers: all of a collected object, a malloc block's requested bytes.
static uintptr_t scan_bytes(uintptr_t obj, uintptr_t size, const mspan_t *s) {
  if (s->kind != KIND_MANUAL || lc.v->scan_bytes == NULL) return size;
  uintptr_t n = lc.v->scan_bytes(obj, size, lc.v->arg);
  return n < size ? n : size;
}

static void scan_block(uintptr_t obj) {
  mspan_t *s = span_of(obj);
  uintptr_t size = span_state(s) == SPAN_LARGE ? span_bytes(s) : s->elemsize;
  scan_range(obj, obj + scan_bytes(obj, size, s), NULL);
}

static void drain(void) {
  while (lc.nstack > 0) scan_block(lc.stack[--lc.nstack]);
}

// Calls fn(obj, s) for each live block (of any kind) of every in-use span,
// in address order.
static void foreach_block(void (*fn)(uintptr_t obj, uintptr_t size, mspan_t *s)) {
  for (size_t ai = 0; ai < lc.narenas; ai++) {
    arena_t *a = gort__arenas[lc.arena0 + ai];
    if (a == NULL) continue;
    uint32_t hwm = __atomic_load_n(&a->hwm, __ATOMIC_RELAXED);
    for (uintptr_t p = 0; p < hwm && p < GORT_PAGES_PER_ARENA; p++) {
      mspan_t *s = __atomic_load_n(&a->spans[p], __ATOMIC_RELAXED);
      uintptr_t page = a->base + (p << GORT_PAGE_SHIFT);
      if (s == NULL || s->base != page) continue;  // free, or not the span's first page
      span_state_t st = span_state(s);
      if (st != SPAN_SMALL && st != SPAN_LARGE) continue;
      uintptr_t np = s->npages;
      if (np == 0 || np > GORT_PAGES_PER_ARENA - p) continue;  // being changed: not a span of ours now
      uintptr_t obj, size;
      if (st == SPAN_LARGE) {
        if (live_block(s, page, &obj, &size)) fn(obj, size, s);
      } else if (s->elemsize != 0) {
        uint32_t n = __atomic_load_n(&s->fresh, __ATOMIC_RELAXED);
        for (uint32_t i = 0; i < n && (uintptr_t)(i + 1) * s->elemsize <= span_bytes(s); i++) {
          uintptr_t b = page + (uintptr_t)i * s->elemsize;
          if (live_block(s, b, &obj, &size)) fn(obj, size, s);
        }
      }
      p += np - 1;
    }
  }
}

static void rescan_marked(uintptr_t obj, uintptr_t size, mspan_t *s) {
  if (scanned_kind(s) && bm_test(BM_MARK, obj)) scan_range(obj, obj + scan_bytes(obj, size, s), NULL);
}

// The stack overflowed (a graph larger than its gigabyte of address
// space): some marked blocks were never scanned. Scan every marked block
// again until a pass ends without overflow, as the collector does.
static void mark_overflow(void) {
  while (lc.overflow) {
    lc.overflow = false;
    foreach_block(rescan_marked);
    drain();
  }
}

// ---- roots ----------------------------------------------------------------------

// A segment, less gort's own tables that hold addresses, not objects
// (base/noscan.h, as the collector's root scan: the page map, this check's
// state, the heap's reservations, the profiler's registry of sampled
// blocks, which would otherwise keep every sampled block "reachable").
static void scan_segment(uintptr_t lo, uintptr_t hi, void *arg) { gort__noscan_foreach_gap(lo, hi, scan_range, arg); }

static void scan_descriptor(uintptr_t tp, void *arg) {
  (void)arg;
  if (tp != 0 && lc.descriptor_bytes != 0) scan_range(tp, tp + lc.descriptor_bytes, NULL);
}

// A registered root range inside a malloc block (the start record of a
// thread being created, gort's own pin) keeps that block too.
static void scan_root_range(uintptr_t lo, uintptr_t hi, void *arg) {
  mark_value(lo);
  scan_range(lo, hi, arg);
}

static void scan_roots(void) {
  gort__stw_foreach_stack(scan_range, NULL);
  gort__stw_foreach_thread_pointer(scan_descriptor, NULL);
  gort__sched_foreach_stack(scan_range, NULL);
  gort__gc_foreach_segment(scan_segment, NULL, true);  // gort's own data holds some of its records
  gort__gc_foreach_root_range(scan_root_range, NULL);
}

// ---- the leaked blocks ------------------------------------------------------------

static void count_block(uintptr_t obj, uintptr_t size, mspan_t *s) {
  if (s->kind != KIND_MANUAL) return;
  lc.st->live_blocks++;
  lc.st->live_bytes += size;
  if (bm_test(BM_MARK, obj)) {
    if (!bm_test(BM_START, obj)) lc.st->interior_blocks++, lc.st->interior_bytes += size;
    return;
  }
  if (lc.nleaks == lc.leaks_cap) {
    lc.st->unlisted_blocks++;  // past the cap: counted, not reported
    return;
  }
  lc.leaks[lc.nleaks++] = (leak_t){obj, size, scan_bytes(obj, size, s)};
}

// The index of the leaked block v points into, or -1.
static ptrdiff_t find_leak(uintptr_t v) {
  if (lc.nleaks == 0 || v < lc.leaks[0].addr) return -1;
  size_t lo = 0, hi = lc.nleaks;  // the last block starting at or below v is in [lo, hi)
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (lc.leaks[mid].addr <= v) lo = mid; else hi = mid;
  }
  return v - lc.leaks[lo].addr < lc.leaks[lo].size ? (ptrdiff_t)lo : -1;
}

static void set_pointed(size_t i) {
  const leak_t *l = &lc.leaks[i];
  for (uintptr_t p = l->addr; p + 8 <= l->addr + l->scan; p += 8) {
    ptrdiff_t j = find_leak(*(const uintptr_t *)p);
    if (j >= 0 && (size_t)j != i) lc.flags[j] |= L_POINTED;
  }
}

// Marks every leaked block reachable from leak i as covered (the mark
// stack holds indices here; it is empty between marks).
static void cover_from(size_t i) {
  lc.flags[i] |= L_COVERED;
  lc.nstack = 0;
  lc.stack[lc.nstack++] = i;
  while (lc.nstack > 0) {
    const leak_t *l = &lc.leaks[lc.stack[--lc.nstack]];
    for (uintptr_t p = l->addr; p + 8 <= l->addr + l->scan; p += 8) {
      ptrdiff_t j = find_leak(*(const uintptr_t *)p);
      if (j < 0 || (lc.flags[j] & L_COVERED)) continue;
      lc.flags[j] |= L_COVERED;
      if (lc.nstack < lc.stack_cap) lc.stack[lc.nstack++] = (uintptr_t)j;
    }
  }
}

// Step 5 of the file comment.
static void classify(void) {
  for (size_t i = 0; i < lc.nleaks; i++) set_pointed(i);
  for (size_t i = 0; i < lc.nleaks; i++)
    if (!(lc.flags[i] & L_POINTED)) {
      lc.flags[i] |= L_DIRECT;
      lc.st->direct_blocks++;
      cover_from(i);
    }
  for (size_t i = 0; i < lc.nleaks; i++)
    if (!(lc.flags[i] & L_COVERED)) {
      lc.flags[i] |= L_DIRECT;
      lc.st->direct_blocks++;
      lc.st->cycle_blocks++;
      cover_from(i);
    }
}

// ---- the check --------------------------------------------------------------------

static void mark_and_list(void);

static void stopped_anyway(void) { mark_and_list(); }

static void stopped(void) {
  // A thread still starting has blocks in flight on no stack we see: let
  // it register first (scan retries; a thread cannot register while the
  // world is stopped, so none can start between this test and the mark).
  lc.retry = gort__stw_starting() > 0;
  if (!lc.retry) mark_and_list();
}

static void mark_and_list(void) {
  int64_t t0 = gort__nanotime();
  // The heap cannot grow while stopped; what grew since map_all past its
  // room is left out (clamped to the bitmaps).
  gort__mheap_arena_range(&lc.lo, &lc.hi);
  uintptr_t room_lo = lc.arena0 << GORT_ARENA_SHIFT, room_hi = (lc.arena0 + lc.narenas) << GORT_ARENA_SHIFT;
  if (lc.lo < room_lo) lc.lo = room_lo;
  if (lc.hi > room_hi) lc.hi = room_hi;
  if (lc.v->extra_live != NULL) lc.v->extra_live(add_extra, NULL, lc.v->arg);
  scan_roots();
  drain();
  mark_overflow();
  foreach_block(count_block);
  classify();
  for (size_t i = 0; i < lc.nleaks; i++) {
    lc.st->leaked_blocks++;
    lc.st->leaked_bytes += lc.leaks[i].size;
    lc.v->leaked(lc.leaks[i].addr, lc.leaks[i].size, (lc.flags[i] & L_DIRECT) != 0, lc.v->arg);
  }
  lc.st->stopped_ns = gort__nanotime() - t0;
}

static void unmap_all(void) {
  if (lc.bits != NULL) gort__os_unmap(lc.bits, lc.bits_bytes);
  if (lc.stack != NULL) gort__os_unmap(lc.stack, GORT_ALIGN_UP(lc.cap * sizeof *lc.stack, (size_t)4096));
  if (lc.leaks != NULL) gort__os_unmap(lc.leaks, GORT_ALIGN_UP(lc.cap * sizeof *lc.leaks, (size_t)4096));
  if (lc.flags != NULL) gort__os_unmap(lc.flags, GORT_ALIGN_UP(lc.cap, (size_t)4096));
  lc.bits = NULL, lc.stack = NULL, lc.leaks = NULL, lc.flags = NULL;
}

// The arenas the heap may use until the stop: its range now, plus room
// for the growth of other threads meanwhile, above and below (the tracked
// zone grows down once it meets the main one: mheap.c). Capped: an arena
// outside the room is then not scanned, and its blocks are not reported;
// so is a tracked zone that other threads create only meanwhile, 4 GiB
// below the main one.
static int map_all(void) {
  uintptr_t lo, hi;
  gort__mheap_arena_range(&lo, &hi);
  if (hi == 0) lo = hi = (uintptr_t)16 << GORT_ARENA_SHIFT;
  lc.arena0 = (lo >> GORT_ARENA_SHIFT) - 16;
  uintptr_t last = (GORT_ALIGN_UP(hi, GORT_ARENA_SIZE) >> GORT_ARENA_SHIFT) + 16;
  if (last > GORT_ARENA_L1) last = GORT_ARENA_L1;
  lc.narenas = last - lc.arena0;
  lc.bits_bytes = lc.narenas * BM_N * GORT_LIVE_WORDS * sizeof(uint64_t);
  lc.cap = (lc.narenas << GORT_ARENA_SHIFT) / 16;
  if (lc.cap > MAX_ENTRIES) lc.cap = MAX_ENTRIES;
  int err = 0;
  lc.bits = gort__os_reserve(0, lc.bits_bytes, 4096, &err);
  lc.stack = gort__os_reserve(0, GORT_ALIGN_UP(lc.cap * sizeof *lc.stack, (size_t)4096), 4096, &err);
  lc.leaks = gort__os_reserve(0, GORT_ALIGN_UP(lc.cap * sizeof *lc.leaks, (size_t)4096), 4096, &err);
  lc.flags = gort__os_reserve(0, GORT_ALIGN_UP(lc.cap, (size_t)4096), 4096, &err);
  if (lc.bits == NULL || lc.stack == NULL || lc.leaks == NULL || lc.flags == NULL) {
    unmap_all();
    return err != 0 ? err : -ENOMEM;
  }
  lc.stack_cap = lc.leaks_cap = lc.cap;
  return 0;
}

// The size of glibc's struct pthread, which it publishes for debuggers. In
// a fully static program dlsym finds nothing (and its failure leaves a
// malloc'd error message behind, which this check then reported), so the
// symbol is also referenced directly: weak and hidden, it binds only where
// the executable itself holds it (a static link, which carries glibc's
// debugger symbols), and is NULL in the shared library and in programs
// linked with the shared libc, which never bind glibc's private symbol so.
// Unknown, the descriptors go unscanned, and the blocks only they hold
// (the second-level arrays of pthread keys past the 32nd) are reported.
extern const uint32_t _thread_db_sizeof_pthread __attribute__((weak, visibility("hidden")));

static size_t descriptor_bytes(void) {
  const uint32_t *n = &_thread_db_sizeof_pthread;
  if (n == NULL && gort__os_loaded_by_ld_so()) n = dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
  return n != NULL && *n < 65536 ? *n : 0;
}

typedef struct {
  const gc_leak_visitor_t *v;
  gc_leak_stats_t *stats;
  int err;
} scan_args_t;

int gort__gc_leak_scan(const gc_leak_visitor_t *v, gc_leak_stats_t *stats) {
  uint32_t z = 0;
  if (!atomic_compare_exchange_strong(&check_lock, &z, 1))
    while (atomic_exchange(&check_lock, 2) != 0) gort__os_futex_wait(&check_lock, 2);
  memset(stats, 0, sizeof *stats);
  if (lc.descriptor_bytes == 0) lc.descriptor_bytes = descriptor_bytes();
  int err = map_all();
  if (err == 0) {
    lc.v = v;
    lc.st = stats;
    lc.nstack = lc.nleaks = 0;
    lc.overflow = false;
    gort__gc_sweep_pause();
    // Threads start in microseconds; one that takes longer than a second
    // (stopped in a debugger) is not waited for.
    for (int tries = 0;; tries++) {
      lc.retry = false;
      gort__gc_run_stopped_with_segments(stopped);
      if (!lc.retry || tries == 1000) break;
      gort__os_sleep_ns(1000000);
    }
    if (lc.retry) {
      lc.retry = false;
      lc.st->starting_threads = (uint64_t)gort__stw_starting();
      gort__gc_run_stopped_with_segments(stopped_anyway);
    }
    gort__gc_sweep_resume();
    unmap_all();
  }
  if (atomic_exchange(&check_lock, 0) == 2) gort__os_futex_wake(&check_lock, 1);
  return err;
}

void gort__gc_leak_after_fork_child(void) {
  // Only the forking thread lives on: a check another thread was running
  // is over, and the child's own check starts afresh (map_all).
  atomic_store(&check_lock, 0);
}

void gort__gc_leak_enter(void (*fn)(void *), void *arg) {
  gort__start_ensure();
  if (gort__nostop > 0) gort__fatal("gort_leak_check called inside the allocator (from a signal handler?)", NULL);
  gort__stw_register_self();
  gort__stw_run_recorded(fn, arg);
}
