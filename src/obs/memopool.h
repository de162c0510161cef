// Per-thread walk memos (unwind.h) for the recorders that walk the stack
// often: the leak check (every allocation) and the heap profiler (every
// sample). See memopool.c.

#ifndef GORT_OBS_MEMOPOOL_H
#define GORT_OBS_MEMOPOOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>

// One recorder's memos: size bytes each, whatever the recorder puts
// around its unwind_memo_t. Zeroed is not ready: gort__memo_pool_init.
typedef struct {
  _Atomic unsigned lock;  // a spin lock: held for a push or a pop
  void *free;             // memos whose threads exited; each one's first word links the next
  size_t size;
  pthread_key_t key;      // its destructor gives the exiting thread's memo back
  bool key_ok;
} memo_pool_t;

// exited runs on a thread's exit with its memo (never NULL): the recorder
// calls gort__memo_pool_exited with its thread pointer.
void gort__memo_pool_init(memo_pool_t *p, size_t size, void (*exited)(void *memo));

// A recorder keeps its thread's memo in a thread pointer of its own (a
// GORT_TLS void *): NULL until the first use, MEMO_POOL_DEAD once the
// thread's exit gave the memo back.
#define MEMO_POOL_DEAD ((void *)1)
// The first use: a zeroed memo, stored in *slot, then registered for the
// thread's exit; NULL if there is no memory or no key (the recorder then
// walks without one).
void *gort__memo_pool_first(memo_pool_t *p, void **slot);
// The calling thread's memo through its recorder's thread pointer.
static inline void *gort__memo_pool_get(memo_pool_t *p, void **slot) {
  void *m = *slot;
  if (__builtin_expect(m != NULL, 1)) return m == MEMO_POOL_DEAD ? NULL : m;
  return gort__memo_pool_first(p, slot);
}
// From the recorder's exited: marks *slot dead, keeps the memo for the
// next thread.
void gort__memo_pool_exited(memo_pool_t *p, void **slot, void *memo);
// In a forked child: the lock may have been held by a thread that is gone.
void gort__memo_pool_after_fork(memo_pool_t *p);

#endif  // GORT_OBS_MEMOPOOL_H
