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

// A position in the ring (sendpos, recvpos): bits 0-31 a slot index,
// bits 32-62 the lap (mod 2^31), bit 63 FROZEN: the lock-free path of that
// side is off, so that its operations take the lock (chan.c, "The ring").
#define POS_FROZEN ((uint64_t)1 << 63)
#define POS_LAPMASK 0x7fffffffu
#define CHAN_CAP_MAX 0xffffffffu

// A slot of the ring: its sequence word, then the element (rounded up to 8
// bytes). seq is 2*lap while the slot waits for that lap's send, 2*lap+1
// while it waits for that lap's receive (mod 2^32); zeroed memory is an
// empty ring at lap 0.
typedef struct {
  _Atomic uint32_t seq;
  uint32_t pad_;
  unsigned char elem[];
} slot_t;

// What c->frozen says is set in the positions.
enum { FROZE_SEND = 1, FROZE_RECV = 2 };

// The channel (Go's hchan). The ring of slots follows the header. The two
// positions each have a cache line of their own (64 bytes apart from
// anything else, whatever the alignment of the allocation), so that a
// producer and a consumer on two cores each keep theirs.
struct gort_chan {
  size_t elemsize;               // set at make
  size_t cap;                    // ring slots; 0: unbuffered; set at make
  size_t stride;                 // bytes per slot; set at make
  bool collected;                // from gort_gc_alloc (else gort_malloc); set at make
  bool closed;                   // guarded by lock; written with POKE
  uint8_t frozen;                // FROZE_* bits now set in the positions; guarded by lock
  _Atomic uint8_t timer;         // CHAN_TIMER_*: a goroutine of time.c will send on it
  chanlock_t lock;               // rank LOCK_CHAN; guards the fields above and the queues
  waitq_t recvq, sendq;          // blocked receivers and senders; first written with POKE
  unsigned char pad0_[128 - 72];
  // Each side's line holds its own copy of what its lock-free path reads,
  // so that path reads no line the lock's holders write.
  _Atomic uint64_t sendpos;      // next position to send to, and FROZEN; CAS
  size_t txcap, txstride, txelemsize;  // cap, stride, elemsize; set at make
  unsigned char pad1_[32];
  _Atomic uint64_t recvpos;      // next position to receive from, and FROZEN; CAS
  size_t rxcap, rxstride, rxelemsize;  // likewise
  unsigned char pad2_[32];
  unsigned char buf[];           // cap slots of stride bytes
};

_Static_assert(offsetof(struct gort_chan, sendq) + sizeof(waitq_t) <= 72, "the header's first part");

// What time.c's goroutines do with a channel (gort_chan_t.timer). An
// After's channel freed before it fires must not be written by its
// goroutine afterwards: the free is left to that goroutine (time.c).
enum {
  CHAN_TIMER_NONE,       // no goroutine of time.c sends on it (any more)
  CHAN_TIMER_PENDING,    // gort_after's goroutine will send, once
  CHAN_TIMER_FIRING,     // it is sending now
  CHAN_TIMER_ABANDONED,  // freed by the program before it fired, or while it sent: the goroutine frees it
  CHAN_TIMER_TICKER,     // a ticker's: gort_ticker_stop frees it
};
// Frees c, whatever its timer state (time.c, once its goroutine is done);
// fatal if a goroutine or thread waits on it.
void gort__chan_free_now(gort_chan_t *c) GORT_HIDDEN;
_Static_assert(offsetof(struct gort_chan, sendpos) == 128 && offsetof(struct gort_chan, recvpos) == 192 &&
                   offsetof(struct gort_chan, buf) == 256,
               "each position 64 bytes clear of anything else");

// ---- park.c -------------------------------------------------------------------------------

// A plain thread's wait for the wake, until deadline (nanotime; < 0: no
// limit); false if the deadline passed first.
bool gort__park_thread_wait(parker_t *pk, int64_t deadline);
// A plain thread about to wait with no deadline counts itself as blocked
// for ever (the deadlock detector); call before the waker can find pk.
void gort__park_count(parker_t *pk);
// park.c: a plain thread's side of gort__park_block and gort__park_wake.
void gort__park_block_thread(parker_t *pk, bool (*unlockf)(g_t *, void *), void *arg);
void gort__park_wake_thread(parker_t *pk);
// A wake counts only while a deadlock check runs (deadlock.c): the test,
// one load, is inline; the count is not.
typedef struct {
  _Alignas(GORT_CACHELINE) _Atomic int n;
  char pad_[GORT_CACHELINE - sizeof(int)];
} gort_deadlock_checking_t;
extern gort_deadlock_checking_t gort__deadlock_checking GORT_HIDDEN;
void gort__deadlock_count_wake(void) GORT_HIDDEN;
GORT_INLINE void gort__deadlock_woke(void) {
  if (gort_unlikely(atomic_load(&gort__deadlock_checking.n) != 0)) gort__deadlock_count_wake();
}

// The three steps below are inline: an unbuffered round trip between two
// goroutines is four of each, and their calls were a tenth of it.
GORT_INLINE void gort__park_init(parker_t *pk) {
  pk->g = sched_g();
  atomic_store_explicit(&pk->woken, 0, memory_order_relaxed);
  atomic_store_explicit(&pk->selectdone, 0, memory_order_relaxed);
  pk->fired = NULL;
  pk->counted = false;
}

// Blocks the caller until gort__park_wake(pk). unlockf(g, arg) releases the
// locks the caller holds: for a goroutine it runs after the goroutine's
// context is saved (so a waker cannot ready a goroutine still running), for
// a thread just before it sleeps. reason and obj are for the dump.
GORT_INLINE void gort__park_block(parker_t *pk, bool (*unlockf)(g_t *, void *), void *arg,
                                  const char *reason, const void *obj) {
  if (pk->g != NULL) gort__sched_park_on(unlockf, arg, reason, obj);
  else gort__park_block_thread(pk, unlockf, arg);
}

// Wakes pk's party. Call holding no channel lock. Once called, pk and its
// waiters may vanish (the woken party returns).
GORT_INLINE void gort__park_wake(parker_t *pk) {
  gort__deadlock_woke();
  g_t *g = pk->g;
  if (g != NULL) gort__sched_ready(g);  // runnext of the waker's P: the partner runs next
  else gort__park_wake_thread(pk);
}
// Blocks the caller for ever (a NULL channel; an empty select).
GORT_NORETURN void gort__park_forever(const char *reason);
// A random number for select's poll order; any thread.
uint32_t gort__chan_fastrand(void);

// ---- deadlock.c -----------------------------------------------------------------------------

void gort__deadlock_block(int delta);
// Reports a deadlock and aborts if there is one (a blocked thread calls it).
void gort__deadlock_check(void);

// ---- chan.c, for select.c -----------------------------------------------------------------

void gort__chan_enqueue(waitq_t *q, waiter_t *w);
void gort__chan_dequeue_this(waitq_t *q, waiter_t *w);
// The first waiter whose select is not claimed yet (claiming it), or NULL.
// Inline where the first waiter is no select; the loop that claims selects
// and skips the stale waiters of those another case won is out of line.
waiter_t *gort__chan_dequeue_select(waitq_t *q);
// Takes q's first waiter (there is one) off q.
GORT_INLINE waiter_t *waitq_take_first(waitq_t *q) {
  waiter_t *w = q->first;
  POKE(q->first, w->next);
  if (w->next != NULL) w->next->prev = NULL;
  else q->last = NULL;
  w->next = w->prev = NULL;
  return w;
}
GORT_INLINE waiter_t *gort__chan_dequeue(waitq_t *q) {
  waiter_t *w = q->first;
  if (w == NULL) return NULL;
  if (w->isselect) return gort__chan_dequeue_select(q);
  return waitq_take_first(q);
}
// The steps of a send or receive that can proceed, with c locked (they
// leave it locked). send_direct / recv_direct complete a waiter w taken
// from the other queue and return its parker: wake it after the unlock.
parker_t *gort__chan_send_direct(gort_chan_t *c, waiter_t *w, const void *elem);
parker_t *gort__chan_recv_direct(gort_chan_t *c, waiter_t *w, void *elem);
// The ring's send and receive (chan.c, "The ring"): false if it is full,
// empty. locked: the caller holds c->lock (then a frozen side is no bar,
// and an operation in flight on another thread is waited out).
bool gort__chan_ring_put(gort_chan_t *c, const void *elem, bool locked);
bool gort__chan_ring_take(gort_chan_t *c, void *elem, bool locked);
// Elements in the ring (with a lock-free side running: a snapshot).
size_t gort__chan_ring_count(gort_chan_t *c);
// Whether the next send, receive would find its slot ready (a hint for
// select's first pass, reading only that side's line and slot).
bool gort__chan_ring_can_put(gort_chan_t *c);
bool gort__chan_ring_can_take(gort_chan_t *c);
// With c locked: turn off lock-free sides (a party about to wait, a select
// about to decide over several channels at one instant); settle turns back
// on the sides that no waiter and no close needs off. Call settle before
// every unlock of a buffered channel.
void gort__chan_freeze(gort_chan_t *c, uint8_t sides);
void gort__chan_settle_slow(gort_chan_t *c);
GORT_INLINE void gort__chan_settle(gort_chan_t *c) {
  uint8_t want = 0;
  if (c->recvq.first != NULL || c->closed) want |= FROZE_SEND;
  if (c->sendq.first != NULL) want |= FROZE_SEND | FROZE_RECV;
  // Sides to freeze now; or sides that could thaw, but a 1-slot ring is
  // never partly full (settle_slow's hysteresis).
  if (gort_unlikely((want & ~c->frozen) != 0 || (c->frozen != want && c->cap > 1)))
    gort__chan_settle_slow(c);
}

// Whether a lock-free operation on that position may run (a hint: the
// operation itself checks again).
GORT_INLINE bool gort__chan_side_open(const _Atomic uint64_t *pos) {
  return (atomic_load_explicit(pos, memory_order_relaxed) & POS_FROZEN) == 0;
}
GORT_NORETURN void gort__chan_send_closed(gort_chan_t *c);

#endif  // GORT_CHAN_CHAN_H
