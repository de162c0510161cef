// Futex mutex slow paths. See lock.h.

#include "lock.h"

#include "../os/os.h"

GORT_TLS uint32_t gort__nostop;
GORT_TLS volatile uint32_t gort__stop_pending;

static void no_stop(void) {}
void (*gort__stop_deferred)(void) = no_stop;

#define SPIN_YIELD_AFTER 64

void gort__spin_turn(unsigned *turns) {
  if (++*turns < SPIN_YIELD_AFTER) gort__cpu_relax();
  else gort__os_yield();
}

void gort__lock_slow(lock_t *l) {
  for (int spin = 0; spin < 100; spin++) {
    uint32_t expected = 0;
    if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->state, &expected, 1, memory_order_acquire,
                                              memory_order_relaxed))
      return;
    gort__cpu_relax();
  }
  // Mark the lock contended, then sleep until an unlock wakes us. Having
  // set 2, we keep 2 on acquiring, since other sleepers may remain.
  while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
    gort__os_futex_wait(&l->state, 2);
}

void gort__unlock_slow(lock_t *l) { gort__os_futex_wake(&l->state, 1); }
