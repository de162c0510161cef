// Per-thread walk memos (unwind.h).
//
// A recorder that walks the stack on many allocations keeps, per thread,
// a memo of its last walk and of the last few whole stacks it named, so
// that a repeat costs a check of the stack's words instead of a walk and
// a lookup (unwind.c, "Memo and kept walks"). Memos are about 19 KiB:
// they come from persistent memory (never the heap being recorded, and
// no malloc inside malloc) and go back to the recorder's pool when their
// thread exits (a pthread key's destructor), for the next new thread to
// take. They are zeroed on the way out: a kept walk is only valid on the
// thread that made it, whose thread pointer decides where its stack ends
// (unwind.c, step 6), so nothing a memo knew may pass to another thread.

#include "memopool.h"

#include <stdatomic.h>
#include <string.h>

#include "../base/base.h"
#include "../base/persistent.h"

void gort__memo_pool_init(memo_pool_t *p, size_t size, void (*exited)(void *memo)) {
  p->size = size;
  p->key_ok = pthread_key_create(&p->key, exited) == 0;
}

static void pool_lock(memo_pool_t *p) {
  for (unsigned k = 0; atomic_exchange_explicit(&p->lock, 1, memory_order_acquire) != 0;) gort__spin_turn(&k);
}
static void pool_unlock(memo_pool_t *p) { atomic_store_explicit(&p->lock, 0, memory_order_release); }

void *gort__memo_pool_first(memo_pool_t *p, void **slot) {
  if (!p->key_ok) return NULL;
  pool_lock(p);
  void *m = p->free;
  if (m != NULL) memcpy(&p->free, m, sizeof p->free);
  pool_unlock(p);
  if (m == NULL) m = gort__persistent_alloc(p->size, 64);
  if (m == NULL) return NULL;
  memset(m, 0, p->size);
  // Stored before the key registers it: the registration may allocate
  // (glibc's keys past the 32nd), and that allocation's record must find
  // this memo, not take another (each took one more, until the stack
  // overflowed).
  *slot = m;
  pthread_setspecific(p->key, m);
  return m;
}

void gort__memo_pool_exited(memo_pool_t *p, void **slot, void *memo) {
  *slot = MEMO_POOL_DEAD;
  pool_lock(p);
  memcpy(memo, &p->free, sizeof p->free);
  p->free = memo;
  pool_unlock(p);
}

void gort__memo_pool_after_fork(memo_pool_t *p) { atomic_store_explicit(&p->lock, 0, memory_order_relaxed); }
