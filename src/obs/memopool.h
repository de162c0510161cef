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
// marks its thread pointer dead, then calls gort__memo_pool_give.
void gort__memo_pool_init(memo_pool_t *p, size_t size, void (*exited)(void *memo));
// A zeroed memo for the calling thread; NULL if there is no memory or no
// key (the recorder then walks without one). The recorder stores it in
// its thread pointer, then registers it for the thread's exit: the
// registration may allocate (glibc's keys past the 32nd), and that
// allocation's record must find the memo, not take another (it did, until
// the stack overflowed).
void *gort__memo_pool_take(memo_pool_t *p);
void gort__memo_pool_register(memo_pool_t *p, void *memo);
void gort__memo_pool_give(memo_pool_t *p, void *memo);
// In a forked child: the lock may have been held by a thread that is gone.
void gort__memo_pool_after_fork(memo_pool_t *p);

#endif  // GORT_OBS_MEMOPOOL_H
