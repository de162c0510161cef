// Thread slots, the locals of each pool, and the list of pools.
//
// See pool.c for the design. A thread takes a slot (a small dense id) at
// its first pool call and gives it back when it exits, so that a pool's
// locals array is as long as the most threads that used pools at once, not
// as the number of threads ever started. A slot's next owner inherits the
// slot's locals with whatever they hold (a private object waits for it, or
// for the rotation that drops it).
//
// At its first call a thread is also registered with the collector: the
// rotation stops the world and relies on no thread being midway through a
// pool operation, which holds only for threads the stop reaches.
//
// A pool joins the list of pools at its first use (Go's allPools); pools
// are never removed, so a pool must outlive its use (include/gort/pool.h).

#include <pthread.h>
#include <string.h>

#include "../base/persistent.h"
#include "../base/start.h"
#include "../gc/gc.h"
#include "gort/alloc.h"
#include "gort/gc.h"
#include "pool.h"

GORT_TLS uint32_t gort__pool_slot1;
GORT_TLS gort_pool_t *gort__pool_last;
GORT_TLS pool_local_t *gort__pool_last_local;

static struct {
  lock_t lock;          // rank LOCK_POOL; guards free, nfree, freecap, nslots, list pushes
  uint32_t *free;       // slots given back; persistent memory
  uint32_t nfree, freecap;
  uint32_t nslots;      // slots handed out, ever (the next new id)
  gort_pool_t *pools;   // every pool in use; pushed under lock, read with acquire loads
  pthread_key_t key;    // its destructor gives the slot back
} reg = {.lock = LOCK_INIT};

static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void slot_give_back(void *arg) {
  (void)arg;
  uint32_t s1 = gort__pool_slot1;
  if (s1 == 0) return;
  gort__pool_last = NULL;  // the slot's locals are the next owner's
  gort__pool_last_local = NULL;
  lock(&reg.lock);
  if (reg.nfree == reg.freecap) {
    uint32_t ncap = reg.freecap ? reg.freecap * 2 : 64;
    uint32_t *nf = gort__persistent_alloc(ncap * sizeof *nf, 16);
    if (nf == NULL) {  // the id is lost, nothing else
      unlock(&reg.lock);
      gort__pool_slot1 = 0;
      return;
    }
    if (reg.nfree) memcpy(nf, reg.free, reg.nfree * sizeof *nf);
    reg.free = nf, reg.freecap = ncap;  // the old array stays: persistent memory
  }
  reg.free[reg.nfree++] = s1 - 1;
  unlock(&reg.lock);
  gort__pool_slot1 = 0;
}

static void make_key(void) { pthread_key_create(&reg.key, slot_give_back); }

static void slot_take(void) {
  gort__start_ensure();
  gort__stw_register_self();
  pthread_once(&key_once, make_key);
  lock(&reg.lock);
  uint32_t id = reg.nfree ? reg.free[--reg.nfree] : reg.nslots++;
  unlock(&reg.lock);
  gort__pool_slot1 = id + 1;
  pthread_setspecific(reg.key, (void *)1);
}

static uint32_t pow2_above(uint32_t x) {
  uint32_t n = 8;
  while (n <= x) n *= 2;
  return n;
}

bool gort__pool_local_make(gort_pool_t *p) {
  if (gort__pool_slot1 == 0) slot_take();
  uint32_t slot = gort__pool_slot1 - 1;
  // Zeroed: empty slots and chains, no spare ring.
  pool_local_t *nl = gort_gc_alloc_uncollectable(sizeof *nl);
  if (nl == NULL) return false;
  bool ok = true, first = false;
  lock(&reg.lock);
  locals_t *ls = pool_locals(p);
  if (ls == NULL || slot >= ls->n) {
    uint32_t n = pow2_above(slot > reg.nslots ? slot : reg.nslots);
    locals_t *nls = gort__persistent_alloc(sizeof *nls + n * sizeof nls->l[0], 64);
    if (nls == NULL) {
      ok = false;
    } else {
      nls->n = n;
      for (uint32_t i = 0; ls != NULL && i < ls->n; i++)
        atomic_store_explicit(&nls->l[i], atomic_load_explicit(&ls->l[i], memory_order_relaxed),
                              memory_order_relaxed);
      __atomic_store_n((locals_t **)&p->gort_locals_, nls, __ATOMIC_RELEASE);
      ls = nls;
    }
  }
  if (ok && atomic_load_explicit(&ls->l[slot], memory_order_relaxed) == NULL) {
    atomic_store_explicit(&ls->l[slot], nl, memory_order_release);
    nl = NULL;
  }
  if (ok && !p->gort_registered_) {
    p->gort_registered_ = 1;
    p->gort_next_ = reg.pools;
    __atomic_store_n(&reg.pools, p, __ATOMIC_RELEASE);
    first = true;
  }
  unlock(&reg.lock);
  gort_free(nl);
  if (first) gort__pool_thread_ensure();
  return ok;
}

gort_pool_t *gort__pool_list(void) { return __atomic_load_n(&reg.pools, __ATOMIC_ACQUIRE); }

// ---- fork ----------------------------------------------------------------------------

// The child must not inherit a lock that a vanished thread held: the
// prepare hook takes the registry's lock and the pool thread's handoff
// lock. The chains have no lock: a thread that vanished midway through an
// operation on one leaves it half done, and the child puts it right
// (gort__chain_after_fork) before anyone uses it.
static void fork_prepare(void) {
  lock(&reg.lock);
  gort__pool_rotate_fork_prepare();
}
static void fork_parent(void) {
  gort__pool_rotate_fork_parent();
  unlock(&reg.lock);
}
// The slots of the threads that did not survive the fork stay taken (their
// locals' private objects go at the next rotations): a small, bounded loss.
static void fork_child(void) {
  for (gort_pool_t *p = reg.pools; p != NULL; p = p->gort_next_) {
    locals_t *ls = pool_locals(p);
    for (uint32_t i = 0; ls != NULL && i < ls->n; i++) {
      pool_local_t *l = atomic_load_explicit(&ls->l[i], memory_order_relaxed);
      if (l == NULL) continue;
      gort__chain_after_fork(&l->shared);
      gort__chain_after_fork(&l->vshared);
    }
  }
  gort__pool_rotate_after_fork_child();
  lock_reinit(&reg.lock);
}
static fork_hook_t pool_fork = {
    .name = "pool", .rank = LOCK_POOL, .prepare = fork_prepare, .parent = fork_parent, .child = fork_child};

void gort__pool_local_init(void) { gort__start_add_fork_hook(&pool_fork); }

void gort__pool_init(void) {
  gort__pool_local_init();
  gort__pool_rotate_init();
}
