// An allocation helper inlined two levels deep (#14). Built with -g -O2,
// the report shows each inlined function as its own frame at the same
// address, innermost first, each at the line of its call (as
// LeakSanitizer does); test/preload/leakcheck.sh finds the lines by the
// "@name" marks.
#include <stdio.h>
#include "leaktest.h"

static inline __attribute__((always_inline)) void *new_block(size_t n) {
  return malloc(n);  // @block
}

static inline __attribute__((always_inline)) void *new_pair(size_t n) {
  return new_block(2 * n);  // @pair
}

__attribute__((noinline)) void make_leak(void) {
  leaktest_sink = new_pair(21);  // @make
  __asm__ volatile("" ::: "memory");
}

int main(void) {
  make_leak();  // @main
  leaktest_sink = NULL;
  leaktest_clear_stack();
  puts("inline: done");
  return 0;
}
