// Stacks that a per-thread memo of recent walks could confuse (#14): the
// leak check keeps the last few stacks each thread recorded and reuses
// their ids when a stack repeats word for word (obs/unwind.c, kept
// walks). Each path below leaks blocks of its own size, the paths
// alternating in one loop, so a reused id that named another path's
// stack shows as a group whose size and stack disagree:
//   - two paths that share the innermost frame and differ just above it;
//   - two functions at the same depth called from the same loop;
//   - twins with identical frames calling the same function, so the
//     stacks differ only two frames out, at the same stack pointers;
//   - one recursion at two depths.
// test/preload/leakcheck.sh checks every group's frames against its size.
#include <stdio.h>
#include "leaktest.h"

#define ROUNDS 50
#define KEEP __attribute__((noinline))
#define NO_TAIL() __asm__ volatile("" ::: "memory")  // the frame stays on the stack

KEEP void *alloc_here(size_t n) {
  void *p = malloc(n);
  NO_TAIL();
  return p;
}
KEEP void via_left(size_t n) { leaktest_sink = alloc_here(n); NO_TAIL(); }
KEEP void via_right(size_t n) { leaktest_sink = alloc_here(n); NO_TAIL(); }
KEEP void direct_a(void) { leaktest_sink = malloc(40); NO_TAIL(); }
KEEP void direct_b(void) { leaktest_sink = malloc(56); NO_TAIL(); }
KEEP void common(size_t n) { leaktest_sink = alloc_here(n); NO_TAIL(); }
KEEP void twin_a(size_t n) { common(n); NO_TAIL(); }
KEEP void twin_b(size_t n) { common(n); NO_TAIL(); }
KEEP void deep(int d, size_t n) {
  if (d == 0) leaktest_sink = alloc_here(n);
  else deep(d - 1, n);
  NO_TAIL();
}

KEEP static void run(void) {
  for (int i = 0; i < ROUNDS; i++) {
    via_left(24);
    via_right(72);
    direct_a();
    direct_b();
    twin_a(88);
    twin_b(104);
    deep(1, 120);
    deep(3, 136);
    if (i % 2) twin_b(152);  // every other round only: the kept walks shift
  }
  leaktest_sink = NULL;
}

int main(void) {
  run();
  leaktest_clear_stack();
  puts("memo: done");
  return 0;
}
