// sync's internal interface: the semaphore under every sync type. See
// mutex.c for the design.

#ifndef GORT_SYNC_SYNC_H
#define GORT_SYNC_SYNC_H

#include "../chan/chan.h"
#include "gort/sync.h"

// gort_syncsema_t's fields as the implementation sees them.
typedef struct semawaiter semawaiter_t;
typedef struct {
  lock_t lock;                 // rank LOCK_SYNC; guards the rest
  uint32_t count;              // releases not yet taken
  semawaiter_t *head, *tail;   // FIFO of blocked acquirers
} syncsema_t;

_Static_assert(sizeof(syncsema_t) == sizeof(gort_syncsema_t), "gort_syncsema_t's size");
_Static_assert(_Alignof(syncsema_t) <= _Alignof(gort_syncsema_t), "gort_syncsema_t's alignment");

// Go's semacquire: takes a count, waiting for one. lifo: queue at the head
// (a waiter that has waited already, so it does not lose its place).
// reason and obj are for the goroutine dump.
void gort__sync_acquire(gort_syncsema_t *s, bool lifo, const char *reason, const void *obj);
// The same, and if the caller is still blocked after rescue_ns, it runs
// rescue(arg) once, then goes on waiting in its place in the queue (sema.c;
// the mutex's lost-wake rescue, mutex.c).
void gort__sync_acquire_rescued(gort_syncsema_t *s, bool lifo, int64_t rescue_ns,
                                void (*rescue)(void *), void *arg, const char *reason,
                                const void *obj);
// Go's semrelease: wakes the first waiter (handing it the count), or adds
// one to the count.
void gort__sync_release(gort_syncsema_t *s);

#endif  // GORT_SYNC_SYNC_H
