// A thread that allocates 777 bytes, drops them and exits: a direct leak
// from thread_fn, found after the thread is gone. The thread's other
// block, handed to main through a global, is not a leak.
#include <pthread.h>
#include <stdio.h>
#include "leaktest.h"

void *handed_over;

__attribute__((noinline)) void *thread_fn(void *arg) {
  (void)arg;
  leaktest_sink = malloc(777);
  leaktest_sink = NULL;
  handed_over = malloc(555);
  return NULL;
}

int main(void) {
  pthread_t t;
  pthread_create(&t, NULL, thread_fn, NULL);
  pthread_join(t, NULL);
  leaktest_clear_stack();
  puts("thread: done");
  return 0;
}
