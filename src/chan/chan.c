// Channels (Go: chan.go).
//
// A channel is a lock, a ring buffer of cap elements, and two queues of
// waiters: receivers blocked on an empty channel and senders blocked on a
// full one. The design is Go's, for Go's reasons, with one exception (the
// ring, below):
//
//   1. One lock per channel (chanlock_t, rank LOCK_CHAN), held only for the
//      few loads and copies of one operation, for everything that waits,
//      wakes or closes. The lock is the channel's own, not base's lock_t:
//      it is released with a plain store (chanlock.c), because a locked
//      instruction costs as much here as the rest of an operation. The
//      fields select's first pass reads without the lock (closed, the queue
//      heads) are stored with relaxed atomics (PEEK and POKE, chan.h).
//   2. Direct hand-off. A sender that finds a receiver waiting copies its
//      element straight into the receiver's variable (waiter->elem, on the
//      receiver's stack) and wakes it; a receiver that finds a sender
//      waiting copies straight from the sender's element (for a buffered
//      channel, which is then full: it takes the head of the buffer and
//      puts the sender's element at the tail, keeping FIFO order). Nothing
//      goes through the buffer twice, and the woken party has nothing left
//      to do but return.
//   3. The waiter record (Go's sudog) lives on the blocked party's own
//      stack: a parked goroutine's stack does not move (C stacks cannot),
//      so no allocation happens on the blocking path.
//   4. Waking goes through the scheduler (park.c): a goroutine is readied
//      into the waker's runnext, so a producer/consumer pair ping-pongs on
//      one P, warm in its cache; a plain thread sleeps on a futex word in
//      its parker and the waker sets it.
//   5. A goroutine blocks with gort__sched_park, whose unlock step releases
//      the channel's lock on the M's scheduler stack after the goroutine's
//      context is saved: a waker on another thread, which needs the lock to
//      find the waiter, can then never ready a goroutine that still runs.
//
// Close wakes every waiter: receivers get the zero element and false,
// senders wake to find success false and die with Go's panic message.
// Select (select.c) puts one waiter per case on each channel's queue; the
// first party to complete one claims the select by a CAS on its parker's
// selectdone, and wakers skip waiters whose select is already claimed.
//
// Memory: with the collector on, the channel (header and buffer, one
// object) comes from gort_gc_alloc, scanned conservatively, so buffered
// pointers keep their targets alive and an unreachable channel is
// reclaimed. A slot is zeroed once received from, so it does not keep a
// target alive after the fact. Waiters point into stacks, which the
// collector scans as roots: a channel some party waits on is reachable
// from that party's stack.
//
// The ring: sends and receives that neither wait nor wake take no lock.
// With the lock, a producer and a consumer on two cores moved every
// element with a cache miss on the lock's line and lost the line to each
// other's polls (cap-1024 benchmark, 2 Ps: 10-16 M items/s whenever the
// two ran on different Ps, 45 on one P; Go 20-24). Now the buffer is a
// bounded queue with a sequence word per slot (Vyukov's): a sender CASes
// sendpos forward when its slot's seq says "empty for this lap", copies the
// element in and stores seq "full"; a receiver does the mirror image on
// recvpos, copies out, zeroes the slot and stores "empty for the next lap".
// The two positions live on cache lines of their own, so each end keeps its
// line and the slots move between cores a line (4 elements of 8 bytes) at a
// time (the same benchmark: 40-65 M items/s across cores). Vyukov's
// lock-free channel for Go (2014) was rejected for the complexity of
// making blocking, close and select lock-free too; here they are not:
//
//   a. Freezing. Bit 63 of each position (FROZEN) turns that side's
//      lock-free path off: such operations take the lock. A party frozen
//      out of the lock-free path, and a CAS begun before the freeze, fails
//      (the word changed), so a freeze, a fetch_or on the position, is the
//      instant after which that side moves only under the lock (then with
//      plain stores, chan.c's reserve).
//   b. Waiting is decided under the lock with the other side frozen. A
//      receiver that finds the ring empty freezes the send side, then looks
//      again (an element sent before the freeze is taken, never missed) and
//      only then queues: so while a receiver waits no sender can put into
//      the ring unseen; the sender takes the lock and finds the waiter,
//      exactly as Go's. A sender that finds it full freezes both sides: the
//      receiver that makes room takes the lock, and the room it makes is
//      the waiting sender's (recv_direct puts its element at once), not a
//      newcomer's. So Go's invariants hold as before: recvq is empty unless
//      the ring is, sendq unless it is full, and waiters go first.
//   c. Close freezes the send side under the lock: it is the instant of the
//      close. A send whose CAS came before it happened before the close;
//      a receiver reports closed only under the lock after the ring turned
//      out empty, and a send in flight (reserved, not yet published) is
//      waited out there, so every element sent before the close is
//      received before any receive reports the close. Later senders find
//      the side frozen and die under the lock, as before.
//   d. Select takes a ready case under that channel's lock, using the
//      ring as a lock holder, as its first pass always did (select.c, 1a).
//      Default and blocking are decided with every lock held and, first,
//      the sides frozen that could make a case ready: at one instant, as
//      Go's does with every lock held.
//   e. An operation in flight on another thread (between its CAS and its
//      store of seq) is waited out by a lock holder that needs its slot;
//      the lock-free path runs in a no-stop region for those few
//      instructions, so that the waiting lock holder (itself in one) can
//      never hold up the collector's stop.
//   f. Thawing, when no waiter needs a side frozen, happens under the lock
//      (settle, before each unlock), but only once an operation finds the
//      ring partly full: a ring left empty or full is about to make someone
//      wait again, and each freeze and thaw is a locked instruction per
//      side. A 1-slot ring is never partly full: after its first wait it is
//      a locked channel, as before.
//   g. len is sendpos - recvpos read without the lock (Go's is racy too);
//      the collector sees the slots as before: a conservative scan of the
//      whole object, seq words being small integers, a received slot
//      zeroed.
// What it costs: on one P a lock-free operation is a CAS like the lock it
// replaces, plus the seq load and store and a slot twice the element's
// size; measured 10-15% slower there (cap 1024 at GORT_MAXPROCS=1: 45 vs
// 52 M items/s), for 3-4x across cores.
// A limit Go's channels do not have: the lap is 31 bits, so a lock-free
// sender that read a slot's seq and then stalled between that read and its
// CAS while the ring went round exactly 2^31 laps and stopped, unfrozen
// and full, at the same position, would succeed and overwrite an element
// not yet received. On a 1-slot channel that is about 2*10^9 operations
// inside one stall of a few instructions (a review found it; no test can
// reach it). Fewer index bits and a wider lap would remove it.
//
// Invariants (with c->lock held):
//   - 0 <= sendpos - recvpos <= cap (positions count laps * cap + index).
//   - recvq is non-empty only with the ring empty and the send side frozen;
//     sendq only with the ring full and both sides frozen. (A select's
//     stale waiter, claimed by another case, may linger in a queue until
//     its select dequeues it; wakers skip it.)
//   - closed: the send side is frozen, and sendq holds no waiter that is
//     not a claimed select's.
//   - c->frozen is what the FROZEN bits of the positions say.

#include "chan.h"

#include <errno.h>
#include <string.h>

#include "../gc/gc.h"
#include "../os/os.h"
#include "gort/alloc.h"
#include "gort/gc.h"

// Element copies. Most channels carry a word (a pointer, a long, an
// index): that size is a move, not a call into libc's memcpy (a tenth of
// a round trip's instructions, by callgrind). Others go to memcpy.
GORT_INLINE void elem_copy(void *dst, const void *src, size_t n) {
  if (gort_likely(n == 8)) memcpy(dst, src, 8);
  else memcpy(dst, src, n);
}

GORT_INLINE void elem_zero(void *dst, size_t n) {
  if (gort_likely(n == 8)) memset(dst, 0, 8);
  else memset(dst, 0, n);
}

// ---- wait queues ------------------------------------------------------------------------------

void gort__chan_enqueue(waitq_t *q, waiter_t *w) {
  w->next = NULL;
  w->prev = q->last;
  if (q->last != NULL) q->last->next = w;
  else POKE(q->first, w);
  q->last = w;
}

void gort__chan_dequeue_this(waitq_t *q, waiter_t *w) {
  if (w->prev != NULL) w->prev->next = w->next;
  else if (q->first == w) POKE(q->first, w->next);
  else return;  // not queued (already taken off by a waker)
  if (w->next != NULL) w->next->prev = w->prev;
  else q->last = w->prev;
  w->next = w->prev = NULL;
}

waiter_t *gort__chan_dequeue_select(waitq_t *q) {
  for (;;) {
    if (q->first == NULL) return NULL;
    waiter_t *w = waitq_take_first(q);
    if (!w->isselect) return w;
    uint32_t zero = 0;
    if (atomic_compare_exchange_strong_explicit(&w->pk->selectdone, &zero, 1, memory_order_acq_rel,
                                                memory_order_relaxed))
      return w;
    // Another case or the timeout won that select: skip its stale waiter.
  }
}

// ---- the ring ----------------------------------------------------------------------------------

static inline uint32_t pos_lap(uint64_t p) { return (uint32_t)(p >> 32) & POS_LAPMASK; }

static inline slot_t *slot_at(gort_chan_t *c, size_t stride, uint64_t p) {
  return (slot_t *)(void *)(c->buf + (size_t)(uint32_t)p * stride);
}

// The position after p (its FROZEN bit kept) in a ring of cap slots.
static inline uint64_t pos_next(size_t cap, uint64_t p) {
  if ((uint32_t)p + 1 < cap) return p + 1;
  return (p & POS_FROZEN) | (uint64_t)((pos_lap(p) + 1) & POS_LAPMASK) << 32;
}

// Positions from r to s; a wrapped (negative) answer when r was read after
// s and has passed it, which callers treat as "not full, not empty".
static inline int64_t pos_diff(gort_chan_t *c, uint64_t s, uint64_t r) {
  uint32_t laps = (pos_lap(s) - pos_lap(r)) & POS_LAPMASK;
  if (laps > 1) return -1;
  return (int64_t)laps * (int64_t)c->cap + (int64_t)(uint32_t)s - (int64_t)(uint32_t)r;
}

// An operation in flight on another thread (between its CAS and its store
// of seq, a few instructions, in a no-stop region) is waited out by a
// lock holder; its thread may have lost its CPU, so yield after a while.
static void wait_in_flight(int *spins) {
  if (++*spins < 128) gort__cpu_relax();
  else gort__os_yield();
}

// Moves the position *p to next, or reloads *p. A frozen side is moved
// only by lock holders (the lock-free ones see FROZEN and keep off; one
// that read the position before the freeze fails its CAS): a plain store.
static inline bool reserve(_Atomic uint64_t *at, uint64_t *p, uint64_t next) {
  if (*p & POS_FROZEN) {
    atomic_store_explicit(at, next, memory_order_relaxed);
    return true;
  }
  return atomic_compare_exchange_weak_explicit(at, p, next, memory_order_relaxed,
                                               memory_order_relaxed);
}

// The lock-free caller is in a no-stop region from its CAS to its store of
// seq, so that a lock holder waiting it out cannot hold up a collection
// (the holder is in one already, as for every lock).
GORT_INLINE bool ring_put(gort_chan_t *c, const void *elem, bool locked) {
  if (!locked) nostop_enter();
  int spins = 0;
  uint64_t pos = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
  for (;;) {
    if (!locked && (pos & POS_FROZEN)) break;
    slot_t *s = slot_at(c, c->txstride, pos);
    uint32_t want = 2 * pos_lap(pos);
    int32_t d = (int32_t)(atomic_load_explicit(&s->seq, memory_order_acquire) - want);
    if (d == 0) {
      if (reserve(&c->sendpos, &pos, pos_next(c->txcap, pos))) {
        elem_copy(s->elem, elem, c->txelemsize);
        atomic_store_explicit(&s->seq, want + 1, memory_order_release);
        if (!locked) nostop_exit();
        return true;
      }
      continue;  // pos was reloaded
    }
    if (d < 0) {
      // Last lap's element is still there: full, or its receive in flight.
      if (!locked) break;
      uint64_t r = atomic_load_explicit(&c->recvpos, memory_order_relaxed);
      if (pos_diff(c, pos, r) == (int64_t)c->txcap) break;
      wait_in_flight(&spins);
    }
    pos = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
  }
  if (!locked) nostop_exit();
  return false;
}

GORT_INLINE bool ring_take(gort_chan_t *c, void *elem, bool locked) {
  if (!locked) nostop_enter();
  int spins = 0;
  uint64_t pos = atomic_load_explicit(&c->recvpos, memory_order_relaxed);
  for (;;) {
    if (!locked && (pos & POS_FROZEN)) break;
    slot_t *s = slot_at(c, c->rxstride, pos);
    uint32_t want = 2 * pos_lap(pos) + 1;
    int32_t d = (int32_t)(atomic_load_explicit(&s->seq, memory_order_acquire) - want);
    if (d == 0) {
      if (reserve(&c->recvpos, &pos, pos_next(c->rxcap, pos))) {
        if (elem != NULL) elem_copy(elem, s->elem, c->rxelemsize);
        elem_zero(s->elem, c->rxelemsize);  // no stale pointer keeps a collected object alive
        atomic_store_explicit(&s->seq, want + 1, memory_order_release);
        if (!locked) nostop_exit();
        return true;
      }
      continue;
    }
    if (d < 0) {
      // Not sent yet: empty, or its send in flight.
      if (!locked) break;
      uint64_t w = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
      if (pos_diff(c, w, pos) == 0) break;
      wait_in_flight(&spins);
    }
    pos = atomic_load_explicit(&c->recvpos, memory_order_relaxed);
  }
  if (!locked) nostop_exit();
  return false;
}

bool gort__chan_ring_put(gort_chan_t *c, const void *elem, bool locked) {
  return locked ? ring_put(c, elem, true) : ring_put(c, elem, false);
}

bool gort__chan_ring_take(gort_chan_t *c, void *elem, bool locked) {
  return locked ? ring_take(c, elem, true) : ring_take(c, elem, false);
}

bool gort__chan_ring_can_put(gort_chan_t *c) {
  uint64_t pos = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
  slot_t *s = slot_at(c, c->txstride, pos);
  return atomic_load_explicit(&s->seq, memory_order_relaxed) == 2 * pos_lap(pos);
}

bool gort__chan_ring_can_take(gort_chan_t *c) {
  uint64_t pos = atomic_load_explicit(&c->recvpos, memory_order_relaxed);
  slot_t *s = slot_at(c, c->rxstride, pos);
  return atomic_load_explicit(&s->seq, memory_order_relaxed) == 2 * pos_lap(pos) + 1;
}

size_t gort__chan_ring_count(gort_chan_t *c) {
  if (c->cap == 0) return 0;
  // recvpos first: it only grows, so the count read can be stale but not
  // above what was in the ring at the second load.
  uint64_t r = atomic_load_explicit(&c->recvpos, memory_order_relaxed);
  uint64_t s = atomic_load_explicit(&c->sendpos, memory_order_relaxed);
  int64_t n = pos_diff(c, s, r);
  if (n < 0) return 0;
  return (size_t)n > c->cap ? c->cap : (size_t)n;
}

void gort__chan_freeze(gort_chan_t *c, uint8_t sides) {
  if (c->cap == 0) return;
  sides &= (uint8_t)~c->frozen;
  if (sides & FROZE_SEND) atomic_fetch_or_explicit(&c->sendpos, POS_FROZEN, memory_order_relaxed);
  if (sides & FROZE_RECV) atomic_fetch_or_explicit(&c->recvpos, POS_FROZEN, memory_order_relaxed);
  c->frozen |= sides;
}

void gort__chan_settle_slow(gort_chan_t *c) {
  uint8_t want = 0;
  if (c->recvq.first != NULL || c->closed) want |= FROZE_SEND;
  if (c->sendq.first != NULL) want |= FROZE_SEND | FROZE_RECV;
  gort__chan_freeze(c, want);
  uint8_t thaw = c->frozen & (uint8_t)~want;
  // Hysteresis: a ring left empty or full is about to make a party wait
  // again (a capacity-1 channel always is), and each freeze and thaw is a
  // locked instruction per side; stay frozen until an operation under the
  // lock finds the ring partly full.
  if (c->cap == 1) return;  // never partly full
  size_t n = gort__chan_ring_count(c);
  if (n == 0 || n == c->cap) return;
  if (thaw & FROZE_SEND) atomic_fetch_and_explicit(&c->sendpos, ~POS_FROZEN, memory_order_relaxed);
  if (thaw & FROZE_RECV) atomic_fetch_and_explicit(&c->recvpos, ~POS_FROZEN, memory_order_relaxed);
  c->frozen = want;
}

// ---- validation (debug builds) ----------------------------------------------------------------

// With c locked.
static bool chan_is_valid(gort_chan_t *c) {
  if (c->cap == 0) return c->frozen == 0;
  uint8_t want = 0;
  if (c->recvq.first != NULL || c->closed) want |= FROZE_SEND;
  if (c->sendq.first != NULL) want |= FROZE_SEND | FROZE_RECV;
  if ((c->frozen & want) != want) return false;  // a waiter's side must be off
  uint64_t r = atomic_load(&c->recvpos), s = atomic_load(&c->sendpos);
  if (((s & POS_FROZEN) != 0) != ((c->frozen & FROZE_SEND) != 0)) return false;
  if (((r & POS_FROZEN) != 0) != ((c->frozen & FROZE_RECV) != 0)) return false;
  if ((uint32_t)s >= c->cap || (uint32_t)r >= c->cap) return false;
  return true;
}

// ---- making and freeing -----------------------------------------------------------------------

gort_chan_t *gort_chan_make(size_t elem_size, size_t cap) {
  size_t stride = sizeof(slot_t) + ((elem_size + 7) & ~(size_t)7), bytes;
  if (cap > CHAN_CAP_MAX || elem_size > SIZE_MAX - 8 || __builtin_mul_overflow(stride, cap, &bytes) ||
      __builtin_add_overflow(bytes, sizeof(gort_chan_t), &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  bool collected = gort__gc_enabled();
  gort_chan_t *c;
  if (collected) {
    c = gort_gc_alloc(bytes);
  } else {
    // Zeroed: an empty ring is all zeros (each seq waits for lap 0's send).
    c = gort_malloc(bytes);
    if (c != NULL) memset(c, 0, bytes);
  }
  if (c == NULL) return NULL;
  c->lock = (chanlock_t)CHANLOCK_INIT;
  c->collected = collected;
  c->elemsize = elem_size;
  c->cap = cap;
  c->stride = stride;
  c->txcap = c->rxcap = cap;
  c->txstride = c->rxstride = stride;
  c->txelemsize = c->rxelemsize = elem_size;
  return c;
}

// A free of c is fatal while a goroutine or thread waits on it.
static void check_no_waiters(gort_chan_t *c) {
  chan_lock(&c->lock);
  bool waited = c->recvq.first != NULL || c->sendq.first != NULL;
  chan_unlock(&c->lock);
  if (waited) gort__fatal("free of a channel that a goroutine or thread waits on", c);
}

void gort__chan_free_now(gort_chan_t *c) {
  check_no_waiters(c);
  gort_free(c);
}

void gort_chan_free(gort_chan_t *c) {
  if (c == NULL) return;
  // A channel a goroutine of time.c still holds (see chan.h, CHAN_TIMER_*).
  uint8_t t = atomic_load_explicit(&c->timer, memory_order_acquire);
  for (;;) {
    if (t == CHAN_TIMER_NONE) break;
    if (t == CHAN_TIMER_PENDING || t == CHAN_TIMER_FIRING) {
      // An After freed before it fired (a select took another case), or
      // while it sends: its goroutine frees it, instead of sending or once
      // sent. (No waiting for a send under way: the sender may be
      // preempted there, by a goroutine of its own P that may be this.)
      check_no_waiters(c);
      if (atomic_compare_exchange_weak_explicit(&c->timer, &t, CHAN_TIMER_ABANDONED, memory_order_acq_rel,
                                                memory_order_acquire))
        return;
      continue;
    }
    // Caught only while its goroutine holds it: once that has freed it, a
    // second free is an ordinary double free, the allocator's to catch.
    if (t == CHAN_TIMER_ABANDONED) gort__fatal("double free of a channel (gort_chan_free)", c);
    gort__fatal("free of a ticker's channel (gort_ticker_stop frees it)", c);
  }
  gort__chan_free_now(c);
}

// Without the lock, as Go's len(c): the answer may be stale by the time the
// caller reads it either way.
size_t gort_chan_len(gort_chan_t *c) { return c != NULL ? gort__chan_ring_count(c) : 0; }

size_t gort_chan_cap(gort_chan_t *c) { return c != NULL ? c->cap : 0; }

// ---- the steps of an operation that can proceed (c locked) ---------------------------------------

parker_t *gort__chan_send_direct(gort_chan_t *c, waiter_t *w, const void *elem) {
  if (w->elem != NULL) elem_copy(w->elem, elem, c->elemsize);
  w->success = true;
  w->pk->fired = w;
  return w->pk;
}

parker_t *gort__chan_recv_direct(gort_chan_t *c, waiter_t *w, void *elem) {
  if (c->cap == 0) {
    if (elem != NULL) elem_copy(elem, w->elem, c->elemsize);
  } else {
    // The ring is full (a sender waits): take its head, then put the
    // sender's element at the tail, the slot just freed, so that order is
    // kept. Both sides are frozen while a sender waits: no other party
    // takes the head or the slot freed, and both steps succeed.
    if (!gort__chan_ring_take(c, elem, true) || !gort__chan_ring_put(c, w->elem, true))
      gort__throw("chan: a sender waits on a ring that is not full");
  }
  w->success = true;
  w->pk->fired = w;
  return w->pk;
}

void gort__chan_send_closed(gort_chan_t *c) { gort__fatal("send on closed channel", c); }

// ---- send and receive -------------------------------------------------------------------------

static bool unlock_chan(g_t *g, void *arg) {
  (void)g;
  chan_unlock(&((gort_chan_t *)arg)->lock);
  return true;
}

// Releases c's lock, first turning back on the lock-free sides that no
// waiter needs off any more.
static inline void unlock_settled(gort_chan_t *c) {
  gort__chan_settle(c);
  chan_unlock(&c->lock);
}

// Go's chansend. block: wait for a receiver or room; else give up.
static bool chan_send(gort_chan_t *c, const void *elem, bool block) {
  if (c == NULL) {
    if (!block) return false;
    gort__park_forever("chan send (nil chan)");
  }
  sched_safepoint();
  if (c->txcap > 0 && gort__chan_side_open(&c->sendpos) && ring_put(c, elem, false))
    return true;
  chan_lock(&c->lock);
  gort_assert_internal(chan_is_valid(c));
  if (c->closed) {
    chan_unlock(&c->lock);
    gort__chan_send_closed(c);
  }
  waiter_t *r = gort__chan_dequeue(&c->recvq);
  if (r != NULL) {
    parker_t *pk = gort__chan_send_direct(c, r, elem);
    unlock_settled(c);
    gort__park_wake(pk);
    return true;
  }
  if (c->cap > 0) {
    if (ring_put(c, elem, true)) {
      unlock_settled(c);
      return true;
    }
    if (block) {
      // Full. Stop the lock-free receivers, so that the one who makes
      // room finds this sender, and the lock-free senders, so that the
      // room is this sender's; room made before they stopped is seen now.
      gort__chan_freeze(c, FROZE_SEND | FROZE_RECV);
      if (ring_put(c, elem, true)) {
        unlock_settled(c);
        return true;
      }
    }
  }
  if (!block) {
    unlock_settled(c);
    return false;
  }
  parker_t pk;
  gort__park_init(&pk);
  waiter_t w = {.pk = &pk, .elem = (void *)(uintptr_t)elem};
  gort__chan_enqueue(&c->sendq, &w);
  gort__park_block(&pk, unlock_chan, c, "chan send", c);
  if (!w.success) gort__chan_send_closed(c);  // woken by close
  return true;
}

// Go's chanrecv. Returns whether an element was received; *done tells
// whether the operation completed (received, or found the channel closed).
static bool chan_recv(gort_chan_t *c, void *elem, bool block, bool *done) {
  *done = false;
  if (c == NULL) {
    if (!block) return false;
    gort__park_forever("chan receive (nil chan)");
  }
  sched_safepoint();
  *done = true;
  if (c->rxcap > 0 && gort__chan_side_open(&c->recvpos) && ring_take(c, elem, false))
    return true;
  chan_lock(&c->lock);
  gort_assert_internal(chan_is_valid(c));
  // A waiting sender means a full ring (or, unbuffered, the element).
  waiter_t *s = gort__chan_dequeue(&c->sendq);
  if (s != NULL) {
    parker_t *pk = gort__chan_recv_direct(c, s, elem);
    unlock_settled(c);
    gort__park_wake(pk);
    return true;
  }
  if (c->cap > 0) {
    if (ring_take(c, elem, true)) {
      unlock_settled(c);
      return true;
    }
    if (block && !c->closed) {
      // Empty. Stop the lock-free senders, so that the next one finds this
      // receiver; an element sent before they stopped is seen now.
      gort__chan_freeze(c, FROZE_SEND);
      if (ring_take(c, elem, true)) {
        unlock_settled(c);
        return true;
      }
    }
  }
  if (c->closed) {  // and drained
    unlock_settled(c);
    if (elem != NULL) memset(elem, 0, c->elemsize);
    return false;
  }
  if (!block) {
    unlock_settled(c);
    *done = false;
    return false;
  }
  parker_t pk;
  gort__park_init(&pk);
  waiter_t w = {.pk = &pk, .elem = elem};
  gort__chan_enqueue(&c->recvq, &w);
  gort__park_block(&pk, unlock_chan, c, "chan receive", c);
  // A sender filled *elem; close zeroed it.
  return w.success;
}

void gort_chan_send(gort_chan_t *c, const void *elem) { chan_send(c, elem, true); }
bool gort_chan_try_send(gort_chan_t *c, const void *elem) { return chan_send(c, elem, false); }

bool gort_chan_recv(gort_chan_t *c, void *elem) {
  bool done;
  return chan_recv(c, elem, true, &done);
}

bool gort_chan_try_recv(gort_chan_t *c, void *elem) {
  bool done;
  return chan_recv(c, elem, false, &done);
}

// ---- close ------------------------------------------------------------------------------------

void gort_chan_close(gort_chan_t *c) {
  if (c == NULL) gort__fatal("close of nil channel", NULL);
  chan_lock(&c->lock);
  if (c->closed) {
    chan_unlock(&c->lock);
    gort__fatal("close of closed channel", c);
  }
  POKE(c->closed, true);
  // The close takes effect here for lock-free senders: one whose CAS came
  // first sent before the close (receivers will find its element), the
  // rest find the side frozen and the channel closed under the lock.
  gort__chan_freeze(c, FROZE_SEND);
  // Take every waiter off first, wake them after the unlock: once woken,
  // a waiter's record may vanish with its stack frame, so each is linked
  // into the list through its own next field before anyone is woken.
  waiter_t *list = NULL, *w;
  while ((w = gort__chan_dequeue(&c->recvq)) != NULL) {
    if (w->elem != NULL) memset(w->elem, 0, c->elemsize);
    w->success = false;
    w->pk->fired = w;
    w->next = list;
    list = w;
  }
  while ((w = gort__chan_dequeue(&c->sendq)) != NULL) {
    w->success = false;
    w->pk->fired = w;
    w->next = list;
    list = w;
  }
  unlock_settled(c);
  while (list != NULL) {
    w = list;
    list = w->next;  // read before the wake: then w may vanish
    gort__park_wake(w->pk);
  }
}
