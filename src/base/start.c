// Start-up: the runtime starts in one place, whatever the first call is.
//
// A process may enter gort first through malloc before main (ld.so, a
// library's constructor), through a C++ operator new, through a gort_* call
// in a program linked statically that never names malloc, or through our
// own load-time constructor. Each of these reaches gort__start_ensure(),
// and the first one runs start_layers() below, Go's schedinit: the layers'
// init functions called by name, bottom-up, in one list. Because this file
// names them, linking any entry point links every layer; nothing starts as
// a side effect of which object files the linker happened to pull in.
//
// Steps (the state word says how far we are):
//   1. base: the options (GORT_* variables; no allocation).
//   2. alloc: keys, modes and the scavenger's hooks (no allocation).
//      State 2: allocation works from here on, in every thread.
//   3. the layers that may allocate while starting: alloc's fork handlers,
//      the collector (its lists, hooks and the main thread's record; its
//      threads and signal handler wait for the first cycle), the pools
//      (their hooks in the collector and the scavenger), the
//      observability layer (profiler, exit reports), and the scheduler
//      (its options and signal handlers; its threads start with the first
//      goroutine), each registering what it needs.
//   4. the fork handlers are installed once, with pthread_atfork; they run
//      the registered hooks (a linked list: no table to overflow).
// A thread that calls in while another thread is in steps 1-2 waits on the
// start lock; a re-entrant call from step 3 (a layer that allocates) sees
// state 2 and goes on. Nothing in steps 1-2 allocates, so this never
// recurses into itself.
//
// This is the one file in base that names functions of the layers above
// it: the start-up order is the architecture, and it belongs in one list.
//
// It also names the shim, so that linking libgort.a statically cannot
// leave gort half in. The linker takes an archive's object only for a
// symbol something already needs: a C++ program got gort's operator new
// (and, through it, this file) but glibc's malloc, and two heaps. Every
// entry reaches this file, so the anchor below brings in the libc names
// (shim.c, which brings in the C++ operators) wherever any of gort is
// linked. A program whose own code calls nothing of gort's (only strdup,
// say) needs the link flag in gort.pc's static flags instead (#15).

#include "start.h"

#include <pthread.h>

#include "../alloc/alloc_init.h"
#include "../gc/gc.h"
#include "../obs/obs.h"
#include "../sched/sched.h"
#include "../pool/pool.h"
#include "lock.h"
#include "options.h"

_Atomic int gort__start_state;

#ifndef GORT_NO_SHIM
extern const char gort__shim_anchor GORT_HIDDEN;
__attribute__((used)) static const char *const shim_anchor = &gort__shim_anchor;
#endif

static struct {
  lock_t lock;         // rank LOCK_START; guards steps 1-2 and the hook list
  fork_hook_t *hooks, *last;  // ascending rank; written under lock during start-up
} start = {.lock = LOCK_INIT};

void gort__start_add_fork_hook(fork_hook_t *h) {
  lock(&start.lock);
  fork_hook_t *prev = NULL, *next = start.hooks;
  while (next != NULL && next->rank <= h->rank) prev = next, next = next->next;
  h->prev = prev;
  h->next = next;
  if (next != NULL) next->prev = h;
  if (prev != NULL) prev->next = h; else start.hooks = h;
  if (next == NULL) start.last = h;
  unlock(&start.lock);
}

// The list is complete before any fork can run these (installed last).
static void run_prepare(void) {
  for (fork_hook_t *h = start.hooks; h != NULL; h = h->next)
    if (h->prepare != NULL) h->prepare();
}

static void run_after(bool child) {
  for (fork_hook_t *h = start.last; h != NULL; h = h->prev) {
    void (*fn)(void) = child ? h->child : h->parent;
    if (fn != NULL) fn();
  }
}

static void run_parent(void) { run_after(false); }
static void run_child(void) { run_after(true); }

GORT_NOINLINE void gort__start_slow(void) {
  lock(&start.lock);
  if (atomic_load_explicit(&gort__start_state, memory_order_relaxed) != 0) {
    unlock(&start.lock);
    return;  // started, or being started by this very thread (steps 3-4)
  }
  atomic_store_explicit(&gort__start_state, 1, memory_order_relaxed);
  gort__options_init();  // 1
  gort__alloc_init();    // 2
  atomic_store_explicit(&gort__start_state, 2, memory_order_release);
  unlock(&start.lock);
  gort__alloc_init_late();  // 3: may allocate
  gort__gc_init();
  gort__pool_init();
  gort__obs_init();
  gort__sched_init();
  pthread_atfork(run_prepare, run_parent, run_child);  // 4
  atomic_store_explicit(&gort__start_state, 3, memory_order_release);
}

// Start at load time too, so that a bad GORT_* variable is reported even in
// a program that never allocates; the first malloc may come earlier.
__attribute__((constructor)) static void start_at_load(void) { gort__start_ensure(); }
