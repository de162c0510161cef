// Helpers for the leak check's test programs (test/preload/leakcheck.sh
// builds each twice: preloading libgort.so, and linked with libgort.a).
//
// A conservative leak checker keeps a block that any stale copy of its
// address still points to, so the programs make their leaks in functions
// of their own and then clear the stack below them: the checks then see
// only the pointers the program means to keep.

#ifndef LEAKTEST_H
#define LEAKTEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Weak: resolved from libgort.so when preloaded, from libgort.a when linked.
extern int gort_leak_check(int fd) __attribute__((weak));

void *volatile leaktest_sink;

// The heap's first kilobyte holds gort's own first block; a first
// allocation of the program's own keeps the rest of the test's blocks away
// from the small addresses that pairs of ints in libc's data resemble.
static void *volatile leaktest_pin;

__attribute__((noinline)) static void leaktest_clear_stack(void) {
  char buf[32768];
  memset(buf, 0, sizeof buf);
  __asm__ volatile("" ::"r"(buf) : "memory");
}

__attribute__((constructor)) static void leaktest_start(void) { leaktest_pin = malloc(16); }

// Runs n checks, each expected to find exactly the one planted leak;
// prints each report that does not (prog names the program) and returns
// how many did not.
static __attribute__((unused)) int leaktest_checks_find_one(const char *prog, int n) {
  int bad = 0;
  for (int i = 0; i < n; i++) {
    FILE *report = tmpfile();
    int found = gort_leak_check(fileno(report));
    if (found != 1) {
      printf("%s: check %d found %d leaks:\n", prog, i, found);
      fflush(stdout);
      rewind(report);
      for (int c; (c = getc(report)) != EOF;) putchar(c);
      bad++;
    }
    fclose(report);
  }
  return bad;
}

#endif
