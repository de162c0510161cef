// A wait group for goroutines and plain threads alike: the scheduler's
// internal one, until sync.h's (the next issue) replaces it for programs.
//
// See proc.c for parking. A goroutine that waits parks: the wait list's
// lock is released by the park's unlock step, after the goroutine's
// context is saved, so a gort__wg_done on another thread can never ready a
// goroutine that is still running (the lost-wakeup and double-run races
// that an unlock before the switch would allow). A plain thread has no
// goroutine to park: it sleeps on a futex on seq, which every wake bumps.

#include "proc.h"

#include "../os/os.h"

void gort__wg_add(gort__wg_t *wg, int64_t delta) {
  int64_t v = atomic_fetch_add_explicit(&wg->count, delta, memory_order_acq_rel) + delta;
  if (v < 0) gort__fatal("sched: negative wait group counter", wg);
  if (v > 0 || delta > 0) return;
  // Reached zero: wake every waiter.
  lock(&wg->lock);
  g_t *list = wg->waiters;
  wg->waiters = NULL;
  atomic_fetch_add_explicit(&wg->seq, 1, memory_order_release);
  unlock(&wg->lock);
  // Always: a thread between its read of seq and its futex wait is not
  // counted anywhere we could read without a store-load fence.
  gort__os_futex_wake(&wg->seq, INT32_MAX);
  while (list != NULL) {
    g_t *g = list;
    list = g->schedlink;
    gort__sched_ready(g);
  }
}

void gort__wg_done(gort__wg_t *wg) { gort__wg_add(wg, -1); }

static bool unlock_wg(g_t *g, void *arg) {
  (void)g;
  gort__wg_t *wg = arg;
  unlock(&wg->lock);
  return true;
}

void gort__wg_wait(gort__wg_t *wg) {
  if (atomic_load_explicit(&wg->count, memory_order_acquire) == 0) return;
  g_t *g = gort__sched_getg();
  if (g != NULL) {
    gort__sched_safepoint();
    lock(&wg->lock);
    if (atomic_load_explicit(&wg->count, memory_order_acquire) == 0) {
      unlock(&wg->lock);
      return;
    }
    g->schedlink = wg->waiters;
    wg->waiters = g;
    gort__sched_park(unlock_wg, wg, "wait group");
    return;
  }
  for (;;) {
    uint32_t seq = atomic_load_explicit(&wg->seq, memory_order_acquire);
    if (atomic_load_explicit(&wg->count, memory_order_acquire) == 0) break;
    gort__os_futex_wait(&wg->seq, seq);
  }
}

// ---- a counting semaphore (Go's semacquire / semrelease) -------------------------------------
//
// Waiters queue in FIFO order, each a node on its own stack (a parked
// goroutine's stack stays put; so does a blocked thread's). A release with
// a waiter hands the count straight to the first waiter (Go's "handoff"),
// so a stream of acquirers cannot overtake a woken one.

typedef struct sema_waiter {
  struct sema_waiter *next;
  g_t *g;                       // the parked goroutine, or NULL for a thread
  _Atomic uint32_t done;        // a thread's futex word: 1 once handed the count
} sema_waiter_t;

static bool unlock_sema(g_t *g, void *arg) {
  (void)g;
  unlock(&((gort__sema_t *)arg)->lock);
  return true;
}

void gort__sema_acquire(gort__sema_t *s) {
  lock(&s->lock);
  if (s->count > 0) {
    s->count--;
    unlock(&s->lock);
    return;
  }
  sema_waiter_t w = {.next = NULL, .g = gort__sched_getg()};
  if (s->tail != NULL) s->tail->next = &w;
  else s->head = &w;
  s->tail = &w;
  if (w.g != NULL) {
    gort__sched_park(unlock_sema, s, "semacquire");
    return;
  }
  unlock(&s->lock);
  while (atomic_load_explicit(&w.done, memory_order_acquire) == 0) gort__os_futex_wait(&w.done, 0);
}

void gort__sema_release(gort__sema_t *s) {
  lock(&s->lock);
  sema_waiter_t *w = s->head;
  if (w == NULL) {
    s->count++;
    unlock(&s->lock);
    return;
  }
  s->head = w->next;
  if (s->head == NULL) s->tail = NULL;
  g_t *g = w->g;
  if (g == NULL) {
    // Once done is 1 the waiter may return and its frame be reused: the
    // wake after it only names the address (at worst a spurious wake).
    atomic_store_explicit(&w->done, 1, memory_order_release);
    gort__os_futex_wake(&w->done, 1);
    unlock(&s->lock);
    return;
  }
  unlock(&s->lock);
  gort__sched_ready(g);
}
