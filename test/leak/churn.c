// Threads allocate and free without pause, handing blocks to each other
// (so that frees are remote too), while the main thread checks 20 times:
// every check finds exactly the one planted leak, never a block in
// flight, and nothing crashes.
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include "leaktest.h"

#define SLOTS 256
static void *_Atomic slots[SLOTS];
static atomic_int stop;

static void *churn(void *arg) {
  uint64_t x = (uintptr_t)arg * 2654435761u + 1;
  while (!atomic_load(&stop)) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    void *p = malloc(16 + x % 2000);
    memset(p, 0, 16);
    void *old = atomic_exchange(&slots[x % SLOTS], p);
    free(old);
  }
  return NULL;
}

__attribute__((noinline)) void planted(void) { leaktest_sink = malloc(4242), leaktest_sink = NULL; }

int main(void) {
  // Planted before the threads start: no churned block ever had its
  // address, so no stale copy of one on their stacks can keep it.
  planted();
  leaktest_clear_stack();
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
  int bad = leaktest_checks_find_one("churn", 20);
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
  for (int i = 0; i < SLOTS; i++) free(slots[i]);
  printf("churn: %d bad checks\n", bad);
  return 0;
}
