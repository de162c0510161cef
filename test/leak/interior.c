// Blocks kept only through a pointer into their middle: not leaks, and
// the report says they were counted as reachable. gort_leak_check is
// called twice: with the pointers, and after they are dropped (then both
// blocks are direct leaks from keep_interior).
#include <stdio.h>
#include <unistd.h>
#include "leaktest.h"

char *middle_of_small, *middle_of_large;

__attribute__((noinline)) void keep_interior(void) {
  middle_of_small = (char *)malloc(100) + 40;
  middle_of_large = (char *)malloc(100000) + 50000;
}

int main(void) {
  keep_interior();
  leaktest_clear_stack();
  int kept = gort_leak_check(1);
  middle_of_small = middle_of_large = NULL;
  leaktest_clear_stack();
  int dropped = gort_leak_check(1);
  printf("interior: kept %d leaks, dropped %d leaks\n", kept, dropped);
  return 0;
}
