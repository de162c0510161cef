// Double frees across threads: whichever thread frees a block the second
// time, and wherever the first free left it (the owner's free list, the
// span's remote bits, a full span whose owner has a notice of it: the
// cases named "delayed" are those, after the stack of blocks that notices
// replaced), the second free must be
// fatal with "double free" (DESIGN.md, "Error policy"). A double free that
// goes unnoticed puts the block on two lists, and malloc then hands it out
// twice; a case below checks that consequence too.
//
// Thread A owns the span (it allocated the block); B and C are others.
// Each case runs in a child that must abort (harness_expect_fatal).

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "test.h"

enum { SIZE = 48, SPAN_BLOCKS = 682 };  // class 48 B: 682 blocks per 32 KiB span

static void *free_it(void *p) {
  gort_free(p);
  return NULL;
}

// Frees p on a new thread, which owns nothing.
static void free_on_other_thread(void *p) {
  pthread_t t;
  pthread_create(&t, NULL, free_it, p);
  pthread_join(t, NULL);
}

// Runs fn(arg) on a new thread, so that it starts with an empty cache: its
// first block of a class comes from a span of its own.
static void run_on_fresh_thread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  pthread_create(&t, NULL, fn, arg);
  pthread_join(t, NULL);
}

static int cmp_ptr(const void *a, const void *b) {
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

// Allocates n blocks of SIZE, keeping them all, and dies (without the
// message the case expects) if one address is handed out twice.
static void expect_distinct_blocks(int n) {
  void **v = calloc((size_t)n, sizeof *v);  // not gort's heap in a TSan build; fine either way
  for (int i = 0; i < n; i++) {
    v[i] = gort_malloc(SIZE);
    if (i > 0 && v[i] == v[i - 1]) {
      fprintf(stderr, "malloc handed out %p twice in a row (a loop in a free list)\n", v[i]);
      _exit(3);
    }
  }
  qsort(v, (size_t)n, sizeof *v, cmp_ptr);
  for (int i = 1; i < n; i++)
    if (v[i] == v[i - 1]) {
      fprintf(stderr, "malloc handed out %p twice while it was live\n", v[i]);
      _exit(3);
    }
}

// (a) B frees A's block, then A frees it again.
static void remote_then_owner(void *arg) {
  (void)arg;
  void *keep = gort_malloc(SIZE);  // keeps the span in use
  void *p = gort_malloc(SIZE);
  free_on_other_thread(p);
  gort_free(p);
  gort_free(keep);
}

// (a), and if the second free passes, what malloc does next.
static void remote_then_owner_then_allocate(void *arg) {
  (void)arg;
  void *keep = gort_malloc(SIZE);
  void *p = gort_malloc(SIZE);
  free_on_other_thread(p);
  gort_free(p);
  expect_distinct_blocks(4 * SPAN_BLOCKS);
  gort_free(keep);
}

// (b) A frees its block, then B frees it again.
static void owner_then_remote(void *arg) {
  (void)arg;
  void *keep = gort_malloc(SIZE);
  void *p = gort_malloc(SIZE);
  gort_free(p);
  free_on_other_thread(p);
  gort_free(keep);
}

// (c) B frees A's block, then C frees it again.
static void remote_then_remote(void *arg) {
  (void)arg;
  void *keep = gort_malloc(SIZE);
  void *p = gort_malloc(SIZE);
  free_on_other_thread(p);
  free_on_other_thread(p);
  gort_free(keep);
}

// (d) and (e): A (a fresh thread) fills a whole span and goes on into a
// second one, so the first is full. B frees the first block of the full
// span (a remote free into a full span goes to A's delayed stack), then A
// frees it again: at once (d), or after allocating `more` blocks of the
// same size (e), few enough that they all come from A's current span and
// the freed block is not handed out again.
typedef struct {
  int more;
} delayed_arg_t;

static void *delayed_scenario(void *argp) {
  const delayed_arg_t *arg = argp;
  enum { N = SPAN_BLOCKS + 50 };
  static void *blocks[N];
  for (int i = 0; i < N; i++) blocks[i] = gort_malloc(SIZE);
  void *x = blocks[0];
  free_on_other_thread(x);
  for (int i = 0; i < arg->more; i++) {
    void *q = gort_malloc(SIZE);
    if (q == x) {
      fprintf(stderr, "test setup: block %p came back after %d allocations\n", x, i + 1);
      _exit(4);
    }
  }
  gort_free(x);
  return NULL;
}

static void delayed_then_owner(void *arg) {
  (void)arg;
  delayed_arg_t a = {0};
  run_on_fresh_thread(delayed_scenario, &a);
}

static void delayed_then_allocate_then_owner(void *arg) {
  (void)arg;
  delayed_arg_t a = {200};
  run_on_fresh_thread(delayed_scenario, &a);
}

#define DOUBLE_FREE(name, fn) \
  TEST(name) { EXPECT(harness_expect_fatal(fn, NULL, "double free")); }

DOUBLE_FREE(double_free_by_owner_after_a_remote_free_is_fatal, remote_then_owner)
DOUBLE_FREE(double_free_by_owner_after_a_remote_free_never_hands_a_block_out_twice,
            remote_then_owner_then_allocate)
DOUBLE_FREE(double_free_by_another_thread_after_the_owner_freed_is_fatal, owner_then_remote)
DOUBLE_FREE(double_free_by_a_second_remote_thread_is_fatal, remote_then_remote)
DOUBLE_FREE(double_free_by_owner_of_a_block_on_its_delayed_stack_is_fatal, delayed_then_owner)
DOUBLE_FREE(double_free_by_owner_after_more_allocations_of_a_delayed_block_is_fatal,
            delayed_then_allocate_then_owner)
