// Channels' and sync's internal interface: the channel, the waiter record
// (Go's sudog), the parker that blocks a goroutine or a plain thread.
// See chan.c for the design.

#ifndef GORT_CHAN_CHAN_H
#define GORT_CHAN_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../base/base.h"
#include "../base/lock.h"
#include "../sched/proc.h"
#include "gort/chan.h"

// ---- chanlock.c: the channel's lock ------------------------------------------------------------

// One CAS to acquire, a plain store to release (chanlock.c says why).
// Rank LOCK_CHAN (base/lock.h); a holder is never stopped by the
// collector (the no-stop count of base/lock.h), as with lock_t.
typedef struct {
  _Atomic uint32_t held;         // 1 while locked; the futex word of sleepers
  _Atomic uint32_t sleepers;     // threads counted in chanlock.c's step 2
} chanlock_t;

#define CHANLOCK_INIT {0, 0}

void gort__chanlock_slow(chanlock_t *l);
void gort__chanlock_wake(chanlock_t *l);

GORT_INLINE void chan_lock(chanlock_t *l) {
  nostop_enter();
  uint32_t zero = 0;
  if (gort_likely(atomic_compare_exchange_strong_explicit(&l->held, &zero, 1, memory_order_acquire,
                                                          memory_order_relaxed)))
    return;
  gort__chanlock_slow(l);
}

GORT_INLINE void chan_unlock(chanlock_t *l) {
  atomic_store_explicit(&l->held, 0, memory_order_release);
  if (gort_unlikely(atomic_load_explicit(&l->sleepers, memory_order_relaxed) != 0))
    gort__chanlock_wake(l);
  nostop_exit();
}

// What blocks: a goroutine (parks) or a plain thread (sleeps on woken).
// Lives on the blocked party's stack, which stays put while it blocks.
typedef struct parker {
  g_t *g;                        // the goroutine, or NULL: a plain thread
  _Atomic uint32_t woken;        // a thread's futex word: 1 once woken
  // select: 0 until a case (or the timeout) claims the select, by CAS; a
  // waker that loses the CAS leaves this parker alone (Go's selectDone).
  _Atomic uint32_t selectdone;
  struct waiter *fired;          // the waiter that was completed, NULL on a timeout;
                                 // written by the waker before the wake
  bool counted;                  // a thread blocked for ever (deadlock.c); set before
                                 // the waker can see the parker
} parker_t;

// A waiter record: one per channel a party waits on (Go's sudog), on the
// waiting party's stack. Linked in its channel's queue, guarded by the
// channel's lock.
typedef struct waiter {
  struct waiter *next, *prev;
  parker_t *pk;
  void *elem;                    // the sender's element, or where a receiver wants it
  bool success;                  // completed by a send or receive, not by close
  bool isselect;
} waiter_t;

typedef struct {
  waiter_t *first, *last;
} waitq_t;

// Fields that select's first pass (select.c) reads without the lock:
// written under the lock with these relaxed atomic stores, read with the
// loads, so that the racy read is defined (and ThreadSanitizer agrees).
// Under the lock, plain reads of them are fine.
#define PEEK(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define POKE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

// The channel (Go's hchan). The buffer follows the header.
struct gort_chan {
  chanlock_t lock;               // rank LOCK_CHAN; guards everything below
  bool closed;                   // written with POKE
  bool collected;                // from gort_gc_alloc (else gort_malloc)
  size_t elemsize;
  size_t cap;                    // buffer slots; 0: unbuffered
  size_t qcount;                 // buffered elements; written with POKE
  size_t sendx, recvx;           // next slot to fill, to empty
  waitq_t recvq, sendq;          // blocked receivers and senders; first written with POKE
  _Alignas(16) unsigned char buf[];
};

// ---- park.c -------------------------------------------------------------------------------

void gort__park_init(parker_t *pk);
// Blocks the caller until gort__park_wake(pk). unlockf(g, arg) releases the
// locks the caller holds: for a goroutine it runs after the goroutine's
// context is saved (so a waker cannot ready a goroutine still running), for
// a thread just before it sleeps. reason and obj are for the dump.
void gort__park_block(parker_t *pk, bool (*unlockf)(g_t *, void *), void *arg, const char *reason,
                      const void *obj);
// A plain thread's wait for the wake, until deadline (nanotime; < 0: no
// limit); false if the deadline passed first.
bool gort__park_thread_wait(parker_t *pk, int64_t deadline);
// Wakes pk's party. Call holding no channel lock. Once called, pk and its
// waiters may vanish (the woken party returns).
void gort__park_wake(parker_t *pk);
// A plain thread about to wait with no deadline counts itself as blocked
// for ever (the deadlock detector); call before the waker can find pk.
void gort__park_count(parker_t *pk);
// Blocks the caller for ever (a NULL channel; an empty select).
GORT_NORETURN void gort__park_forever(const char *reason);
// A random number for select's poll order; any thread.
uint32_t gort__chan_fastrand(void);

// ---- deadlock.c -----------------------------------------------------------------------------

void gort__deadlock_block(int delta);
void gort__deadlock_woke(void);
// Reports a deadlock and aborts if there is one (a blocked thread calls it).
void gort__deadlock_check(void);

// ---- chan.c, for select.c -----------------------------------------------------------------

void gort__chan_enqueue(waitq_t *q, waiter_t *w);
void gort__chan_dequeue_this(waitq_t *q, waiter_t *w);
// The first waiter whose select is not claimed yet (claiming it), or NULL.
waiter_t *gort__chan_dequeue(waitq_t *q);
// The steps of a send or receive that can proceed, with c locked (they
// leave it locked). send_direct / recv_direct complete a waiter w taken
// from the other queue and return its parker: wake it after the unlock.
parker_t *gort__chan_send_direct(gort_chan_t *c, waiter_t *w, const void *elem);
parker_t *gort__chan_recv_direct(gort_chan_t *c, waiter_t *w, void *elem);
void gort__chan_buf_put(gort_chan_t *c, const void *elem);
void gort__chan_buf_take(gort_chan_t *c, void *elem);
GORT_NORETURN void gort__chan_send_closed(gort_chan_t *c);

#endif  // GORT_CHAN_CHAN_H
