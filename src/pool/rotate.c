// Rotation: the victim cache, drops, and the pool thread (Go: poolCleanup).
//
// See pool.c for the design. Rotation runs with the world stopped, at the
// start of every collection (the collector's stop hook, before the mark)
// or, when no collection rotated the pools for GORT_DEBUG=scavdelay (the
// collector off, or idle), when the scavenger's cycle finds one due (the
// pool thread then stops the world for it). For each local of each
// pool it:
//   1. moves the victim generation (vprivate, vshared) to the dropped one;
//   2. moves the primary generation (private, shared) to the victim one;
//   3. leaves the primary empty, and clears armed.
// It moves pointers only, whole chains of rings at a time (chain.c): no
// thread can be midway through an operation on a chain, nothing is
// allocated or freed, and no user code runs, with the world stopped. In
// step 1, for a pool without release_fn, the collected objects are cleared
// from the dropped chain at once: they need no call, and the mark that
// follows (in the same stop) must not see them, so they are freed by the
// very cycle that drops them, two cycles after their last put. The rest
// (gort_malloc objects, and every object of a pool with a release_fn) wait
// in the dropped generation, still a root, for the pool thread.
//
// Rings. A dropped chain that holds nothing to release is taken apart at
// once: its largest ring of at most RING_RECYCLE_MAX slots becomes the
// local's spare (unless it has one), for the owner's next push to link
// without allocating, and the others go on the local's retired list. The
// pool thread frees retired rings, and the rings of the drops it released,
// after the world restarts. A ring is thus freed at the earliest one
// rotation after it left the primary chain: the stop in between is the
// grace period that makes freeing it safe (chain.c).
//
// A pool whose last drop the pool thread has not finished releasing
// (gort_dropping_ set) is not rotated: the dropped generation has no room
// for a second drop, and rotating later is only late, never wrong. Only
// drops that need calls make it wait (rotate_local).
//
// The pool thread: a thread of gort's own, registered with the collector
// like the finalizer thread (it runs the program's release_fn, which may
// allocate and collect), started at the first pool's registration. It
// sleeps on a futex; it wakes to release drops and free retired rings
// after a rotation, and to rotate when the scavenger asks. The scavenger
// asks when no rotation ran for GORT_DEBUG=scavdelay, and keeps cycling
// only while some pool may hold objects: a put into an unarmed local arms
// it and wakes the scavenger, and each rotation notes whether anything was
// left.

#include <signal.h>

#include "../alloc/pagemap.h"
#include "../alloc/scavenger.h"
#include "../base/options.h"
#include "../gc/gc.h"
#include "../os/os.h"
#include "gort/alloc.h"
#include "pool.h"

static struct {
  // rank LOCK_POOL, taken after local.c's registry lock (in fork only).
  // The pool thread holds it to take a local's dropped generation or
  // retired rings (rotation fills them with the world stopped, when no
  // one holds it), and fork holds it so that the child never inherits a
  // handoff half done.
  lock_t lock;
  _Atomic uint32_t work;          // futex word: bumped for each request
  _Atomic int rotate_requested;   // the scavenger asked for a rotation
  _Atomic int release_pending;    // drops to release or rings to free
  _Atomic int maybe_nonempty;     // some pool may hold objects
  _Atomic int64_t last_ns;        // the last rotation
  _Atomic int thread_state;       // 0 none, 1 started, -1 could not start
} rot;

// An object the collector never frees: a gort_malloc one, or an
// uncollectable one (gort_gc_alloc_uncollectable), which a drop that left
// it to the collector leaked (a pool of them grew by what it dropped).
bool gort__pool_needs_free(void *obj) {
  mspan_t *s = span_of((uintptr_t)obj);
  return s != NULL && (s->kind == KIND_MANUAL || s->kind == KIND_GC_UNCOLLECTABLE);
}

// Step 1's filter, on one object of a dropped generation: counts it, and
// clears it unless it needs the pool thread (a gort_malloc object, or any
// object of a pool with release_fn).
typedef struct {
  gort_pool_t *p;
  uint32_t n, keep;
} drop_t;

static bool drop_one(drop_t *d, void *x) {
  d->n++;
  bool keep = d->p->release_fn != NULL || gort__pool_needs_free(x);
  d->keep += keep;
  return keep;
}

static void drop_slot(void *_Atomic *slot, void *arg) {
  if (!drop_one(arg, atomic_load_explicit(slot, memory_order_relaxed)))
    atomic_store_explicit(slot, NULL, memory_order_relaxed);
}

// Step 1's filter on a whole generation. Adds the objects dropped to
// *drops; returns how many still need a call (the others were cleared).
static uint32_t drop(gort_pool_t *p, chain_t *c, void **priv, uint64_t *drops) {
  drop_t d = {.p = p};
  gort__chain_each(c, drop_slot, &d);
  if (*priv != NULL && !drop_one(&d, *priv)) *priv = NULL;
  *drops += d.n;
  return d.keep;
}

// Makes r (an empty ring, or NULL) l's spare, unless l has one: then r
// goes on the list of rings to free.
static void offer_spare(pool_local_t *l, ring_t *r, ring_t **list) {
  ring_t *none = NULL;
  if (r == NULL) return;
  if (atomic_compare_exchange_strong_explicit(&l->spare, &none, r, memory_order_release,
                                              memory_order_relaxed))
    return;
  atomic_store_explicit(&r->next, *list, memory_order_relaxed);
  *list = r;
}

// Steps 1-3 for one local; true if the pool thread has objects to release
// in it. A dropped generation that needs no call (empty, or only cleared
// entries) is not handed over: its rings go on l->retired, for the pool
// thread to free whenever it runs, and one small one becomes l's spare; so
// an idle pool rotated twice in a row (two back-to-back cycles) is never
// skipped for a drop that was not pending.
static bool rotate_local(gort_pool_t *p, pool_local_t *l, uint64_t *drops) {
  gort_assert_expensive(gort__chain_is_valid(&l->shared));
  gort_assert_expensive(gort__chain_is_valid(&l->vshared));
  chain_t old = l->vshared;
  void *oldp = l->vprivate;
  uint32_t keep = drop(p, &old, &oldp, drops);
  l->vshared = l->shared, l->vprivate = l->private;
  l->shared = (chain_t){0}, l->private = NULL;
  l->armed = false;
  if (keep != 0) {
    l->dropped = old, l->dprivate = oldp;
    return true;
  }
  offer_spare(l, gort__chain_dismantle(&old, &l->retired, RING_RECYCLE_MAX), &l->retired);
  return false;
}

// With the world stopped: no thread is inside a pool operation (each is a
// no-stop region), so no one holds a pointer into a chain but through the
// local: rotation may move whole chains, and rings it retires now may be
// freed once the world restarts.
static void rotate_stopped(void) {
  bool left = false, dropped_any = false, retired_any = false;
  for (gort_pool_t *p = gort__pool_list(); p != NULL; p = p->gort_next_) {
    locals_t *ls = pool_locals(p);
    if (ls == NULL || p->gort_dropping_) {
      left = true;
      continue;
    }
    uint64_t drops = 0;
    bool pending = false;
    for (uint32_t i = 0; i < ls->n; i++) {
      pool_local_t *l = atomic_load_explicit(&ls->l[i], memory_order_relaxed);
      if (l == NULL) continue;
      pending |= rotate_local(p, l, &drops);
      retired_any |= l->retired != NULL;
      left |= l->vprivate != NULL || gort__chain_count(&l->vshared) != 0;
    }
    __atomic_store_n(&p->gort_drops_, p->gort_drops_ + drops, __ATOMIC_RELAXED);
    if (pending) p->gort_dropping_ = 1, dropped_any = true;
  }
  if (dropped_any || retired_any) atomic_store(&rot.release_pending, 1);
  atomic_store(&rot.maybe_nonempty, left);
  atomic_store(&rot.last_ns, gort__nanotime());
}

static void wake_thread(void) {
  atomic_fetch_add(&rot.work, 1);
  gort__os_futex_wake(&rot.work, 1);
}

// The collector's hook after the world restarts. (The thread may be gone:
// a fork's child has none until it needs one.)
static void after_cycle(void) {
  if (!atomic_load_explicit(&rot.release_pending, memory_order_relaxed)) return;
  gort__pool_thread_ensure();
  wake_thread();
}

// ---- releasing ----------------------------------------------------------------------

static void release_one(gort_pool_t *p, void *obj) {
  if (p->release_fn != NULL)
    p->release_fn(obj);
  else
    gort_free(obj);  // only objects the collector never frees are left here (drop)
}

static void release_slot(void *_Atomic *slot, void *arg) {
  void *x = atomic_load_explicit(slot, memory_order_relaxed);
  atomic_store_explicit(slot, NULL, memory_order_relaxed);
  release_one(arg, x);  // x is on this stack meanwhile: still a root
}

// The dropped generation of l: its objects, then its rings. The rings are
// uncollectable blocks, so the objects not yet released stay roots while
// release_fn runs (it may allocate and collect: p is not rotated while its
// gort_dropping_ is set).
static void release_local(gort_pool_t *p, pool_local_t *l) {
  lock(&rot.lock);
  chain_t d = l->dropped;
  void *dp = l->dprivate;
  l->dropped = (chain_t){0}, l->dprivate = NULL;
  unlock(&rot.lock);
  if (dp != NULL) release_one(p, dp);
  gort__chain_each(&d, release_slot, p);
  ring_t *list = NULL;
  offer_spare(l, gort__chain_dismantle(&d, &list, RING_RECYCLE_MAX), &list);
  gort__chain_free_rings(list);
}

static void free_retired(pool_local_t *l) {
  lock(&rot.lock);
  ring_t *list = l->retired;
  l->retired = NULL;
  unlock(&rot.lock);
  gort__chain_free_rings(list);
}

static void release_all(void) {
  if (!atomic_exchange(&rot.release_pending, 0)) return;
  for (gort_pool_t *p = gort__pool_list(); p != NULL; p = __atomic_load_n(&p->gort_next_, __ATOMIC_ACQUIRE)) {
    locals_t *ls = pool_locals(p);
    bool dropping = __atomic_load_n(&p->gort_dropping_, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; ls != NULL && i < ls->n; i++) {
      pool_local_t *l = atomic_load_explicit(&ls->l[i], memory_order_acquire);
      if (l == NULL) continue;
      free_retired(l);
      if (dropping) release_local(p, l);
    }
    if (!dropping) continue;
    // Inside a region: a rotation sees either the flag or empty drops.
    nostop_enter();
    __atomic_store_n(&p->gort_dropping_, 0, __ATOMIC_RELEASE);
    nostop_exit();
  }
}

static void *pool_thread(void *arg) {
  (void)arg;
  gort__stw_register_internal_self();  // it runs the program's release_fn
  uint32_t seen = 0;
  for (;;) {
    uint32_t now = atomic_load(&rot.work);
    if (now == seen) {
      gort__stw_program_wait_ns(&rot.work, seen, -1);  // a stop holds it here
      continue;
    }
    seen = now;
    if (atomic_exchange(&rot.rotate_requested, 0)) gort__gc_run_stopped(rotate_stopped);
    gort__os_internal_runs_program(true);  // release_fn is the program's
    release_all();
    gort__os_internal_runs_program(false);
  }
  return NULL;
}

void gort__pool_thread_ensure(void) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&rot.thread_state, &expected, 1)) return;
  if (gort__stw_internal_thread(pool_thread, NULL) != 0) {
    atomic_store(&rot.thread_state, -1);
    gort__warn("gort_pool: cannot start the pool thread; dropped objects will not be released");
  }
}

// ---- the collector off: the scavenger's cycle ------------------------------------------

// Called once per background scavenger cycle; true while it wants more.
// A rotation is due when none ran for scavdelay, whether the collector is
// off or only idle: a program that allocates no collected objects (most C
// programs using gort as their malloc) never collects, and its pools would
// otherwise never shrink. Go bounds the same case with its forced
// collection every two minutes.
static bool scavenger_cycle(void) {
  if (!atomic_load(&rot.maybe_nonempty)) return false;
  int64_t due = atomic_load(&rot.last_ns) + gort__opts.scavdelay_ms * 1000000;
  if (gort__nanotime() >= due && !atomic_exchange(&rot.rotate_requested, 1)) {
    gort__pool_thread_ensure();
    wake_thread();
  }
  return true;
}

void gort__pool_arm(pool_local_t *l) {
  l->armed = true;
  if (atomic_load_explicit(&rot.maybe_nonempty, memory_order_relaxed)) return;
  atomic_store(&rot.maybe_nonempty, 1);
  gort__scavenger_wake();
}

// fork(): the child has no pool thread; the next rotation that needs one
// starts it. Its scavenger rotations count from the fork, as a new
// process's count from its start.
void gort__pool_rotate_fork_prepare(void) { lock(&rot.lock); }
void gort__pool_rotate_fork_parent(void) { unlock(&rot.lock); }

// A release the parent's pool thread had begun is the child's to finish
// (release_all skips nothing: a local already released is empty).
void gort__pool_rotate_after_fork_child(void) {
  lock_reinit(&rot.lock);
  atomic_store(&rot.thread_state, 0);
  atomic_store(&rot.work, 0);
  atomic_store(&rot.last_ns, gort__nanotime());
  for (gort_pool_t *p = gort__pool_list(); p != NULL; p = p->gort_next_)
    if (p->gort_dropping_) atomic_store(&rot.release_pending, 1);
}

void gort__pool_rotate_init(void) {
  atomic_store(&rot.last_ns, gort__nanotime());
  gort__gc_set_pool_hooks(rotate_stopped, after_cycle);
  gort__scavenger_set_cycle_hook(scavenger_cycle);
}
