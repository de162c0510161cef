// Goroutine dumps (Go's traceback of all goroutines, without the stacks'
// frames yet): the tool for finding a goroutine leak, a goroutine blocked
// for ever. See proc.c for the scheduler.
//
// The dump reads every G without stopping anything: a goroutine that runs
// meanwhile may be shown in its old state. It allocates nothing and uses
// only write(2), so that the SIGQUIT handler may call it; dladdr (for the
// creation site of a goroutine started without the gort_go macro) is the
// one call that takes a lock, the loader's, and only then.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "../base/options.h"
#include "../os/os.h"
#include "gort/sched.h"
#include "proc.h"

static const char *state_name(uint32_t st) {
  switch (st) {
    case G_RUNNABLE: return "runnable";
    case G_RUNNING: return "running";
    case G_SYSCALL: return "syscall";
    case G_WAITING: return "waiting";
    default: return "?";
  }
}

// Go's "[chan receive, 5 minutes]": the wait and, past a minute, its length
// in minutes; gort gives shorter waits too, in ms or s.
static void print_wait(int fd, const char *what, int64_t ns) {
  if (ns >= 60LL * 1000000000) gort__print_fd(fd, "[%s, %lld minutes]", what, (long long)(ns / 60000000000LL));
  else if (ns >= 1000000000) gort__print_fd(fd, "[%s, %lld s]", what, (long long)(ns / 1000000000));
  else gort__print_fd(fd, "[%s, %lld ms]", what, (long long)(ns / 1000000));
}

// Racy reads by design (above): not ThreadSanitizer's business.
#if defined(__SANITIZE_THREAD__)
#define RACY __attribute__((no_sanitize_thread))
#else
#define RACY
#endif

// Go prints the goroutine's frames and "created by <the caller of go>";
// without a stack walk yet, gort prints the goroutine's function and where
// gort_go was called (the gort_go macro's file:line).
RACY static void print_site(int fd, const g_t *g) {
  Dl_info info;
  const char *sym = NULL;
  if (dladdr((void *)(uintptr_t)g->fn, &info) != 0 && info.dli_sname != NULL) sym = info.dli_sname;
  if (sym != NULL) gort__print_fd(fd, "%s(%p)\n", sym, g->arg);
  else gort__print_fd(fd, "function %p(%p)\n", (void *)(uintptr_t)g->fn, g->arg);
  if (g->file != NULL) gort__print_fd(fd, "\tcreated at %s:%d\n", g->file, g->line);
}

RACY void gort__sched_dump_fd(int fd) {
  int64_t now = gort__os_nanotime_coarse();  // the clock of waitsince
  for (g_t *g = gort__sched_allgs(); g != NULL; g = g->alllink) {
    uint32_t st = atomic_load_explicit(&g->status, memory_order_acquire);
    if (st == G_DEAD || st == G_IDLE) continue;
    gort__print_fd(fd, "goroutine %lld ", (long long)g->id);
    if (st == G_WAITING || st == G_SYSCALL) {
      print_wait(fd, g->waitreason != NULL ? g->waitreason : state_name(st), now - g->waitsince);
    } else {
      gort__print_fd(fd, "[%s]", state_name(st));
    }
    gort__print_fd(fd, ":\n");
    if (st == G_WAITING && g->waitobj != NULL) gort__print_fd(fd, "waiting on %p\n", g->waitobj);
    print_site(fd, g);
    gort__print_fd(fd, "\n");
  }
}

void gort_goroutines_dump(int fd) { gort__sched_dump_fd(fd); }

// GORT_DEBUG=sigquit=1: Go's response to SIGQUIT (^\), a dump and exit 2.
static void on_sigquit(int sig, siginfo_t *info, void *uctx) {
  (void)sig, (void)info, (void)uctx;
  gort__print_fd(2, "SIGQUIT: quit\n\n");
  gort__sched_dump_fd(2);
  _exit(2);
}

void gort__sched_signals_init(void) {
  if (gort__opts.sigquit) gort__os_sigaction(SIGQUIT, on_sigquit);
}
