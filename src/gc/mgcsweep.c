// Sweeping (Go: mgcsweep.go).
//
// See mgc.c for the collector's design. After a mark every collected span
// is "unswept": its live bits still say which slots were allocated, its
// mark bits which of those the mark reached. Sweeping a span frees the
// allocated slots the mark did not reach (live & ~mark), keeps live = live
// & mark, and clears the mark bits for the next cycle: a word-wise pass
// over the span's bits (a 32 KiB span is 32 words of each), then one push
// per dead object onto the span's free list. A span left with no live
// object goes back to the page heap (where the scavenger finds it).
//
// Who sweeps, so that a cycle's end never waits for the sweep:
//   - lazily, a thread whose cache needs a span of some class sweeps an
//     unswept span of that class first (malloc_gc.c, take_span), and a
//     large allocation sweeps large spans until as many pages of its zone
//     went back to the heap (gort__gc_sweep_reclaim_large); both run on
//     registered threads, in no-stop regions;
//   - a background sweeper thread takes the unswept spans one by one;
//   - gort_gc_collect, and the next cycle before it marks, finish what is
//     left.
// Ownership: the world restarts with every collected span on a central
// list, none cached (malloc_gc.c), so whoever takes an unswept span off
// its list under the list's lock owns it alone until it relists it. The
// background sweeper is not a registered thread and is never stopped; the
// collector instead waits, before it stops the world, until the sweeper
// holds no span (gort__gc_sweep_pause), and the sweeper takes none while
// a cycle runs.
// Being off every list does not say "freed": the sweeper marks a span it
// takes as being swept (sweepgen, gc.h, as Go's), and a large span stays
// so until it is back on its list, under the list's lock, or swept dead
// and about to be freed. gort_free of a large object waits out that state
// (malloc_gc.c, free_large); a small object's free needs nothing of the
// sort, being a push on the span's remote list, whoever owns the span.
//
// Debug builds fill each freed object with 0xdb past its free-list link,
// so that a premature free shows as garbage at once.

#include <string.h>

#include "../base/vg.h"
#include "../alloc/mheap.h"
#include "../os/os.h"
#include "gc.h"

_Atomic uint64_t gort__gc_swept_objects, gort__gc_swept_bytes;

static struct {
  _Atomic uint32_t paused;     // cycles and final sweeps running: take no span
  _Atomic uint32_t busy;       // the background sweeper holds a span
  _Atomic uint32_t work;       // bumped when there are unswept spans
  _Atomic bool running;
} sweeper;

// A kept span stays "being swept" until relist_large puts it back, with
// the list's lock held: a gort_free of the object waits until then.
static bool sweep_large(mspan_t *s) {
  uint64_t bit, *mw = mark_word(s->base, &bit);
  uint64_t m = __atomic_load_n(mw, __ATOMIC_RELAXED);
  if (s->kind == KIND_GC_UNCOLLECTABLE || (m & bit) != 0) {
    __atomic_store_n(mw, m & ~bit, __ATOMIC_RELAXED);
    return true;
  }
  live_clear(s->base);
  if (GORT_DEBUG_LEVEL >= 1) memset((char *)s->base + 16, 0xdb, span_bytes(s) - 16);
  // Swept before the heap may recycle the span struct. (A gort_free that
  // waited for this sweep then finds the object gone: the program hid its
  // pointer from the collector, and the free is named a double free.)
  span_sweep_done(s);
  gort__mheap_free(s);
  return false;
}

bool gort__gc_sweep_span(mspan_t *s) {
  if (span_state(s) == SPAN_LARGE) return sweep_large(s);
  gort__gc_collect_frees(s);
  size_t nwords = span_bytes(s) >> 10;  // 16-byte granules, 64 per word
  uint64_t freed = 0;
  for (size_t w = 0; w < nwords; w++) {
    // Word by word: a span may cross into the next arena, and its bits then
    // continue in that arena's bitmaps.
    uint64_t bit, *live = live_word(s->base + (w << 10), &bit), *mark = mark_word(s->base + (w << 10), &bit);
    uint64_t l = __atomic_load_n(live, __ATOMIC_RELAXED), m = __atomic_load_n(mark, __ATOMIC_RELAXED);
    if (m != 0) __atomic_store_n(mark, 0, __ATOMIC_RELAXED);
    if (s->kind == KIND_GC_UNCOLLECTABLE) continue;  // freed by hand only
    uint64_t dead = l & ~m;
    if (dead == 0) continue;
    __atomic_store_n(live, l & m, __ATOMIC_RELAXED);
    // The dead slots are free now by their live bits alone: no write to
    // the objects' pages (malloc_gc.c, "Free slots").
    freed += (uint64_t)__builtin_popcountll(dead);
    if (GORT_DEBUG_LEVEL >= 1) {
      while (dead != 0) {
        uintptr_t g = w * 64 + (uintptr_t)__builtin_ctzll(dead);
        dead &= dead - 1;
        memset((char *)(s->base + (g << 4)) + 16, 0xdb, s->elemsize - 16);
      }
    }
  }
  s->used -= (uint32_t)freed;
  if (GORT_DEBUG_LEVEL >= 2) {
    // used counts the live objects now: nothing of s is cached or pending.
    uint64_t live = 0;
    for (size_t w = 0; w < nwords; w++) {
      uint64_t bit;
      live += (uint64_t)__builtin_popcountll(__atomic_load_n(live_word(s->base + (w << 10), &bit), __ATOMIC_RELAXED));
    }
    if (live != s->used) gort__throw("gc: a swept span's used count disagrees with its live bits");
  }
  if (freed != 0) {
    atomic_fetch_add_explicit(&gort__gc_swept_objects, freed, memory_order_relaxed);
    atomic_fetch_add_explicit(&gort__gc_swept_bytes, freed * s->elemsize, memory_order_relaxed);
  }
  // A small span's state is read by no one but its sweeper: swept now.
  span_sweep_done(s);
  // Uncollectable spans too: their objects are freed by hand only, and a
  // span that gort_free emptied once stayed with its class for good (a
  // program that freed 100,000 objects of each of 23 sizes in turn kept
  // 513 MB in use with 5 KB live, collections or not).
  if (s->used == 0) {
    gort__mheap_free(s);
    return false;
  }
  return true;
}

// ---- taking unswept spans ------------------------------------------------------------

// No look at the list before the lock: another sweeper unlinks spans from
// it under the lock, so an unlocked peek is a data race (ThreadSanitizer
// reported it), and the lock uncontended costs about what the peek saved
// (the stop's sweep_finish takes each class's lock once, as sweep_begin
// already does).
static mspan_t *take_unswept(gcentral_t *g) {
  lock(&g->lock);
  mspan_t *s = span_list_first(&g->unswept);
  if (s != NULL) {
    span_list_remove(s);
    s->where = WHERE_NONE;
    span_sweep_take(s);
  }
  unlock(&g->lock);
  return s;
}

static mspan_t *take_unswept_large(void) {
  lock(&gort__gclarge.lock);
  mspan_t *s = span_list_first(&gort__gclarge.unswept);
  if (s != NULL) {
    span_list_remove(s);
    s->where = WHERE_NONE;
    span_sweep_take(s);
  }
  unlock(&gort__gclarge.lock);
  return s;
}

static void relist_large(mspan_t *s) {
  lock(&gort__gclarge.lock);
  s->where = WHERE_GC_LARGE;
  span_list_push(&gort__gclarge.swept, s);
  span_sweep_done(s);
  unlock(&gort__gclarge.lock);
}

// A span is swept inside a no-stop region: a thread stopped midway would
// hold a half-swept span off every list, which the next cycle's sweep would
// miss, and whose stale mark bits would then hide objects from the mark
// (gcstress and gccheckmark found exactly that).
bool gort__gc_sweep_one(int kind, int cls) {
  nostop_enter();
  mspan_t *s = take_unswept(&gort__gcentral[kind - 1][cls]);
  if (s != NULL && gort__gc_sweep_span(s)) gort__gc_span_relist(s);
  nostop_exit();
  return s != NULL;
}

// Sweeps one unswept large span; false if none. If it was dead, its pages
// count in *freed when they are of zone (-1: none counts).
static bool sweep_one_large(int zone, uintptr_t *freed) {
  nostop_enter();
  mspan_t *s = take_unswept_large();
  if (s != NULL) {
    uintptr_t n = mheap_zone_of(s->base) == zone ? s->npages : 0;  // s is recycled once swept dead
    if (gort__gc_sweep_span(s))
      relist_large(s);
    else
      *freed += n;
  }
  nostop_exit();
  return s != NULL;
}

// Before a large allocation of npages pages: sweeps unswept large spans
// until as many pages went back to the heap, or none is left (Go's
// mheap.reclaim). Large spans have no lazy sweep of their own class as
// small ones do, so without this a program allocating large objects
// faster than the background sweeper frees the dead ones grows the heap
// for them: under ThreadSanitizer, 4 MiB objects over a 16 MiB live heap
// kept 76-92 MiB in use where the cycle allows about 60.
// Only while the background sweeper runs, which the collector starts under
// its cycle lock: a forked child inherits its parent's unswept spans
// before its collector is active, and a fork does not stop the world then,
// so it could catch a sweep midway. Pages of the other zone are swept but
// not counted: they cannot serve this allocation (mheap.c, zones).
void gort__gc_sweep_reclaim_large(uintptr_t npages, int zone) {
  if (!atomic_load_explicit(&sweeper.running, memory_order_acquire)) return;
  uintptr_t freed = 0;
  while (freed < npages && sweep_one_large(zone, &freed)) {
  }
}

// Sweeps everything unswept; false if the sweeper was asked to pause.
static bool sweep_all(bool background) {
  int64_t give_way = background ? gort__nanotime() + GC_GIVE_WAY_NS : 0;  // 0: never
  for (int k = 1; k <= GORT_NUM_GC_KINDS; k++)
    for (int cls = 1; cls < GORT_NUM_CLASSES; cls++)
      for (;;) {
        if (background && atomic_load(&sweeper.paused)) return false;
        if (!gort__gc_sweep_one(k, cls)) break;
        if (!atomic_load(&sweeper.paused)) gort__gc_give_way(&give_way);
      }
  for (;;) {
    if (background && atomic_load(&sweeper.paused)) return false;
    uintptr_t freed = 0;
    if (!sweep_one_large(-1, &freed)) break;
    if (!atomic_load(&sweeper.paused)) gort__gc_give_way(&give_way);
  }
  return true;
}

void gort__gc_sweep_finish(void) { sweep_all(false); }

// ---- the background sweeper ----------------------------------------------------------

static void *sweeper_main(void *arg) {
  (void)arg;
  uint32_t seen = 0;
  for (;;) {
    uint32_t now;
    while ((now = atomic_load(&sweeper.work)) == seen) gort__os_futex_wait(&sweeper.work, seen);
    seen = now;
    atomic_store(&sweeper.busy, 1);
    VG_ENTER();  // memcheck builds: base/vg.h
    if (!atomic_load(&sweeper.paused)) sweep_all(true);
    VG_LEAVE();
    atomic_store(&sweeper.busy, 0);
    gort__os_futex_wake(&sweeper.busy, INT32_MAX);  // every pauser: several may wait
  }
  return NULL;
}

// Pauses nest: a cycle and a gort_gc_collect's final sweep may overlap, and
// the sweeper must stay off the heap until the last of them resumes it (it
// once swept spans while a cycle marked, freeing what the mark had not
// reached yet).
void gort__gc_sweep_pause(void) {
  atomic_fetch_add(&sweeper.paused, 1);
  for (uint32_t b; (b = atomic_load(&sweeper.busy)) != 0;) gort__os_futex_wait(&sweeper.busy, b);
}

void gort__gc_sweep_resume(void) {
  if (atomic_fetch_sub(&sweeper.paused, 1) != 1) return;
  atomic_fetch_add(&sweeper.work, 1);
  gort__os_futex_wake(&sweeper.work, 1);
}

// Moves every span of list from to the end of list to, in O(1): at the end
// of a mark with a large heap, a span at a time touched every span struct
// with the world stopped (14 ms with 1 GiB live). The spans keep their
// where (WHERE_GC_PARTIAL, _FULL or _LARGE): for a collected span it only
// says "on a central list", and which list is the list's business.
static void splice(span_link_t *to, span_link_t *from) {
  if (span_list_empty(from)) return;
  if (to->next == NULL) span_list_init(to);  // a zeroed head (mspan.h)
  span_link_t *first = from->next, *last = from->prev;
  first->prev = to->prev;
  to->prev->next = first;
  last->next = to;
  to->prev = last;
  span_list_init(from);
}

void gort__gc_sweep_begin(void) {
  for (int k = 0; k < GORT_NUM_GC_KINDS; k++)
    for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
      gcentral_t *g = &gort__gcentral[k][cls];
      lock(&g->lock);
      splice(&g->unswept, &g->partial);
      splice(&g->unswept, &g->full);
      unlock(&g->lock);
    }
  lock(&gort__gclarge.lock);
  splice(&gort__gclarge.unswept, &gort__gclarge.swept);
  unlock(&gort__gclarge.lock);
}

void gort__gc_sweep_after_fork_child(void) {
  atomic_store(&sweeper.running, false);
  atomic_store(&sweeper.busy, 0);
  atomic_store(&sweeper.paused, 0);
}

void gort__gc_sweep_init(void) {
  if (atomic_exchange(&sweeper.running, true)) return;
  if (gort__stw_internal_thread(sweeper_main, NULL) != 0) atomic_store(&sweeper.running, false);
}
