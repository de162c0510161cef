// Reports an operator switches on with environment variables: the memory
// summary at exit (GORT_STATS, to stderr or GORT_STATS_FILE, since some
// programs close stderr before they exit) and the heap profile at exit
// (GORT_HEAPPROFILE), and on SIGUSR2 with GORT_DEBUG=profsignal=1.
//
// The signal handler only wakes a writer thread: writing a profile takes
// the profiler's lock, which the interrupted thread may hold.

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "../alloc/alloc_init.h"
#include "../base/options.h"
#include "../os/os.h"
#include "gort/prof.h"
#include "heapstats.h"
#include "mprof.h"
#include "obs.h"

static _Atomic uint32_t profile_requests;

static void write_profile_file(const char *why) {
  const char *path = gort__opts.heapprofile;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    gort__warn("GORT_HEAPPROFILE: cannot open %s: errno %d; no profile written (%s)", path, errno, why);
    return;
  }
  int err = gort_heap_profile_write(fd);
  if (close(fd) != 0 && err == 0) err = -errno;
  if (err != 0) gort__warn("GORT_HEAPPROFILE: writing %s failed: errno %d (%s)", path, -err, why);
}

static void at_exit(void) {
  if (gort__opts.stats) {
    int fd = 2;
    if (gort__opts.stats_file != NULL) {
      fd = open(gort__opts.stats_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) {
        gort__warn("GORT_STATS_FILE: cannot open %s: errno %d; using stderr", gort__opts.stats_file, errno);
        fd = 2;
      }
    }
    gort__heap_print_summary(fd);
    if (fd != 2) close(fd);
  }
  if (gort__opts.heapprofile != NULL) write_profile_file("at exit");
}

static void on_sigusr2(int sig) {
  (void)sig;
  int saved = errno;
  atomic_fetch_add(&profile_requests, 1);
  gort__os_futex_wake(&profile_requests, 1);
  errno = saved;
}

static void *profile_writer(void *arg) {
  (void)arg;
  uint32_t seen = 0;
  for (;;) {
    uint32_t now = atomic_load(&profile_requests);
    if (now == seen) {
      gort__os_futex_wait(&profile_requests, now);
      continue;
    }
    seen = now;
    write_profile_file("on SIGUSR2");
  }
  return NULL;
}

static void start_profile_signal(void) {
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = gort__os_pthread_create(&t, &attr, profile_writer, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    gort__warn("profsignal: cannot start the writer thread (error %d)", err);
    return;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_sigusr2;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &sa, NULL);
}

void gort__obs_init(void) {
  gort__mprof_init();
  if (gort__opts.stats || gort__opts.heapprofile != NULL) atexit(at_exit);
  if (gort__opts.profsignal) {
    if (gort__opts.heapprofile == NULL)
      gort__warn("GORT_DEBUG=profsignal=1 needs GORT_HEAPPROFILE=path; SIGUSR2 left alone");
    else
      start_profile_signal();
  }
}
