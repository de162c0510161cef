// The program's sleeps and waits as blocking calls (stw.c, "Blocked
// threads").
//
// A thread that sleeps or waits for a descriptor or a condition is the
// common case of a thread the stop signal would wake for nothing: a ticker,
// a monitor, an event loop between events, a pool's idle worker. gort
// exports nanosleep, usleep and sleep (libc's usleep and sleep call its
// nanosleep inside libc, where no wrapper can reach, so each is wrapped),
// clock_nanosleep and C11's thrd_sleep, poll, select and epoll_wait,
// pthread_cond_wait, pthread_cond_timedwait, pthread_cond_clockwait and
// sem_timedwait (and the receives recv, recvfrom and recvmsg, whose
// wrappers are in dirty_mprotect.c), and runs each as a blocking call: a
// stop takes the thread as stopped without a signal, and the call is no
// longer ended with EINTR by every collection (none of the sleeps and
// descriptor waits is restarted after a handler, SA_RESTART or not: 200
// collections beside a thread in epoll_wait and one in poll, with 50 ms
// timeouts, ended 207 and 361 of their calls with EINTR; a condition wait
// hides its EINTR but still woke, took the signal and parked, one thread
// after another, in every stop). A sleep that a stop signalled anyway (it
// found the thread just before the call) goes on for what is left.
// What they write is a timespec, revents, descriptor sets or epoll
// events, whose data words are copies of what the program registered
// with epoll_ctl (an object kept only there was never safe: the
// collector does not see the kernel's copy). A condition waiter woken
// during a stop takes its mutex back inside the call (glibc's code,
// touching the condition variable and the mutex, no pointer the
// collector needs) and then waits for the restart holding it: nothing in
// a stop takes a program's mutex.
//
// libc's own nanosleep, poll and select are __nanosleep, __poll and
// __select, public names in the shared and the static libc (a static
// program's reference to one links the libc object whose weak plain name
// then yields to this one); epoll_wait is epoll_pwait with no signal
// mask, as its manual page says (so the system call made is epoll_pwait:
// a seccomp filter must allow it); the condition waits are found as
// pthread_create is (os/thread.c), GLIBC_2.3.2's, which every program
// built since 2003 uses. A program that still binds the GLIBC_2.2.5
// versions (a binary of before 2003, or one made with .symver for them)
// must not run with gort: gort's names carry no version and would take
// its old condition variables to the new code. A program built with _FORTIFY_SOURCE
// calls __poll_chk where the array's size is known, which glibc has
// call __poll directly: gort exports it too. The new names are weak, as
// libc.a's poll and select are, so that a program may define its own.
// clock_nanosleep and pthread_cond_clockwait are found as the condition
// waits are (os/thread.c: libc.a's __clock_nanosleep and
// __pthread_cond_clockwait, dlsym in a dynamic program); until 2026-12-04
// they were left to the signal, and the collections during a 300 ms
// clock_nanosleep ended it early with EINTR (test_gc_clock_waits).
// Not wrapped: sem_clockwait (in libc.a its code has no other public
// name in a member that anything of gort's pulls in, so a static program
// would have gort's sem_clockwait and no libc one to call), C11's
// cnd_wait and cnd_timedwait (libc calls its own pthread_cond_wait
// inside; a stop wakes them, which a condition wait may do), ppoll,
// pselect and epoll_pwait (a program that passes them a signal mask has
// handlers of its own, see below): a thread blocked in one of them is
// signalled and parks as before.
//
// Only while the program has no signal handler of its own (os/fault.c
// sees every sigaction and signal call): a handler that runs on a held
// thread runs while the world is stopped, below the stack the collector
// scans, and may siglongjmp out of the call (the classic timeout around
// sleep), leaving a running thread that a stop takes as blocked. Once the
// program installs one, its sleeps and waits are signalled as before. (gort's own
// waits, in stw.c, stay blocking calls: leaving a gort wait by a jump is
// undefined anyway.) Not in the ThreadSanitizer build, which exports no
// libc name (its own interceptors take these).

#define _GNU_SOURCE
// pthread.h's cleanup macros then use its setjmp buffers, which a
// cancellation's unwinding runs without a cleanup attribute's call to the
// unwinder (that would make libgort.so need libgcc_s).
#undef __EXCEPTIONS
#include <pthread.h>

#include <errno.h>
#include <poll.h>
#include <semaphore.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "../os/os.h"
#include "gc.h"

#ifndef GORT_NO_SHIM

extern int __nanosleep(const struct timespec *req, struct timespec *rem);
extern int __poll(struct pollfd *fds, nfds_t n, int timeout);
extern int __select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout);

// Named by stw.c, so that a program linked with libgort.a always takes
// this file: where a shared library on the command line before libgort.a
// defines the sleeps (ThreadSanitizer's runtime does), nothing else would.
const char gort__blocking_wrappers = 1;

typedef struct {
  const struct timespec *req;
  struct timespec *rem;
} sleep_call_t;

static long sleep_call(void *arg) {
  sleep_call_t *c = arg;
  return __nanosleep(c->req, c->rem);
}

// Each call is a cancellation point: a thread cancelled in it must leave
// the blocking call before its cleanup handlers run the program's code,
// or a stop could take it as blocked meanwhile.
static void call_cancelled(void *arg) {
  (void)arg;
  gort__stw_program_call = false;
  gort__stw_block_abandon();
}

// fn(arg) as a blocking call; errno as the call left it. Marked as the
// program's: a handler the program installs while the call waits (a
// pool's worker idle since start-up) makes the next stop signal it
// (stw.c), as it would a call begun after the handler.
static long blocking_long(long (*fn)(void *), void *arg) {
  long r;
  pthread_cleanup_push(call_cancelled, NULL);
  gort__stw_program_call = true;
  r = gort__stw_blocking(fn, arg);
  gort__stw_program_call = false;
  pthread_cleanup_pop(0);
  return r;
}

static int blocking(long (*fn)(void *), void *arg) { return (int)blocking_long(fn, arg); }

// A receive of the program's (dirty_mprotect.c's recv, recvfrom and
// recvmsg wrappers): see gc.h.
long gort__blocking_receive(long (*fn)(void *), void *arg) {
  if (gort__os_program_handlers()) return fn(arg);
  long r;
  // A stop that saw the thread running just before the call began still
  // signals it, and the call then ends with EINTR (1-2 times in 5 s of
  // back-to-back collections beside six receiving threads, against 6,000
  // before). With no handler of the program's, no other signal can end it
  // so: the call is made again (its timeout starting again, that once).
  do r = blocking_long(fn, arg);
  while (r < 0 && errno == EINTR && !gort__os_program_handlers());
  return r;
}

// A stop that saw the thread running just before a sleep began still
// signals it, and the sleep then ends with EINTR (gort__blocking_receive
// below says how rarely). With no handler of the program's no other
// signal can end it so, and the sleep goes on for what is left: a program
// without handlers has no reason to expect EINTR (test_gc_roots allows up
// to 3 in 21 collections beside a thread sleeping 200 us in a loop).
static int blocking_nanosleep(const struct timespec *req, struct timespec *rem) {
  if (gort__os_program_handlers()) return __nanosleep(req, rem);
  struct timespec left, unslept;
  sleep_call_t c = {req, rem != NULL ? rem : &unslept};
  int r;
  while ((r = blocking(sleep_call, &c)) != 0 && errno == EINTR && !gort__os_program_handlers()) {
    left = *c.rem;
    c.req = &left;
  }
  return r;
}

typedef struct {
  clockid_t clock;
  int flags;
  const struct timespec *req;
  struct timespec *rem;
  gort_clock_nanosleep_fn fn;  // libc's, found before the blocking call
} clock_sleep_call_t;

static long clock_sleep_call(void *arg) {
  clock_sleep_call_t *c = arg;
  return c->fn(c->clock, c->flags, c->req, c->rem);
}

// As blocking_nanosleep; an error number, as clock_nanosleep returns. An
// absolute sleep cut short is simply made again. libc's function is
// found before any handler of the program's can run one (os/fault.c).
static int blocking_clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem) {
  gort_clock_nanosleep_fn fn = gort__os_clock_nanosleep_fn();
  if (gort__os_program_handlers()) return fn(clock, flags, req, rem);
  struct timespec left, unslept;
  clock_sleep_call_t c = {clock, flags, req, rem != NULL ? rem : &unslept, fn};
  int r;
  while ((r = blocking(clock_sleep_call, &c)) == EINTR && !gort__os_program_handlers()) {
    if (flags & TIMER_ABSTIME) continue;
    left = *c.rem;
    c.req = &left;
  }
  return r;
}

typedef struct {
  struct pollfd *fds;
  nfds_t n;
  int timeout;
} poll_call_t;

static long poll_call(void *arg) {
  poll_call_t *c = arg;
  return __poll(c->fds, c->n, c->timeout);
}

typedef struct {
  int n;
  fd_set *r, *w, *e;
  struct timeval *timeout;
} select_call_t;

static long select_call(void *arg) {
  select_call_t *c = arg;
  return __select(c->n, c->r, c->w, c->e, c->timeout);
}

typedef struct {
  int fd;
  struct epoll_event *events;
  int max, timeout;
} epoll_call_t;

static long epoll_call(void *arg) {
  epoll_call_t *c = arg;
  return epoll_pwait(c->fd, c->events, c->max, c->timeout, NULL);
}

#define EXPORT __attribute__((visibility("default")))

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem);
int nanosleep(const struct timespec *req, struct timespec *rem) { return blocking_nanosleep(req, rem); }

EXPORT __attribute__((weak)) int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                                                 struct timespec *rem);
int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem) {
  return blocking_clock_nanosleep(clock, flags, req, rem);
}

// C11's: 0, -1 if a signal ended it, another negative value on an error
// (glibc's is clock_nanosleep on CLOCK_REALTIME inside libc, where no
// wrapper reaches).
EXPORT __attribute__((weak)) int thrd_sleep(const struct timespec *req, struct timespec *rem);
int thrd_sleep(const struct timespec *req, struct timespec *rem) {
  int r = blocking_clock_nanosleep(CLOCK_REALTIME, 0, req, rem);
  return r == 0 ? 0 : r == EINTR ? -1 : -2;
}

EXPORT int usleep(useconds_t us);
int usleep(useconds_t us) {
  struct timespec t = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
  return blocking_nanosleep(&t, NULL);
}

// The whole seconds left unslept if a signal ended the sleep (truncated, as
// glibc and musl: `while ((n = sleep(n)))` ends), else 0, errno untouched.
EXPORT unsigned int sleep(unsigned int seconds);
unsigned int sleep(unsigned int seconds) {
  int saved = errno;
  struct timespec t = {(time_t)seconds, 0};
  if (blocking_nanosleep(&t, &t) != 0) return (unsigned int)t.tv_sec;
  errno = saved;
  return 0;
}

EXPORT __attribute__((weak)) int poll(struct pollfd *fds, nfds_t n, int timeout);
int poll(struct pollfd *fds, nfds_t n, int timeout) {
  if (gort__os_program_handlers()) return __poll(fds, n, timeout);
  poll_call_t c = {fds, n, timeout};
  return blocking(poll_call, &c);
}

EXPORT __attribute__((weak)) int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout);
int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout) {
  if (gort__os_program_handlers()) return __select(n, r, w, e, timeout);
  select_call_t c = {n, r, w, e, timeout};
  return blocking(select_call, &c);
}

EXPORT __attribute__((weak)) int epoll_wait(int fd, struct epoll_event *events, int max, int timeout);
int epoll_wait(int fd, struct epoll_event *events, int max, int timeout) {
  if (gort__os_program_handlers()) return epoll_pwait(fd, events, max, timeout, NULL);
  epoll_call_t c = {fd, events, max, timeout};
  return blocking(epoll_call, &c);
}

typedef struct {
  pthread_cond_t *c;
  pthread_mutex_t *m;
  const struct timespec *abstime;
  gort_cond_wait_fn wait;             // libc's, found before the blocking call
  gort_cond_timedwait_fn timedwait;   // (one of the three)
  gort_cond_clockwait_fn clockwait;
  clockid_t clock;
} cond_call_t;

static long cond_call(void *arg) {
  cond_call_t *c = arg;
  if (c->clockwait != NULL) return c->clockwait(c->c, c->m, c->clock, c->abstime);
  return c->timedwait != NULL ? c->timedwait(c->c, c->m, c->abstime) : c->wait(c->c, c->m);
}

EXPORT __attribute__((weak)) int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m);
int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m) {
  gort_cond_wait_fn wait = gort__os_cond_wait_fn();
  if (gort__os_program_handlers()) return wait(c, m);
  cond_call_t call = {c, m, NULL, wait, NULL, NULL, 0};
  return blocking(cond_call, &call);
}

EXPORT __attribute__((weak)) int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m,
                                                        const struct timespec *abstime);
int pthread_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abstime) {
  gort_cond_timedwait_fn timedwait = gort__os_cond_timedwait_fn();
  if (gort__os_program_handlers()) return timedwait(c, m, abstime);
  cond_call_t call = {c, m, abstime, NULL, timedwait, NULL, 0};
  return blocking(cond_call, &call);
}

EXPORT __attribute__((weak)) int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clock,
                                                        const struct timespec *abstime);
int pthread_cond_clockwait(pthread_cond_t *c, pthread_mutex_t *m, clockid_t clock, const struct timespec *abstime) {
  gort_cond_clockwait_fn clockwait = gort__os_cond_clockwait_fn();
  if (gort__os_program_handlers()) return clockwait(c, m, clock, abstime);
  cond_call_t call = {c, m, abstime, NULL, NULL, clockwait, clock};
  return blocking(cond_call, &call);
}

// sem_timedwait is never restarted after a handler either: every
// collection ended a wait with EINTR (a probe: 337 of 338 waits of 20 ms
// beside 200 collections). libc's is sem_clockwait on CLOCK_REALTIME,
// which glibc exports in libc.so and libc.a alike (since 2.30), so no
// dlsym is needed. (sem_wait is restarted by glibc, and sem_clockwait
// itself is left to the stop signal: see the top of the file.)
typedef struct {
  sem_t *sem;
  const struct timespec *abstime;
} sem_call_t;

static long sem_call(void *arg) {
  sem_call_t *c = arg;
  return sem_clockwait(c->sem, CLOCK_REALTIME, c->abstime);
}

EXPORT __attribute__((weak)) int sem_timedwait(sem_t *sem, const struct timespec *abstime);
int sem_timedwait(sem_t *sem, const struct timespec *abstime) {
  if (gort__os_program_handlers()) return sem_clockwait(sem, CLOCK_REALTIME, abstime);
  sem_call_t c = {sem, abstime};
  return blocking(sem_call, &c);
}

// _FORTIFY_SOURCE's poll, as glibc's: the array must hold n entries.
extern void __chk_fail(void) __attribute__((noreturn));
EXPORT __attribute__((weak)) int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen);
int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
  if (fdslen / sizeof *fds < n) __chk_fail();
  return poll(fds, n, timeout);
}

#else
const char gort__blocking_wrappers = 0;
#endif  // GORT_NO_SHIM
