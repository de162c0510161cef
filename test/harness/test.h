// gort's test harness: register cases with TEST(name); each case runs in its
// own forked process with a timeout, so one crash never hides the others.
// Expectations print both values and the context, then fail the case.

#ifndef GORT_TEST_H
#define GORT_TEST_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif
typedef void (*test_fn)(void);
void harness_register(const char *name, test_fn fn);
void harness_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
// Ends the current case as skipped, with the reason.
void harness_skip(const char *reason) __attribute__((noreturn));
// Runs fn in a child process and expects it to abort with a stderr line
// containing want. Returns true if so; prints what happened otherwise.
bool harness_expect_fatal(void (*fn)(void *), void *arg, const char *want);
// Seconds scaled for the run: TEST_STRESS=long multiplies by 30. (Not a
// GORT_ name: gort warns about every GORT_ variable it does not know.)
int harness_scale(void);
// A seed from the command line (--seed=N) or a fixed default.
uint64_t harness_seed(void);
// This process's resident set in bytes, or -1. Reads /proc with plain
// open/read so that a watchdog thread may call it while the heap is busy.
int64_t harness_rss_bytes(void);
// Waits for child pid up to timeout_ms: its wait status; -1 if it hung
// (it is then killed, reaped and named on stderr); -2 if waitpid failed.
int harness_wait_child(int pid, int timeout_ms);
// Runs cmd with /bin/sh; returns its exit status, output in out (if any).
int harness_run(const char *cmd, char *out, size_t outsize);
// Runs this program again (/proc/self/exe) with env ("NAME=value") added
// to its environment and case name selected: for settings gort reads once
// at start-up. name is an INNER_TEST. Returns true if it passed; otherwise
// prints its output, indented, and returns false. Its PASS/FAIL line never
// reaches our stdout, so a run still prints one line per case.
bool harness_run_inner(const char *name, const char *env);
#ifdef __cplusplus
}
#endif

#define TEST(name)                                                              \
  static void test_##name(void);                                                \
  __attribute__((constructor)) static void register_##name(void) {             \
    harness_register(#name, test_##name);                                       \
  }                                                                             \
  static void test_##name(void)

// A case that exists only when named on the command line, as
// harness_run_inner names it: a run with no arguments does not see it.
// (glibc passes argc and argv to constructors.)
#define INNER_TEST(name)                                                        \
  static void test_##name(void);                                                \
  __attribute__((constructor)) static void register_##name(int argc, char **argv) { \
    for (int i_ = 1; i_ < argc; i_++)                                           \
      if (strcmp(argv[i_], #name) == 0) harness_register(#name, test_##name);   \
  }                                                                             \
  static void test_##name(void)

#define EXPECT(cond, ...)                                                       \
  do {                                                                          \
    if (!(cond)) {                                                              \
      char ctx_[256];                                                           \
      snprintf(ctx_, sizeof ctx_, "" __VA_ARGS__);                              \
      harness_fail(__FILE__, __LINE__, "expected %s %s", #cond, ctx_);          \
    }                                                                           \
  } while (0)

#define EXPECT_EQ_U64(a, b, ...)                                                \
  do {                                                                          \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                            \
    if (a_ != b_) {                                                             \
      char ctx_[256];                                                           \
      snprintf(ctx_, sizeof ctx_, "" __VA_ARGS__);                              \
      harness_fail(__FILE__, __LINE__, "%s == %s: %" PRIu64 " != %" PRIu64 " %s", #a, #b, a_, b_, ctx_); \
    }                                                                           \
  } while (0)

#define EXPECT_LE_U64(a, b, ...)                                                \
  do {                                                                          \
    uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                            \
    if (!(a_ <= b_)) {                                                          \
      char ctx_[256];                                                           \
      snprintf(ctx_, sizeof ctx_, "" __VA_ARGS__);                              \
      harness_fail(__FILE__, __LINE__, "%s <= %s: %" PRIu64 " > %" PRIu64 " %s", #a, #b, a_, b_, ctx_); \
    }                                                                           \
  } while (0)

#define ASSERT_NOT_NULL(p, ...) EXPECT((p) != NULL, __VA_ARGS__)

// Ends the case as skipped (reported as SKIP, never as PASS) when cond
// holds: for a check that cannot run in this build or on this machine.
#define SKIP_IF(cond, reason)                                                   \
  do {                                                                          \
    if (cond) harness_skip(reason);                                             \
  } while (0)

// xorshift64*: deterministic randomness for stress tests.
static inline uint64_t test_rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

#endif
