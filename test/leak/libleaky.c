// A library the program loads with dlopen: one leak of 333 bytes, and one
// block kept in the library's own data (not a leak).
#include <stdlib.h>

static void *kept_by_library;

__attribute__((noinline)) void leaky_make(void) {
  void *volatile p = malloc(333);
  p = NULL;
  kept_by_library = malloc(444);
}
