// Reports an operator switches on with environment variables: the memory
// summary at exit (GORT_STATS, to stderr or GORT_STATS_FILE, since some
// programs close stderr before they exit) and the heap profile at exit
// (GORT_HEAPPROFILE), and on SIGUSR2 with GORT_DEBUG=profsignal=1. Which
// file each process writes, and the checks at start-up, are outpath.c's;
// errors met while writing are reported here, with the error's text.
//
// The signal handler only wakes a writer thread: writing a profile takes
// the profiler's lock, which the interrupted thread may hold.

#include <errno.h>
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
#include "leakcheck.h"
#include "mprof.h"
#include "obs.h"
#include "outpath.h"

static _Atomic uint32_t profile_requests;

static void write_profile_file(const char *why) {
  char path[OUTPATH_MAX], ebuf[32];
  if (gort__outpath_get(OUT_HEAPPROFILE, path) == NULL) return;
  int fd = gort__os_open_write(path);
  if (fd < 0) {
    gort__warn("GORT_HEAPPROFILE: cannot open %s: %s; no profile written (%s)", path,
               gort__strerror(fd, ebuf, sizeof ebuf), why);
    return;
  }
  int err = gort_heap_profile_write(fd);
  int cerr = gort__os_close(fd);
  if (err == 0) err = cerr;
  if (err != 0)
    gort__warn("GORT_HEAPPROFILE: writing %s failed: %s (%s)", path,
               gort__strerror(err, ebuf, sizeof ebuf), why);
}

// The summary goes to GORT_STATS_FILE, or to stderr when there is none or
// it cannot be opened; a failed write to the file is reported on stderr.
static void write_stats(void) {
  char path[OUTPATH_MAX], ebuf[32];
  const char *file = gort__outpath_get(OUT_STATS, path);
  int fd = file != NULL ? gort__os_open_write(file) : 2;
  if (fd < 0) {
    gort__warn("GORT_STATS_FILE: cannot open %s: %s; using stderr", file,
               gort__strerror(fd, ebuf, sizeof ebuf));
    fd = 2;
  }
  int err = gort__heap_print_summary(fd);
  if (fd == 2) return;
  int cerr = gort__os_close(fd);
  if (err == 0) err = cerr;
  if (err != 0)
    gort__warn("GORT_STATS_FILE: writing %s failed: %s", file,
               gort__strerror(err, ebuf, sizeof ebuf));
}

void gort__obs_write_at_exit(void) {
  static _Atomic bool written;
  if (atomic_exchange(&written, true)) return;
  if (gort__opts.stats) write_stats();
  if (gort__opts.heapprofile != NULL) write_profile_file("at exit");
}

static void at_exit(void) { gort__obs_write_at_exit(); }

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
  char ebuf[32];
  int err = gort__os_internal_thread(profile_writer, NULL, 0);
  if (err != 0) {
    gort__warn("profsignal: cannot start the writer thread: %s; SIGUSR2 left alone",
               gort__strerror(err, ebuf, sizeof ebuf));
    return;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_sigusr2;
  sa.sa_flags = SA_RESTART;
  gort__os_real_sigaction(SIGUSR2, &sa, NULL);
}

void gort__obs_init(void) {
  gort__outpath_init();
  gort__mprof_init();
  gort__leak_init();  // after the profiler: it chains the profiler's hooks
  if (gort__opts.stats || gort__opts.heapprofile != NULL) atexit(at_exit);
  if (gort__opts.profsignal) {
    if (gort__opts.heapprofile == NULL)
      gort__warn("GORT_DEBUG=profsignal=1 needs GORT_HEAPPROFILE=path; SIGUSR2 left alone");
    else
      start_profile_signal();
  }
}
