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

#include "sync.h"

struct semawaiter {
  semawaiter_t *next;
  parker_t pk;
};

static inline syncsema_t *S(gort_syncsema_t *s) { return (syncsema_t *)(void *)s; }

static bool unlock_sema(g_t *g, void *arg) {
  (void)g;
  unlock(&((syncsema_t *)arg)->lock);
  return true;
}

void gort__sync_acquire(gort_syncsema_t *ps, bool lifo, const char *reason, const void *obj) {
  syncsema_t *s = S(ps);
  lock(&s->lock);
  if (s->count > 0) {
    s->count--;
    unlock(&s->lock);
    return;
  }
  semawaiter_t w = {.next = NULL};
  gort__park_init(&w.pk);
  if (lifo) {
    w.next = s->head;
    s->head = &w;
    if (s->tail == NULL) s->tail = &w;
  } else {
    if (s->tail != NULL) s->tail->next = &w;
    else s->head = &w;
    s->tail = &w;
  }
  gort__park_block(&w.pk, unlock_sema, s, reason, obj);
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
  unlock(&s->lock);
  gort__park_wake(&w->pk);
}
