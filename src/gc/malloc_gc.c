// Allocation of collected objects (Go: mallocgc, mcache.nextFree, the tiny
// allocator; mcentral.cacheSpan).
//
// See mgc.c for the collector's design. Collected objects live in spans of
// their own span class (kind x size class, mspan.h), never shared with
// malloc's blocks. A thread caches at most one span per collected span
// class (mcache.gc[kind][class]): it pops that span's free blocks, sets
// each one's live bit (the allocation bit the sweep and the marker read),
// and clears its link word, the only one not zeroed when the list was
// built ("Zeroing" below). Unlike malloc's spans, a collected span has no owner
// between cycles: the collector takes every cached span back when it
// stops the world (gort__gc_flush_caches), so when the world restarts
// every collected span is in one of the central lists below, and the sweep
// owns whatever it takes off them. That is Go's model ("caches keep only
// their current spans, flushed in the stop"), chosen over letting owners
// sweep their own spans because a thread that never allocates again would
// never sweep, and because then no span is written by two threads.
//
// Per span class, under its lock: partial (swept, free slots), full (swept,
// none), unswept (the mark since the last sweep). A cache that needs a
// span takes a partial one, else sweeps an unswept one itself (Go's lazy
// sweep), else takes a fresh span from the page heap. Large objects get a
// span each, on one list (swept / unswept) under its own lock.
//
// Every allocating path runs in a no-stop region (base/lock.h): the stop
// signal waits until the thread has finished touching its cache, so the
// collector never sees a cache half-updated. The pacer's trigger check
// runs before the region is entered.
//
// Explicit frees (gort_free of a collected object) push the block on the
// span's remote list with its freed tag, like a remote free of a malloc
// block; the next sweep of the span (or a cache taking it) collects them.
// A span listed full asks for its first free (XFREE_NOTIFY), which moves
// it to the partial list: frees do not bring a cycle nearer, so a full
// span cannot wait for a sweep to be used again.
// Every free takes the object's bytes from the live count at once and
// sets its mark bit (gort__gc_freed; mgc.c, "The live count").
// A large object's free takes its span off its list and frees it at once,
// first waiting for a sweeper that holds the span (free_large).
// Objects of the tiny allocator (noscan, under 16 bytes, packed into
// 16-byte blocks as in Go) are freed one by one in their block's word,
// and the block as a whole once all are (tiny.c).

#include <errno.h>
#include <string.h>

#include "../alloc/malloc_fast.h"
#include "../alloc/mheap.h"
#include "../alloc/scavenger.h"
#include "../base/options.h"
#include "../base/noscan.h"
#include "../base/persistent.h"
#include "../base/vg.h"
#include "../os/os.h"
#include "gc.h"
#include "gort/alloc.h"
#include "gort/gc.h"
#include "tiny.h"

gcentral_t gort__gcentral[GORT_NUM_GC_KINDS][GORT_NUM_CLASSES];
GORT_NOSCAN(gort__gcentral)  // span lists: metadata, never a collected object
gclarge_t gort__gclarge = {.lock = LOCK_INIT};

static struct {
  lock_t lock;  // rank LOCK_CENTRAL (never held with another); the intern table
  struct gort_gc_layout *table[256];
  uintptr_t next;  // the reservation's unused part starts here
  bool reserved;   // tried
} layouts = {.lock = LOCK_INIT};

_Atomic uintptr_t gort__gc_layouts_lo, gort__gc_layouts_hi;

// Address space for layouts (mgcmark.c, layout_valid): backed only
// where used, 16 bytes and up each, so about a million distinct layouts.
#define LAYOUTS_RESERVED ((size_t)64 << 20)

// Space for a layout of bytes bytes (the lock held), from the reservation,
// else from persistent memory (valid for the mark only in the reservation).
static struct gort_gc_layout *layout_space(size_t bytes) {
  if (!layouts.reserved) {
    layouts.reserved = true;
    int err;
    void *r = gort__os_reserve(0, LAYOUTS_RESERVED, 4096, &err);
    if (r != NULL) {
      layouts.next = (uintptr_t)r;
      atomic_store_explicit(&gort__gc_layouts_hi, (uintptr_t)r + LAYOUTS_RESERVED, memory_order_relaxed);
      atomic_store_explicit(&gort__gc_layouts_lo, (uintptr_t)r, memory_order_release);
    }
  }
  bytes = GORT_ALIGN_UP(bytes, (size_t)16);
  uintptr_t hi = atomic_load_explicit(&gort__gc_layouts_hi, memory_order_relaxed);
  if (layouts.next != 0 && bytes <= hi - layouts.next) {
    struct gort_gc_layout *l = (struct gort_gc_layout *)layouts.next;
    layouts.next += bytes;
    return l;
  }
  return gort__persistent_alloc(bytes, 16);
}

// Whether a thread cache has ever taken a collected span. A fork before
// the collector's first cycle must stop the world if so (mgc.c,
// fork_prepare): set once, under the lock, which a fork that finds it
// clear holds across the fork, so that no thread takes its first span
// between the fork's look and the fork.
static struct {
  lock_t lock;  // the first lock a fork takes (rank LOCK_START); otherwise held with none
  _Atomic bool on;
} cached_any = {.lock = LOCK_INIT};

static gcentral_t *central_of(const mspan_t *s) { return &gort__gcentral[s->kind - 1][s->sizeclass]; }

// ---- spans --------------------------------------------------------------------

// A full span asks, through XFREE_NOTIFY in its free list, to hear of its
// first gort_free (free_to_full_span): a list of frees can only be pushed
// where it is seen. With none set, a span that went full on its own
// stayed full until the next cycle's sweep whatever the program freed in
// it, and a program that frees what it allocates keeps its live count, and
// so the pacer's heap, small: no cycle came, and RSS grew by 200 MB a
// second with 400 KB live (objects allocated by one thread and freed by
// another; the thread's own frees reach the span it caches).
// A swept span off its class's full list onto the partial one (its
// central lock held).
static void move_to_partial(gcentral_t *g, mspan_t *s) {
  span_list_remove(s);
  s->where = WHERE_GC_PARTIAL;
  span_list_push(&g->partial, s);
}

void gort__gc_span_relist(mspan_t *s) {
  gcentral_t *g = central_of(s);
  lock(&g->lock);
  bool has_free = s->used < s->nelems;
  uintptr_t none = 0;
  // Frees pushed since the caller collected them: free slots, for whoever
  // takes the span (span_list collects them first).
  if (!has_free && !atomic_compare_exchange_strong_explicit(&s->xfree, &none, XFREE_NOTIFY, memory_order_relaxed,
                                                            memory_order_relaxed))
    has_free = true;
  s->where = has_free ? WHERE_GC_PARTIAL : WHERE_GC_FULL;
  span_list_push(has_free ? &g->partial : &g->full, s);
  unlock(&g->lock);
}

// Frees explicitly freed blocks of s (its remote list): their slots are
// free once their live bits are clear (see "Free slots"). The caller owns s. A freed block's mark bit was set by its free (mgc.c, "The
// live count"); outside a mark it is cleared with the live bit, so that
// the slot's next object starts white. During a mark it stays set: the
// slot is then free (live bit clear), and a cache that hands it out
// during the mark allocates it black anyway, while a marker that read its
// live bit just before it was cleared may still set the bit and count it.
void gort__gc_collect_frees(mspan_t *s) {
  uintptr_t x = atomic_exchange_explicit(&s->xfree, 0, memory_order_acquire);
  bool marking = atomic_load_explicit(&gort__gc_marking, memory_order_relaxed);
  for (block_t *b = (block_t *)(x & ~XFREE_NOTIFY); b != NULL;) {
    block_t *next = b->next;
    b->tag = 0;
    live_clear((uintptr_t)b);
    if (!marking) {
      uint64_t bit, *mw = mark_word((uintptr_t)b, &bit);
      __atomic_fetch_and(mw, ~bit, __ATOMIC_RELAXED);  // other frees OR into the word
    }
    s->used--;
    b = next;
  }
}

// With the world stopped, for a walk of the lists (the roots' uncollectable
// spans, mgcmark.c): the frees pending on s, which is on a central list.
// A span that only asks for its first free keeps asking; one on the full
// list that had frees goes to the partial list (so the walker saves its
// next link first). The leak check's walk is followed by no sweep, and a
// full span it had emptied of frees stayed full, unannounced, for good.
void gort__gc_collect_frees_listed(mspan_t *s) {
  if ((atomic_load_explicit(&s->xfree, memory_order_relaxed) & ~XFREE_NOTIFY) == 0) return;
  gort__gc_collect_frees(s);
  if (s->where != WHERE_GC_FULL || !span_swept(s)) return;  // on the partial or the unswept list
  gcentral_t *g = central_of(s);
  lock(&g->lock);
  move_to_partial(g, s);
  unlock(&g->lock);
}

// Only objects that a concurrent mark scans from the heap and that have no
// barrier live where dirty tracking protects pages (dirty.c, "What is
// tracked"). Uncollectable objects are roots, rescanned whole in the final
// stop: tracking them would only cost their writes a fault (a pool's rings
// are written at every put and get).
static int zone_for(int kind) {
  return kind == KIND_GC_SCAN || kind == KIND_GC_TYPED ? MHEAP_ZONE_TRACKED : MHEAP_ZONE_MAIN;
}

// ---- spans emptied by gort_free -------------------------------------------------
//
// A free leaves its block on its span's list of frees until a cache takes
// the span or a sweep comes; only the sweep gives an empty span back to
// the page heap. But frees lower the live count that paces the collector,
// so a program that frees what it allocates may see no cycle at all, and
// a span it emptied stayed with its size class: 100,000 objects of each
// of 23 sizes allocated and freed in turn kept 214-513 MB in use with 5
// KB live, and the scavenger cannot return pages of spans in use. So an
// allocation's slow path, if frees came since the last look and the heap
// grew for collected spans by an eighth of the live heap (1 MiB at least)
// since, walks the partial lists (Go's mcentral.grow sweeps before it
// grows; here the frees are what needs taking): each span there is the
// list's, so under its central lock its frees are taken, and the spans
// they emptied go back to the page heap once that lock is released. Outside
// any no-stop region but the central locks' own, so that a stop never
// waits for a walk of a large heap; the spans between a central's unlock
// and their free are on no list and hold no live object, which is all a
// stop's walks and marks need. Not during a mark: a freed block's mark bit
// stays set until the mark ends (gort__gc_collect_frees).
// A program that frees and then stops allocating never reaches that slow
// path: the last batch it freed (49 MB of the test above) stayed in use
// until its next allocation. So once the frees since the last walk reach
// WAKE_FREED bytes they wake the scavenger (a program that frees a little
// never gets the thread), whose tick walks once they are as old as its
// own delay for free pages (GORT_DEBUG=scavdelay, 500 ms) and no walk came
// since; and gort_free_os_memory walks at once. The walk's empty spans are
// free pages for the scavenger to return.
#define WAKE_FREED (256u << 10)

// gcstress's period, in bytes a thread's refills handed it: a small span's
// worth (alloc_small).
#define GCSTRESS_BYTES (16u << 10)

static struct {
  _Atomic bool pending;      // a gort_free since the last walk
  _Atomic bool walking;      // one walker at a time
  _Atomic bool woken;        // the scavenger was woken since pending was set
  _Atomic uint64_t grown;    // bytes of fresh collected spans since the last walk
  _Atomic int64_t since;     // when pending was set
  _Atomic uint64_t base;     // gort__gc_swept_bytes then
} reclaim;

// swept: gort__gc_swept_bytes with this free's bytes (which the sweeps'
// frees grow too: a wake they bring early costs a walk). A thread whose
// count was taken before the base is behind it: the difference is signed.
static void note_free(uint64_t swept) {
  if (gort_likely(atomic_load_explicit(&reclaim.pending, memory_order_relaxed))) {
    if (gort_likely(atomic_load_explicit(&reclaim.woken, memory_order_relaxed))) return;
    if ((int64_t)(swept - atomic_load_explicit(&reclaim.base, memory_order_relaxed)) < (int64_t)WAKE_FREED) return;
    if (!atomic_exchange_explicit(&reclaim.woken, true, memory_order_relaxed)) gort__scavenger_wake();
    return;
  }
  atomic_store_explicit(&reclaim.since, gort__nanotime(), memory_order_relaxed);
  atomic_store_explicit(&reclaim.base, swept, memory_order_relaxed);
  atomic_store_explicit(&reclaim.woken, false, memory_order_relaxed);
  atomic_store_explicit(&reclaim.pending, true, memory_order_relaxed);
}

// False, having done nothing, if a mark runs: checked under the lock,
// which holds a stop off (so the mark cannot begin until the frees taken
// here have cleared their blocks' live bits).
static bool reclaim_central(gcentral_t *g) {
  mspan_t *empty = NULL;
  lock(&g->lock);
  if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) {
    unlock(&g->lock);
    return false;
  }
  for (span_link_t *l = span_list_begin(&g->partial), *next; l != &g->partial; l = next) {
    next = l->next;
    mspan_t *s = (mspan_t *)l;
    if ((atomic_load_explicit(&s->xfree, memory_order_relaxed) & ~XFREE_NOTIFY) == 0) continue;
    gort__gc_collect_frees(s);
    if (s->used != 0) continue;
    span_list_remove(s);
    s->where = WHERE_NONE;
    s->link.next = (span_link_t *)empty;  // off every list: a chain of our own
    empty = s;
  }
  unlock(&g->lock);
  while (empty != NULL) {
    mspan_t *s = empty;
    empty = (mspan_t *)s->link.next;
    nostop_enter();
    gort__mheap_free(s);
    nostop_exit();
  }
  return true;
}

// The walk, by whichever thread won reclaim.walking; it stops at a mark.
// A thread the stop does not know (the scavenger's) holds it off for each
// central, since the stop walks the lists without their locks (mgcmark.c),
// and gives up the walk, to its next tick, when a stop (or anyone) waits
// for that: taking the lock back at once starved a waiting stop for the
// whole walk, 430 centrals (a reviewer's find).
static void reclaim_walk(void) {
  atomic_store_explicit(&reclaim.pending, false, memory_order_relaxed);
  atomic_store_explicit(&reclaim.grown, 0, memory_order_relaxed);
  bool registered = gort__stw_registered();
  for (int k = 0; k < GORT_NUM_GC_KINDS; k++)
    for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
      if (!registered) gort__stw_hold_off();
      bool ok = reclaim_central(&gort__gcentral[k][cls]);
      bool waited = !registered && gort__stw_hold_off_contended();
      if (!registered) gort__stw_allow();
      if (!ok) goto out;
      if (waited) {
        atomic_store_explicit(&reclaim.pending, true, memory_order_relaxed);  // the rest, next tick
        goto out;
      }
    }
out:
  atomic_store_explicit(&reclaim.walking, false, memory_order_release);
}

static void maybe_reclaim(void) {
  if (gort_likely(!atomic_load_explicit(&reclaim.pending, memory_order_relaxed))) return;
  uint64_t live = atomic_load_explicit(&gort__gc_heap_live, memory_order_relaxed);
  if (atomic_load_explicit(&reclaim.grown, memory_order_relaxed) < (live / 8 > (1 << 20) ? live / 8 : (1 << 20)))
    return;
  if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) return;
  if (atomic_exchange_explicit(&reclaim.walking, true, memory_order_acquire)) return;  // another walks
  reclaim_walk();
}

// The scavenger's tick (alloc_init.h, gort_gc_hooks_t.idle): true while
// frees that woke it wait for a walk. (Fewer do not keep it ticking.)
static bool reclaim_idle(void) {
  if (!atomic_load_explicit(&reclaim.pending, memory_order_relaxed) ||
      !atomic_load_explicit(&reclaim.woken, memory_order_relaxed))
    return false;
  int64_t age = gort__nanotime() - atomic_load_explicit(&reclaim.since, memory_order_relaxed);
  if (age < gort__opts.scavdelay_ms * 1000000 || atomic_load_explicit(&gort__gc_marking, memory_order_relaxed))
    return true;
  if (!atomic_exchange_explicit(&reclaim.walking, true, memory_order_acquire)) reclaim_walk();
  return false;
}

// gort_free_os_memory (gort_gc_hooks_t.reclaim): after a walk in
// progress, so that what the program freed before the call is returned.
static void reclaim_now(void) {
  if (!atomic_load_explicit(&reclaim.pending, memory_order_relaxed)) return;
  while (atomic_exchange_explicit(&reclaim.walking, true, memory_order_acquire)) gort__os_sleep_ns(50000);
  if (atomic_load_explicit(&reclaim.pending, memory_order_relaxed)) reclaim_walk();
  else atomic_store_explicit(&reclaim.walking, false, memory_order_release);
}

static mspan_t *fresh_span(int kind, int cls) {
  atomic_fetch_add_explicit(&reclaim.grown, (uint64_t)gort__class_npages[cls] << GORT_PAGE_SHIFT,
                            memory_order_relaxed);
  mspan_t *s = gort__mheap_alloc_in(gort__class_npages[cls], 1, SPAN_SMALL, zone_for(kind));
  if (s == NULL) return NULL;
  gort__span_init_small(s, cls);
  s->kind = (uint8_t)kind;
  atomic_store_explicit(&s->specials, 0, memory_order_relaxed);
  if (kind == KIND_GC_TINY) gort__gc_tiny_span_init(s);
  atomic_store_explicit(&s->xfree, 0, memory_order_relaxed);  // a list here, no generation (mspan.h)
  if (!atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) gort__gc_clear_span_marks(s);
  span_sweep_done(s);
  return s;
}

// A span of the class with a free slot, off every list, swept; NULL if the
// OS refused memory.
static mspan_t *take_span(int kind, int cls) {
  gcentral_t *g = &gort__gcentral[kind - 1][cls];
  for (;;) {
    lock(&g->lock);
    mspan_t *s = span_list_first(&g->partial);
    if (s != NULL) {
      span_list_remove(s);
      unlock(&g->lock);
      return s;
    }
    s = span_list_first(&g->unswept);
    if (s == NULL) {
      unlock(&g->lock);
      return fresh_span(kind, cls);
    }
    span_list_remove(s);
    s->where = WHERE_NONE;
    span_sweep_take(s);
    unlock(&g->lock);
    // Lazy sweep: this span is ours now.
    if (!gort__gc_sweep_span(s)) continue;  // it was empty: back to the heap
    if (s->used < s->nelems) return s;
    gort__gc_span_relist(s);  // full
  }
}

// ---- free slots ---------------------------------------------------------------
//
// A collected span keeps no free list between caches: its free slots are
// the carved ones (below s->fresh) whose live bit is clear, and the cache
// that takes the span links them (free_slots) when it needs them. So the
// sweep and a cache's flush write only bitmaps, never the objects' pages.
// That matters while the heap is write-protected for a concurrent mark
// (dirty.c): the sweep runs right after a mark's final stop, before the
// heap is unprotected, and the next cycle's first stop sweeps what is
// left with the heap protected again; each push of a dead object onto a
// free list there took a write fault, with a TLB shootdown to the other
// CPU, on every page holding a dead object (a fifth of GCBench's CPU).
// The cache's links land on pages its thread is about to write anyway,
// with the objects it allocates there.

// Zeroing. A collected object is handed out zeroed, but the allocation
// itself clears only the list link in its first word: the rest of every
// slot a cache takes is zeroed here, when the list is built, a run of
// adjacent free slots at a time (one memset for a dead subtree's slots
// instead of one per object, and none for fresh pages the OS zeroed).
// Nothing writes a slot between its refill and its allocation: it is free,
// and the collector neither scans nor sweeps into a slot whose live bit is
// clear.

// Zeroes the run of slots [lo, hi) and appends them to the list at tail.
static block_t **link_run(uintptr_t lo, uintptr_t hi, uintptr_t size, bool zero, block_t **tail) {
  if (lo == hi) return tail;
  // Under memcheck (base/vg.h) collected slots are addressable from the
  // moment a cache takes them: links written into unaddressable slots read
  // back as undefined, and so did every pointer handed out after them.
  VG_DEFINED((void *)lo, hi - lo);
  if (zero) memset((void *)lo, 0, hi - lo);
  for (uintptr_t a = lo; a < hi; a += size) {
    block_t *b = (block_t *)a;
    *tail = b;
    tail = &b->next;
  }
  return tail;
}

// The free carved slots of s (owned by the caller) as a list in address
// order, zeroed but for their links, and their count.
static block_t *free_slots(mspan_t *s, uint32_t *n) {
  uintptr_t k = s->elemsize >> 4;              // granules per slot (sizes are multiples of 16)
  uintptr_t end = (uintptr_t)s->fresh * k;     // granules of the carved slots
  uintptr_t start = 0;                         // granule of the next slot start
  block_t *head = NULL, **tail = &head;
  uintptr_t run = 0, run_end = 0;              // the run of adjacent free slots being gathered
  uint32_t count = 0;
  // A span starts on a page, so its k-th KiB is its k-th bitmap word.
  for (uintptr_t w = 0; w << 6 < end; w++) {
    uintptr_t lo = w << 6, hi = lo + 64 < end ? lo + 64 : end;
    uint64_t starts = 0;
    for (; start < hi; start += k) starts |= 1ULL << (start - lo);
    uint64_t bit, free = starts & ~__atomic_load_n(live_word(s->base + (w << 10), &bit), __ATOMIC_RELAXED);
    while (free != 0) {
      uintptr_t a = s->base + ((lo + (uintptr_t)__builtin_ctzll(free)) << 4);
      free &= free - 1;
      if (a != run_end) {
        tail = link_run(run, run_end, s->elemsize, true, tail);
        run = a;
      }
      run_end = a + s->elemsize;
      count++;
    }
  }
  tail = link_run(run, run_end, s->elemsize, true, tail);
  *tail = NULL;
  *n = count;
  return head;
}

// The next page's worth of never-used slots of s, linked, zeroed but for
// their links (by the OS, unless the span's pages were used before).
static block_t *carve(mspan_t *s, uint32_t *n) {
  uint32_t first = s->fresh, count = span_carve_count(s);
  uintptr_t lo = s->base + (uintptr_t)first * s->elemsize;
  block_t *head = NULL;
  *link_run(lo, lo + (uintptr_t)count * s->elemsize, s->elemsize, s->needzero, &head) = NULL;
  __atomic_store_n(&s->fresh, first + count, __ATOMIC_RELAXED);
  *n = count;
  return head;
}

// The next list of free blocks of s (its free slots, else fresh ones),
// with their count; counted out in s->used.
static block_t *span_list(mspan_t *s, uint32_t *n) {
  gort__gc_collect_frees(s);
  if (s->used < s->fresh) {
    block_t *list = free_slots(s, n);
    if (GORT_DEBUG_LEVEL >= 2 && *n != s->fresh - s->used)
      gort__throw("gc: a span's free slots disagree with its used count");
    s->used = s->fresh;
    return list;
  }
  block_t *list = NULL;
  if (s->fresh < s->nelems) {
    list = carve(s, n);
    s->used = s->fresh;
  }
  return list;
}

// Refills the cache's list of a span class; what it hands out is owed to
// the pacer (mcache_t.gc_owed). In a no-stop region.
static block_t *refill(mcache_t *c, gc_class_cache_t *gcc, int kind, int cls) {
  mspan_t *s = gcc->span;
  uint32_t n = 0;
  block_t *list = s != NULL ? span_list(s, &n) : NULL;
  if (list == NULL) {
    if (s != NULL) {
      gcc->span = NULL;
      gort__gc_span_relist(s);
    }
    if (!atomic_load_explicit(&cached_any.on, memory_order_relaxed)) {
      lock(&cached_any.lock);
      atomic_store_explicit(&cached_any.on, true, memory_order_relaxed);
      unlock(&cached_any.lock);
    }
    if ((s = take_span(kind, cls)) == NULL) return NULL;
    s->where = WHERE_GC_CACHED;
    gcc->span = s;
    list = span_list(s, &n);
  }
  // During a concurrent mark what the cache hands out is allocated black.
  if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) gort__gc_premark_span(s);
  atomic_fetch_add_explicit(&gort__gc_heap_live, (uint64_t)n * s->elemsize, memory_order_relaxed);
  c->gc_owed += (uint64_t)n * s->elemsize;
  gcc->left = n;
  return list;
}

// Gives the cache's spans back (world stopped, or the cache's thread
// exiting). Its tiny block stays: a root of the stop's mark (tiny.c).
static void flush_cache(mcache_t *c, void *arg) {
  (void)arg;
  for (int k = 0; k < GORT_NUM_GC_KINDS; k++)
    for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
      gc_class_cache_t *gcc = &c->gc[k][cls];
      mspan_t *s = gcc->span;
      if (s == NULL) continue;
      // The list's slots are free by their live bits already. Counted, not
      // walked: the walk was a cache miss a slot, in both stops of every
      // cycle (the 1 GiB cache's final stop spent 0.11 of its 0.37 ms on it).
      uint64_t n = gcc->left;
      if (GORT_DEBUG_LEVEL >= 2) {
        uint64_t walked = 0;
        for (block_t *b = gcc->head; b != NULL; b = b->next) walked++;
        if (walked != n) gort__throw("gc: a cache's list disagrees with its length");
      }
      s->used -= (uint32_t)n;
      atomic_fetch_sub_explicit(&gort__gc_heap_live, n * s->elemsize, memory_order_relaxed);
      gcc->head = NULL;
      gcc->left = 0;
      gcc->span = NULL;
      gort__gc_span_relist(s);
    }
}

void gort__gc_flush_caches(void) { gort__mcache_foreach(flush_cache, NULL); }

// A dead tiny block of an orphan (every object freed) is left to the next
// cycle's sweep: the fork holds the stop's lock, which a free may take.
static void flush_orphaned_cache(mcache_t *c, void *arg) {
  flush_cache(c, arg);
  (void)gort__gc_tiny_leave(c);
}

void gort__gc_flush_orphaned_caches(void) { gort__mcache_foreach_orphaned(flush_orphaned_cache, NULL); }

// A registered thread cannot be stopped mid-flush (the no-stop region).
// One that left the registry (gort_gc_unregister_thread) is never stopped,
// and a stop's own flush of this same cache once raced its exit: both gave
// the cache's spans back, relisting them twice.
static void cache_exit(mcache_t *c) {
  bool registered = gort__stw_registered();
  if (!registered) gort__stw_hold_off();
  nostop_enter();
  flush_cache(c, NULL);
  uintptr_t dead = gort__gc_tiny_leave(c);
  nostop_exit();
  // Before the stop is allowed again: a thread the stop does not know
  // holds the block where no mark sees it, and a sweep could free it
  // first. (The free holds the stop off too: hold_off nests.)
  if (dead != 0) gort__gc_free_block(dead, span_of(dead));
  if (!registered) gort__stw_allow();
}

// ---- allocation -----------------------------------------------------------------

static mcache_t *my_cache(void) {
  gort__start_ensure();
  gort__stw_register_self();
  return gort__mcache_get();
}

mcache_t *gort__gc_my_cache(void) { return my_cache(); }

static GORT_NOINLINE void *alloc_large(size_t size, int kind) {
  // Refused before the pacer sees it: a size near SIZE_MAX would start a
  // cycle for nothing, or wrap the count of bytes past the hard goal.
  if (size > (size_t)PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  // Registered, as alloc_small's callers are through my_cache: a thread
  // the stop does not know would sweep, or hold the new object, unseen.
  gort__start_ensure();
  gort__stw_register_self();
  gort__gc_maybe_collect(size);
  uintptr_t npages = (size + GORT_PAGE_SIZE - 1) >> GORT_PAGE_SHIFT;
  atomic_fetch_add_explicit(&reclaim.grown, (uint64_t)npages << GORT_PAGE_SHIFT, memory_order_relaxed);
  maybe_reclaim();
  gort__gc_sweep_reclaim_large(npages, zone_for(kind));
  nostop_enter();
  mspan_t *s = gort__mheap_alloc_in(npages, 1, SPAN_LARGE, zone_for(kind));
  if (s == NULL) {
    nostop_exit();
    return NULL;
  }
  s->kind = (uint8_t)kind;
  atomic_store_explicit(&s->specials, 0, memory_order_relaxed);
  s->nelems = 1;
  span_set_elemsize(s, 0);
  __atomic_store_n(&s->fresh, 1, __ATOMIC_RELAXED);
  span_clear_samples(s);
  span_sweep_done(s);
  VG_DEFINED((void *)s->base, span_bytes(s));
  if (s->needzero) memset((void *)s->base, 0, span_bytes(s));
  {
    uint64_t bit, *mw = mark_word(s->base, &bit);  // black during a mark; else no stray bit
    if (atomic_load_explicit(&gort__gc_marking, memory_order_relaxed)) __atomic_fetch_or(mw, bit, __ATOMIC_RELAXED);
    else __atomic_fetch_and(mw, ~bit, __ATOMIC_RELAXED);
  }
  live_set(s->base);
  lock(&gort__gclarge.lock);
  s->where = WHERE_GC_LARGE;
  span_list_push(&gort__gclarge.swept, s);
  unlock(&gort__gclarge.lock);
  atomic_fetch_add_explicit(&gort__gc_heap_live, span_bytes(s), memory_order_relaxed);
  // The object's own address must be in a register or on the stack when
  // the thread may stop (at nostop_exit, or by a signal just after): the
  // compiler had kept only the span struct's address (metadata, never a
  // root) and read s->base after the stop, so a cycle in between freed the
  // new object (found with large objects under GORT_GC pacing).
  void *p = (void *)s->base;
  __asm__ volatile("" : "+r"(p));
  nostop_exit();
  __asm__ volatile("" : "+r"(p));
  return p;
}

// The pop of block b, the head of gcc's list (in a no-stop region): the
// block is zeroed already but for its link (see "Zeroing"), and the
// heap's live bytes counted it when the list was built. Its live bit is
// set here: the collector's "is this slot allocated" answer.
GORT_INLINE void gc_pop(mcache_t *c, gc_class_cache_t *gcc, block_t *b, unsigned cls) {
  gcc->head = b->next;
  gcc->left--;
  b->next = NULL;
  live_set((uintptr_t)b);
  // Cumulative counts (metrics.h: they only grow), so one at a time.
  counter_add(&c->gc_nmalloc, 1);
  counter_add(&c->gc_bytes, gort__class_size[cls]);
}

// The slow path's loop, out of line (alloc_small).
static GORT_NOINLINE void *alloc_small_slow(size_t size, int kind) {
  unsigned cls = size_class(size == 0 ? 1 : size);
  mcache_t *c = gort__tls_cache;
  if (gort_unlikely(c == &gort__empty_cache || !gort__stw_registered())) {
    if ((c = my_cache()) == NULL) {
      errno = ENOMEM;
      return NULL;
    }
  }
  for (;;) {
    nostop_enter();
    gc_class_cache_t *gcc = &c->gc[kind - 1][cls];
    block_t *b = gcc->head;
    if (gort_likely(b != NULL)) {
      gc_pop(c, gcc, b, cls);
      nostop_exit();
      return b;
    }
    nostop_exit();
    // The slow path: the pacer may collect here, outside the region, and
    // gcstress collects at the first slow path after a thread's refills
    // handed it GCSTRESS_BYTES, while the collector is on. It collected at
    // every slow path until 2026-12-06; but a cycle empties the caches, and
    // a refill may find a span with one free slot, so that made a cycle of
    // nearly every allocation (80,000 cycles in 20 s of test_gc_objects'
    // tiny case, which then timed out; the pacer's cycles are 1000 times
    // rarer there). Its cycles come on top of the pacer's (whose tests
    // then still hold), and with the collector off it adds none. An assist is charged what the
    // refills handed out since the last slow path, not a span's worth: in
    // a heap of mostly full spans (the 1 GiB cache) a refill finds a few
    // free slots, and charging each a whole span made 10-30 assists of
    // 0.25 ms between two of the program's clock readings 256 allocations
    // apart (gaps of 2-9 ms, 8600 such assists a run).
    uint64_t owed = c->gc_owed;
    c->gc_owed = 0;
    if (gort__gc_stress && gort__gc_enabled() && (c->gc_stress_owed += owed) >= GCSTRESS_BYTES) {
      c->gc_stress_owed = 0;
      gort_gc_collect();
    } else {
      gort__gc_maybe_collect(owed);
    }
    maybe_reclaim();
    nostop_enter();
    if (gcc->head == NULL) {
      block_t *list = refill(c, gcc, kind, (int)cls);
      if (list == NULL) {
        nostop_exit();
        errno = ENOMEM;
        return NULL;
      }
      gcc->head = list;
    }
    nostop_exit();
  }
}

// A stop that came during the pop: b is an argument, kept across the call
// on this frame or in a saved register, where the stop's scan sees it.
static GORT_NOINLINE void *alloc_small_stop(void *b) {
  gort__stop_deferred();
  __asm__ volatile("" : "+r"(b));
  return b;
}

// An empty list: the no-stop region the fast path entered ends here.
static GORT_NOINLINE void *alloc_small_miss(size_t size, int kind) {
  nostop_exit();
  return alloc_small_slow(size, kind);
}

// The fast path pops the cache's list; everything else is out of line,
// so that it keeps no frame and saves no register: with the slow path's
// loop inline, GCBench's allocations each pushed and popped six
// registers, and alloc_small took 14% of its CPU. (nostop_leave, not
// nostop_exit, for the same reason: the deferred stop is a tail call.)
GORT_INLINE void *alloc_small(size_t size, int kind) {
  unsigned cls = size_class(size == 0 ? 1 : size);
  mcache_t *c = gort__tls_cache;
  if (gort_likely(c != &gort__empty_cache && gort__stw_registered())) {
    nostop_enter();
    gc_class_cache_t *gcc = &c->gc[kind - 1][cls];
    block_t *b = gcc->head;
    if (gort_likely(b != NULL)) {
      gc_pop(c, gcc, b, cls);
      if (nostop_leave()) return alloc_small_stop(b);
      return b;
    }
    return alloc_small_miss(size, kind);
  }
  return alloc_small_slow(size, kind);
}

static void *gc_alloc(size_t size, int kind) {
  if (size > GORT_SMALL_MAX) return alloc_large(size, kind);
  return alloc_small(size, kind);
}

// Under memcheck (base/vg.h) an object handed out is made addressable
// and defined (zeroed), with reporting off while the allocator, and any
// collection it runs, works.
// Uncollectable ones are the program's to free (gort_free), as malloc's
// blocks: registered as those are, so that a leak of one is reported.
static void *vg_alloc(void *(*alloc)(size_t, int), size_t size, int kind) {
  VG_ENTER();
  void *p = alloc(size, kind);
  size_t u = p != NULL && kind == KIND_GC_UNCOLLECTABLE ? gort_usable_size(p) : 0;
  (void)u;
  VG_LEAVE();
  if (kind == KIND_GC_UNCOLLECTABLE) VG_ALLOC(p, u, 1);
  else VG_DEFINED(p, size != 0 ? size : 1);
  return p;
}

static inline void *gc_alloc_entry(size_t size, int kind) {
  return GORT_VG_ON ? vg_alloc(gc_alloc, size, kind) : gc_alloc(size, kind);
}

void *gort_gc_alloc(size_t size) { return gc_alloc_entry(size, KIND_GC_SCAN); }

void *gort_gc_alloc_uncollectable(size_t size) { return gc_alloc_entry(size, KIND_GC_UNCOLLECTABLE); }

void *gort_gc_alloc_barriered(size_t size) { return gc_alloc_entry(size, KIND_GC_BARRIERED); }

static void *alloc_noscan(size_t size, int kind) {
  if (size == 0 || size >= 16) return gc_alloc(size, kind);
  return gort__gc_tiny_alloc(size);
}

void *gort__gc_alloc_small(size_t size, int kind) { return alloc_small(size, kind); }

void *gort_gc_alloc_noscan(size_t size) {
  return GORT_VG_ON ? vg_alloc(alloc_noscan, size, KIND_GC_NOSCAN) : alloc_noscan(size, KIND_GC_NOSCAN);
}

const gort_gc_layout_t *gort_gc_layout(const uint64_t *ptrmap, size_t nwords) {
  if (nwords == 0) nwords = 1;
  size_t nbits = (nwords + 63) / 64;
  uint64_t h = nwords * 0x9E3779B97F4A7C15ULL;
  for (size_t i = 0; i < nbits; i++) {
    uint64_t w = ptrmap[i];
    if (i == nbits - 1 && (nwords & 63) != 0) w &= (1ULL << (nwords & 63)) - 1;
    h = (h ^ w) * 0x100000001B3ULL;
  }
  lock(&layouts.lock);
  struct gort_gc_layout **chain = &layouts.table[h & 255], *l;
  for (l = *chain; l != NULL; l = l->next) {
    if (l->nwords != nwords) continue;
    size_t i = 0;
    for (; i < nbits; i++) {
      uint64_t w = ptrmap[i];
      if (i == nbits - 1 && (nwords & 63) != 0) w &= (1ULL << (nwords & 63)) - 1;
      if (w != l->bits[i]) break;
    }
    if (i == nbits) break;
  }
  if (l == NULL && (l = layout_space(sizeof *l + nbits * 8)) != NULL) {
    l->nwords = nwords;
    for (size_t i = 0; i < nbits; i++) {
      uint64_t w = ptrmap[i];
      if (i == nbits - 1 && (nwords & 63) != 0) w &= (1ULL << (nwords & 63)) - 1;
      l->bits[i] = w;
    }
    l->next = *chain;
    // Last, with a release: a mark that finds the check finds the rest.
    __atomic_store_n(&l->check, (uintptr_t)l ^ GORT_LAYOUT_KEY, __ATOMIC_RELEASE);
    *chain = l;
  }
  unlock(&layouts.lock);
  return l;
}

void *gort_gc_alloc_typed(size_t size, const gort_gc_layout_t *layout) {
  if (layout == NULL) gort__fatal("gort_gc_alloc_typed(): NULL layout", NULL);
  if (size > (size_t)PTRDIFF_MAX - SPAN_TYPED_HEADER) {
    errno = ENOMEM;
    return NULL;
  }
  uintptr_t *b = gc_alloc_entry(size + SPAN_TYPED_HEADER, KIND_GC_TYPED);
  if (b == NULL) return NULL;
  __atomic_store_n(&b[0], (uintptr_t)layout, __ATOMIC_RELEASE);
  return (char *)b + SPAN_TYPED_HEADER;
}

// ---- what the allocator's entry points call for collected objects -----------------

static size_t header_of(const mspan_t *s) { return s->kind == KIND_GC_TYPED ? SPAN_TYPED_HEADER : 0; }

uintptr_t gort__gc_find_object(uintptr_t v, mspan_t **sp) {
  arena_t *a = arena_of(v);
  if (a == NULL) return 0;
  mspan_t *s = __atomic_load_n(&a->spans[arena_page_index(v)], __ATOMIC_RELAXED);
  if (s == NULL || s->kind == KIND_MANUAL) return 0;
  uintptr_t obj;
  span_state_t st = span_state(s);
  if (st == SPAN_SMALL) {
    uintptr_t off = v - s->base;
    if (off >= (uintptr_t)s->nelems * s->elemsize) return 0;
    uint32_t i = span_elem_index(s, off);
    if (i >= __atomic_load_n(&s->fresh, __ATOMIC_RELAXED)) return 0;
    obj = s->base + (uintptr_t)i * s->elemsize;
  } else if (st == SPAN_LARGE) {
    obj = s->base;
  } else {
    return 0;
  }
  if (!live_test(obj)) return 0;
  *sp = s;
  return obj;
}

// A live large object's span is on one of gclarge's lists, unless a
// sweeper took it off to sweep it: off every list then, as after a free,
// and taking that for a double free once killed correct programs. The
// sweeper keeps a marked object, and the program's pointer marked it, so
// the free waits until the span is back on its list (Go's ensureSwept also
// waits for another sweeper): microseconds, unless that thread lost its
// CPU. Deferring the free to the sweeper instead would need a second
// state for the sweeper to check, and gort_free would no longer free at
// once (DESIGN.md).
// A thread that is not registered holds a stop off meanwhile, as in
// free_to_full_span: the stop walks gclarge's lists without their lock.
static void free_large(void *p, mspan_t *s, uintptr_t obj) {
  bool registered = gort__stw_registered();
  if (!registered) gort__stw_hold_off();
  lock(&gort__gclarge.lock);
  while (span_being_swept(s)) {
    unlock(&gort__gclarge.lock);  // which the sweeper needs to relist s
    gort__os_yield();
    lock(&gort__gclarge.lock);
  }
  if (s->where != WHERE_GC_LARGE) {
    unlock(&gort__gclarge.lock);
    if (!registered) gort__stw_allow();
    gort__fatal("free(): double free (collected object)", p);
  }
  span_list_remove(s);
  s->where = WHERE_NONE;
  live_clear(obj);
  gort__gc_freed(obj, span_bytes(s));  // in the lock's no-stop region
  unlock(&gort__gclarge.lock);
  nostop_enter();
  gort__mheap_free(s);
  nostop_exit();
  if (!registered) gort__stw_allow();
}

// The free that takes a full span's XFREE_NOTIFY moves the span to its
// class's partial list. Everything is read under the central lock and
// before the push: until b is on the list it is live, so s cannot be
// emptied and recycled (after the push a sweeper may do both). With the
// lock held no span changes lists but by a sweeper that already owns it,
// so a span swept (sweepgen current) and notifying is on the full list:
// NOTIFY is set only there, and leaves it only by the end of a mark's
// splice, which also makes the span unswept, or by a sweeper's or a
// mark's collect_frees, which takes the list with the bit. Unswept or
// being swept, the span is left to its sweep, which takes the free.
// A thread that is not registered is never stopped, and a stop walks the
// central lists without their locks (mgcmark.c): it holds the stop off.
static void free_to_full_span(mspan_t *s, block_t *b, uintptr_t old) {
  gcentral_t *g = central_of(s);
  bool registered = gort__stw_registered();
  if (!registered) gort__stw_hold_off();
  lock(&g->lock);
  bool swept = span_swept(s);
  do {
    b->next = (block_t *)(old & ~XFREE_NOTIFY);
  } while (!atomic_compare_exchange_weak_explicit(&s->xfree, &old, (uintptr_t)b, memory_order_release,
                                                  memory_order_relaxed));
  if ((old & XFREE_NOTIFY) && swept) {
    if (GORT_DEBUG_LEVEL >= 1 && s->where != WHERE_GC_FULL)
      gort__throw("gc: a span asked for its first free off the full list");
    move_to_partial(g, s);
  }
  unlock(&g->lock);
  if (!registered) gort__stw_allow();
}

static void gc_free_now(void *p, mspan_t *s) {
  if (s->kind == KIND_GC_TINY) {
    gort__gc_tiny_free(p, s);
    return;
  }
  uintptr_t obj = (uintptr_t)p - header_of(s);
  if (s->state == SPAN_LARGE) {
    free_large(p, s, obj);
    return;
  }
  gort__gc_free_block(obj, s);
}

static bool has_specials(const mspan_t *s) { return atomic_load_explicit(&s->specials, memory_order_relaxed) != 0; }

static bool maybe_weak_handle(const mspan_t *s) { return s->kind == KIND_GC_NOSCAN && s->elemsize == 16; }

// The object's finalizer and weak pointers go before its block does: the
// next object at the address must not inherit them (finalizer.c).
static void gc_free(void *p, mspan_t *s) {
  if (has_specials(s)) gort__gc_specials_free((uintptr_t)p, maybe_weak_handle(s), 0);
  gc_free_now(p, s);
}

void gort__gc_free_block(uintptr_t obj, mspan_t *s) {
  // Counted now (HeapObjects falls at once), returned to the span when the
  // span is next swept or cached.
  atomic_fetch_add_explicit(&gort__gc_swept_objects, 1, memory_order_relaxed);
  uint64_t swept = atomic_fetch_add_explicit(&gort__gc_swept_bytes, s->elemsize, memory_order_relaxed);
  block_t *b = (block_t *)obj;
  note_free(swept + s->elemsize);
  nostop_enter();
  gort__gc_freed(obj, s->elemsize);  // before the push: the span's owner may take the block back
  b->tag = block_tag_freed(obj);  // live bit stays until collected: see malloc.c
  // Only free_to_full_span pushes over NOTIFY: a push here that took it
  // (its CAS failing on the bit a relist had just set) left a full span
  // that no later free could announce.
  uintptr_t old = atomic_load_explicit(&s->xfree, memory_order_relaxed);
  for (;;) {
    if (old & XFREE_NOTIFY) {
      free_to_full_span(s, b, old);
      break;
    }
    b->next = (block_t *)old;
    if (atomic_compare_exchange_weak_explicit(&s->xfree, &old, (uintptr_t)b, memory_order_release,
                                              memory_order_relaxed))
      break;
  }
  nostop_exit();
}

static size_t gc_usable(const void *p, const mspan_t *s) {
  uintptr_t obj = s->state == SPAN_LARGE ? s->base
                                         : s->base + (uintptr_t)span_elem_index(s, (uintptr_t)p - s->base) * s->elemsize;
  if (s->kind == KIND_GC_TINY && s->state == SPAN_SMALL) {
    size_t size;
    uintptr_t o = gort__gc_tiny_object((uintptr_t)p, s, obj, &size);
    if (o != (uintptr_t)p) gort__fatal("malloc_usable_size(): invalid pointer (not a live tiny object's start)", p);
    return size;
  }
  return gc_object_bytes(s) - ((uintptr_t)p - obj);
}

static void *gc_realloc(void *p, mspan_t *s, size_t size) {
  size_t old = gc_usable(p, s);
  // A tiny object keeps its place for any size its region holds: nothing
  // else may use the region.
  if (size <= old && (size > old / 2 || s->kind == KIND_GC_TINY)) return p;
  void *q;
  if (s->kind == KIND_GC_TYPED) {
    const gort_gc_layout_t *l = (const gort_gc_layout_t *)((uintptr_t *)((uintptr_t)p - SPAN_TYPED_HEADER))[0];
    q = gort_gc_alloc_typed(size, l);
  } else if (s->kind == KIND_GC_TINY) {
    q = gort_gc_alloc_noscan(size);
  } else {
    q = gc_alloc(size, s->kind);
  }
  if (q == NULL) return NULL;
  memcpy(q, p, old < size ? old : size);
  // The copy wrote pointers into a barriered object without the barrier.
  if (s->kind == KIND_GC_BARRIERED) gort__gc_barrier_copied(q, old < size ? old : size);
  if (has_specials(s)) gort__gc_specials_free((uintptr_t)p, maybe_weak_handle(s), (uintptr_t)q);
  gc_free_now(p, s);
  return q;
}

bool gort__gc_fork_caches_used(void) {
  lock(&cached_any.lock);
  if (!atomic_load_explicit(&cached_any.on, memory_order_relaxed)) return false;
  unlock(&cached_any.lock);
  return true;
}

void gort__gc_fork_caches_release(int child) {
  if (child) lock_reinit(&cached_any.lock);
  else unlock(&cached_any.lock);
}

// fork(): every lock of the collector's lists is taken across the fork, so
// that the child never inherits one held by a thread that no longer
// exists. They are never held two at a time, nor with an allocator lock
// (which the allocator's own fork hook takes after these).
// The central lists' 365 locks only when centrals says so: while no cache
// has taken a collected span and no cycle has run, nothing takes them
// without first passing cached_any's lock or the cycle lock, which the
// fork holds (mgc.c, fork_prepare). Taking them anyway wrote six pages
// that the parent and the child then each copied, in every fork of every
// program that never used the collector.
void gort__gc_malloc_fork(int phase, bool centrals) {
  lock_t *all[] = {&gort__gclarge.lock, &layouts.lock};
  // A child that forked mid-walk must walk again (the walker's spans
  // between a central's unlock and their free are lost to it: one class's
  // emptied spans at most).
  if (phase == 2) {
    atomic_store(&reclaim.walking, false);
    atomic_store(&reclaim.woken, false);  // the child has no scavenger yet: the next frees wake one
  }
  for (int k = 0; centrals && k < GORT_NUM_GC_KINDS; k++)
    for (int cls = 0; cls < GORT_NUM_CLASSES; cls++) {
      lock_t *l = &gort__gcentral[k][cls].lock;
      if (phase == 0) lock(l); else if (phase == 1) unlock(l); else lock_reinit(l);
    }
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (phase == 0) lock(all[i]); else if (phase == 1) unlock(all[i]); else lock_reinit(all[i]);
  }
}

void gort__gc_install_hooks(void) {
  gort__gc_hooks.free = gc_free;
  gort__gc_hooks.realloc = gc_realloc;
  gort__gc_hooks.usable = gc_usable;
  gort__gc_hooks.cache_exit = cache_exit;
  gort__gc_hooks.idle = reclaim_idle;
  gort__gc_hooks.reclaim = reclaim_now;
  gort__gc_hooks.heap_grew = gort__dirty_heap_grew;
}

// The object p points into, for the API: not one freed by gort_free and
// still pending (its live bit is cleared only when its span is next swept
// or cached; the freed tag says so meanwhile).
// For a tiny block, the object p points into, and its size in *tiny_size
// (0 for other objects).
static uintptr_t api_object(const void *p, mspan_t **sp, size_t *tiny_size) {
  uintptr_t obj = gort__gc_find_object((uintptr_t)p, sp);
  *tiny_size = 0;
  if (obj == 0 || (*sp)->state != SPAN_SMALL) return obj;
  if (((block_t *)obj)->tag == block_tag_freed(obj)) return 0;
  if ((*sp)->kind == KIND_GC_TINY) return gort__gc_tiny_object((uintptr_t)p, *sp, obj, tiny_size);
  return obj;
}

size_t gort_gc_size(const void *p) {
  mspan_t *s;
  size_t tiny;
  uintptr_t obj = api_object(p, &s, &tiny);
  if (obj == 0) gort__fatal("gort_gc_size(): not a collected object", p);
  return tiny != 0 ? tiny : gc_object_bytes(s) - header_of(s);
}

void *gort_gc_base(const void *p) {
  mspan_t *s;
  size_t tiny;
  uintptr_t obj = api_object(p, &s, &tiny);
  if (obj == 0) return NULL;
  return (void *)(obj + header_of(s));
}
