// gort goroutine demo: a parallel computation over many goroutines.
//
// 1. Counts the primes below 3 million in 3000 goroutines of 1000
//    numbers each, on GORT_MAXPROCS threads (default: the usable CPUs),
//    and prints how long it took against the same loop on this thread.
// 2. Starts 100000 goroutines that each sleep 50 ms at once, and prints
//    how long they took in all and the peak RSS: a parked goroutine costs
//    about one page.
// 3. Prints a goroutine dump of three goroutines left waiting, as Go
//    prints on SIGQUIT (gort does too, with GORT_DEBUG=sigquit=1).
// It waits for its goroutines with the public API only (gort_num_goroutine);
// the wait groups and channels of the next issue will do it better.

#include <stdatomic.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "gort.h"

enum { LIMIT = 3000000, CHUNK = 1000, SLEEPERS = 100000 };

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int is_prime(long n) {
  if (n < 2) return 0;
  for (long d = 2; d * d <= n; d++)
    if (n % d == 0) return 0;
  return 1;
}

static _Atomic long primes;

static void count_chunk(void *arg) {
  long lo = (long)(intptr_t)arg, n = 0;
  for (long i = lo; i < lo + CHUNK; i++) n += is_prime(i);
  atomic_fetch_add(&primes, n);
}

static void wait_all(void) {
  while (gort_num_goroutine() > 0) gort_sleep(1000000);  // 1 ms
}

static void nap(void *arg) {
  (void)arg;
  gort_sleep(50 * 1000000);
}

// Not static: the dump names a goroutine's function through dladdr, which
// sees only exported symbols (the demo links with -rdynamic).
void forever(void *arg);
void forever(void *arg) {
  (void)arg;
  for (;;) gort_sleep(3600LL * 1000000000);
}

int main(void) {
  printf("gort goroutines: %d Ps\n", gort_maxprocs(0));
  double t0 = now();
  long serial = 0;
  for (long i = 0; i < LIMIT; i++) serial += is_prime(i);
  double t_serial = now() - t0;
  t0 = now();
  for (long lo = 0; lo < LIMIT; lo += CHUNK) gort_go(count_chunk, (void *)(intptr_t)lo);
  wait_all();
  double t_par = now() - t0;
  printf("  primes below %d: %ld, in %.2f s on goroutines (%ld in %.2f s on this thread)\n", LIMIT,
         atomic_load(&primes), t_par, serial, t_serial);

  t0 = now();
  for (int i = 0; i < SLEEPERS; i++) gort_go(nap, NULL);
  wait_all();
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("  %d goroutines slept 50 ms each, all at once: %.0f ms in all; peak RSS %ld MiB\n",
         SLEEPERS, (now() - t0) * 1000, ru.ru_maxrss / 1024);

  for (int i = 0; i < 3; i++) gort_go(forever, NULL);
  gort_sleep(20 * 1000000);
  printf("  a goroutine dump (gort_goroutines_dump):\n");
  fflush(stdout);
  gort_goroutines_dump(1);
  return 0;  // the program ends when main returns, goroutines or not
}
