/* gort: mutual exclusion and waiting (Go: package sync).
 *
 * Every type is ready at its zero value (a static, or memset to 0, or
 * = {0}), and works for goroutines and plain threads alike: a goroutine
 * that waits parks and its thread runs other goroutines; a plain thread
 * sleeps in the kernel. None may be copied once used.
 *
 *   gort_mutex_t      Go's sync.Mutex: a short spin, then a FIFO queue of
 *                     waiters; a waiter that has waited over 1 ms switches
 *                     the mutex to starvation mode, in which unlock hands
 *                     it straight to the first waiter, so no waiter waits
 *                     forever behind newcomers that keep barging in.
 *   gort_rwmutex_t    Go's sync.RWMutex: many readers or one writer; a
 *                     waiting writer keeps new readers out.
 *   gort_waitgroup_t  Go's sync.WaitGroup: add, done, wait for zero.
 *   gort_once_t       Go's sync.Once: runs a function exactly once.
 *   gort_cond_t       Go's sync.Cond: wait with a mutex, signal, broadcast.
 *
 * Misuse is fatal, with Go's words: "gort: fatal error: sync: unlock of
 * unlocked mutex", "sync: RUnlock of unlocked RWMutex", "sync: Unlock of
 * unlocked RWMutex", "sync: negative WaitGroup counter". A mutex is not
 * tied to the goroutine or thread that locked it (as in Go).
 */
#ifndef GORT_SYNC_H
#define GORT_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "api.h"

GORT_BEGIN_DECLS

/* A wait queue with a count (Go's runtime semaphore). Private fields. */
typedef struct {
  uint32_t lock_;
  uint32_t count_;
  void *head_, *tail_;
} gort_syncsema_t;

typedef struct {
  uint64_t state_;  /* the lock word (low half), and waiters and mode */
  gort_syncsema_t sema_;
} gort_mutex_t;
GORT_API void gort_mutex_lock(gort_mutex_t *m);
GORT_API bool gort_mutex_trylock(gort_mutex_t *m);
GORT_API void gort_mutex_unlock(gort_mutex_t *m);

typedef struct {
  gort_mutex_t w_;
  gort_syncsema_t writer_sem_, reader_sem_;
  int32_t reader_count_, reader_wait_;
} gort_rwmutex_t;
GORT_API void gort_rwmutex_rlock(gort_rwmutex_t *rw);
GORT_API void gort_rwmutex_runlock(gort_rwmutex_t *rw);
GORT_API void gort_rwmutex_lock(gort_rwmutex_t *rw);
GORT_API void gort_rwmutex_unlock(gort_rwmutex_t *rw);

typedef struct {
  uint64_t state_;  /* counter << 32 | waiters */
  gort_syncsema_t sema_;
} gort_waitgroup_t;
/* Adds delta (may be negative) to the counter; at zero, every waiter wakes. */
GORT_API void gort_waitgroup_add(gort_waitgroup_t *wg, int64_t delta);
GORT_API void gort_waitgroup_done(gort_waitgroup_t *wg);
/* Waits until the counter is zero. */
GORT_API void gort_waitgroup_wait(gort_waitgroup_t *wg);

typedef struct {
  uint32_t done_;
  gort_mutex_t m_;
} gort_once_t;
/* Calls fn(arg) if no call of gort_once_do on o has yet; every caller
 * returns only once that one call has returned. */
GORT_API void gort_once_do(gort_once_t *o, void (*fn)(void *), void *arg);

typedef struct {
  uint32_t wait_, notify_;   /* tickets: next to hand out, next to wake */
  uint32_t lock_;
  void *head_, *tail_;
} gort_cond_t;
/* Unlocks m, waits for a signal or broadcast, locks m again. As in Go, a
 * wake does not mean the condition holds: wait in a loop. */
GORT_API void gort_cond_wait(gort_cond_t *c, gort_mutex_t *m);
GORT_API void gort_cond_signal(gort_cond_t *c);
GORT_API void gort_cond_broadcast(gort_cond_t *c);

GORT_END_DECLS

#endif /* GORT_SYNC_H */
