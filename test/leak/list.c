// A singly linked list of 10 nodes of 32 bytes, dropped: one direct leak
// (the head) and 9 indirect ones, all allocated in make_list. With
// "exit3" it exits with status 3; with "kill" or "term" a signal ends it.
#include <signal.h>
#include <stdio.h>
#include "leaktest.h"

struct node {
  struct node *next;
  char pad[24];
};

__attribute__((noinline)) struct node *make_list(int n) {
  struct node *h = NULL;
  for (int i = 0; i < n; i++) {
    struct node *x = malloc(sizeof *x);
    memset(x->pad, i, sizeof x->pad);
    x->next = h;
    h = x;
  }
  return h;
}

__attribute__((noinline)) static void run(void) {
  leaktest_sink = make_list(10);
  leaktest_sink = NULL;
}

int main(int argc, char **argv) {
  run();
  leaktest_clear_stack();
  if (argc > 1 && strcmp(argv[1], "exit3") == 0) exit(3);
  if (argc > 1 && strcmp(argv[1], "kill") == 0) raise(SIGKILL);  // no report, no hang
  if (argc > 1 && strcmp(argv[1], "term") == 0) raise(SIGTERM);
  puts("list: done");
  return 0;
}
