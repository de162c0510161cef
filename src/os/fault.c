// Memory faults: the one SIGSEGV and SIGBUS handler, shared by the parts of
// gort that need one, and the program's own handlers chained behind it.
//
// Two parts of gort take faults: a goroutine stack overflow into a guard
// page (sched/stack.c) and, with GORT_DEBUG=gcdirty=mprotect, the first
// write to a write-protected granule of the heap (gc/dirty_mprotect.c).
// Each registers a hook; the handler asks the hooks in slot order, and a
// fault none of them claims goes to the program's handler, as if gort
// were not there:
//   1. The handler is installed once, at the first hook, on the alternate
//      signal stack where the thread has one (a stack overflow leaves no
//      room on the faulting one). The disposition it replaces is the
//      program's, recorded.
//   2. gort exports sigaction and signal (as bdwgc wraps them for its
//      incremental mode), so that a program that installs its handler
//      after gort's records it instead of replacing gort's: gort's stays
//      first, and sigaction reports the program's own as the current one.
//      Other signals go straight to libc.
//   3. A fault no hook claims runs the program's handler as the kernel
//      would: SA_SIGINFO or plain, with the signal mask the kernel would
//      have set (the mask at the fault and the handler's sa_mask) but
//      never the fault's own signal (the handler may write into a granule
//      gort protects: blocked, that fault killed the process), SA_RESETHAND
//      honoured. With no handler (SIG_DFL, or
//      SIG_IGN, which the kernel does not honour for a fault either) the
//      default disposition is restored and the faulting instruction runs
//      again, so a real segfault still dumps core with SIGSEGV; a SIGSEGV
//      sent with kill is sent again, to be taken after the handler.
//   4. Every signal is blocked while the hooks run (a program's handler
//      that ran inside this one would meet SIGSEGV blocked). The program's
//      handler then runs with the mask the kernel would have given it,
//      less the signals a hook names as gort's own (the collector's stop
//      signal: gc/dirty_mprotect.c says why), which its sa_mask may not
//      block there; it may never return (siglongjmp). The sigaction
//      wrapper also takes SIGSEGV and SIGBUS out of every handler's
//      sa_mask.
// Hooks run in a signal handler: they are async-signal-safe and take no
// lock. Not covered: bsd_signal, sysv_signal and __sigaction (rare), and
// sigaction(2) made with syscall(2): a program that reaches the kernel
// directly replaces gort's handler. The ThreadSanitizer build (no libc
// names of gort's) does not wrap either: TSan has its own interceptors.

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "../base/base.h"
#include "os.h"

static struct {
  _Atomic uint32_t lock;               // spin lock: installing, and the wrappers' updates
  gort__os_fault_hook_t hook[GORT_FAULT_HOOKS];  // set once each, before the handler can see it
  struct sigaction prog[2];            // the program's SIGSEGV and SIGBUS actions; under lock
  sigset_t keep_blocked;               // gort's own: never blocked for the program's handler (step 4); under lock
  _Atomic bool installed;
} flt;

static int slot_of(int sig) { return sig == SIGSEGV ? 0 : 1; }

static void flock_take(void) {
  while (atomic_exchange_explicit(&flt.lock, 1, memory_order_acquire) != 0) __builtin_ia32_pause();
}
static void flock_drop(void) { atomic_store_explicit(&flt.lock, 0, memory_order_release); }

// libc's sigaction itself (gort's wraps it below).
#ifdef GORT_NO_SHIM
#define real_sigaction sigaction
#else
extern int __sigaction(int, const struct sigaction *, struct sigaction *);
#define real_sigaction __sigaction
#endif

static void on_fault(int sig, siginfo_t *info, void *uctx);

// Installs (again) gort's handler for SIGSEGV and SIGBUS (lock held).
static int install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  // Every signal blocked while the hooks run (chain sets the program's
  // mask before its handler runs): a program's SIGALRM or SIGPROF handler
  // that ran inside this one, SIGSEGV blocked, died at its first write to
  // a protected granule (a helper's hunt, gcdirty=mprotect: 9 of 9 runs).
  sigfillset(&sa.sa_mask);
  bool first = !atomic_load_explicit(&flt.installed, memory_order_relaxed);
  int saved = errno;
  int r = 0;
  for (int i = 0; i < 2 && r == 0; i++) {
    int sig = i == 0 ? SIGSEGV : SIGBUS;
    if (real_sigaction(sig, &sa, first ? &flt.prog[i] : NULL) != 0) r = -errno;
  }
  errno = saved;
  if (r == 0) atomic_store_explicit(&flt.installed, true, memory_order_release);
  return r;
}

int gort__os_fault_hook(int slot, gort__os_fault_hook_t fn, int keep_blocked) {
  flock_take();
  int r = 0;
  if (keep_blocked > 0) sigaddset(&flt.keep_blocked, keep_blocked);
  flt.hook[slot] = fn;
  if (!atomic_load_explicit(&flt.installed, memory_order_relaxed)) r = install();
  flock_drop();
  return r;
}

// ---- the handler ----------------------------------------------------------------------------

// Runs the program's action for a fault no hook claimed (step 3).
static void chain(int sig, siginfo_t *info, ucontext_t *uc) {
  struct sigaction *p = &flt.prog[slot_of(sig)];
  void (*fn)(int) = p->sa_handler;
  if (fn == SIG_DFL || fn == SIG_IGN) {  // (sa_handler and sa_sigaction share their storage)
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(sig, &dfl, NULL);
    // A fault happens again when the instruction runs again; a signal
    // someone sent (si_code <= 0) must be sent again. Blocked here, it
    // is taken on return, with the default action.
    if (info->si_code <= 0) gort__os_tgkill(gort__os_gettid(), sig);
    return;
  }
  struct sigaction act = *p;
  if (act.sa_flags & SA_RESETHAND) {
    memset(p, 0, sizeof *p);
    p->sa_handler = SIG_DFL;
  }
  sigset_t m = uc->uc_sigmask;
  for (int s = 1; s < NSIG; s++)
    if (sigismember(&act.sa_mask, s) == 1 && sigismember(&flt.keep_blocked, s) != 1) sigaddset(&m, s);
  // The fault itself blocked as the kernel would, unless gort protects
  // heap granules (the mprotect backend's hook): the program's handler may
  // write into one, and that fault, blocked, kills the process; unblocked,
  // it comes back here and gort unprotects the granule. (A handler that
  // faults on its own account then recurses until its stack runs out,
  // where the kernel would have killed it at once: a crash either way.)
  bool heap_protected = sig == SIGSEGV && flt.hook[GORT_FAULT_HOOK_DIRTY] != NULL;
  if (!heap_protected && !(act.sa_flags & SA_NODEFER)) sigaddset(&m, sig);
  gort__os_sigmask(SIG_SETMASK, &m, NULL);
  if (act.sa_flags & SA_SIGINFO) act.sa_sigaction(sig, info, uc);
  else act.sa_handler(sig);
}

static void on_fault(int sig, siginfo_t *info, void *uctx) {
  int saved = errno;
  for (int i = 0; i < GORT_FAULT_HOOKS; i++) {
    gort__os_fault_hook_t h = flt.hook[i];
    if (h != NULL && h(sig, info, uctx)) {
      errno = saved;
      return;
    }
  }
  errno = saved;
  chain(sig, info, uctx);
}

// ---- the program's calls (step 2) -----------------------------------------------------------

// Whether the program ever installed a signal handler through sigaction or
// signal: the collector's stops then signal its sleeping threads (gc/stw.c,
// "Blocked threads": a handler may run, or siglongjmp, in a sleep).
_Atomic bool gort__os_handlers_installed;

// gort's own handlers (the stop signal, the profile signal) go past the
// wrapper below: they are not the program's.
int gort__os_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  return real_sigaction(sig, act, old);
}

#ifndef GORT_NO_SHIM

#define EXPORT __attribute__((visibility("default")))

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old);
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  // The program's first handler: from here on a sleep may run inside one,
  // and clock_nanosleep's wrapper (gc/blocking.c) must not then look
  // libc's up with dlsym, which is not async-signal-safe. So now.
  if (act != NULL && act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN &&
      !atomic_exchange_explicit(&gort__os_handlers_installed, true, memory_order_relaxed))
    (void)gort__os_clock_nanosleep_fn();
  if ((sig != SIGSEGV && sig != SIGBUS) || !atomic_load_explicit(&flt.installed, memory_order_acquire)) {
    // A handler's sa_mask never blocks the faults gort takes (dirty.c, point
    // 5): with sigfillset in it, a handler's first write to a protected
    // granule killed the process (a helper's hunt: 6 of 6 runs).
    if (act != NULL && (sigismember(&act->sa_mask, SIGSEGV) == 1 || sigismember(&act->sa_mask, SIGBUS) == 1)) {
      struct sigaction a = *act;
      sigdelset(&a.sa_mask, SIGSEGV);
      sigdelset(&a.sa_mask, SIGBUS);
      return real_sigaction(sig, &a, old);
    }
    return real_sigaction(sig, act, old);
  }
  flock_take();
  struct sigaction *p = &flt.prog[slot_of(sig)];
  if (old != NULL) *old = *p;
  if (act != NULL) *p = *act;
  flock_drop();
  return 0;
}

EXPORT sighandler_t signal(int sig, sighandler_t handler);
sighandler_t signal(int sig, sighandler_t handler) {
  // glibc's signal: BSD semantics, the signal blocked while its handler runs.
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESTART;
  sigemptyset(&act.sa_mask);
  if (sig > 0 && sig < NSIG) sigaddset(&act.sa_mask, sig);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

// glibc's other calls that install a handler reach its own sigaction
// inside libc, past the wrapper above, so they are written here over it:
// unseen, a handler installed with sigset around a sleep or a poll ran on
// a thread a stop took as blocked, and its siglongjmp left the thread
// running with the stop still taking it as blocked (gc/blocking.c): an
// object only its later frames held was freed in 6 of 20 runs. Weak, as
// libc.a's are, so that a program may still define its own.
EXPORT __attribute__((weak)) sighandler_t bsd_signal(int sig, sighandler_t handler);
sighandler_t bsd_signal(int sig, sighandler_t handler) { return signal(sig, handler); }

EXPORT __attribute__((weak)) sighandler_t ssignal(int sig, sighandler_t handler);
sighandler_t ssignal(int sig, sighandler_t handler) { return signal(sig, handler); }

// System V semantics: the handler is reset when it runs, the signal is
// not blocked meanwhile, and calls it interrupts are not restarted.
static sighandler_t sysv_signal_impl(int sig, sighandler_t handler) {
  if (handler == SIG_ERR || sig <= 0 || sig >= NSIG) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction act, old;
  memset(&act, 0, sizeof act);
  act.sa_handler = handler;
  act.sa_flags = SA_RESETHAND | SA_NODEFER;
  sigemptyset(&act.sa_mask);
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

EXPORT __attribute__((weak)) sighandler_t sysv_signal(int sig, sighandler_t handler);
sighandler_t sysv_signal(int sig, sighandler_t handler) { return sysv_signal_impl(sig, handler); }

EXPORT __attribute__((weak)) sighandler_t __sysv_signal(int sig, sighandler_t handler);
sighandler_t __sysv_signal(int sig, sighandler_t handler) { return sysv_signal_impl(sig, handler); }

// SIG_HOLD blocks sig and leaves its disposition; anything else installs
// it and unblocks sig. Returns SIG_HOLD if sig was blocked before, else
// its previous disposition.
EXPORT __attribute__((weak)) sighandler_t sigset(int sig, sighandler_t disp);
sighandler_t sigset(int sig, sighandler_t disp) {
  sigset_t one, was;
  sigemptyset(&one);
  if (sig <= 0 || sig >= NSIG || sigaddset(&one, sig) != 0) {
    errno = EINVAL;
    return SIG_ERR;
  }
  struct sigaction old;
  if (disp == SIG_HOLD) {
    if (sigaction(sig, NULL, &old) != 0 || sigprocmask(SIG_BLOCK, &one, &was) != 0) return SIG_ERR;
  } else {
    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigemptyset(&act.sa_mask);
    if (sigaction(sig, &act, &old) != 0 || sigprocmask(SIG_UNBLOCK, &one, &was) != 0) return SIG_ERR;
  }
  return sigismember(&was, sig) ? SIG_HOLD : old.sa_handler;
}

#endif
