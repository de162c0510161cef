// Forty pthread keys made before gort starts, so that the leak check's own
// key is past glibc's first 32 and its registration allocates: that
// allocation's record must find the thread's memo (obs/memopool.h), not
// take another, whose registration allocated again, until the stack
// overflowed (a crash on the first allocation of every thread).
#include <pthread.h>
#include <stdio.h>
#include "leaktest.h"

__attribute__((constructor(101))) static void many_keys(void) {
  pthread_key_t k;
  for (int i = 0; i < 40; i++) pthread_key_create(&k, NULL);
}

__attribute__((noinline)) static void *worker(void *arg) {
  free(malloc(32));
  return arg;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_join(t, NULL);
  free(malloc(100));
  printf("manykeys: done\n");
  return 0;
}
