// Object pools (Go: sync/pool.go, sync/poolqueue.go). Issue 13.
//
// A pool is a cache of objects that were put back, for reuse by the next
// get. It must be nearly free on its fast path (a get and a put that
// allocate nothing should cost a few nanoseconds, less than the malloc and
// free they replace), safe from every thread, and it must not pin memory:
// a burst of puts has to go back to the heap once the program stops using
// what it pooled. Go's sync.Pool answers all three and we follow it:
//
//   1. Per-processor locals. Go gives each P a poolLocal: a private slot
//      that only its P touches, and a shared queue that other Ps steal
//      from. gort has no Ps in this layer, so a local belongs to a thread
//      slot: a small dense id a thread takes at its first pool call and
//      gives back when it exits (local.c), so that a pool's array of locals
//      stays as small as the number of threads using pools at once. A
//      goroutine runs on its M's thread, so per-thread locals are per-M;
//      with GORT_MAXPROCS Ps busy there are that many running Ms, which is
//      per-P in practice (idle Ms hold a local they do not use: a slot's
//      private object at most).
//   2. A get tries, in order: its own private slot; its own shared stack;
//      the other locals' shared stacks (stealing); the victim cache (its own
//      victim private slot, then every local's victim stack); and last
//      new_fn (a miss). A put runs reset_fn, then fills the private slot if
//      it is empty, else pushes on its own shared stack. The fast paths are
//      the private slot alone: no lock, no atomic read-modify-write, a few
//      loads and stores inside a no-stop region (below).
//   3. Rotation (rotate.c, Go's poolCleanup): at the start of every
//      collection, with the world stopped, each local's victim generation
//      is dropped and its primary generation becomes the victim; so an
//      object unused for two cycles is gone, while one that circulates
//      survives (a get falls back on the victim cache when the primary is
//      empty). When no collection rotated the pools for
//      GORT_DEBUG=scavdelay (the collector off, or idle: a C program that
//      allocates no collected objects never collects), the scavenger's
//      cycle asks for a rotation instead.
//   4. Dropped objects are released after the world restarts, on the pool
//      thread (rotate.c): release_fn, or gort_free for gort_malloc objects;
//      collected objects without release_fn are simply no longer roots, so
//      the very cycle that drops them frees them.
//
// The private slot is touched with plain loads and stores, by its thread
// and by rotation, which runs with the world stopped. What makes that sound
// is the no-stop region (base/lock.h) around every pool operation: a stop
// signal that arrives midway waits until the operation ends, so rotation
// never sees a get or a put half done. For the same reason every thread
// that uses a pool is registered with the collector at its first call
// (local.c): an unregistered thread would not be stopped. User callbacks
// (new_fn, reset_fn, release_fn) run outside every region: they may
// allocate, collect, lock, or use pools themselves.
//
// Collected objects in a pool must stay alive while pooled, whatever else
// points at them: every local and every shared stack lives in an
// uncollectable block, which the collector scans as a root. Popped entries
// are cleared, so that a stale copy does not keep an object alive.
//
// The shared store is a small stack under a per-local futex lock, not Go's
// lock-free poolChain: the fast path never reaches it, the owner's lock is
// uncontended unless someone steals, and stealing is the rare case that Go
// optimizes with a chain of ring buffers we would have to get right under
// the collector as well. bench/pool measures both the fast path and the
// two-thread case where stealing happens.
//
// Rejected: per-pool arrays of locals swapped wholesale at rotation (Go's
// local/victim arrays): C cannot allocate the new array with the world
// stopped nor free the dropped one before its objects are released, so
// each local keeps three generations in place and rotation moves pointers
// only. A global list under one mutex (what C programs hand-roll): every
// call would take the lock and share its cache line.

#include <string.h>

#include "../alloc/pagemap.h"
#include "gort/alloc.h"
#include "gort/gc.h"
#include "pool.h"

// ---- the shared stacks ------------------------------------------------------------

static bool stack_push(objstack_t *s, void *obj) {
  if (s->n == s->cap) return false;
  s->buf[s->n++] = obj;
  return true;
}

static void *stack_pop(objstack_t *s) {
  if (s->n == 0) return NULL;
  void *x = s->buf[--s->n];
  s->buf[s->n] = NULL;  // no stale root
  return x;
}

static void *pop_shared(pool_local_t *l) {
  if (atomic_load_explicit(&l->nshared, memory_order_relaxed) == 0) return NULL;
  lock(&l->lock);
  void *x = stack_pop(&l->shared);
  atomic_store_explicit(&l->nshared, l->shared.n, memory_order_relaxed);
  unlock(&l->lock);
  return x;
}

static void *pop_victim(pool_local_t *l) {
  if (atomic_load_explicit(&l->nvshared, memory_order_relaxed) == 0) return NULL;
  lock(&l->lock);
  void *x = stack_pop(&l->vshared);
  atomic_store_explicit(&l->nvshared, l->vshared.n, memory_order_relaxed);
  unlock(&l->lock);
  return x;
}

// Gives the shared stack of l, seen full at cap, room for more. Outside
// every no-stop region: it allocates. False if memory ran out.
static bool grow_shared(pool_local_t *l, uint32_t cap) {
  uint32_t ncap = cap ? cap * 2 : 16;
  void **nb = gort_gc_alloc_uncollectable(ncap * sizeof *nb);
  if (nb == NULL) return false;
  void **old = NULL;
  lock(&l->lock);
  if (l->shared.cap < ncap) {  // nobody grew or rotated it meanwhile
    if (l->shared.n) memcpy(nb, l->shared.buf, l->shared.n * sizeof *nb);
    old = l->shared.buf;
    l->shared.buf = nb;
    l->shared.cap = ncap;
    nb = NULL;
  }
  unlock(&l->lock);
  gort_free(old);
  gort_free(nb);
  return true;
}

// ---- get ---------------------------------------------------------------------------

// Steps 2-4 of a get (pool.c's essay), l the caller's local; inside a
// no-stop region.
static void *get_elsewhere(gort_pool_t *p, pool_local_t *l) {
  void *x = pop_shared(l);
  if (x != NULL) return x;
  locals_t *ls = pool_locals(p);
  uint32_t n = ls->n, me = gort__pool_slot1 - 1;
  for (uint32_t i = 1; i < n; i++) {
    pool_local_t *o = atomic_load_explicit(&ls->l[(me + i) % n], memory_order_acquire);
    if (o != NULL && (x = pop_shared(o)) != NULL) return x;
  }
  if ((x = l->vprivate) != NULL) {
    l->vprivate = NULL;
    return x;
  }
  for (uint32_t i = 0; i < n; i++) {
    pool_local_t *o = atomic_load_explicit(&ls->l[(me + i) % n], memory_order_acquire);
    if (o != NULL && (x = pop_victim(o)) != NULL) return x;
  }
  return NULL;
}

static GORT_NOINLINE void *get_slow(gort_pool_t *p) {
  for (;;) {
    nostop_enter();
    pool_local_t *l = pool_local_of(p);
    if (l == NULL) {
      nostop_exit();
      if (!gort__pool_local_make(p)) break;  // out of memory: a miss, uncounted
      continue;
    }
    counter_inc(&l->gets);
    void *x = l->private;
    if (x != NULL)
      l->private = NULL;
    else
      x = get_elsewhere(p, l);
    if (x == NULL) counter_inc(&l->misses);
    __asm__ volatile("" : "+r"(x));  // in a register when the thread may stop
    nostop_exit();
    if (x != NULL) return x;
    break;
  }
  return p->new_fn != NULL ? p->new_fn() : NULL;
}

void *gort_pool_get(gort_pool_t *p) {
  nostop_enter();
  pool_local_t *l = pool_local_of(p);
  if (gort_likely(l != NULL)) {
    void *x = l->private;
    if (gort_likely(x != NULL)) {
      l->private = NULL;
      counter_inc(&l->gets);
      __asm__ volatile("" : "+r"(x));
      nostop_exit();
      return x;
    }
  }
  nostop_exit();
  return get_slow(p);
}

// ---- put ---------------------------------------------------------------------------

// An object the pool cannot keep (no memory for its storage) goes where a
// drop would send it.
static void release_now(gort_pool_t *p, void *obj) {
  if (p->release_fn != NULL) {
    p->release_fn(obj);
    return;
  }
  mspan_t *s = span_of((uintptr_t)obj);
  if (s != NULL && s->kind == KIND_MANUAL) gort_free(obj);
}

static GORT_NOINLINE void put_slow(gort_pool_t *p, void *obj) {
  for (;;) {
    nostop_enter();
    pool_local_t *l = pool_local_of(p);
    if (l == NULL) {
      nostop_exit();
      if (!gort__pool_local_make(p)) break;
      continue;
    }
    if (!l->armed) gort__pool_arm(l);
    if (l->private == NULL) {
      l->private = obj;
      counter_inc(&l->puts);
      nostop_exit();
      return;
    }
    lock(&l->lock);
    bool done = stack_push(&l->shared, obj);
    atomic_store_explicit(&l->nshared, l->shared.n, memory_order_relaxed);
    uint32_t cap = l->shared.cap;
    unlock(&l->lock);
    if (done) {
      counter_inc(&l->puts);
      nostop_exit();
      return;
    }
    nostop_exit();
    // l stays this slot's local (locals are never replaced), so growing it
    // outside the region is safe; obj is on this stack meanwhile, a root.
    if (!grow_shared(l, cap)) break;
  }
  release_now(p, obj);
}

void gort_pool_put(gort_pool_t *p, void *obj) {
  if (obj == NULL) return;
  if (gort_unlikely(span_of((uintptr_t)obj) == NULL))
    gort__fatal("gort_pool_put: not a pointer gort handed out:", obj);
  if (p->reset_fn != NULL) p->reset_fn(obj);
  nostop_enter();
  pool_local_t *l = pool_local_of(p);
  if (gort_likely(l != NULL && l->private == NULL && l->armed)) {
    l->private = obj;
    counter_inc(&l->puts);
    nostop_exit();
    return;
  }
  nostop_exit();
  put_slow(p, obj);
}

// ---- figures -----------------------------------------------------------------------

static void add_stats(gort_pool_t *p, gort_pool_stats_t *out) {
  locals_t *ls = pool_locals(p);
  for (uint32_t i = 0; ls != NULL && i < ls->n; i++) {
    pool_local_t *l = atomic_load_explicit(&ls->l[i], memory_order_acquire);
    if (l == NULL) continue;
    // Misses before gets: a reader never sees more misses than gets.
    out->misses += atomic_load_explicit(&l->misses, memory_order_relaxed);
    out->gets += atomic_load_explicit(&l->gets, memory_order_relaxed);
    out->puts += atomic_load_explicit(&l->puts, memory_order_relaxed);
  }
  out->drops += __atomic_load_n(&p->gort_drops_, __ATOMIC_RELAXED);
}

void gort_pool_stats(gort_pool_t *p, gort_pool_stats_t *out) {
  memset(out, 0, sizeof *out);
  if (p != NULL) {
    add_stats(p, out);
    return;
  }
  for (gort_pool_t *q = gort__pool_list(); q != NULL; q = __atomic_load_n(&q->gort_next_, __ATOMIC_ACQUIRE))
    add_stats(q, out);
}
