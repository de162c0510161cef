// Leaks in a parent and in its forked child: each process that exits
// normally checks its own heap (the child's holds the parent's leak too);
// a child that ends with _exit does not check.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "leaktest.h"

__attribute__((noinline)) void parent_leak(void) { leaktest_sink = malloc(111), leaktest_sink = NULL; }
__attribute__((noinline)) void child_leak(void) { leaktest_sink = malloc(222), leaktest_sink = NULL; }

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "_exit") == 0;
  parent_leak();
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    child_leak();
    leaktest_clear_stack();
    if (quick) _exit(0);
    exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  leaktest_clear_stack();
  printf("fork: child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return 0;
}
