// Fatal paths: user misuse (gort__fatal), gort's own bugs (gort__throw) and
// warnings. See DESIGN.md, "Error policy". Nothing here allocates: these run
// with the heap in an unknown state, possibly with its locks held.

#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base.h"

static GORT_NORETURN void die(void) {
  // abort() may run handlers that call malloc; the message is out already.
  // Restore the default action so that a handler installed by the program
  // cannot swallow the abort and return into a broken heap.
  signal(SIGABRT, SIG_DFL);
  abort();
}

void gort__fatal(const char *msg, const void *addr) {
  gort__print("gort: fatal error: %s %p\n", msg, addr);
  die();
}

void gort__throw_at(const char *file, int line, const char *msg) {
  gort__print("gort: internal error: %s at %s:%d\n", msg, file, line);
  die();
}

void gort__warn(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  gort__vsnprint(buf, sizeof buf, fmt, ap);
  va_end(ap);
  gort__print("gort: warning: %s\n", buf);
}

int64_t gort__nanotime(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
