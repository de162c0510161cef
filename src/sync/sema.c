// The semaphore under gort's sync types (Go: sema.go's semacquire and
// semrelease). See mutex.c for the design of the mutex on top of it.
//
// Go keys its semaphores by address in a global table of treaps, so that a
// sync.Mutex is one word or two. gort's sync types embed their wait queue
// instead (gort_syncsema_t, 24 bytes): no table, no lock shared by
// unrelated mutexes, and a zero value is an empty queue.
//
// Each blocked acquirer is a node on its own stack with a parker (chan/
// park.c). A release with a waiter hands the count straight to the first
// waiter (Go's handoff): the waiter returns owning it, so a stream of new
// acquirers cannot take it from a woken one.
//
// The rescue (gort__sync_acquire_rescued; the mutex's, mutex.c says why):
// a waiter may ask to run a function of its own once, if it is still
// blocked after a while, and then to go on waiting in its place. It wakes
// for that through a timer (a goroutine) or a timed futex wait (a thread),
// and the wake and a release can race, as a select's timeout and a case
// do; the same answer settles it: each waiter has a claim word, and the
// first of the release and the timer to CAS it from 0 wakes the waiter.
// The release CASes under the queue's lock, after taking the waiter off
// the queue, and touches it no more if it loses; the waiter, woken by its
// timer, runs the function, then looks for itself in the queue under the
// lock: found, it clears the claim and sleeps again in the same place
// (with no timer); gone, a release took it off, and it owns the count.

#include "sync.h"

#include "../os/os.h"

enum { CLAIM_NONE, CLAIM_RELEASE, CLAIM_TIMER };

struct semawaiter {
  semawaiter_t *next;            // guarded by the queue's lock
  syncsema_t *s;
  parker_t pk;
  int64_t deadline;              // nanotime of the rescue, or -1: none (then claim is unused)
  _Atomic uint32_t claim;        // CLAIM_*: who woke it; CAS from CLAIM_NONE
  timer_t_ timer;                // a goroutine's rescue timer
};

static void rescue_timeout(timer_t_ *t);

static inline syncsema_t *S(gort_syncsema_t *s) { return (syncsema_t *)(void *)s; }

// The park's unlock step: a goroutine's rescue timer goes on its P's heap
// now that its context is saved (a timer that fires at once can then ready
// it), before the queue's lock is released (a release could wake it, and
// its frame with the timer vanish).
static bool unlock_sema(g_t *g, void *arg) {
  semawaiter_t *w = arg;
  if (g != NULL && w->deadline >= 0) {
    w->timer.when = w->deadline;
    w->timer.f = rescue_timeout;
    w->timer.arg = w;
    w->timer.g = g;
    gort__timers_add_here(&w->timer);
  }
  unlock(&w->s->lock);
  return true;
}

// The rescue timer fires (with its heap's lock held): wake the waiter
// unless a release did.
static void rescue_timeout(timer_t_ *t) {
  semawaiter_t *w = t->arg;
  uint32_t none = CLAIM_NONE;
  if (atomic_compare_exchange_strong_explicit(&w->claim, &none, CLAIM_TIMER, memory_order_acq_rel,
                                              memory_order_relaxed))
    gort__sched_ready(w->pk.g);
}

static void enqueue(syncsema_t *s, semawaiter_t *w, bool lifo) {
  if (lifo) {
    w->next = s->head;
    s->head = w;
    if (s->tail == NULL) s->tail = w;
  } else {
    w->next = NULL;
    if (s->tail != NULL) s->tail->next = w;
    else s->head = w;
    s->tail = w;
  }
}

void gort__sync_acquire_rescued(gort_syncsema_t *ps, bool lifo, int64_t rescue_ns,
                                void (*rescue)(void *), void *arg, const char *reason,
                                const void *obj) {
  syncsema_t *s = S(ps);
  lock(&s->lock);
  if (s->count > 0) {
    s->count--;
    unlock(&s->lock);
    return;
  }
  semawaiter_t w = {.s = s, .deadline = -1};
  gort__park_init(&w.pk);
  enqueue(s, &w, lifo);
  if (rescue == NULL) {
    gort__park_block(&w.pk, unlock_sema, &w, reason, obj);
    return;
  }
  w.deadline = gort__nanotime() + rescue_ns;
  if (w.pk.g != NULL) {
    gort__park_block(&w.pk, unlock_sema, &w, reason, obj);
    gort__timers_del(&w.timer);  // after it returns, rescue_timeout is not running
    if (atomic_load_explicit(&w.claim, memory_order_acquire) == CLAIM_RELEASE) return;
  } else {
    unlock(&s->lock);
    if (gort__park_thread_wait(&w.pk, w.deadline)) return;
    uint32_t none = CLAIM_NONE;
    if (!atomic_compare_exchange_strong_explicit(&w.claim, &none, CLAIM_TIMER, memory_order_acq_rel,
                                                 memory_order_relaxed)) {
      gort__park_thread_wait(&w.pk, -1);  // a release claimed it: its wake is on the way
      return;
    }
  }
  // Woken by the timer, and perhaps taken off the queue meanwhile by a
  // release that lost the claim to it.
  rescue(arg);
  lock(&s->lock);
  semawaiter_t *q = s->head;
  while (q != NULL && q != &w) q = q->next;
  if (q == NULL) {  // a release took us off: the count is ours
    unlock(&s->lock);
    return;
  }
  // Still queued, in the same place: sleep again, for good this time.
  w.deadline = -1;
  gort__park_init(&w.pk);
  atomic_store_explicit(&w.claim, CLAIM_NONE, memory_order_relaxed);
  gort__park_block(&w.pk, unlock_sema, &w, reason, obj);
}

void gort__sync_acquire(gort_syncsema_t *ps, bool lifo, const char *reason, const void *obj) {
  gort__sync_acquire_rescued(ps, lifo, -1, NULL, NULL, reason, obj);
}

void gort__sync_release(gort_syncsema_t *ps) {
  syncsema_t *s = S(ps);
  lock(&s->lock);
  semawaiter_t *w = s->head;
  if (w == NULL) {
    s->count++;
    unlock(&s->lock);
    return;
  }
  s->head = w->next;
  if (s->head == NULL) s->tail = NULL;
  if (w->deadline >= 0) {
    // A waiter with a rescue: its timer may have claimed it already; then
    // it finds itself off the queue, owning the count, and w may vanish
    // as soon as the lock is released.
    uint32_t none = CLAIM_NONE;
    if (!atomic_compare_exchange_strong_explicit(&w->claim, &none, CLAIM_RELEASE,
                                                 memory_order_acq_rel, memory_order_relaxed)) {
      unlock(&s->lock);
      return;
    }
  }
  unlock(&s->lock);
  gort__park_wake(&w->pk);
}
