// Once (Go: sync/once.go). See mutex.c.
//
// The fast path is one acquire load of done. The slow path takes the
// mutex, so that a second caller waits for the first call to return (Go's
// guarantee: when Do returns, f has run), and done is set only after fn
// returns.

#include "sync.h"

void gort_once_do(gort_once_t *o, void (*fn)(void *), void *arg) {
  _Atomic uint32_t *done = (_Atomic uint32_t *)&o->done_;
  if (gort_likely(atomic_load_explicit(done, memory_order_acquire) != 0)) return;
  gort_mutex_lock(&o->m_);
  if (atomic_load_explicit(done, memory_order_relaxed) == 0) {
    fn(arg);
    atomic_store_explicit(done, 1, memory_order_release);
  }
  gort_mutex_unlock(&o->m_);
}
