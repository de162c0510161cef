// Reader/writer mutexes (Go: sync/rwmutex.go). See mutex.c.
//
// reader_count counts the readers inside or waiting; a writer that arrives
// subtracts MAX_READERS from it, so that new readers see a negative count
// and block on reader_sem, and waits on writer_sem for the readers that
// were inside (reader_wait of them) to leave. Unlock adds MAX_READERS back
// and lets the blocked readers in. Writers exclude each other with w.

#include "sync.h"

#define MAX_READERS (1 << 30)

static inline _Atomic int32_t *rc(gort_rwmutex_t *rw) { return (_Atomic int32_t *)&rw->reader_count_; }
static inline _Atomic int32_t *rwait(gort_rwmutex_t *rw) { return (_Atomic int32_t *)&rw->reader_wait_; }

void gort_rwmutex_rlock(gort_rwmutex_t *rw) {
  if (atomic_fetch_add_explicit(rc(rw), 1, memory_order_acquire) + 1 < 0)
    gort__sync_acquire(&rw->reader_sem_, false, "sync.RWMutex.RLock", rw);  // a writer is pending
}

void gort_rwmutex_runlock(gort_rwmutex_t *rw) {
  int32_t r = atomic_fetch_sub_explicit(rc(rw), 1, memory_order_release) - 1;
  if (gort_likely(r >= 0)) return;
  if (r + 1 == 0 || r + 1 == -MAX_READERS) gort__fatal("sync: RUnlock of unlocked RWMutex", rw);
  // A writer waits: the last reader it waits for wakes it.
  if (atomic_fetch_sub_explicit(rwait(rw), 1, memory_order_acq_rel) - 1 == 0)
    gort__sync_release(&rw->writer_sem_);
}

void gort_rwmutex_lock(gort_rwmutex_t *rw) {
  gort_mutex_lock(&rw->w_);
  int32_t r = atomic_fetch_sub_explicit(rc(rw), MAX_READERS, memory_order_acq_rel);
  if (r != 0 && atomic_fetch_add_explicit(rwait(rw), r, memory_order_acq_rel) + r != 0)
    gort__sync_acquire(&rw->writer_sem_, false, "sync.RWMutex.Lock", rw);
}

void gort_rwmutex_unlock(gort_rwmutex_t *rw) {
  int32_t r = atomic_fetch_add_explicit(rc(rw), MAX_READERS, memory_order_release) + MAX_READERS;
  if (r >= MAX_READERS) gort__fatal("sync: Unlock of unlocked RWMutex", rw);
  for (int32_t i = 0; i < r; i++) gort__sync_release(&rw->reader_sem_);
  gort_mutex_unlock(&rw->w_);
}
