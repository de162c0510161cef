// What the channel tests share: the scheduler tests' helpers (time, waits,
// whether this is the ThreadSanitizer build) and a way to run a function
// as a goroutine and wait for it from the plain thread that runs the case.

#ifndef GORT_CHANTEST_H
#define GORT_CHANTEST_H

#include "../sched/schedtest.h"
#include "gort/chan.h"

typedef struct {
  void (*fn)(void *);
  void *arg;
  gort_waitgroup_t done;
} chantest_go_t;

static void chantest_trampoline(void *p) {
  chantest_go_t *t = p;
  t->fn(t->arg);
  gort_waitgroup_done(&t->done);
}

// Runs fn(arg) in a goroutine and waits for it (the case's code then runs
// as a goroutine, not on the plain thread).
static __attribute__((unused)) void run_in_goroutine(void (*fn)(void *), void *arg) {
  static chantest_go_t t;
  memset(&t, 0, sizeof t);
  t.fn = fn;
  t.arg = arg;
  gort_waitgroup_add(&t.done, 1);
  EXPECT(gort_go(chantest_trampoline, &t) == 0);
  gort_waitgroup_wait(&t.done);
}

// True if one goroutine's entry of a dump (entries end with a blank line)
// holds all of: its wait reason ("[chan receive, "), "waiting on <obj>"
// and fn's name. Independent of the order of the entry's lines.
// The goroutine dump (gort_goroutines_dump) into buf.
static __attribute__((unused)) void dump_to(char *buf, size_t size) {
  FILE *f = tmpfile();
  gort_goroutines_dump(fileno(f));
  rewind(f);
  buf[fread(buf, 1, size - 1, f)] = '\0';
  fclose(f);
}

static __attribute__((unused)) bool dump_has_entry(const char *dump, const char *reason,
                                                   const void *obj, const char *fn) {
  char on[64];
  snprintf(on, sizeof on, "waiting on %p\n", obj);
  for (const char *p = dump; p != NULL && *p != '\0';) {
    const char *end = strstr(p, "\n\n");
    size_t len = end != NULL ? (size_t)(end - p) + 1 : strlen(p);
    char entry[1024];
    if (len >= sizeof entry) len = sizeof entry - 1;
    memcpy(entry, p, len);
    entry[len] = '\0';
    if (strstr(entry, reason) && strstr(entry, on) && strstr(entry, fn)) return true;
    p = end != NULL ? end + 2 : NULL;
  }
  return false;
}

#endif
