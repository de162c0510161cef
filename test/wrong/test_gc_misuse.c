// Misuse of the collector's API: each case runs in a child that must abort
// with gort's fatal error naming the call and the address (gc.h, "Errors";
// DESIGN.md, "Error policy"): a pointer gort did not hand out given to
// gort_gc_set_finalizer, gort_gc_size or gort_gc_weak_make (a gort_malloc'd
// block, a stack address, a global); gort_free of an interior pointer of a
// collected object; a double free of one, also while cycles run.

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gort/alloc.h"
#include "gort/gc.h"
#include "test.h"

static int a_global[4];

static void finalizer(void *obj, void *arg) { (void)obj, (void)arg; }

static void set_finalizer(void *p) { gort_gc_set_finalizer(p, finalizer, NULL); }
static void size_of(void *p) { printf("%zu\n", gort_gc_size(p)); }
static void weak_make(void *p) { printf("%p\n", (void *)gort_gc_weak_make(p)); }

// Expects fn(arg) to die with gort's fatal error, naming call and addr.
static bool fatal_naming(void (*fn)(void *), void *arg, const char *call, const void *addr) {
  char address[32];
  snprintf(address, sizeof address, "%p", addr);
  return harness_expect_fatal(fn, arg, "gort: fatal error: ") &&
         harness_expect_fatal(fn, arg, call) && harness_expect_fatal(fn, arg, address);
}

// Each call given a gort_malloc'd block, a stack address and a global.
static void expect_rejects_foreign_pointers(void (*fn)(void *), const char *call) {
  char on_stack[64];
  void *m = gort_malloc(64);
  EXPECT(fatal_naming(fn, m, call, m), "%s of a gort_malloc'd block", call);
  EXPECT(fatal_naming(fn, on_stack + 16, call, on_stack + 16), "%s of a stack address", call);
  EXPECT(fatal_naming(fn, a_global, call, a_global), "%s of a global", call);
  gort_free(m);
}

TEST(set_finalizer_on_a_pointer_gort_did_not_hand_out_is_fatal) {
  expect_rejects_foreign_pointers(set_finalizer, "gort_gc_set_finalizer");
}

TEST(gc_size_of_a_pointer_gort_did_not_hand_out_is_fatal) {
  expect_rejects_foreign_pointers(size_of, "gort_gc_size");
}

TEST(weak_make_of_a_pointer_gort_did_not_hand_out_is_fatal) {
  expect_rejects_foreign_pointers(weak_make, "gort_gc_weak_make");
}

static void free_it(void *p) { gort_free(p); }

static void free_twice(void *p) {
  gort_free(p);
  gort_free(p);
}

static void realloc_after_free(void *p) {
  gort_free(p);
  void *q = gort_realloc(p, 500);  // fatal: never returns
  (void)q;
}

TEST(free_of_an_interior_pointer_of_a_collected_object_is_fatal) {
  char *small = gort_gc_alloc(100), *large = gort_gc_alloc_noscan(1 << 20);
  EXPECT(fatal_naming(free_it, small + 16, "not the start of a block", small + 16), "small object");
  EXPECT(fatal_naming(free_it, large + 8192, "not the start of a block", large + 8192),
         "large object");
}

TEST(double_free_of_a_collected_object_is_fatal) {
  void *small = gort_gc_alloc(48), *noscan = gort_gc_alloc_noscan(200),
       *large = gort_gc_alloc(1 << 20);
  EXPECT(fatal_naming(free_twice, small, "double free", small), "small object");
  EXPECT(fatal_naming(free_twice, noscan, "double free", noscan), "noscan object");
  EXPECT(fatal_naming(free_twice, large, "double free", large), "large object");
}

// A large object's free waits for a sweeper that holds its span, where it
// once died at once with a false double free; a real double free must
// still die, with the same line, and not wait forever. Here the frees come
// while a thread collects without pause and the sweeps take the spans of
// 64 live large objects in turn. (The object's neighbours stay live: a
// double free whose pages merged into a free run before them is named an
// invalid pointer, malloc's large blocks alike.)
enum { NLARGE = 64 };
static void *large_objs[NLARGE];

static void *collect_forever(void *arg) {
  (void)arg;
  for (;;) gort_gc_collect();
  return NULL;
}

static void free_large_twice_while_collecting(void *p) {
  pthread_t t;
  pthread_create(&t, NULL, collect_forever, NULL);
  struct timespec ms = {0, 2000000};
  nanosleep(&ms, NULL);
  gort_free(p);
  gort_free(p);
}

TEST(double_free_of_a_large_object_while_cycles_run_is_fatal) {
  for (int i = 0; i < NLARGE; i++) large_objs[i] = gort_gc_alloc(40 << 10);
  void *p = large_objs[NLARGE / 2];
  EXPECT(fatal_naming(free_large_twice_while_collecting, p, "double free", p));
}

TEST(realloc_of_a_freed_collected_object_is_fatal) {
  void *p = gort_gc_alloc(64);
  EXPECT(fatal_naming(realloc_after_free, p, "double free", p));
}

// Tiny objects (noscan, under 16 bytes, several to a block: gc/tiny.c) are
// freed one by one: each misuse names the object's own address, not its
// block's.
static void size_of_freed(void *p) {
  gort_free(p);
  size_of(p);
}

static void usable_size_of(void *p) { printf("%zu\n", gort_usable_size(p)); }

TEST(misuse_of_a_tiny_object_is_fatal_and_names_it) {
  char *full = gort_gc_alloc_noscan(15);  // fills a block: the next object starts one
  char *a = gort_gc_alloc_noscan(4), *b = gort_gc_alloc_noscan(4);
  EXPECT(b == a + 4 && ((uintptr_t)a & 15) == 0, "two objects of 4 bytes at %p and %p", (void *)a, (void *)b);
  EXPECT(fatal_naming(free_twice, b, "double free of a tiny object", b), "double free");
  EXPECT(fatal_naming(free_it, b + 1, "not the start of a tiny object", b + 1), "odd interior pointer");
  EXPECT(fatal_naming(free_it, b + 2, "not the start of a tiny object", b + 2), "even interior pointer");
  // b + 4 starts the block's free tail: no object yet.
  EXPECT(fatal_naming(free_it, b + 4, "never handed out", b + 4), "the free tail");
  EXPECT(fatal_naming(usable_size_of, b + 4, "malloc_usable_size", b + 4), "usable size of the free tail");
  EXPECT(fatal_naming(usable_size_of, b + 2, "malloc_usable_size", b + 2), "usable size of an interior pointer");
  EXPECT(fatal_naming(size_of_freed, a, "gort_gc_size", a), "gort_gc_size of a freed tiny object");
  EXPECT(fatal_naming(set_finalizer, a + 2, "gort_gc_set_finalizer", a + 2), "a finalizer on an interior pointer");
  (void)full;
}
