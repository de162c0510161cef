// fork(): the child must get a heap whose locks are free and whose
// structures are consistent, even when other threads were allocating.
//
// Before the fork we take every allocator lock in rank order (caches,
// every mcentral, heap, persistent), so no structure is mid-update; after
// it the parent releases them and the child re-initializes them. In the
// child only the forking thread exists: the other threads' caches are
// handed back (mcache.c), and the scavenger thread is gone (scavenger.c).

#include <pthread.h>

#include "../base/persistent.h"
#include "mcache.h"
#include "mcentral.h"
#include "mheap.h"
#include "runtime_init.h"
#include "scavenger.h"

static void prepare(void) {
  gort__mcache_lock_for_fork();
  gort__mcentral_lock_for_fork();
  gort__mheap_lock_for_fork();
  gort__persistent_lock_for_fork();
}

static void parent(void) {
  gort__persistent_unlock_after_fork(0);
  gort__mheap_unlock_after_fork(0);
  gort__mcentral_unlock_after_fork(0);
  gort__mcache_unlock_after_fork(0);
}

static void child(void) {
  gort__scavenger_suspend(1);
  gort__scavenger_after_fork_child();
  gort__persistent_unlock_after_fork(1);
  gort__mheap_unlock_after_fork(1);
  gort__mcentral_unlock_after_fork(1);
  gort__mcache_unlock_after_fork(1);  // hands the other threads' caches back
  gort__scavenger_suspend(0);
}

void gort__fork_init(void) { pthread_atfork(prepare, parent, child); }
