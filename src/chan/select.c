// Select (Go: select.go's selectgo). See chan.c for channels.
//
//   1. Poll order: the cases with a channel, in a random permutation, so
//      that among ready cases each is chosen with equal probability (the
//      spec's "uniform pseudo-random selection"; a fixed order would
//      starve the later cases).
//   1a. First pass: in poll order, the first case that looks ready (its
//      channel's closed flag, queue heads and count, read without the lock)
//      is locked alone and tried; if it proceeds, that is the select, and
//      no other channel was locked. Most selects in a busy program find a
//      case ready, and locking every channel for them cost a lock per case
//      (4-way select benchmark: 4 CASes, each a cache miss when producers
//      on the other core use the channels). The choice is still the first
//      ready case in a uniformly random order, and a case is taken only
//      while it is ready under its lock, so the select behaves as if it
//      had run at that instant. A case that looked ready but is not (a
//      stale select waiter, a race) is unlocked and the pass goes on; if
//      none proceeds, steps 2-6 decide under every lock, as before, so
//      default and blocking are decided with every channel held.
//      Before it looks, the pass tries the case through the channel's
//      lock-free ring (chan.c, "The ring"), as a plain send or receive
//      does first: that succeeds only while the case's side is not frozen,
//      that is while nobody waits on it and it is not closed to sends, and
//      is then what the locked try would have done. A busy select finds
//      its case in the ring, and the lock's CAS, a miss on the header's
//      line whenever the other end had locked it, was a fifth of a 4-way
//      select (perf annotate, select4 benchmark).
//   2. Lock order: the same cases sorted by channel address, each channel
//      locked once. Every select takes its locks in that one global order,
//      so two selects over the same channels cannot deadlock.
//   3. With every lock held, the first ready case in poll order runs (a
//      waiting partner, the buffer, or a closed channel to receive from),
//      as in step 1a each case taken only while it is ready. If none is,
//      the lock-free sides that could make one ready are frozen (chan.c,
//      "The ring", d) and the cases are tried again: from then on none can
//      become ready behind the locks, so steps 4-5 decide at one instant.
//      Each unlock settles its channel first: sides no waiter needs thaw.
//   4. None ready: with a zero timeout, unlock and return -1 (default).
//      Otherwise enqueue one waiter per case, all sharing one parker, and
//      block; the unlock step releases every lock (in reverse order) and,
//      for a goroutine with a timeout, arms a timer on its P.
//   5. The first party to complete a waiter claims the whole select with a
//      CAS on the parker's selectdone (chan.c, gort__chan_dequeue); a timer
//      that fires claims it the same way, for the timeout. The loser of the
//      CAS leaves the select alone.
//   6. Woken: cancel the timer, lock every channel again and take the
//      waiters of the cases that did not fire off their queues.
//
// The waiters, poll and lock orders live on the caller's stack up to
// STACK_CASES cases, in gort_malloc'd memory beyond (freed on return).

#include "chan.h"

#include <string.h>

#include "gort/alloc.h"
#include "gort/sched.h"

enum { STACK_CASES = 32 };

typedef struct {
  gort_select_case_t *cases;
  int *lockorder;                // indexes of the cases with a channel, by channel address
  int nlock;
  parker_t *pk;
  waiter_t *w;                   // one per case
  timer_t_ timer;                // a goroutine's timeout
  int64_t deadline;              // nanotime, or -1 for none
} sel_t;

static void sellock(sel_t *s) {
  gort_chan_t *last = NULL;
  for (int i = 0; i < s->nlock; i++) {
    gort_chan_t *c = s->cases[s->lockorder[i]].chan;
    if (c != last) chan_lock(&c->lock);
    last = c;
  }
}

// Settles each channel (chan.h) and unlocks it.
static void selunlock(sel_t *s) {
  for (int i = s->nlock - 1; i >= 0; i--) {
    gort_chan_t *c = s->cases[s->lockorder[i]].chan;
    if (i > 0 && s->cases[s->lockorder[i - 1]].chan == c) continue;
    gort__chan_settle(c);
    chan_unlock(&c->lock);
  }
}

// Every channel locked and no case ready: turns off the lock-free sides
// that could make a case ready (the send side for a receive, both for a
// send, as a waiting sender needs), so that "none is ready" holds from
// here until the unlock.
static void selfreeze(sel_t *s) {
  for (int i = 0; i < s->nlock; i++) {
    gort_select_case_t *k = &s->cases[s->lockorder[i]];
    gort__chan_freeze(k->chan, k->dir == GORT_SELECT_SEND ? FROZE_SEND | FROZE_RECV : FROZE_SEND);
  }
}

// The timeout's timer fires: claim the select, wake the goroutine.
static void select_timeout(timer_t_ *t) {
  parker_t *pk = t->arg;
  uint32_t zero = 0;
  if (!atomic_compare_exchange_strong_explicit(&pk->selectdone, &zero, 1, memory_order_acq_rel,
                                               memory_order_relaxed))
    return;  // a case won
  pk->fired = NULL;
  gort__sched_ready(pk->g);
}

static bool unlock_select(g_t *g, void *arg) {
  sel_t *s = arg;
  if (g != NULL && s->deadline >= 0) {
    s->timer.when = s->deadline;
    s->timer.f = select_timeout;
    s->timer.arg = s->pk;
    s->timer.g = g;
    gort__timers_add_here(&s->timer);
  }
  selunlock(s);
  return true;
}

// Runs case k if it can proceed, with k's channel locked (and, unless
// single, every other one): then unlocks (k's channel alone if single,
// else all) and returns true. Returns false with the locks still held.
static bool try_case(sel_t *s, gort_select_case_t *k, bool single) {
  gort_chan_t *c = k->chan;
  parker_t *wake = NULL;
  if (k->dir == GORT_SELECT_SEND) {
    if (c->closed) {
      if (single) chan_unlock(&c->lock);
      else selunlock(s);
      gort__chan_send_closed(c);
    }
    waiter_t *r = gort__chan_dequeue(&c->recvq);
    if (r != NULL) wake = gort__chan_send_direct(c, r, k->elem);
    else if (c->cap == 0 || !gort__chan_ring_put(c, k->elem, true)) return false;
  } else {
    waiter_t *w = gort__chan_dequeue(&c->sendq);
    if (w != NULL) {
      wake = gort__chan_recv_direct(c, w, k->elem);
      k->ok = true;
    } else if (c->cap > 0 && gort__chan_ring_take(c, k->elem, true)) {
      k->ok = true;
    } else if (c->closed) {
      if (k->elem != NULL) memset(k->elem, 0, c->elemsize);
      k->ok = false;
    } else {
      return false;
    }
  }
  if (single) {
    gort__chan_settle(c);
    chan_unlock(&c->lock);
  } else {
    selunlock(s);
  }
  if (wake != NULL) gort__park_wake(wake);
  return true;
}

// Whether case k looks ready, read without its channel's lock (the fields
// PEEK reads, chan.h): a hint, which try_case confirms under the lock.
static bool looks_ready(const gort_select_case_t *k) {
  gort_chan_t *c = k->chan;
  if (PEEK(c->closed)) return true;
  if (k->dir == GORT_SELECT_SEND)
    return PEEK(c->recvq.first) != NULL || (c->cap > 0 && gort__chan_ring_can_put(c));
  return PEEK(c->sendq.first) != NULL || (c->cap > 0 && gort__chan_ring_can_take(c));
}

// Step 1a's first try: case k through its channel's lock-free ring, as a
// send or receive that neither waits nor wakes does (chan.c, "The ring").
// It succeeds only while its side is not frozen, so only while no party
// waits on that side and the channel is not closed to sends: then it is
// exactly what try_case would do under the lock, without the lock.
static bool ring_case(gort_select_case_t *k) {
  gort_chan_t *c = k->chan;
  if (k->dir == GORT_SELECT_SEND)
    return c->txcap > 0 && gort__chan_side_open(&c->sendpos) && gort__chan_ring_put(c, k->elem, false);
  if (c->rxcap > 0 && gort__chan_side_open(&c->recvpos) && gort__chan_ring_take(c, k->elem, false)) {
    k->ok = true;
    return true;
  }
  return false;
}

// Sorts the cases with a channel by channel address (insertion sort: a
// select has a handful of cases).
static int make_lockorder(gort_select_case_t *cases, int n, int *order) {
  int m = 0;
  for (int i = 0; i < n; i++) {
    if (cases[i].chan == NULL) continue;
    int j = m++;
    while (j > 0 && (uintptr_t)cases[order[j - 1]].chan > (uintptr_t)cases[i].chan) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
  return m;
}

static bool is_valid_case(const gort_select_case_t *k) {
  return k->chan == NULL || k->dir == GORT_SELECT_SEND || k->dir == GORT_SELECT_RECV;
}

// Steps 4-6: block on every case; returns the index that fired, or -1.
static int select_block(sel_t *s, int n) {
  parker_t *pk = s->pk;
  for (int i = 0; i < n; i++) {
    gort_select_case_t *k = &s->cases[i];
    if (k->chan == NULL) continue;
    waiter_t *w = &s->w[i];
    *w = (waiter_t){.pk = pk, .elem = k->elem, .isselect = true};
    gort__chan_enqueue(k->dir == GORT_SELECT_SEND ? &k->chan->sendq : &k->chan->recvq, w);
  }
  if (pk->g != NULL) {
    gort__park_block(pk, unlock_select, s, "select", NULL);
    if (s->deadline >= 0) gort__timers_del(&s->timer);
  } else {
    if (s->deadline < 0) gort__park_count(pk);
    selunlock(s);
    if (!gort__park_thread_wait(pk, s->deadline)) {
      uint32_t zero = 0;
      if (atomic_compare_exchange_strong_explicit(&pk->selectdone, &zero, 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
        pk->fired = NULL;  // the timeout won
      else
        gort__park_thread_wait(pk, -1);  // a case won: its waker is on the way
    }
  }
  // Woken: take the other waiters off their queues.
  sellock(s);
  int won = -1;
  for (int i = 0; i < n; i++) {
    gort_select_case_t *k = &s->cases[i];
    if (k->chan == NULL) continue;
    waiter_t *w = &s->w[i];
    if (w == pk->fired) {
      won = i;
      continue;
    }
    gort__chan_dequeue_this(k->dir == GORT_SELECT_SEND ? &k->chan->sendq : &k->chan->recvq, w);
  }
  selunlock(s);
  if (won >= 0) {
    gort_select_case_t *k = &s->cases[won];
    if (k->dir == GORT_SELECT_SEND && !s->w[won].success) gort__chan_send_closed(k->chan);
    if (k->dir == GORT_SELECT_RECV) k->ok = s->w[won].success;
  }
  return won;
}

static int select_go(gort_select_case_t *cases, int n, int64_t timeout_ns, int *pollorder,
                     int *lockorder, waiter_t *w) {
  // Step 1: a random permutation of the cases with a channel.
  int npoll = 0;
  for (int i = 0; i < n; i++) {
    if (!is_valid_case(&cases[i])) gort__fatal("select: a case with a bad direction", &cases[i]);
    if (cases[i].chan == NULL) continue;
    // A uniform index in [0, npoll] by a multiply and a shift, not a
    // division (Go's cheaprandn; 4 divisions were a tenth of a 4-way select).
    int j = (int)(((uint64_t)gort__chan_fastrand() * (uint32_t)(npoll + 1)) >> 32);
    pollorder[npoll] = pollorder[j];
    pollorder[j] = i;
    npoll++;
  }
  parker_t pk;
  sel_t s = {.cases = cases, .lockorder = lockorder, .pk = &pk, .w = w, .deadline = -1};
  sched_safepoint();
  // Step 0: the first case in poll order that proceeds under its own lock.
  for (int i = 0; i < npoll; i++) {
    gort_select_case_t *k = &cases[pollorder[i]];
    if (ring_case(k)) return pollorder[i];
    if (!looks_ready(k)) continue;
    chan_lock(&k->chan->lock);
    if (try_case(&s, k, true)) return pollorder[i];
    gort__chan_settle(k->chan);  // a stale select waiter may have been dequeued
    chan_unlock(&k->chan->lock);
  }
  s.nlock = make_lockorder(cases, n, lockorder);
  sellock(&s);
  for (int i = 0; i < npoll; i++)
    if (try_case(&s, &cases[pollorder[i]], false)) return pollorder[i];
  // None was ready, each when tried; freeze, then look again, so that
  // default and blocking are decided at one instant.
  selfreeze(&s);
  for (int i = 0; i < npoll; i++)
    if (try_case(&s, &cases[pollorder[i]], false)) return pollorder[i];
  if (timeout_ns == 0) {
    selunlock(&s);
    return -1;
  }
  if (timeout_ns > 0) {
    int64_t when = gort__nanotime() + timeout_ns;
    s.deadline = when < 0 ? INT64_MAX : when;
  }
  gort__park_init(&pk);
  return select_block(&s, n);
}

int gort_select(gort_select_case_t *cases, int n, int64_t timeout_ns) {
  if (n < 0) n = 0;
  bool anychan = false;
  for (int i = 0; i < n; i++) anychan |= cases[i].chan != NULL;
  if (!anychan) {
    if (timeout_ns < 0) gort__park_forever("select (no cases)");
    if (timeout_ns > 0) gort_sleep(timeout_ns);
    return -1;
  }
  if (n <= STACK_CASES) {
    int pollorder[STACK_CASES], lockorder[STACK_CASES];
    waiter_t w[STACK_CASES];
    return select_go(cases, n, timeout_ns, pollorder, lockorder, w);
  }
  size_t bytes = (size_t)n * (2 * sizeof(int) + sizeof(waiter_t));
  waiter_t *w = gort_malloc(bytes);
  if (w == NULL) gort__fatal("select: out of memory for its waiters", cases);
  int *pollorder = (int *)(w + n), *lockorder = pollorder + n;
  int r = select_go(cases, n, timeout_ns, pollorder, lockorder, w);
  gort_free(w);
  return r;
}
