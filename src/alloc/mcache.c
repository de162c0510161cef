// Thread caches (Go's mcache, mimalloc's thread-local heap).
//
// See malloc.c for the allocator overview. Each thread that allocates gets
// an mcache, found through one initial-exec TLS pointer. Until the thread's
// first allocation that pointer names gort__empty_cache, whose free lists
// are all empty, so the fast path needs no "initialized?" test: the first
// malloc falls into the slow path, which creates the cache.
//
// A cache owns every small span it has allocated from, until the span is
// entirely free again (then it goes back to the page heap, or stays as the
// class's one spare) or the thread exits (then it goes to the mcentral).
// Per class it keeps:
//   k[cls]   the class list: free blocks of any of its spans of the class,
//            which malloc pops and the owner's free pushes (TCMalloc's
//            thread cache), bounded by max (about 64 KiB of blocks);
//   cur      the span refills are served from;
//   partial  owned spans with blocks back in their own free lists;
//   full     owned spans with no free block, each with NOTIFY set;
//   stash    empty spans, up to 1 MiB per thread, so that a class that
//            oscillates around a span boundary does not take the heap lock
//            each time (see "Empty spans" below).
//
// Frees (malloc.c decides which path):
//   by the owner:  push on the class list; no atomics, and the span is only
//                  read. A free that takes the list past max returns its
//                  colder half to the blocks' spans (s->free, used--): a
//                  full span moves to partial, an empty one retires.
//   by others:     the block's remote bit (pagemap.h), set with an atomic
//                  OR whose old value catches a second free; the block
//                  itself is not touched. Then XFREE_HAS in s->xfree
//                  (written only when clear), so that the owner's next
//                  refill from s looks at the bits; then PINFO_PENDING
//                  on the block's page, and the owner
//                  collects before its next free into the page (the live
//                  bits must be exact for its checks). If the owner had
//                  set NOTIFY (the span is on its full list), the one free
//                  that clears it posts a notice of the span to the owner
//                  (mcache_t.notices), and the owner, at its next refill,
//                  moves the span back to partial. Unowned spans notify
//                  their mcentral instead.
// Collecting (gort__span_take_remote) takes the span's bit words with an
// exchange each and threads the blocks onto s->free in address order.
// HAS goes after the bit, so that whoever takes HAS finds the bit: with
// HAS first, an owner could take HAS, find no bit yet, and put the span
// on its full list (NOTIFY set), where the bit that came next was never
// looked for again (a reviewer's probe: spans of one 32 KiB block, freed
// by a consumer thread, stranded on the producer's full list, or for good
// on an mcentral's). So the freeing thread writes the span after its
// block is free, when the owner may already have collected the block
// and emptied the span, and its struct may describe another span by
// then (a collected span's xfree is a list: a late HAS there would
// corrupt it). So a malloc span's word carries its generation (mspan.h,
// XFREE_MARK), read while the block was live, and the freeing thread
// writes the word only with a CAS from a value of that generation: a
// recycled struct fails it. (A first fix held the struct instead, a
// count that the page heap waited on before recycling it: a fork child
// that inherited a hold whose thread was gone waited for ever, and a
// stop of the world could deadlock with a waiter in a no-stop region.)
// The notice, last, may name a span that is another by then: its
// receivers check.
// A notice may outlive its span (the struct recycled for another span
// since): every drain and mcentral_notify checks what the span is now.
// History: remote frees were a lock-free stack threaded through the
// blocks (mimalloc's thread-free list, tcmalloc's in spirit). The freeing
// thread then wrote each block, and the owner's walk of the stack waited
// on a cross-core miss per block, the next link being in the block just
// loaded: in allocbench's prodcons (two producers, two consumers, every
// free remote) the walk and the freeing thread's read of the block were
// half of the run, and gort took 1.6x jemalloc's time, whose frees do not
// touch the block either.
// Refill of class cls, when its list is empty, in order: the current
// span's own frees; its remote frees; the notices; the partial queue; the
// stash; an orphan span from the mcentral; a fresh span from the page
// heap. A refill moves one span's list at a time.
//
// Thread exit (a pthread key destructor) returns the class lists to their
// spans, hands every span to the mcentral and puts the cache struct on a
// free list for the next new thread: cache structs are never unmapped, so
// a late remote free that read a stale owner still posts its notice into
// valid memory. The exit drains the notices last with the cache marked
// closed; a notice posted after that is passed on by its poster (to the
// span's owner now, or its mcentral), and one left in the slots is the
// next user's to pass on (cache_new keeps them).
//
// History: the first design pushed an owner's free on the block's own span
// (s->free) and served malloc from one span at a time. Spans were known
// empty at once, but every free wrote its span, and a program that frees
// far from where it allocated (20,000 random live blocks) left each span
// a few scattered free blocks, so each refill yielded only those few.
// The class list keeps spans with one owner (which the collector and the
// cross-thread frees rely on) and learns of empty spans at the flush.
// Rejected: TCMalloc's unowned per-thread lists, where a free from any
// thread goes on the freeing thread's list: spans are then never known to
// be empty without a central pass.

#include "mcache.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "../base/lock.h"
#include "../base/noscan.h"
#include "../base/persistent.h"
#include "../base/vg.h"
#include "mcentral.h"
#include "harden.h"
#include "mheap.h"
#include "scavenger.h"
#include "alloc_init.h"

mcache_t gort__empty_cache = {.pinfo_owner = ~0u};
GORT_NOSCAN(gort__empty_cache)  // its lists stay empty: 13 KiB of NULLs and counters
GORT_TLS mcache_t *gort__tls_cache = &gort__empty_cache;
uintptr_t gort__tag_key;

static struct {
  lock_t lock;               // rank LOCK_CACHES; guards everything here
  fixalloc_t alloc;
  mcache_t *all;             // live caches
  mcache_t *spare;           // caches of exited threads, for reuse
  uint64_t ncaches;
  uint64_t retired_nmalloc[GORT_NUM_CLASSES];  // counters of exited threads
  uint64_t retired_nfree[GORT_NUM_CLASSES];
  uint64_t orphan_nfree[GORT_NUM_CLASSES];  // frees by threads with no cache; atomic
  uint64_t retired_gc_nmalloc, retired_gc_bytes;
  uint64_t retired_large_alloc_bytes, retired_large_free_bytes;
  uint32_t ids;              // cache ids handed out (structs are never freed)
  pthread_key_t key;
  bool key_ok, inited;
} caches = {.lock = LOCK_INIT};

static void thread_exit(void *arg);

// Set by the exit hook: this thread's cache is gone for good.
static GORT_TLS bool thread_exited;

static struct {
  lock_t lock;  // rank LOCK_LATE; guards c and c's owner-only state
  mcache_t *c;
} late = {.lock = LOCK_INIT};

// The span's owner is kept twice: s->owner for the slow paths and the
// checks, and the owner's id in each page's info for the free fast path
// (pagemap.h). They change together here, and only here, while the span
// is out of any list. (A span going back to the page heap needs neither:
// the heap clears both.)
void gort__span_set_owner(mspan_t *s, mcache_t *c) {
  atomic_store_explicit(&s->owner, c, memory_order_release);
  gort__span_pinfo_set_owner(s, c != NULL ? c->id : 0);
}

// Generations of malloc spans (mspan.h, XFREE_MARK): never reused.
static _Atomic uintptr_t span_gens __attribute__((aligned(GORT_CACHELINE)));  // its own line

void gort__span_init_small(mspan_t *s, int cls) {
  uintptr_t gen = atomic_fetch_add_explicit(&span_gens, 1, memory_order_relaxed) + 1;
  atomic_store_explicit(&s->xfree, gen << 4 | XFREE_MARK, memory_order_release);
  s->sizeclass = (uint8_t)cls;
  span_set_elemsize(s, gort__class_size[cls]);
  s->nelems = gort__class_nelems[cls];
  s->divmul = gort__class_divmul[cls];
  s->kind = KIND_MANUAL;
  s->prof_shard = (uint8_t)gort__tls_cache->id;  // the thread that will allocate here
  s->free = NULL;
  s->used = 0;
  __atomic_store_n(&s->fresh, 0, __ATOMIC_RELAXED);
  span_clear_samples(s);
  gort__span_pinfo_init(s, (unsigned)cls, (gort__harden ? PINFO_SLOW : 0) | pinfo_shard_bits(s->prof_shard));  // no owner yet
  if (gort__harden) gort__harden_span_init(s);  // carves (and shuffles) it all
}

// Carves the next fresh blocks of s, to the end of the OS page holding the
// first of them (at least one block); returns them as a list
// in ascending order. The caller counts them in s->used.
block_t *gort__mcache_carve(mspan_t *s) {
  uint32_t first = s->fresh, n = span_carve_count(s);
  block_t *head = NULL;
  for (uint32_t i = first + n; i-- > first;) {
    block_t *b = (block_t *)(s->base + (uintptr_t)i * s->elemsize);
    block_set_next(b, head);
    b->tag = block_tag_fresh((uintptr_t)b);
    head = b;
  }
  __atomic_store_n(&s->fresh, first + n, __ATOMIC_RELAXED);
  return head;
}

// ---- list bounds ---------------------------------------------------------------
//
// A class's list holds at most max blocks; a free past it flushes the
// colder half back to the spans. The base bound is about 64 KiB of blocks
// (at least 2, at most 1024). That suits most classes, but a class whose
// program frees past the bound and then allocates it all again (a batch of
// requests, a working set of large blocks replaced at random) pays a flush
// and a refill per max/2 operations, each a walk over spans. So the bound
// adapts, as TCMalloc's slow start does: a refill that follows a flush of
// the same class doubles max, up to 1 MiB of blocks (at most 4096). Growth
// past the base bounds is charged to a budget of 4 MiB per thread (as
// TCMalloc's per-thread cache size); a class that would grow past it first
// halves every grown class's growth (and trims the lists now longer than
// their bounds), so a program whose phases use different classes is not held
// to the first phase's choice, and a thread never holds more than the
// budget beyond the base bounds.
// A grown bound outlives the class's use: a program that moves on to other
// sizes leaves the old class's list full, up to 1 MiB of free blocks that
// keep their spans from the sizes now in use. bench/classic.c's simple
// shape (batches of 1600 blocks of 16 B, then 32 B, ... up to 4 KiB)
// ended each phase with the whole batch on its class's list, and the
// thread touched 9.7 MiB where mimalloc, whose pages go back to its heap
// once their blocks are all free, touched 6.5. So when a refill takes
// fresh pages from the heap (the thread's footprint grows), every class
// that neither refilled nor flushed since the last such pass gives back
// half its growth, and its blocks past the new bound go back to their
// spans: empty ones retire to the stash, where the class that needs
// pages takes them at its next refill. (The pass runs at the end of the
// refill that took the pages: gort__mcache_refill says why.) Tried and
// dropped: also emptying a list at its base bound once its class stayed
// idle for 4 passes. simple-2t took 0.0754 -> 0.0713 s and peaked at 16.2
// MiB instead of 18.1, but thread-1t and thread-2t, whose classes are all
// in use at random, lost 1.4% and 2.7% to the refills of lists emptied
// too soon (5 interleaved runs each, 2026-12-02). An idle list is back near its base after a few
// passes; a class in use is never trimmed, and a thread whose spans stay
// with it (the steady state) makes no pass at all.
// (Measured on bench/classic.c's glibc shapes: a working set of 1024
// blocks of 4 B..32 KiB ran 1.9x tcmalloc's time with fixed bounds, the
// 2 KiB and 4 KiB batches of 100-400 blocks up to 2.5x. With a 2 MiB
// budget whose overrun put every class back to its base, that working set
// (3.7 MiB) kept overrunning it, and its flushes and refills were a fifth
// of the run; halving instead, with 4 MiB, took 12% off its time.)
#define LIST_GROWN_BUDGET ((int64_t)4 << 20)
#define LIST_MAX_BYTES ((uint32_t)1 << 20)
#define LIST_MAX_BLOCKS 4096u

static int32_t list_base(int cls) {
  if (gort__class_size[cls] == 0) return 0;  // class 0: unused
  uint32_t n = (64u << 10) / gort__class_size[cls];
  return (int32_t)(n < 2 ? 2 : n > 1024 ? 1024 : n);
}

static int32_t list_cap(int cls) {
  uint32_t n = LIST_MAX_BYTES / gort__class_size[cls];
  n = n > LIST_MAX_BLOCKS ? LIST_MAX_BLOCKS : n;
  int32_t base = list_base(cls);
  return (int32_t)n > base ? (int32_t)n : base;
}

// A refill of cls: if the class flushed since its last refill, double its
// bound, within the cap and the budget (see above).
static void list_on_refill(mcache_t *c, int cls) {
  c->active[cls] = 1;
  if (c->flushes[cls] == 0) return;
  c->flushes[cls] = 0;
  int32_t want = c->max[cls] * 2, cap = list_cap(cls);
  if (want > cap) want = cap;
  if (want <= c->max[cls]) return;
  int64_t cost = (int64_t)(want - c->max[cls]) * gort__class_size[cls];
  if (c->grown_bytes + cost > LIST_GROWN_BUDGET) {
    // Over budget: every grown class gives back half its growth.
    int64_t grown = 0;
    for (int i = 1; i < GORT_NUM_CLASSES; i++) {
      int32_t base = list_base(i), m = c->max[i];
      if (m <= base) continue;
      m = base + (m - base) / 2;
      cc_set_max(c, i, m);
      grown += (int64_t)(m - base) * gort__class_size[i];
      // Trimmed now, not at the class's next free, which may never come;
      // a trim is not the program's flush: it must not regrow the bound.
      if (cc_len(c, i) > m) {
        uint8_t flushed = c->flushes[i];
        gort__mcache_flush_list(c, i);
        c->flushes[i] = flushed;
      }
    }
    c->grown_bytes = grown;
    if (grown + cost > LIST_GROWN_BUDGET) return;
  }
  c->grown_bytes += cost;
  cc_set_max(c, cls, want);
}

// After a refill took fresh pages from the heap: idle classes give back
// half their growth (see above).
static void trim_idle_lists(mcache_t *c) {
  if (c->grown_bytes == 0) {
    memset(c->active, 0, sizeof c->active);
    return;
  }
  int64_t grown = 0;
  for (int i = 1; i < GORT_NUM_CLASSES; i++) {
    int32_t base = list_base(i), m = c->max[i];
    bool active = c->active[i];
    c->active[i] = 0;
    if (m > base && !active) {
      m = base + (m - base) / 2;
      cc_set_max(c, i, m);
      if (cc_len(c, i) > m) {  // a trim, not the program's flush (as above)
        uint8_t flushed = c->flushes[i];
        gort__mcache_flush_list(c, i);
        c->flushes[i] = flushed;
        c->active[i] = 0;
      }
    }
    grown += (int64_t)(m - base) * gort__class_size[i];
  }
  c->grown_bytes = grown;
}

// ---- registry --------------------------------------------------------------

static mcache_t *cache_new(void) {
  lock(&caches.lock);
  if (!caches.inited) {
    gort__fixalloc_init(&caches.alloc, sizeof(mcache_t));
    caches.key_ok = pthread_key_create(&caches.key, thread_exit) == 0;
    caches.inited = true;
  }
  mcache_t *c = caches.spare;
  if (c != NULL) {
    caches.spare = c->next_all;
    uint16_t id = c->id;  // its spans' pages may still name it: keep it
    // Notices posted to the old thread stay (see "Thread exit"): other
    // threads may be filling slots right now.
    memset(c, 0, offsetof(mcache_t, notices));
    memset(&c->next_all, 0, sizeof *c - offsetof(mcache_t, next_all));
    atomic_store(&c->notices.closed, 0);
    atomic_store(&c->notices.pending, 1);
    c->id = id;
  } else {
    c = gort__fixalloc_alloc(&caches.alloc);
    if (c != NULL && caches.ids < 0xFFFF) c->id = (uint16_t)++caches.ids;
  }
  if (c == NULL) {
    unlock(&caches.lock);
    return NULL;
  }
  c->pinfo_owner = c->id != 0 ? (uint32_t)c->id << PINFO_OWNER_SHIFT : ~0u;
  for (int i = 0; i < GORT_NUM_CLASSES; i++) {
    span_list_init(&c->partial[i]);
    span_list_init(&c->full[i]);
    c->max[i] = list_base(i);
    c->k[i].limit = c->max[i];  // an empty list, counters at 0
  }
  c->alive = true;
  c->sample_left = gort__mprof_hooks.first_interval ? gort__mprof_hooks.first_interval() : INT64_MAX;
  if (gort__harden) c->sample_left = -1;  // every malloc takes the slow path (harden.c)
  c->next_all = caches.all;
  caches.all = c;
  __atomic_fetch_add(&caches.ncaches, 1, __ATOMIC_RELAXED);  // read without the lock
  unlock(&caches.lock);
  return c;
}

mcache_t *gort__mcache_get(void) {
  mcache_t *c = gort__tls_cache;
  if (gort_likely(c != &gort__empty_cache)) return c;
  c = cache_new();
  if (c == NULL) return NULL;
  gort__tls_cache = c;
  // Register for the exit hook. pthread_setspecific does not allocate for
  // low-numbered keys, and ours is created first thing.
  if (caches.key_ok) pthread_setspecific(caches.key, c);
  return c;
}

// Adds c's counters to the retired totals. Under caches.lock.
static void fold_counts(mcache_t *c) {
  caches.retired_gc_nmalloc += counter_read(&c->gc_nmalloc);
  caches.retired_gc_bytes += counter_read(&c->gc_bytes);
  caches.retired_large_alloc_bytes += counter_read(&c->large_alloc_bytes);
  caches.retired_large_free_bytes += counter_read(&c->large_free_bytes);
  for (int i = 0; i < GORT_NUM_CLASSES; i++) {
    caches.retired_nmalloc[i] += counter_read(&c->k[i].nmalloc);
    caches.retired_nfree[i] += counter_read(&c->k[i].nfree);
  }
}

static void cache_retire(mcache_t *c) {
  lock(&caches.lock);
  for (mcache_t **p = &caches.all; *p != NULL; p = &(*p)->next_all) {
    if (*p == c) {
      *p = c->next_all;
      break;
    }
  }
  fold_counts(c);
  c->alive = false;
  c->next_all = caches.spare;
  caches.spare = c;
  __atomic_fetch_sub(&caches.ncaches, 1, __ATOMIC_RELAXED);
  unlock(&caches.lock);
}

static void thread_exit(void *arg) {
  mcache_t *c = arg;
  if (c == NULL || gort__tls_cache != c) return;
  VG_ENTER();  // links written into freed blocks: base/vg.h
  if (gort__gc_hooks.cache_exit != NULL) gort__gc_hooks.cache_exit(c);
  gort__mcache_abandon(c);
  // glibc frees (and may allocate) after the key destructors have run:
  // strerror's buffer, dlerror's, the thread's own freeres. A new cache
  // then would never be handed back (leaking a cache per thread, 55 MB for
  // 10,000 threads). So from here frees take the remote path and count on
  // a shared shard, and allocations come from the shared late cache.
  thread_exited = true;
  gort__tls_cache = &gort__empty_cache;
  cache_retire(c);
  VG_LEAVE();
}

bool gort__mcache_thread_exited(void) { return thread_exited; }

// The late cache: one cache, under a lock, for threads past their exit
// hook. Rare and short-lived work, so a lock is cheap enough.
void *gort__mcache_alloc_late(int cls) {
  lock(&late.lock);
  mcache_t *c = late.c;
  if (c == NULL) c = late.c = cache_new();
  void *b = NULL;
  if (c != NULL) {
    class_cache_t *k = &c->k[cls];
    b = k->head;
    if (b != NULL) {
      k->head = gort__harden ? gort__harden_checked_next(b) : block_next(b);
    } else {
      b = gort__mcache_refill(c, cls);
    }
    if (b != NULL) {
      ((block_t *)b)->tag = 0;  // not fresh
      live_set((uintptr_t)b);
      counter_add(&k->nmalloc, 1);
    }
  } else {
    errno = ENOMEM;
  }
  unlock(&late.lock);
  return b;
}

void gort__mcache_count_orphan_free(int cls) {
  __atomic_fetch_add(&caches.orphan_nfree[cls], 1, __ATOMIC_RELAXED);
}

void gort__mcache_foreach(void (*fn)(mcache_t *c, void *arg), void *arg) {
  lock(&caches.lock);
  for (mcache_t *c = caches.all; c != NULL; c = c->next_all) fn(c, arg);
  unlock(&caches.lock);
}

void gort__mcache_retired_counts(uint64_t *nmalloc, uint64_t *nfree) {
  lock(&caches.lock);
  memcpy(nmalloc, caches.retired_nmalloc, sizeof caches.retired_nmalloc);
  for (int i = 0; i < GORT_NUM_CLASSES; i++)
    nfree[i] = caches.retired_nfree[i] + __atomic_load_n(&caches.orphan_nfree[i], __ATOMIC_RELAXED);
  unlock(&caches.lock);
}

void gort__mcache_gc_counts(uint64_t *nmalloc, uint64_t *bytes) {
  lock(&caches.lock);
  uint64_t n = caches.retired_gc_nmalloc, b = caches.retired_gc_bytes;
  for (mcache_t *c = caches.all; c != NULL; c = c->next_all) {
    n += counter_read(&c->gc_nmalloc);
    b += counter_read(&c->gc_bytes);
  }
  unlock(&caches.lock);
  *nmalloc = n;
  *bytes = b;
}

uint64_t gort__mcache_count(void) { return __atomic_load_n(&caches.ncaches, __ATOMIC_RELAXED); }

// ---- frees -------------------------------------------------------------------

// Clears NOTIFY. Returns false if a remote free cleared it first (its
// notice is then in our slots, or on its way there).
static bool clear_notify(mspan_t *s) {
  return atomic_fetch_and_explicit(&s->xfree, ~XFREE_NOTIFY, memory_order_acq_rel) & XFREE_NOTIFY;
}

// ---- empty spans ---------------------------------------------------------------
//
// A span whose every block is free again goes back to the page heap, under
// its lock, with its pages merged into their neighbours; the next refill
// of the class then takes a span from the heap again and carves it anew.
// A class with few blocks per span (1 to 8 above 4 KiB) crosses that line
// all the time: bench/classic.c's thread-1t (a working set of 1024 blocks
// of 4 B..32 KiB, replaced at random) made 70,000 such round trips in 12
// million operations when a thread kept one empty span per class. So a
// thread keeps a stash of empty spans, of up to GORT_STASH_SLOTS classes,
// and a refill takes one before the central lists and the heap: first one
// of its class, whose carved blocks are still linked; else one of another
// class with as many pages (most classes use 4), made anew for this class.
// That cut thread-1t's round trips to 8,700.
//
// The stash's bound adapts. It starts at GORT_STASH_BASE (1 MiB, 32 spans
// of most classes), which is what thread-1t needs. A thread that frees
// batches larger than that (glibc's bench-malloc-simple, simple-2t in
// bench/classic.c: 1600 blocks of 4 KiB, 200 spans, allocated and freed
// over and over by each of two threads) sent most spans of each batch to
// the heap and took them back for the next, on the heap's lock, which
// both threads wanted: a third of the run, and 1.8x mimalloc's time, whose
// pages stay with their thread. So when a refill must take a fresh span
// from the heap after the stash, being full, sent one there since the
// bound last grew, the bound doubles, up to GORT_STASH_MAX_SHIFT times (8
// MiB): one batch of this size round-trips, later ones stay in the
// thread. Each slot holds a chain of one class, so the slots scanned per
// refill stay 32 however many spans the thread keeps.
//
// What the stash keeps is memory the program does not use. The scavenger
// takes every thread's stash when it runs (gort__mcache_flush_empty), as
// Go's scavenger and mimalloc's page retirement bound theirs, and a grown
// bound starts over then; a bound that grows wakes the scavenger, so that
// a thread that grew its stash and went idle does not keep 8 MiB for
// good. The memory limit and gort_free_os_memory() take the stashes too.
// Taken chains are gone from the owner's count all at once: it learns of
// a take from stash_epoch, and forgets what it had counted (a chain it
// added while the take ran may survive it uncounted: a few spans over the
// bound, until the next take).

// Forgets the count after a take by others (see above).
static void stash_sync(mcache_t *c) {
  uint32_t e = atomic_load_explicit(&c->stash_epoch, memory_order_acquire);
  if (e == c->stash_epoch_seen) return;
  c->stash_epoch_seen = e;
  c->stash_bytes = 0;
  c->stash_shift = 0;
  c->stash_spilled = false;
}

static bool stash_push(mcache_t *c, mspan_t *s) {
  stash_sync(c);
  uint64_t bytes = span_bytes(s);
  int cls = s->sizeclass, slot = -1;
  if (c->stash_bytes + bytes <= GORT_STASH_BASE << c->stash_shift) {
    for (int i = 0; i < GORT_STASH_SLOTS; i++) {
      if (atomic_load_explicit(&c->stash[i], memory_order_relaxed) == NULL) {
        if (slot < 0) slot = i;
      } else if (c->stash_class[i] == cls) {
        slot = i;
        break;
      }
    }
  }
  if (slot < 0) {
    c->stash_spilled = true;
    return false;
  }
  s->where = WHERE_STASH;
  // A slot seen NULL stays so but for the owner; one seen full may be
  // taken meanwhile, and then the chain starts anew with s.
  mspan_t *head = atomic_load_explicit(&c->stash[slot], memory_order_relaxed);
  if (head == NULL) c->stash_class[slot] = (uint8_t)cls;
  do atomic_store_explicit(&s->stash_next, head, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(&c->stash[slot], &head, s, memory_order_release,
                                                memory_order_relaxed));
  c->stash_bytes += bytes;
  return true;
}

// The first span of slot i's chain, taken off it; NULL if the chain was
// taken. A span read here and taken by others meanwhile fails the CAS:
// only the owner adds to a chain, so the slot cannot hold it again. (Its
// stash_next may be stale then; span structs are never unmapped.)
static mspan_t *chain_pop(mcache_t *c, int i) {
  mspan_t *head = atomic_load_explicit(&c->stash[i], memory_order_acquire);
  while (head != NULL) {
    mspan_t *next = atomic_load_explicit(&head->stash_next, memory_order_relaxed);
    if (atomic_compare_exchange_weak_explicit(&c->stash[i], &head, next, memory_order_acquire,
                                              memory_order_acquire)) {
      uint64_t bytes = span_bytes(head);
      c->stash_bytes = c->stash_bytes > bytes ? c->stash_bytes - bytes : 0;
      return head;
    }
  }
  return NULL;
}

// A stashed span for class cls, or NULL.
static mspan_t *stash_pop(mcache_t *c, int cls) {
  int other = -1;
  for (int i = 0; i < GORT_STASH_SLOTS; i++) {
    if (atomic_load_explicit(&c->stash[i], memory_order_relaxed) == NULL) continue;
    if (c->stash_class[i] == cls) {
      mspan_t *s = chain_pop(c, i);
      if (s != NULL) return s;
    } else if (other < 0 && gort__class_npages[c->stash_class[i]] == gort__class_npages[cls]) {
      other = i;
    }
  }
  if (other < 0) return NULL;
  mspan_t *s = chain_pop(c, other);
  if (s != NULL) {
    gort__span_init_small(s, cls);  // every block free: no live bit, no sample
    gort__span_set_owner(s, c);     // init cleared the page info's owner
  }
  return s;
}

// A refill found nothing to reuse and takes a fresh span from the heap:
// if the stash sent one there for want of room, its bound grows.
static void stash_grow(mcache_t *c) {
  stash_sync(c);
  if (!c->stash_spilled || c->stash_shift >= GORT_STASH_MAX_SHIFT) return;
  c->stash_shift++;
  c->stash_spilled = false;
  c->stash_wake = true;  // at the end of the refill (gort__mcache_refill says why)
}

// Moves every span of c's stash to taken, through their list links, and
// tells the owner. Anyone may call it, the owner included.
static void take_stash(mcache_t *c, span_link_t *taken) {
  bool any = false;
  for (int i = 0; i < GORT_STASH_SLOTS; i++) {
    mspan_t *s = atomic_exchange_explicit(&c->stash[i], NULL, memory_order_acquire);
    for (any |= s != NULL; s != NULL;) {
      mspan_t *next = atomic_load_explicit(&s->stash_next, memory_order_relaxed);
      span_list_push(taken, s);
      s = next;
    }
  }
  if (any) atomic_fetch_add_explicit(&c->stash_epoch, 1, memory_order_release);
}

// ---- large blocks --------------------------------------------------------------
//
// A block above 32 KiB is a span of its own from the page heap: its malloc
// and its free each took the heap lock, split or merged free runs and read
// the clock, 83 ns a pair for 40 KB where TCMalloc, whose classes reach
// 256 KiB, takes 6. So a thread keeps the spans of the large blocks it
// frees, up to GORT_LARGE_KEEP_PAGES pages each and GORT_LARGE_KEEP_BUDGET
// pages in all, in slots beside the stash of its empty small spans, and
// its next large malloc of as many pages, or up to a quarter more,
// takes one back with no lock: a program that allocates and frees buffers
// of the same sizes never reaches the heap. Like the small spans there, the
// scavenger takes them back when it runs.
//
// A kept span is SPAN_CACHED: in use as far as the heap is concerned (never
// merged, its pages still mapped to it), holding no block, so live_span
// calls a free of its address a double free. The free that keeps the span
// moves it from SPAN_LARGE with a compare-and-swap, so of two threads
// freeing one block at once exactly one wins and the other dies naming the
// double free, as under the heap lock. The stats count the block freed
// when kept and allocated when taken, in the thread's own counters (class
// 0 is large: k[0]), so that neither takes a lock.

static uint64_t free_taken(span_link_t *taken);

// Moves c's kept large blocks' spans to the list taken (for free_taken).
static void take_kept(mcache_t *c, span_link_t *taken) {
  for (int i = 0; i < GORT_LARGE_KEEP_SLOTS; i++) {
    mspan_t *s = atomic_exchange_explicit(&c->keep[i], NULL, memory_order_acquire);
    if (s != NULL) span_list_push(taken, s);
  }
}

static uint32_t kept_large_pages(const mcache_t *c, int *free_slot) {
  uint32_t pages = 0;
  *free_slot = -1;
  for (int i = 0; i < GORT_LARGE_KEEP_SLOTS; i++) {
    if (atomic_load_explicit(&c->keep[i], memory_order_relaxed) != NULL)
      pages += c->keep_npages[i];
    else if (*free_slot < 0)
      *free_slot = i;
  }
  return pages;
}

bool gort__mcache_keep_large(mspan_t *s) {
  mcache_t *c = gort__tls_cache;
  if (c == &gort__empty_cache || gort__harden || s->npages > GORT_LARGE_KEEP_PAGES) return false;
  int slot;
  if (kept_large_pages(c, &slot) + s->npages > GORT_LARGE_KEEP_BUDGET || slot < 0) return false;
  uint8_t was = SPAN_LARGE;
  if (!__atomic_compare_exchange_n(&s->state, &was, (uint8_t)SPAN_CACHED, false, __ATOMIC_RELAXED,
                                   __ATOMIC_RELAXED))
    gort__fatal("free(): double free or invalid pointer (large object)", (void *)s->base);
  counter_add(&c->k[0].nfree, 1);
  counter_add(&c->large_free_bytes, span_bytes(s));
  s->needzero = 1;
  s->where = WHERE_STASH;
  c->keep_npages[slot] = (uint16_t)s->npages;
  atomic_store_explicit(&c->keep[slot], s, memory_order_release);
  return true;
}

mspan_t *gort__mcache_take_large(uintptr_t npages) {
  mcache_t *c = gort__tls_cache;
  int best = -1;
  uintptr_t most = npages + npages / 4;
  for (int i = 0; i < GORT_LARGE_KEEP_SLOTS; i++) {
    uintptr_t n = c->keep_npages[i];
    if (n >= npages && n <= most && atomic_load_explicit(&c->keep[i], memory_order_relaxed) != NULL) {
      best = i;
      most = n;
      if (n == npages) break;
    }
  }
  if (best < 0) return NULL;  // (always so for the empty cache)
  mspan_t *s = atomic_exchange_explicit(&c->keep[best], NULL, memory_order_acquire);
  if (s == NULL) return NULL;  // the scavenger took it
  s->where = WHERE_NONE;
  span_set_state(s, SPAN_LARGE);
  counter_add(&c->k[0].nmalloc, 1);
  counter_add(&c->large_alloc_bytes, span_bytes(s));
  return s;
}

void gort__mcache_large_bytes(uint64_t *alloc, uint64_t *freed) {
  lock(&caches.lock);
  uint64_t a = caches.retired_large_alloc_bytes, f = caches.retired_large_free_bytes;
  for (mcache_t *c = caches.all; c != NULL; c = c->next_all) f += counter_read(&c->large_free_bytes);
  for (mcache_t *c = caches.all; c != NULL; c = c->next_all) a += counter_read(&c->large_alloc_bytes);
  unlock(&caches.lock);
  *alloc = a;
  *freed = f;
}

static void retire_span(mcache_t *c, mspan_t *s) {
  if (s->where == WHERE_PARTIAL) span_list_remove(s);
  if (stash_push(c, s)) return;
  gort_assert_expensive(gort__mspan_is_valid(s));  // tier boundary: back to the page heap
  s->where = WHERE_NONE;
  atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
  gort__mheap_free(s);
}

void gort__mcache_owner_free(mcache_t *c, mspan_t *s, block_t *b) {
  block_set_next(b, s->free);
  s->free = b;
  s->used--;
  if (s->where == WHERE_FULL) {
    span_list_remove(s);
    clear_notify(s);
    s->where = WHERE_PARTIAL;
    span_list_push_back(&c->partial[s->sizeclass], s);
  }
  if (s->used == 0 && s->where != WHERE_CURRENT && s->where != WHERE_STASH) retire_span(c, s);
}

// Returns every block of list to its span. Each belongs to a span c owns.
static void return_blocks(mcache_t *c, block_t *list) {
  while (list != NULL) {
    block_t *next = block_next(list);
    gort__mcache_owner_free(c, span_of((uintptr_t)list), list);
    list = next;
  }
}

void gort__mcache_flush_list(mcache_t *c, int cls) {
  class_cache_t *k = &c->k[cls];
  c->flushes[cls] = 1;
  c->active[cls] = 1;
  // Keep the warmer half (the list is LIFO), return the rest.
  int32_t keep = c->max[cls] / 2;
  block_t *last = k->head;
  for (int32_t i = 1; i < keep && last != NULL; i++) last = block_next(last);
  if (last == NULL) return;
  block_t *rest = block_next(last);
  block_set_next(last, NULL);
  cc_set_len(c, cls, keep);
  return_blocks(c, rest);
}

// After the remote bit of block b: tell the owner, with PINFO_PENDING on
// b's page (pagemap.h). The bit's OR and this load are sequentially
// consistent, as are the owner's clear before it collects and its loads
// of the bit words, so either the owner's collection takes the block or
// this load sees the clear and sets the flag again. The flag is written
// only when it changes: the owner reads the word on every free into the
// page.
static void note_pending(block_t *b) {
  _Atomic uint32_t *w = pinfo_word((uintptr_t)b);
  if ((atomic_load_explicit(w, memory_order_seq_cst) & PINFO_PENDING) == 0)
    atomic_fetch_or_explicit(w, PINFO_PENDING, memory_order_relaxed);
}

// ---- notices --------------------------------------------------------------------

static void post_notice(mcache_t *o, mspan_t *s, bool may_drain);

// Tells whoever owns s now that a remote free cleared its NOTIFY.
static void notify_owner(mspan_t *s) {
  mcache_t *o = atomic_load_explicit(&s->owner, memory_order_acquire);
  if (o == NULL) gort__mcentral_notify(s);
  else post_notice(o, s, true);
}

// Takes every notice of o; for o's own thread (mine), moves its full spans
// among them back to partial; passes the others on to their owners now.
static void drain_notices_of(mcache_t *o, bool mine) {
  atomic_store_explicit(&o->notices.pending, 0, memory_order_seq_cst);
  for (int i = 0; i < GORT_NOTICE_SLOTS; i++) {
    // Sequentially consistent after the store of pending: see post_notice.
    if (atomic_load_explicit(&o->notices.slot[i], memory_order_seq_cst) == NULL) continue;
    mspan_t *s = atomic_exchange_explicit(&o->notices.slot[i], NULL, memory_order_acq_rel);
    if (s == NULL) continue;
    mcache_t *owner = atomic_load_explicit(&s->owner, memory_order_acquire);
    if (owner != o) {
      notify_owner(s);  // it changed hands: a stale notice costs the next owner a look
    } else if (!mine) {
      post_notice(o, s, false);  // o was taken by a new thread meanwhile: its own to drain
    } else if (s->where == WHERE_FULL && span_state(s) == SPAN_SMALL && s->kind == KIND_MANUAL) {
      span_list_remove(s);
      clear_notify(s);
      s->where = WHERE_PARTIAL;
      span_list_push_back(&o->partial[s->sizeclass], s);  // its blocks come at its refill
    }
  }
}

// Posts a notice of s to o: a slot from s's own, probing onward.
static void post_notice(mcache_t *o, mspan_t *s, bool may_drain) {
  unsigned h = (unsigned)(((uintptr_t)s >> 7) * 0x9E3779B1u) >> 27;  // 32 slots
  bool posted = false;
  for (unsigned k = 0; k < GORT_NOTICE_SLOTS && !posted; k++) {
    _Atomic(mspan_t *) *slot = &o->notices.slot[(h + k) % GORT_NOTICE_SLOTS];
    mspan_t *e = atomic_load_explicit(slot, memory_order_relaxed);
    if (e == s) posted = true;
    else if (e == NULL) posted = atomic_compare_exchange_strong_explicit(slot, &e, s, memory_order_acq_rel, memory_order_relaxed) || e == s;
  }
  if (!posted) atomic_store_explicit(&o->notices.overflow, 1, memory_order_seq_cst);
  atomic_store_explicit(&o->notices.pending, 1, memory_order_seq_cst);
  // o's thread has left and may have drained for the last time: pass the
  // notices on ourselves (another thread taking o meanwhile drains its own).
  if (may_drain && posted && atomic_load_explicit(&o->notices.closed, memory_order_seq_cst))
    drain_notices_of(o, false);
}

// The owner's drain, at refill. A notice that found no slot left the
// overflow flag: then every full span is looked at (a remote free cleared
// the NOTIFY of those to move).
static void drain_notices(mcache_t *c) {
  if (atomic_load_explicit(&c->notices.pending, memory_order_seq_cst) == 0) return;
  drain_notices_of(c, true);
  if (atomic_load_explicit(&c->notices.overflow, memory_order_seq_cst) == 0) return;
  atomic_store_explicit(&c->notices.overflow, 0, memory_order_seq_cst);
  for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
    span_link_t *list = &c->full[cls];
    for (span_link_t *l = span_list_begin(list), *next; l != list; l = next) {
      next = l->next;
      mspan_t *s = (mspan_t *)l;
      if (atomic_load_explicit(&s->xfree, memory_order_seq_cst) & XFREE_NOTIFY) continue;
      span_list_remove(s);
      s->where = WHERE_PARTIAL;
      span_list_push_back(&c->partial[cls], s);
    }
  }
}

// ---- remote frees ----------------------------------------------------------------

void gort__mcache_remote_free(mspan_t *s, block_t *b) {
  if (atomic_load_explicit(&s->owner, memory_order_acquire) == NULL && gort__mcentral_free(s, b))
    return;
  // The span's generation, read while b is live (so s is this span).
  uintptr_t gen = atomic_load_explicit(&s->xfree, memory_order_relaxed) & ~XFREE_FLAGS;
  uint64_t bit;
  _Atomic uint64_t *w = remote_word((uintptr_t)b, &bit);
  // A second free of a block whose first is not collected yet (live_span
  // catches it when the first free is over; this, when two overlap
  // before either OR).
  if (atomic_fetch_or_explicit(w, bit, memory_order_seq_cst) & bit) gort__fatal("free(): double free", b);
  // HAS after the bit: whoever takes HAS later finds the bit. Read before
  // written: most remote frees find it set. A word of another generation
  // (or none: a collected span's): the span was emptied, our block
  // collected, and made anew or freed since; nothing is left to tell, and
  // its pages are another span's.
  uintptr_t x = atomic_load_explicit(&s->xfree, memory_order_seq_cst);
  bool notify = false;
  for (;;) {
    if ((x & ~XFREE_FLAGS) != gen || !(x & XFREE_MARK)) return;
    if (x & XFREE_HAS) break;
    if (atomic_compare_exchange_weak_explicit(&s->xfree, &x, (x & ~XFREE_NOTIFY) | XFREE_HAS,
                                              memory_order_seq_cst, memory_order_relaxed)) {
      notify = (x & XFREE_NOTIFY) != 0;
      break;
    }
  }
  note_pending(b);
  // Last, and from here on s may be any span: notices are checked where
  // they are taken (drain_notices_of, gort__mcentral_notify).
  if (notify) notify_owner(s);
}

bool gort__mcache_adopt_free(mcache_t *c, mspan_t *s, block_t *b) {
  if (!gort__mcentral_adopt_span(s, c)) return false;
  live_clear((uintptr_t)b);  // ours to write now
  s->where = WHERE_PARTIAL;
  span_list_push_back(&c->partial[s->sizeclass], s);
  gort__mcache_owner_free(c, s, b);
  return true;
}

// Takes s's remote frees if HAS or a page's PINFO_PENDING says there may
// be some (the pending flag covers a bit that landed after the last take
// of HAS: see "Frees").
static uint32_t take_remote(mspan_t *s) {
  bool any = gort__span_pinfo_take_pending(s);  // cleared before collecting
  if ((atomic_load_explicit(&s->xfree, memory_order_relaxed) & XFREE_HAS) &&
      (atomic_fetch_and_explicit(&s->xfree, ~XFREE_HAS, memory_order_seq_cst) & XFREE_HAS))
    any = true;
  return any ? gort__span_take_remote(s) : 0;
}

void gort__mcache_collect_remote(mcache_t *c, mspan_t *s) {
  (void)c;
  take_remote(s);
}

// ---- refill --------------------------------------------------------------------

// The next list of s's free blocks, with its length in *n: its own frees
// and collected remote frees, else fresh blocks. used counts them out.
static block_t *span_next_list(mspan_t *s, int32_t *n) {
  if (s->free == NULL) take_remote(s);
  block_t *list = s->free;
  if (list != NULL) {
    *n = (int32_t)(s->fresh - s->used);
    s->free = NULL;
    s->used = s->fresh;
    return list;
  }
  if (s->fresh < s->nelems) {
    uint32_t before = s->fresh;
    list = gort__mcache_carve(s);
    *n = (int32_t)(s->fresh - before);
    s->used = s->fresh;
  }
  return list;
}

// Makes s the current span of its class and takes its next list.
static block_t *make_current(mcache_t *c, mspan_t *s, int32_t *n) {
  gort_assert_expensive(gort__mspan_is_valid(s));  // tier boundary: entering the fast path
  int cls = s->sizeclass;
  s->where = WHERE_CURRENT;
  c->cur[cls] = s;
  return span_next_list(s, n);
}

// Moves the exhausted current span to the full list, with NOTIFY set; if a
// remote free slipped in (HAS), returns its blocks instead.
static block_t *retire_current(mcache_t *c, mspan_t *s, int32_t *n) {
  for (;;) {
    uintptr_t old = atomic_load_explicit(&s->xfree, memory_order_seq_cst);
    if (old & XFREE_NOTIFY) break;  // (a current span never has it; were it set, it is as good)
    if ((old & XFREE_HAS) == 0 &&
        atomic_compare_exchange_strong_explicit(&s->xfree, &old, old | XFREE_NOTIFY, memory_order_seq_cst,
                                                memory_order_relaxed))
      break;
    block_t *list = span_next_list(s, n);  // takes HAS: the loop ends
    if (list != NULL) return list;
  }
  s->where = WHERE_FULL;
  span_list_push(&c->full[s->sizeclass], s);
  c->cur[s->sizeclass] = NULL;
  return NULL;
}

static mspan_t *fresh_span(mcache_t *c, int cls) {
  mspan_t *s = gort__mheap_alloc(gort__class_npages[cls], 1, SPAN_SMALL);
  if (s == NULL) return NULL;
  gort__span_init_small(s, cls);
  gort__span_set_owner(s, c);
  return s;
}

static block_t *next_list(mcache_t *c, int cls, int32_t *n) {
  mspan_t *s = c->cur[cls];
  block_t *list;
  if (s != NULL) {
    if ((list = span_next_list(s, n)) != NULL) return list;
    if ((list = retire_current(c, s, n)) != NULL) return list;
  }
  drain_notices(c);
  while ((s = span_list_first(&c->partial[cls])) != NULL) {
    span_list_remove(s);
    if ((list = make_current(c, s, n)) != NULL) return list;
    if ((list = retire_current(c, s, n)) != NULL) return list;
  }
  if ((s = stash_pop(c, cls)) != NULL) return make_current(c, s, n);
  if ((s = gort__mcentral_adopt(cls, c)) != NULL) return make_current(c, s, n);
  stash_grow(c);
  c->trim_due = true;
  if ((s = fresh_span(c, cls)) != NULL) return make_current(c, s, n);
  return NULL;
}

void *gort__mcache_refill(mcache_t *c, int cls) {
  class_cache_t *k = &c->k[cls];
  gort_assert_internal(k->head == NULL);
  list_on_refill(c, cls);
  int32_t n = 0;
  block_t *list = next_list(c, cls, &n);
  if (list == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  k->head = gort__harden ? gort__harden_checked_next(list) : list->next;
  // n - 1 on the list once the caller counts the malloc of the first.
  cc_set_len(c, cls, n);
  // Only now, with the class's list whole: the trim may free spans to the
  // heap, whose hook, like a wake, may start the scavenger's thread, and
  // pthread_create mallocs (the new thread's TLS); that malloc must find
  // this cache consistent, not in the middle of this refill (a nested
  // refill of this class would have made a current span the outer one
  // then overwrote, and lost). Not for the late cache, whose refills run
  // under late.lock: a nested malloc there, from a thread past its exit,
  // would take that lock again.
  if (gort_unlikely(c->trim_due | c->stash_wake)) {
    bool own = c == gort__tls_cache;
    if (c->trim_due && own) trim_idle_lists(c);
    if (c->stash_wake && own) gort__scavenger_wake();
    c->trim_due = c->stash_wake = false;
  }
  return list;
}

// ---- abandonment -------------------------------------------------------------

static void give_span(mspan_t *s) {
  if (s->where == WHERE_FULL) clear_notify(s);
  if (s->where == WHERE_PARTIAL || s->where == WHERE_FULL) span_list_remove(s);
  s->where = WHERE_NONE;
  gort__mcentral_give(s);
}

void gort__mcache_abandon(mcache_t *c) {
  drain_notices(c);
  for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
    // Unhanded blocks of the class's list go back to their spans first.
    block_t *list = c->k[cls].head;
    c->k[cls].head = NULL;
    cc_set_len(c, cls, 0);
    return_blocks(c, list);
    mspan_t *s = c->cur[cls];
    if (s != NULL) {
      c->cur[cls] = NULL;
      give_span(s);
    }
    while ((s = span_list_first(&c->partial[cls])) != NULL) give_span(s);
    while ((s = span_list_first(&c->full[cls])) != NULL) give_span(s);
  }
  span_link_t taken;
  span_list_init(&taken);
  take_stash(c, &taken);
  mspan_t *s;
  while ((s = span_list_first(&taken)) != NULL) {
    span_list_remove(s);
    give_span(s);
  }
  span_link_t kept;  // large blocks' spans go back to the heap, not to an mcentral
  span_list_init(&kept);
  take_kept(c, &kept);
  free_taken(&kept);
  // Notices that arrive from here on are their senders' to pass on
  // (post_notice); those that came meanwhile, ours.
  atomic_store_explicit(&c->notices.closed, 1, memory_order_seq_cst);
  drain_notices_of(c, false);
}

// Collects every cache's stashed empty spans on a private list (through
// the spans' list links); they are freed after the registry lock is
// dropped, since freeing may wake the scavenger.
static void take_stashes(mcache_t *c, void *arg) {
  span_link_t *taken = arg;
  take_stash(c, taken);
  take_kept(c, taken);
}

static uint64_t free_taken(span_link_t *taken) {
  uint64_t bytes = 0;
  mspan_t *s;
  while ((s = span_list_first(taken)) != NULL) {
    span_list_remove(s);
    bytes += span_bytes(s);
    s->where = WHERE_NONE;
    atomic_store_explicit(&s->owner, NULL, memory_order_relaxed);
    gort__mheap_free(s);
  }
  return bytes;
}

uint64_t gort__mcache_flush_empty(bool self_current) {
  span_link_t taken;
  span_list_init(&taken);
  mcache_t *self = gort__tls_cache;
  if (self_current && self != &gort__empty_cache) {
    // Our own lists go back to their spans (empty ones retire), and so do
    // our current spans that are then empty.
    for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
      block_t *list = self->k[cls].head;
      self->k[cls].head = NULL;
      cc_set_len(self, cls, 0);
      return_blocks(self, list);
      mspan_t *s = self->cur[cls];
      if (s == NULL || s->used != 0) continue;
      self->cur[cls] = NULL;
      s->free = NULL;
      span_list_push(&taken, s);
    }
    // Blocks other threads freed into our spans: collected as a refill
    // would, so that spans they emptied retire now. Without this a thread
    // that stopped allocating kept every span whose blocks another thread
    // freed (a pool's drops, released on the pool thread: #13).
    drain_notices(self);
    for (int cls = 1; cls < GORT_NUM_CLASSES; cls++) {
      span_link_t *list = &self->partial[cls];
      for (span_link_t *l = span_list_begin(list), *next; l != list; l = next) {
        next = l->next;
        mspan_t *s = (mspan_t *)l;
        gort__mcache_collect_remote(self, s);
        if (s->used == 0) retire_span(self, s);
      }
    }
  }
  gort__mcache_foreach(take_stashes, &taken);
  return free_taken(&taken);
}

// The caches quarantined by the last fork (in the child only): the
// collector takes their collected spans back when it knows they are
// consistent (it stopped the world for the fork: gc/mgc.c).
static mcache_t *orphaned;

void gort__mcache_foreach_orphaned(void (*fn)(mcache_t *c, void *arg), void *arg) {
  for (mcache_t *c = orphaned; c != NULL; c = c->next_all) fn(c, arg);
}

void gort__mcache_lock_for_fork(void) {
  lock(&late.lock);
  lock(&caches.lock);
}

void gort__mcache_unlock_after_fork(int child) {
  if (!child) {
    unlock(&caches.lock);
    unlock(&late.lock);
    return;
  }
  lock_reinit(&caches.lock);
  lock_reinit(&late.lock);
  late.c = NULL;  // quarantined below with the other threads' caches
  // Only the forking thread survives in the child. The other threads'
  // caches are quarantined (fork.c says why their lists cannot be walked):
  // off the registry, counters folded in, never reused. Their one safe
  // part is the stash, published with an atomic exchange: an empty span
  // that goes back to the page heap.
  mcache_t *self = gort__tls_cache;
  mcache_t *c = caches.all, *kept = NULL;
  orphaned = NULL;
  span_link_t taken;
  span_list_init(&taken);
  while (c != NULL) {
    mcache_t *next = c->next_all;
    if (c == self) {
      c->next_all = kept;
      kept = c;
    } else {
      take_stashes(c, &taken);
      fold_counts(c);
      c->alive = false;
      c->next_all = orphaned;
      orphaned = c;
      __atomic_fetch_sub(&caches.ncaches, 1, __ATOMIC_RELAXED);
    }
    c = next;
  }
  caches.all = kept;
  free_taken(&taken);
}
