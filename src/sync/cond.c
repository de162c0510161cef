// Condition variables (Go: sync/cond.go and the runtime's notifyList).
// See mutex.c.
//
// Tickets, as Go's notifyList: a waiter takes ticket wait++ before it
// unlocks the mutex, and a signal wakes ticket notify++. A signal that
// comes between the waiter's unlock and its enqueueing is not lost: the
// waiter then finds its ticket below notify and returns at once. Waiters
// queue FIFO on the cond's own lock (rank LOCK_SYNC).

#include "sync.h"

typedef struct condwaiter {
  struct condwaiter *next;
  uint32_t ticket;
  parker_t pk;
} condwaiter_t;

static inline lock_t *L(gort_cond_t *c) { return (lock_t *)(void *)&c->lock_; }

// Wrap-safe: a < b in ticket order.
static inline bool before(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }

static bool unlock_cond(g_t *g, void *arg) {
  (void)g;
  unlock(L(arg));
  return true;
}

void gort_cond_wait(gort_cond_t *c, gort_mutex_t *m) {
  lock(L(c));
  uint32_t t = c->wait_++;
  unlock(L(c));
  gort_mutex_unlock(m);
  lock(L(c));
  if (before(t, c->notify_)) {
    unlock(L(c));
  } else {
    condwaiter_t w = {.next = NULL, .ticket = t};
    gort__park_init(&w.pk);
    if (c->tail_ != NULL) ((condwaiter_t *)c->tail_)->next = &w;
    else c->head_ = &w;
    c->tail_ = &w;
    gort__park_block(&w.pk, unlock_cond, c, "sync.Cond.Wait", c);
  }
  gort_mutex_lock(m);
}

// Takes waiter t off the list if it is there (it may not have queued yet:
// it will then see notify past its ticket).
static condwaiter_t *take(gort_cond_t *c, uint32_t t) {
  condwaiter_t *prev = NULL;
  for (condwaiter_t *w = c->head_; w != NULL; prev = w, w = w->next) {
    if (w->ticket != t) continue;
    if (prev != NULL) prev->next = w->next;
    else c->head_ = w->next;
    if (c->tail_ == w) c->tail_ = prev;
    return w;
  }
  return NULL;
}

void gort_cond_signal(gort_cond_t *c) {
  lock(L(c));
  if (c->wait_ == c->notify_) {
    unlock(L(c));
    return;
  }
  uint32_t t = c->notify_++;
  condwaiter_t *w = take(c, t);
  unlock(L(c));
  if (w != NULL) gort__park_wake(&w->pk);
}

void gort_cond_broadcast(gort_cond_t *c) {
  lock(L(c));
  c->notify_ = c->wait_;
  condwaiter_t *list = c->head_;
  c->head_ = c->tail_ = NULL;
  unlock(L(c));
  while (list != NULL) {
    condwaiter_t *w = list;
    list = w->next;  // before the wake: then w may vanish
    gort__park_wake(&w->pk);
  }
}
