// A binary tree of depth 5 (31 nodes of 24 bytes) whose root is dropped:
// one direct leak, 30 indirect ones, all allocated in make_tree.
#include <stdio.h>
#include "leaktest.h"

struct tree {
  struct tree *l, *r;
  long v;
};

__attribute__((noinline)) struct tree *make_tree(int d) {
  if (d == 0) return NULL;
  struct tree *t = malloc(sizeof *t);
  t->l = make_tree(d - 1);
  t->r = make_tree(d - 1);
  t->v = d;
  return t;
}

__attribute__((noinline)) static void run(void) {
  leaktest_sink = make_tree(5);
  leaktest_sink = NULL;
}

int main(void) {
  run();
  leaktest_clear_stack();
  puts("tree: done");
  return 0;
}
