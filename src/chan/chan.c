// Channels (Go: chan.go).
//
// A channel is a lock, a ring buffer of cap elements, and two queues of
// waiters: receivers blocked on an empty channel and senders blocked on a
// full one. The design is Go's, for Go's reasons:
//
//   1. One lock per channel (chanlock_t, rank LOCK_CHAN), held only for the
//      few loads and copies of one operation. Lock-free channels were tried
//      for Go (Vyukov, 2014) and rejected: faster only uncontended, much
//      more complex, and select needs the locks anyway. The lock is the
//      channel's own, not base's lock_t: it is released with a plain store
//      (chanlock.c), because a locked instruction costs as much here as the
//      rest of a buffered operation. The fields select's first pass reads
//      without the lock (closed, qcount, the queue heads) are stored with
//      relaxed atomics (PEEK and POKE, chan.h).
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
// Invariants (with c->lock held):
//   - qcount <= cap; sendx, recvx < max(cap, 1).
//   - recvq is empty unless qcount == 0; sendq is empty unless qcount == cap.
//     (A select's stale waiter, claimed by another case, may linger in a
//     queue until its select dequeues it; wakers skip it.)
//   - closed: sendq holds no waiter that is not a claimed select's.

#include "chan.h"

#include <errno.h>
#include <string.h>

#include "../gc/gc.h"
#include "gort/alloc.h"
#include "gort/gc.h"

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

waiter_t *gort__chan_dequeue(waitq_t *q) {
  for (;;) {
    waiter_t *w = q->first;
    if (w == NULL) return NULL;
    POKE(q->first, w->next);
    if (q->first != NULL) q->first->prev = NULL;
    else q->last = NULL;
    w->next = w->prev = NULL;
    if (!w->isselect) return w;
    uint32_t zero = 0;
    if (atomic_compare_exchange_strong_explicit(&w->pk->selectdone, &zero, 1, memory_order_acq_rel,
                                                memory_order_relaxed))
      return w;
    // Another case or the timeout won that select: skip its stale waiter.
  }
}

// ---- validation (debug builds) ----------------------------------------------------------------

static bool chan_is_valid(const gort_chan_t *c) {
  if (c->qcount > c->cap) return false;
  size_t slots = c->cap > 0 ? c->cap : 1;
  if (c->sendx >= slots || c->recvx >= slots) return false;
  if (c->cap > 0 && (c->recvx + c->qcount) % c->cap != c->sendx) return false;
  return true;
}

// ---- making and freeing -----------------------------------------------------------------------

gort_chan_t *gort_chan_make(size_t elem_size, size_t cap) {
  size_t bytes;
  if (__builtin_mul_overflow(elem_size, cap, &bytes) ||
      __builtin_add_overflow(bytes, sizeof(gort_chan_t), &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  bool collected = gort__gc_enabled();
  gort_chan_t *c;
  if (collected) {
    c = gort_gc_alloc(bytes);
  } else {
    c = gort_malloc(bytes);
    if (c != NULL) memset(c, 0, sizeof *c);  // the buffer is written before it is read
  }
  if (c == NULL) return NULL;
  c->lock = (chanlock_t)CHANLOCK_INIT;
  c->collected = collected;
  c->elemsize = elem_size;
  c->cap = cap;
  return c;
}

void gort_chan_free(gort_chan_t *c) {
  if (c == NULL) return;
  chan_lock(&c->lock);
  bool waited = c->recvq.first != NULL || c->sendq.first != NULL;
  chan_unlock(&c->lock);
  if (waited) gort__fatal("free of a channel that a goroutine or thread waits on", c);
  gort_free(c);
}

// Without the lock, as Go's len(c): the answer may be stale by the time the
// caller reads it either way.
size_t gort_chan_len(gort_chan_t *c) { return c != NULL ? PEEK(c->qcount) : 0; }

size_t gort_chan_cap(gort_chan_t *c) { return c != NULL ? c->cap : 0; }

// ---- the steps of an operation that can proceed (c locked) ---------------------------------------

static inline void *slot(gort_chan_t *c, size_t i) { return c->buf + i * c->elemsize; }

parker_t *gort__chan_send_direct(gort_chan_t *c, waiter_t *w, const void *elem) {
  if (w->elem != NULL) memcpy(w->elem, elem, c->elemsize);
  w->success = true;
  w->pk->fired = w;
  return w->pk;
}

parker_t *gort__chan_recv_direct(gort_chan_t *c, waiter_t *w, void *elem) {
  if (c->cap == 0) {
    if (elem != NULL) memcpy(elem, w->elem, c->elemsize);
  } else {
    // The buffer is full: take its head, put the sender's element at the
    // tail (the slot just freed), so that order is kept.
    void *head = slot(c, c->recvx);
    if (elem != NULL) memcpy(elem, head, c->elemsize);
    memcpy(head, w->elem, c->elemsize);
    if (++c->recvx == c->cap) c->recvx = 0;
    c->sendx = c->recvx;
  }
  w->success = true;
  w->pk->fired = w;
  return w->pk;
}

void gort__chan_buf_put(gort_chan_t *c, const void *elem) {
  memcpy(slot(c, c->sendx), elem, c->elemsize);
  if (++c->sendx == c->cap) c->sendx = 0;
  POKE(c->qcount, c->qcount + 1);
}

void gort__chan_buf_take(gort_chan_t *c, void *elem) {
  void *s = slot(c, c->recvx);
  if (elem != NULL) memcpy(elem, s, c->elemsize);
  memset(s, 0, c->elemsize);  // no stale pointer keeps a collected object alive
  if (++c->recvx == c->cap) c->recvx = 0;
  POKE(c->qcount, c->qcount - 1);
}

void gort__chan_send_closed(gort_chan_t *c) { gort__fatal("send on closed channel", c); }

// ---- send and receive -------------------------------------------------------------------------

static bool unlock_chan(g_t *g, void *arg) {
  (void)g;
  chan_unlock(&((gort_chan_t *)arg)->lock);
  return true;
}

// Go's chansend. block: wait for a receiver or room; else give up.
static bool chan_send(gort_chan_t *c, const void *elem, bool block) {
  if (c == NULL) {
    if (!block) return false;
    gort__park_forever("chan send (nil chan)");
  }
  gort__sched_safepoint();
  chan_lock(&c->lock);
  gort_assert_internal(chan_is_valid(c));
  if (c->closed) {
    chan_unlock(&c->lock);
    gort__chan_send_closed(c);
  }
  waiter_t *r = gort__chan_dequeue(&c->recvq);
  if (r != NULL) {
    parker_t *pk = gort__chan_send_direct(c, r, elem);
    chan_unlock(&c->lock);
    gort__park_wake(pk);
    return true;
  }
  if (c->qcount < c->cap) {
    gort__chan_buf_put(c, elem);
    chan_unlock(&c->lock);
    return true;
  }
  if (!block) {
    chan_unlock(&c->lock);
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
  gort__sched_safepoint();
  chan_lock(&c->lock);
  gort_assert_internal(chan_is_valid(c));
  if (c->closed && c->qcount == 0) {
    chan_unlock(&c->lock);
    if (elem != NULL) memset(elem, 0, c->elemsize);
    *done = true;
    return false;
  }
  *done = true;
  waiter_t *s = gort__chan_dequeue(&c->sendq);
  if (s != NULL) {
    parker_t *pk = gort__chan_recv_direct(c, s, elem);
    chan_unlock(&c->lock);
    gort__park_wake(pk);
    return true;
  }
  if (c->qcount > 0) {
    gort__chan_buf_take(c, elem);
    chan_unlock(&c->lock);
    return true;
  }
  if (!block) {
    chan_unlock(&c->lock);
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
  chan_unlock(&c->lock);
  while (list != NULL) {
    w = list;
    list = w->next;  // read before the wake: then w may vanish
    gort__park_wake(w->pk);
  }
}
