// The channel's lock: its slow path. See chan.h for the fast paths and
// chan.c for the channel's design.
//
// Why not base/lock.h's lock_t. Both are one CAS to acquire. lock_t
// releases with an exchange, because its word also says whether anyone
// sleeps (Drepper's mutex 3), and only a read-modify-write can learn that
// while it clears the lock. On our machines a locked instruction costs
// 5-6 ns (a CAS and an exchange around an empty critical section: 12.2 ns;
// a CAS and a plain store: 6.6 ns), and a buffered send or receive is
// nothing else but its lock and a copy: the exchange was 40% of each
// operation on one P (perf annotate of chan_send, cap-1024 benchmark). A
// channel's critical sections are a few loads and one element copy, so a
// waiter nearly always finds the lock free again while it spins, and the
// release can be a plain store, with the sleepers counted in a word of
// their own:
//
//   1. Acquire: CAS held 0 -> 1. Contended: spin on loads (the line stays
//      shared until it is free), backing off exponentially so that the
//      holder, on another core, keeps the line for a run of operations
//      instead of losing it at every poll.
//   2. Still held after the spin (its holder's thread was descheduled):
//      count ourselves in sleepers (a locked add, so a full barrier
//      before we look again), and futex-wait on held while it reads 1.
//   3. Release: store held = 0, then load sleepers; wake one if nonzero.
//
// The race that remains: the release's load of sleepers may run before
// its store of held is visible (x86 lets a load pass an earlier store), so
// the releaser can read sleepers == 0 while a sleeper that has just
// counted itself still reads held == 1. The sleeper then enters the futex
// wait, whose own read of held, a system call later, sees the store unless
// it is still in the releasing core's store buffer after all that time.
// For that case alone, a sleeper waits at most RESCUE_NS before it looks
// again: a lost wake costs at most that, and never a hang. Rejected: a
// fence in every release (it is the cost we remove); membarrier() on the
// sleep path (exact, but a system call outside src/os and an IPI to every
// CPU the process runs on).

#include "chan.h"

#include "../os/os.h"

// Exponential backoff: 1, 2, 4 ... 64 pauses between polls, then 64 each
// poll, SPIN_POLLS polls in all (a few microseconds), before sleeping.
enum { SPIN_POLLS = 40, BACKOFF_MAX = 64 };
#define RESCUE_NS (1000 * 1000)

void gort__chanlock_slow(chanlock_t *l) {
  uint32_t pauses = 1;
  for (int i = 0; i < SPIN_POLLS; i++) {
    for (uint32_t k = 0; k < pauses; k++) gort__cpu_relax();
    if (pauses < BACKOFF_MAX) pauses *= 2;
    uint32_t zero = 0;
    if (atomic_load_explicit(&l->held, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->held, &zero, 1, memory_order_acquire,
                                              memory_order_relaxed))
      return;
  }
  atomic_fetch_add(&l->sleepers, 1);
  for (;;) {
    uint32_t zero = 0;
    if (atomic_compare_exchange_strong_explicit(&l->held, &zero, 1, memory_order_acquire,
                                                memory_order_relaxed))
      break;
    gort__os_futex_wait_ns(&l->held, 1, RESCUE_NS);
  }
  atomic_fetch_sub_explicit(&l->sleepers, 1, memory_order_relaxed);
}

void gort__chanlock_wake(chanlock_t *l) { gort__os_futex_wake(&l->held, 1); }
