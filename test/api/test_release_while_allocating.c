// Returning memory to the OS while another thread allocates must not grow
// the heap. A release takes the heap's largest free run off the lists while
// it madvises it; an allocation that found nothing free meanwhile used to
// reserve as much address space again as the heap had (up to 64 MiB), and
// the new run, merged into the big one, was the next release's candidate:
// a program calling gort_free_os_memory every 50 ms beside one allocating
// thread reserved 35 MiB more each second with 6 MiB in use, and the
// background scavenger did the same more slowly.

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "gort/metrics.h"
#include "test.h"

static _Atomic bool stop;

static void *churn(void *arg) {
  uint64_t r = harness_seed() ^ (uint64_t)(uintptr_t)arg;
  enum { SLOTS = 512 };
  void *slot[SLOTS] = {0};
  while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
    int i = (int)(test_rand(&r) % SLOTS);
    free(slot[i]);
    size_t n = test_rand(&r) % 8 == 0 ? 8192 + test_rand(&r) % 65536 : 100 + test_rand(&r) % 5000;
    slot[i] = malloc(n);
    if (slot[i] != NULL) memset(slot[i], 1, 64);
  }
  for (int i = 0; i < SLOTS; i++) free(slot[i]);
  return NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

TEST(releasing_memory_while_a_thread_allocates_does_not_grow_the_heap) {
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, churn, (void *)1) == 0);
  usleep(20 * 1000);
  gort_memstats_t m;
  uint64_t most = 0;
  unsigned releases = 0;
  for (double end = now_s() + 3.0; now_s() < end; releases++) {
    gort_free_os_memory();
    usleep(2000);
    gort_read_memstats(&m);
    if (m.heap_sys > most) most = m.heap_sys;
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  // The thread holds at most 512 blocks of up to 72 KiB (under 40 MiB,
  // about 6 on average); the heap reserves in steps of at most 64 MiB.
  EXPECT_LE_U64(most, 160ull << 20, "heap_sys reached %llu MiB in %u releases beside one allocating thread",
                (unsigned long long)(most >> 20), releases);
}
