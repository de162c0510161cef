// The program's sleeps as blocking calls (stw.c, "Blocked threads").
//
// A thread that sleeps is the common case of a thread the stop signal
// would wake for nothing: a ticker, a monitor, a worker between polls.
// gort exports nanosleep, usleep and sleep (libc's usleep and sleep call
// its nanosleep inside libc, where no wrapper can reach, so each is
// wrapped), and runs the sleep as a blocking call: a stop takes the
// sleeper as stopped without a signal, and the sleep is no longer cut
// short with EINTR by every collection. What a sleep writes (the time
// left) is a timespec, never a pointer.
//
// libc's own nanosleep is __nanosleep, a public name in the shared and the
// static libc (a static program's reference to it links nanosleep.o, whose
// weak nanosleep then yields to this one). Not wrapped: clock_nanosleep
// (its static name is not public), C11's thrd_sleep, and the waits on
// file descriptors and locks (poll, select, epoll_wait, pthread_cond_wait):
// a thread blocked in one of them is signalled and parks as before.
//
// Only while the program has no signal handler of its own (os/fault.c
// sees every sigaction and signal call): a handler that runs on a held
// sleeper runs while the world is stopped, below the stack the collector
// scans, and may siglongjmp out of the sleep (the classic timeout around
// sleep), leaving a running thread that a stop takes as blocked. Once the
// program installs one, its sleeps are signalled as before. (gort's own
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
#include <time.h>
#include <unistd.h>

#include "../os/os.h"
#include "gc.h"

#ifndef GORT_NO_SHIM

extern int __nanosleep(const struct timespec *req, struct timespec *rem);

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

// nanosleep is a cancellation point: a thread cancelled in its sleep must
// leave the blocking call before its cleanup handlers run the program's
// code, or a stop could take it as blocked meanwhile.
static void sleep_cancelled(void *arg) {
  (void)arg;
  gort__stw_block_abandon();
}

static int blocking_nanosleep(const struct timespec *req, struct timespec *rem) {
  if (gort__os_program_handlers()) return __nanosleep(req, rem);
  sleep_call_t c = {req, rem};
  int r;
  pthread_cleanup_push(sleep_cancelled, NULL);
  r = (int)gort__stw_blocking(sleep_call, &c);
  pthread_cleanup_pop(0);
  return r;
}

#define EXPORT __attribute__((visibility("default")))

EXPORT int nanosleep(const struct timespec *req, struct timespec *rem);
int nanosleep(const struct timespec *req, struct timespec *rem) { return blocking_nanosleep(req, rem); }

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

#else
const char gort__blocking_wrappers = 0;
#endif  // GORT_NO_SHIM
