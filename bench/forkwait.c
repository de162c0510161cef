// What every short process and every fork pays for its allocator (run by
// bench/startup.sh under each allocator's LD_PRELOAD): fork, exit and wait
// of a small program, and the page faults the child takes in the fork
// handlers before it could exec.
//
// Usage: forkwait N   prints "forkwait <us per fork+exit+wait> <child faults>"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  void *keep[1000];
  for (int i = 0; i < 1000; i++) keep[i] = malloc(16 + (size_t)(i % 50) * 16);
  // The child's faults, once: it reports them through a pipe.
  int fds[2];
  if (pipe(fds) != 0) return 1;
  long faults = -1;
  pid_t pid = fork();
  if (pid == 0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long f = ru.ru_minflt;
    if (write(fds[1], &f, sizeof f) != (ssize_t)sizeof f) _exit(1);
    _exit(0);
  }
  if (read(fds[0], &faults, sizeof faults) != (ssize_t)sizeof faults) return 1;
  waitpid(pid, NULL, 0);
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < n; i++) {
    pid_t p = fork();
    if (p == 0) {
      free(malloc(100));
      _exit(0);
    }
    waitpid(p, NULL, 0);
    free(malloc(100));
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / n / 1e3;
  printf("forkwait %.1f %ld\n", us, faults);
  for (int i = 0; i < 1000; i++) free(keep[i]);
  return 0;
}
