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
//   2. A get tries, in order: its own private slot; the head of its own
//      shared chain (its newest object); the tails of the other locals'
//      shared chains (stealing, oldest first); the victim cache (its own
//      victim private slot, then the tail of every local's victim chain);
//      and last new_fn (a miss). A put runs reset_fn, then fills the
//      private slot if it is empty, else pushes on the head of its own
//      shared chain. The fast paths are the private slot alone: no lock,
//      no atomic read-modify-write, a few loads and stores inside a
//      no-stop region (below).
//   3. Rotation (rotate.c, Go's poolCleanup): at the start of every
//      collection, with the world stopped, each local's victim generation
//      is dropped and its primary generation (private slot and whole
//      shared chain) becomes the victim; so an object unused for two
//      cycles is gone, while one that circulates survives (a get falls
//      back on the victim cache when the primary is empty). When no
//      collection rotated the pools for GORT_DEBUG=scavdelay (the
//      collector off, or idle: a C program that allocates no collected
//      objects never collects), the scavenger's cycle asks for a rotation
//      instead.
//   4. Dropped objects are released after the world restarts, on the pool
//      thread (rotate.c): release_fn, or gort_free for gort_malloc and
//      uncollectable objects;
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
// points at them: every local and every ring of a chain lives in an
// uncollectable block, which the collector scans as a root. Emptied slots
// are cleared, so that a stale copy does not keep an object alive past its
// get, nor a dropped one past its drop.
//
// The shared store is a lock-free chain of rings, Go's poolChain (chain.c
// has the protocol). A ring is an array of object pointers with one word
// packing head and tail: the local's thread pushes at the head (a store
// and a fetch-add) and pops there (a CAS), other threads steal at the tail
// (a CAS), and a thief clears the slot it took, which the owner waits for
// before it fills that slot again, so a slot is never reused under a slow
// thief (the ABA problem). A full ring is followed by one twice its size,
// so the chain never fills. Why this and not the small stack under a
// per-local futex lock it replaced:
//   - Nobody waits. Under the lock a thief descheduled while holding it
//     (two cores, several threads: common) stalled the owner's next put
//     or get beyond the private slot, and every other thief, for a time
//     slice. Here a stalled thief holds back one slot, which the owner
//     then treats as full.
//   - Half the atomics: the owner's push or pop is one atomic
//     read-modify-write, where lock and unlock were two, and a thief's pop
//     is one CAS. That is what a thread that holds more than one object at
//     a time pays on every extra get and put (bench/pool "4 held": about a
//     third less per get+put, on one thread and on two), and what a steal
//     costs (bench/pool "relay": about a quarter less).
//   - No growth under a lock: a full stack was copied into a bigger one
//     with the lock held; a full ring stays where it is and the owner
//     links the next, allocated outside the no-stop region, while thieves
//     keep stealing from the older rings.
// What it costs:
//   - Rings are freed only after a rotation: a ring drained by thieves may
//     still be read by a thread inside a pool operation, and the stopped
//     world of the next rotation is the grace period (every pool operation
//     is a no-stop region). A chain keeps its drained rings, at most about
//     twice its peak, until then; after a rotation it grows again from one
//     small spare ring.
//   - Thieves take the oldest object, where the stack gave them the newest.
//     With a small fixed set of objects ("relay") that costs nothing, but a
//     getter that never waits for a putter (nobody waits here) misses
//     whenever it runs ahead, and new_fn's objects add to those in flight;
//     when they number millions the oldest is cold in every cache.
//     bench/pool "handoff" (two threads passing objects through two pools,
//     new_fn on a miss) is about a third slower than under the lock for
//     that reason; Go's sync.Pool, the same design, takes as long there.
//   - A steal reads two cache lines of the victim's local (the chain's
//     tail, then the ring's word) where the locked stack had a count
//     beside its lock.
//
// Rejected: per-pool arrays of locals swapped wholesale at rotation (Go's
// local/victim arrays): C cannot allocate the new array with the world
// stopped nor free the dropped one before its objects are released, so
// each local keeps three generations in place and rotation moves pointers
// only. A global list under one mutex (what C programs hand-roll): every
// call would take the lock and share its cache line. A stack under a lock
// per local (the first version): see above.

#include <string.h>

#include "../alloc/pagemap.h"
#include "gort/alloc.h"
#include "gort/gc.h"
#include "pool.h"

// ---- get ---------------------------------------------------------------------------

// Steps 2-4 of a get (pool.c's essay), l the caller's local; inside a
// no-stop region.
static void *get_elsewhere(gort_pool_t *p, pool_local_t *l) {
  void *x = chain_pop_head(&l->shared);
  if (x != NULL) return x;
  locals_t *ls = pool_locals(p);
  uint32_t n = ls->n, me = gort__pool_slot1 - 1;
  for (uint32_t i = 1; i < n; i++) {
    pool_local_t *o = atomic_load_explicit(&ls->l[(me + i) % n], memory_order_acquire);
    if (o != NULL && (x = gort__chain_pop_tail(&o->shared)) != NULL) return x;
  }
  if ((x = l->vprivate) != NULL) {
    l->vprivate = NULL;
    return x;
  }
  for (uint32_t i = 0; i < n; i++) {
    pool_local_t *o = atomic_load_explicit(&ls->l[(me + i) % n], memory_order_acquire);
    if (o != NULL && (x = gort__chain_pop_tail(&o->vshared)) != NULL) return x;
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
  if (gort__pool_needs_free(obj)) gort_free(obj);
}

// Puts obj in l's private slot or shared chain; false if the chain needs
// a ring and l has no spare. fresh, if not NULL, is a ring the caller
// allocated for it, consumed (set to NULL) if linked. Inside a no-stop
// region.
static bool put_local(pool_local_t *l, void *obj, ring_t **fresh) {
  if (l->private == NULL) {
    l->private = obj;
    return true;
  }
  if (chain_push(&l->shared, obj)) return true;
  ring_t *r = atomic_exchange_explicit(&l->spare, NULL, memory_order_acquire);
  if (r == NULL) r = *fresh, *fresh = NULL;
  if (r == NULL) return false;
  chain_add(&l->shared, r);
  bool pushed = chain_push(&l->shared, obj);
  gort_assert_internal(pushed);
  return pushed;
}

static GORT_NOINLINE void put_slow(gort_pool_t *p, void *obj) {
  ring_t *fresh = NULL;
  for (;;) {
    nostop_enter();
    pool_local_t *l = pool_local_of(p);
    if (l == NULL) {
      nostop_exit();
      if (!gort__pool_local_make(p)) break;
      continue;
    }
    if (!l->armed) gort__pool_arm(l);
    if (put_local(l, obj, &fresh)) {
      counter_inc(&l->puts);
      nostop_exit();
      gort__chain_free_rings(fresh);  // unused: a spare or a rotation made room
      return;
    }
    uint32_t nslots = chain_next_slots(&l->shared);
    nostop_exit();
    // l stays this slot's local (locals are never replaced), but a rotation
    // may run before we enter again: put_local looks afresh. obj is on
    // this stack meanwhile, a root.
    if ((fresh = gort__chain_ring_make(nslots)) == NULL) break;
  }
  gort__chain_free_rings(fresh);
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
