// Blocking a goroutine or a plain thread, and waking it (for chan.c,
// select.c and sync). See chan.c for the design.
//
// A goroutine parks (proc.c): its unlock step runs on its M's scheduler
// stack once its context is saved, so the waker, which must take the same
// lock, can never ready a goroutine that is still running. A plain thread
// has no context to save: it releases the locks, then sleeps on a futex
// word in its parker until the waker sets it. The parker lives on the
// sleeper's stack; the waker's last touch of it is the store of woken,
// and the futex wake after it names only the address (at worst a
// spurious wake of whatever uses that word next).

#include "chan.h"

#include "../gc/gc.h"
#include "../os/os.h"

void gort__park_count(parker_t *pk) {
  if (pk->g != NULL) return;
  pk->counted = true;
  gort__deadlock_block(1);
}

void gort__park_block_thread(parker_t *pk, bool (*unlockf)(g_t *, void *), void *arg) {
  gort__park_count(pk);
  unlockf(NULL, arg);
  gort__park_thread_wait(pk, -1);
}

// A thread blocked for ever looks for a deadlock this often.
#define CHECK_NS (100 * 1000 * 1000)

bool gort__park_thread_wait(parker_t *pk, int64_t deadline) {
  while (atomic_load_explicit(&pk->woken, memory_order_acquire) == 0) {
    int64_t left = -1;
    if (deadline >= 0) {
      left = deadline - gort__nanotime();
      if (left <= 0) return false;
    } else if (pk->counted) {
      left = CHECK_NS;
    }
    gort__stw_futex_wait_ns(&pk->woken, 0, left);  // a stop need not wake it: gc/stw.c
    if (deadline < 0 && pk->counted && atomic_load_explicit(&pk->woken, memory_order_acquire) == 0)
      gort__deadlock_check();
  }
  return true;
}

void gort__park_wake_thread(parker_t *pk) {
  if (pk->counted) gort__deadlock_block(-1);  // before woken: then pk may vanish
  atomic_store_explicit(&pk->woken, 1, memory_order_release);
  gort__os_futex_wake(&pk->woken, 1);
}

static bool unlock_nothing(g_t *g, void *arg) {
  (void)g, (void)arg;
  return true;
}

void gort__park_forever(const char *reason) {
  parker_t pk;
  gort__park_init(&pk);
  for (;;) gort__park_block(&pk, unlock_nothing, NULL, reason, NULL);  // nobody wakes it
}

static GORT_TLS uint64_t rand_state;

// Not inlined: a goroutine may move between threads, and its callers must
// not keep this TLS address across a switch (proc.c, "Per-thread state").
GORT_NOINLINE __attribute__((noipa)) uint32_t gort__chan_fastrand(void) {
  uint64_t x = rand_state;
  if (gort_unlikely(x == 0)) x = gort__os_random64() | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  rand_state = x;
  return (uint32_t)(x >> 32);
}
