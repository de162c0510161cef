// Threads and signals: the kernel calls the collector needs to find and
// stop threads. See os.h for the contract.
//
// gort exports its own pthread_create (gc/stw.c) so that it sees every
// thread start; its own threads, and that wrapper, reach the real one
// through gort__os_pthread_create, found once with dlsym(RTLD_NEXT) (the
// next definition after gort's: libc's, or a sanitizer's interceptor).

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <threads.h>
#include <unistd.h>

#include "../base/base.h"
#include "os.h"

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

// In a static program there is no dynamic symbol to look up: libc.a's
// pthread_create.o must be linked in, and its pthread_create is weak (so
// gort's wins) while __pthread_create_2_1, the same code, is strong. Nothing
// would pull that member in, since gort's pthread_create satisfies every
// reference; a reference to C11's thrd_create does (thrd_create.o calls
// __pthread_create_2_1), and it links anywhere, as libc.so exports it. The
// weak reference below is then the real function in a static program and
// NULL in a dynamic one. (Without this every static program died at its
// first thread, including the scavenger's: "cannot find the real
// pthread_create".)
extern int __pthread_create_2_1(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *)
    __attribute__((weak));
__attribute__((used)) static int (*const pull_libc_pthread_create)(thrd_t *, thrd_start_t, void *) =
    thrd_create;
// The same for the calls gc/pthread_wrap.c wraps: C11's thrd_join and
// thrd_exit call glibc's strong __pthread_join and __pthread_exit.
extern int __pthread_join(pthread_t, void **) __attribute__((weak));
extern void __pthread_exit(void *) __attribute__((weak, noreturn));
__attribute__((used)) static int (*const pull_libc_pthread_join)(thrd_t, int *) = thrd_join;
__attribute__((used)) static void (*const pull_libc_pthread_exit)(int) = thrd_exit;
// And C11's cnd_wait and cnd_timedwait call glibc's strong
// __pthread_cond_wait and __pthread_cond_timedwait.
extern int __pthread_cond_wait(pthread_cond_t *, pthread_mutex_t *) __attribute__((weak));
extern int __pthread_cond_timedwait(pthread_cond_t *, pthread_mutex_t *, const struct timespec *)
    __attribute__((weak));
__attribute__((used)) static int (*const pull_libc_cond_wait)(cnd_t *, mtx_t *) = cnd_wait;
__attribute__((used)) static int (*const pull_libc_cond_timedwait)(cnd_t *restrict, mtx_t *restrict,
                                                                  const struct timespec *restrict) = cnd_timedwait;

// The next definition of name after gort's (libc's, or a sanitizer's),
// else static's, else a fatal error: gort has wrapped it, so there must be one.
static void *real_fn(const char *name, void *static_fn) {
  if (static_fn != NULL) return static_fn;
  void *f = dlsym(RTLD_NEXT, name);
  if (f == NULL) gort__throw("os: cannot find the real pthread function");
  return f;
}

// real_fn, looked up once into *slot (a race only looks up twice): by
// version first where one is named, and fallback where nothing is found.
static void *real_fn_cached(_Atomic(void *) *slot, const char *name, const char *version, void *static_fn,
                            void *fallback) {
  void *f = atomic_load_explicit(slot, memory_order_acquire);
  if (f != NULL) return f;
  f = static_fn;
  if (f == NULL && version != NULL) f = dlvsym(RTLD_NEXT, name, version);
  if (f == NULL) f = dlsym(RTLD_NEXT, name);
  if (f == NULL) f = fallback;
  if (f == NULL) gort__throw("os: cannot find the real pthread function");
  atomic_store_explicit(slot, f, memory_order_release);
  return f;
}

int gort__os_pthread_join(pthread_t t, void **ret) {
  static _Atomic(void *) fn;
  void *f = real_fn_cached(&fn, "pthread_join", NULL, (void *)__pthread_join, NULL);
  return ((int (*)(pthread_t, void **))f)(t, ret);
}

// The clock-named waits gc/blocking.c wraps. In a static program libc.a's
// __clock_nanosleep is in the member that __nanosleep's pulls in (which
// blocking.c calls), and __pthread_cond_clockwait beside
// __pthread_cond_wait (pulled in above); libc.so exports neither, so a
// dynamic program finds them with dlsym.
extern int __clock_nanosleep(clockid_t, int, const struct timespec *, struct timespec *) __attribute__((weak));
extern int __pthread_cond_clockwait(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *)
    __attribute__((weak));

// The condition waits have two versions on x86-64: GLIBC_2.2.5's for the
// condition variables of before 2003, and GLIBC_2.3.2's, the default,
// which every program built since uses. Asked by name, dlsym gave the
// oldest before glibc 2.36 (its bug 14932): that one takes the
// condition variable's first word for a pointer to its own, so waiters
// slept on a private copy that no signal reached. So the version is
// named, and the name alone is the fallback (architectures with one).

gort_cond_wait_fn gort__os_cond_wait_fn(void) {
  static _Atomic(void *) fn;
  return (gort_cond_wait_fn)real_fn_cached(&fn, "pthread_cond_wait", "GLIBC_2.3.2", (void *)__pthread_cond_wait,
                                           NULL);
}

gort_cond_timedwait_fn gort__os_cond_timedwait_fn(void) {
  static _Atomic(void *) fn;
  return (gort_cond_timedwait_fn)real_fn_cached(&fn, "pthread_cond_timedwait", "GLIBC_2.3.2",
                                                (void *)__pthread_cond_timedwait, NULL);
}

// One version each (GLIBC_2.30's and 2.34's are the same code): the name
// alone finds it.
gort_cond_clockwait_fn gort__os_cond_clockwait_fn(void) {
  static _Atomic(void *) fn;
  return (gort_cond_clockwait_fn)real_fn_cached(&fn, "pthread_cond_clockwait", NULL,
                                                (void *)__pthread_cond_clockwait, NULL);
}

// Where neither is found (a static program on a libc whose nanosleep
// makes its own system call, so that nothing pulls __clock_nanosleep in),
// the system call itself, with clock_nanosleep's conventions: the error
// number returned, errno untouched. Not a cancellation point.
static int clock_nanosleep_syscall(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem) {
  int saved = errno;
  int r = syscall(SYS_clock_nanosleep, clock, flags, req, rem) == 0 ? 0 : errno;
  errno = saved;
  return r;
}

gort_clock_nanosleep_fn gort__os_clock_nanosleep_fn(void) {
  static _Atomic(void *) fn;
  return (gort_clock_nanosleep_fn)real_fn_cached(&fn, "clock_nanosleep", NULL, (void *)__clock_nanosleep,
                                                 (void *)clock_nanosleep_syscall);
}

void gort__os_pthread_exit(void *ret) {
  void *f = real_fn("pthread_exit", (void *)__pthread_exit);
  ((void (*)(void *))f)(ret);
  __builtin_unreachable();
}

// glibc reserves the kernel's first two real-time signals (32: thread
// cancellation, 33: setxid) and never lets a mask block them; neither may we.

int gort__os_sigmask(int how, const sigset_t *set, sigset_t *old) {
  sigset_t s;
  if (set != NULL) {
    s = *set;
    if (how != SIG_UNBLOCK) {
      // (By hand: glibc's sigdelset refuses these two.)
      s.__val[0] &= ~((1UL << (32 - 1)) | (1UL << (33 - 1)));
    }
  }
  long r = syscall(SYS_rt_sigprocmask, how, set != NULL ? &s : NULL, old, (long)(_NSIG / 8));
  return r == 0 ? 0 : errno;
}

static create_fn real_create(void) {
  static _Atomic(create_fn) fn;
  create_fn f = atomic_load_explicit(&fn, memory_order_acquire);
  if (f == NULL) {
    f = __pthread_create_2_1;
    if (f == NULL) f = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
    if (f == NULL) f = (create_fn)dlsym(RTLD_DEFAULT, "__pthread_create_2_1");
    if (f == NULL) gort__throw("os: cannot find the real pthread_create");
    atomic_store_explicit(&fn, f, memory_order_release);
  }
  return f;
}

int gort__os_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                            void *arg) {
  return real_create()(t, attr, fn, arg);
}

// gort's own threads are counted while they run, so that the deadlock
// detector (chan/deadlock.c) can tell the program's threads from gort's in
// the kernel's count. The count belongs to one process: a forked child,
// whose gort threads did not survive the fork, starts again from zero.
static _Atomic int internal_live;
static _Atomic int internal_pid;

static void internal_count(int delta) {
  int pid = getpid();
  int owner = atomic_load(&internal_pid);
  if (owner != pid && atomic_compare_exchange_strong(&internal_pid, &owner, pid))
    atomic_store(&internal_live, 0);
  atomic_fetch_add(&internal_live, delta);
}

int gort__os_internal_threads(void) {
  return atomic_load(&internal_pid) == getpid() ? atomic_load(&internal_live) : 0;
}

void gort__os_internal_runs_program(bool on) { internal_count(on ? -1 : 1); }

// The start record lives on the creator's stack until the new thread has
// copied it (taken), so that creating a thread allocates nothing.
typedef struct {
  void *(*fn)(void *);
  void *arg;
  _Atomic uint32_t taken;
} internal_start_t;

static void *internal_main(void *p) {
  internal_start_t *st = p;
  void *(*fn)(void *) = st->fn;
  void *arg = st->arg;
  internal_count(1);
  atomic_store_explicit(&st->taken, 1, memory_order_release);
  gort__os_futex_wake(&st->taken, 1);
  void *r = fn(arg);
  internal_count(-1);
  return r;
}

int gort__os_internal_thread(void *(*fn)(void *), void *arg, size_t stack_bytes) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (stack_bytes != 0) pthread_attr_setstacksize(&attr, stack_bytes);
  // The program's signals must not be delivered to gort's threads. Faults
  // stay unblocked: the kernel kills a thread that faults with them
  // blocked, and gort's threads write the heap, which the collector's
  // mprotect dirty tracking write-protects (gc/dirty_mprotect.c).
  sigset_t all, old;
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  gort__os_sigmask(SIG_SETMASK, &all, &old);
  internal_start_t st = {.fn = fn, .arg = arg};
  pthread_t t;
  int r = gort__os_pthread_create(&t, &attr, internal_main, &st);
  gort__os_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (r == 0)
    while (atomic_load_explicit(&st.taken, memory_order_acquire) == 0) gort__os_futex_wait(&st.taken, 0);
  return r;
}

// Field field (3 or more) of /proc/self/stat into buf (size bytes), or
// NULL. The 2nd, the command name in parentheses, may hold spaces.
static const char *stat_field(int field, char *buf, size_t size) {
  int64_t n = gort__os_read_file("/proc/self/stat", buf, size);
  if (n <= 0) return NULL;
  char *p = NULL;
  for (char *q = buf; *q != '\0'; q++)
    if (*q == ')') p = q;
  if (p == NULL) return NULL;
  for (int f = 2; *p != '\0'; p++)
    if (*p == ' ' && ++f == field) return p + 1;
  return NULL;
}

// num_threads, the 20th field.
int gort__os_nthreads(void) {
  char buf[1024];
  const char *p = stat_field(20, buf, sizeof buf);
  if (p == NULL) return -1;
  int v = 0;
  for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (*p - '0');
  return v;
}

// The state, the 3rd field, is the thread group leader's: Z once main has
// exited while other threads run on.
int gort__os_main_thread_exited(void) {
  char buf[1024];
  const char *p = stat_field(3, buf, sizeof buf);
  return p != NULL && (*p == 'Z' || *p == 'X');
}

int gort__os_gettid(void) { return (int)syscall(SYS_gettid); }

int gort__os_tgkill(int tid, int sig) {
  int saved = errno;
  int r = (int)syscall(SYS_tgkill, getpid(), tid, sig);
  int e = r == 0 ? 0 : -errno;
  errno = saved;
  return e;
}

int gort__os_sigaction(int sig, void (*handler)(int, siginfo_t *, void *)) {
  struct sigaction sa = {0};
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);  // nothing else runs on a thread while it is stopped
  // Not even glibc's cancellation signal (SIGCANCEL, 32), which sigfillset
  // leaves out: it unwound a thread cancelled in read(2) straight out of
  // the stop handler, which left the thread running while counted as
  // stopped, and ran its cleanup handlers and destructors with the
  // handler's mask, every other signal blocked: the next stop waited for
  // it for ever (a helper's hunt: 3 hangs in 3 runs of a program that
  // cancels readers while others allocate). Blocked here, the request
  // waits until the handler returns, into the restarted read. Set in the
  // bits: glibc's sigaddset refuses its internal signals.
  enum { SIGCANCEL = __SIGRTMIN, WORD = 8 * sizeof(unsigned long) };
  sa.sa_mask.__val[(SIGCANCEL - 1) / WORD] |= 1UL << ((SIGCANCEL - 1) % WORD);
  return gort__os_real_sigaction(sig, &sa, NULL) == 0 ? 0 : -errno;
}

uintptr_t gort__os_main_stack_top(void) {
  // The kernel copies the program's file name to the very top of the main
  // stack, above argv, the environment and auxv: its address bounds every
  // frame from above with no file to read, which every short process (git
  // starts hundreds) pays at start-up. The strings and vectors between
  // are scanned too: a few KiB of values that point nowhere in the heap.
  uintptr_t execfn = getauxval(AT_EXECFN);
  if (execfn != 0) return execfn;
  // Else field 28 of /proc/self/stat, "startstack". (glibc's
  // __libc_stack_end would do, but it lives in ld.so, and libgort.so
  // needs only libc.)
  int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char *p = buf;
  for (const char *q = buf; *q; q++)
    if (*q == ')') p = q + 1;  // after the command name, which may hold spaces
  // p points just past "(comm)": the next token is field 3. Skip fields
  // 3 to 27 and read field 28.
  for (int field = 3; field < 28 && *p; field++) {
    while (*p == ' ') p++;
    while (*p && *p != ' ') p++;
  }
  while (*p == ' ') p++;
  uintptr_t v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + (uintptr_t)(*p++ - '0');
  return v;
}

uintptr_t gort__os_main_stack_limit(void) {
  struct rlimit r;
  if (getrlimit(RLIMIT_STACK, &r) != 0) return 0;
  // Unlimited: the kernel still keeps a gap below the stack; 8 MiB, the
  // usual limit, is room enough for what asks.
  if (r.rlim_cur == RLIM_INFINITY) return (uintptr_t)8 << 20;
  return (uintptr_t)r.rlim_cur;
}

int gort__os_stack_bounds(uintptr_t *lo, uintptr_t *hi) {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return -EINVAL;
  void *addr;
  size_t size;
  int r = pthread_attr_getstack(&attr, &addr, &size);
  pthread_attr_destroy(&attr);
  if (r != 0) return -r;
  *lo = (uintptr_t)addr;
  *hi = (uintptr_t)addr + size;
  return 0;
}
