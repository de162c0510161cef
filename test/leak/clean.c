// A program without leaks: blocks freed, kept in globals, in a realloc'd
// array, and an aligned one; C stdio and a thread that is joined. The
// check reports nothing and the exit status stays 0.
#include <pthread.h>
#include <stdio.h>
#include "leaktest.h"

void **table;
void *aligned;

__attribute__((noinline)) static void *worker(void *arg) {
  char *s = malloc(100);
  snprintf(s, 100, "worker %p", arg);
  free(s);
  return NULL;
}

int main(void) {
  table = NULL;
  for (int i = 0; i < 1000; i++) {
    table = realloc(table, (size_t)(i + 1) * sizeof *table);
    table[i] = malloc((size_t)(i % 300) + 1);
  }
  for (int i = 0; i < 1000; i += 2) free(table[i]), table[i] = NULL;
  if (posix_memalign(&aligned, 256, 5000) != 0) return 1;
  pthread_t t;
  pthread_create(&t, NULL, worker, NULL);
  pthread_join(t, NULL);
  leaktest_clear_stack();
  printf("clean: done\n");
  return 0;
}
