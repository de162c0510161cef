// fork(): the child must get a heap whose locks are free and whose
// structures are consistent, even when other threads were allocating.
//
// Before the fork the start-up module's handler (base/start.c) runs every
// layer's prepare hook in lock-rank order; ours takes every allocator lock
// (caches, every mcentral, the page heap's release and heap locks,
// persistent memory), so
// no shared structure is mid-update; after the fork the parent releases
// them and the child re-initializes them.
//
// What no lock guards are the owner-only parts of other threads' caches:
// their span lists, free lists and counts, which their owners change with
// plain stores. A fork can copy them half-updated, so the child must not
// walk them (it once did, and crashed or looped in span_list_remove). In
// the child only the forking thread exists: the others' caches are
// quarantined (mcache.c), their spans left to caches nobody runs. Blocks
// freed into those spans are lost to the child; that is bounded by what
// the other threads owned at the fork, and a child usually execs or exits.
// The scavenger thread is gone too (scavenger.c).

#include "../base/lock.h"
#include "../base/persistent.h"
#include "alloc_init.h"
#include "mcache.h"
#include "mcentral.h"
#include "mheap.h"
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
  gort__scavenger_suspend(1);  // its thread is gone; no wake-ups while we mend
  gort__scavenger_after_fork_child();
  gort__persistent_unlock_after_fork(1);
  gort__mheap_unlock_after_fork(1);
  gort__mcentral_unlock_after_fork(1);
  gort__mcache_unlock_after_fork(1);  // quarantines the other threads' caches
  gort__scavenger_suspend(0);
}

static fork_hook_t alloc_fork = {
    .name = "alloc", .rank = LOCK_CACHES, .prepare = prepare, .parent = parent, .child = child};

void gort__alloc_init_late(void) { gort__start_add_fork_hook(&alloc_fork); }
