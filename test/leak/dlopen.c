// Loads libleaky.so (argv[1]) and calls its leaky_make: its leak is named
// with the library's function, and what it keeps in its data is not a leak.
#include <dlfcn.h>
#include <stdio.h>
#include "leaktest.h"

int main(int argc, char **argv) {
  void *h = dlopen(argc > 1 ? argv[1] : "./libleaky.so", RTLD_NOW);
  if (h == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  void (*make)(void) = (void (*)(void))dlsym(h, "leaky_make");
  make();
  leaktest_clear_stack();
  puts("dlopen: done");
  return 0;
}
