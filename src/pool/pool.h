// Pools' internal interface. See pool.c for the design.

#ifndef GORT_POOL_POOL_H
#define GORT_POOL_POOL_H

#include <stdatomic.h>

#include "../base/lock.h"
#include "chain.h"
#include "gort/pool.h"

// Between the start-up lock and the profiler's: the registry's lock holder
// may allocate (profiler, caches, central lists, page heap: all above it).
#define LOCK_POOL 15

// Slots: of a dropped chain's rings, the largest with at most this many is
// kept as the local's spare, for the owner's next push to link without
// allocating (rotate.c).
#define RING_RECYCLE_MAX 256u

// One thread slot's part of one pool: Go's poolLocal, with the victim
// generation beside the primary one (Go keeps a second array) and the
// dropped generation that the pool thread releases.
//
// Synchronization:
//   private, vprivate   the slot's thread only, inside a no-stop region,
//                       with plain accesses; rotation with the world
//                       stopped (no thread is inside such a region then).
//   gets, puts, misses  written by the slot's thread (relaxed load and
//                       store: one writer); read by anyone.
//   armed               the slot's thread; rotation clears it.
//   shared              the owner's end (head, first) is the slot's
//                       thread's, inside a no-stop region; any thread pops
//                       its tail, lock-free (chain.h says how).
//   vshared             any thread pops its tail; only rotation changes
//                       its rings.
//   spare               an empty ring, not in any chain, or NULL: rotation
//                       and the pool thread give one (CAS from NULL), the
//                       slot's thread takes it (exchange).
//   dropped, dprivate,  rotation (world stopped) fills them; the pool
//   retired             thread takes them under rotate.c's lock.
typedef struct pool_local {
  void *private;
  void *vprivate;
  _Atomic uint64_t gets, puts, misses;
  bool armed;
  // Its own line: thieves read (and sometimes move) tail, the owner's fast
  // path above never waits for them.
  chain_t shared __attribute__((aligned(64)));
  chain_t vshared;
  ring_t *_Atomic spare;
  chain_t dropped;
  void *dprivate;
  ring_t *retired;  // rings to free, linked through next
} pool_local_t;

// A pool's locals by thread slot (gort_locals_). Persistent memory, never
// freed: a reader inside a no-stop region may still use an array that a
// growth replaced; the replaced arrays add up to less than the last one.
// Entries are NULL until the slot's thread first uses the pool; each is set
// once (release store) and never changes.
typedef struct {
  uint32_t n;
  pool_local_t *_Atomic l[];
} locals_t;

// The calling thread's slot plus one; 0 before its first pool call.
extern GORT_TLS uint32_t gort__pool_slot1 GORT_HIDDEN;
// A one-entry cache of the thread's last lookup: the pool and the thread's
// local of it. Sound because a slot's local never changes once made and the
// thread keeps its slot until it exits (local.c clears the cache then).
extern GORT_TLS gort_pool_t *gort__pool_last GORT_HIDDEN;
extern GORT_TLS struct pool_local *gort__pool_last_local GORT_HIDDEN;

// Through the locals array (and fills the cache); NULL if there is none.
GORT_INLINE struct pool_local *pool_local_lookup(gort_pool_t *p) {
  locals_t *ls = __atomic_load_n((locals_t **)&p->gort_locals_, __ATOMIC_ACQUIRE);
  uint32_t slot = gort__pool_slot1 - 1;
  if (gort_unlikely(ls == NULL || slot >= ls->n)) return NULL;
  pool_local_t *l = atomic_load_explicit(&ls->l[slot], memory_order_acquire);
  if (l != NULL) gort__pool_last = p, gort__pool_last_local = l;
  return l;
}

// The calling thread's local of p, or NULL (then call gort__pool_local_make).
// Inside a no-stop region (the result is valid until its end).
GORT_INLINE pool_local_t *pool_local_of(gort_pool_t *p) {
  if (gort_likely(p == gort__pool_last)) return gort__pool_last_local;
  return pool_local_lookup(p);
}

GORT_INLINE void counter_inc(_Atomic uint64_t *c) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
}

// ---- local.c: thread slots, locals, the list of pools --------------------------------

// Gives the calling thread a slot, registers p and makes the thread's local
// of p, so that pool_local_of(p) finds it. Outside every no-stop region (it
// allocates). Returns false if memory ran out.
bool gort__pool_local_make(gort_pool_t *p);
// The first pool in use (then gort_next_); pools are only ever added.
gort_pool_t *gort__pool_list(void);
// The locals array of p (NULL before its first use).
GORT_INLINE locals_t *pool_locals(gort_pool_t *p) {
  return __atomic_load_n((locals_t **)&p->gort_locals_, __ATOMIC_ACQUIRE);
}
void gort__pool_local_init(void);
// Start-up step 3 (base/start.c): the fork hook, the collector's and the
// scavenger's hooks. Allocates nothing and starts no thread.
void gort__pool_init(void);

// ---- rotate.c: the victim cache, drops and the pool thread ----------------------------

// A put into an empty private slot of an unarmed local: with the collector
// off, makes sure the scavenger will rotate.
void gort__pool_arm(pool_local_t *l);
void gort__pool_rotate_init(void);
// Whether a dropped obj needs gort_free (the collector never frees it).
bool gort__pool_needs_free(void *obj);
// Starts the pool thread unless it runs (at the first pool's registration).
void gort__pool_thread_ensure(void);
// fork(): the pool thread's handoff lock, taken in prepare, and the
// child's reset (which re-initializes that lock).
void gort__pool_rotate_fork_prepare(void);
void gort__pool_rotate_fork_parent(void);
void gort__pool_rotate_after_fork_child(void);

#endif  // GORT_POOL_POOL_H
