// A thread loads and unloads libbig.so (argv[2]) without pause while the
// main thread checks 40 times: each check scans only the segments mapped
// at its stop (one read before the stop scanned a library unmapped since
// and crashed), and finds exactly the one planted leak.
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include "leaktest.h"

static atomic_int stop;
static atomic_long rounds;
static const char *path;

static void *churn(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
      fprintf(stderr, "dlopen: %s\n", dlerror());
      break;
    }
    void (*touch)(void) = (void (*)(void))dlsym(h, "libbig_touch");
    if (touch != NULL) touch();
    dlclose(h);
    atomic_fetch_add(&rounds, 1);
  }
  return NULL;
}

__attribute__((noinline)) void planted(void) { leaktest_sink = malloc(4242), leaktest_sink = NULL; }

int main(int argc, char **argv) {
  path = argc > 2 ? argv[2] : "./libbig.so";
  planted();
  leaktest_clear_stack();
  pthread_t t;
  pthread_create(&t, NULL, churn, NULL);
  int bad = leaktest_checks_find_one("dlchurn", 40);
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  printf("dlchurn: %d bad checks, %ld loads\n", bad, atomic_load(&rounds));
  return 0;
}
