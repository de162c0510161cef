// The allocation attributes of include/gort/alloc.h and gc.h (api.h): the
// compiler knows the size of every block gort hands out, manual or
// collected, and the alignment of an aligned one, so __builtin_object_size, _FORTIFY_SOURCE and
// -Wstringop-overflow work on gort's blocks as on malloc's. These checks
// hold only when the compiler optimizes (the tests build with -O1).
// test/preload/compiler_checks.sh checks the warnings and the fortified
// run-time check.

#include <stdint.h>

#include "gort/alloc.h"
#include "gort/gc.h"
#include "test.h"

#if defined(__OPTIMIZE__) && defined(__has_builtin)
#if __has_builtin(__builtin_dynamic_object_size)
#define HAVE_DYNAMIC_OBJECT_SIZE 1
#endif
#endif

// Sizes the compiler cannot know in advance.
static size_t opaque(size_t n) {
  volatile size_t v = n;
  return v;
}

TEST(object_size_sees_through_gort_malloc) {
#ifndef __OPTIMIZE__
  SKIP_IF(1, "__builtin_object_size needs an optimizing build");
#endif
  char *p = gort_malloc(10);
  EXPECT_EQ_U64(__builtin_object_size(p, 0), 10, "gort_malloc(10)");
  char *q = gort_calloc(3, 7);
  EXPECT_EQ_U64(__builtin_object_size(q, 0), 21, "gort_calloc(3, 7)");
  char *r = gort_realloc(p, 33);
  EXPECT_EQ_U64(__builtin_object_size(r, 0), 33, "gort_realloc(p, 33)");
  char *a = gort_aligned_alloc(64, 100);
  EXPECT_EQ_U64(__builtin_object_size(a, 0), 100, "gort_aligned_alloc(64, 100)");
  gort_free(r);
  gort_free(q);
  gort_free(a);
}

TEST(object_size_sees_through_the_collected_allocations) {
#ifndef __OPTIMIZE__
  SKIP_IF(1, "__builtin_object_size needs an optimizing build");
#endif
  char *a = gort_gc_alloc(24);
  EXPECT_EQ_U64(__builtin_object_size(a, 0), 24, "gort_gc_alloc(24)");
  char *b = gort_gc_alloc_noscan(40);
  EXPECT_EQ_U64(__builtin_object_size(b, 0), 40, "gort_gc_alloc_noscan(40)");
  uint64_t map = 1;
  char *c = gort_gc_alloc_typed(48, gort_gc_layout(&map, 1));
  EXPECT_EQ_U64(__builtin_object_size(c, 0), 48, "gort_gc_alloc_typed(48, ...)");
  char *d = gort_gc_alloc_uncollectable(56);
  EXPECT_EQ_U64(__builtin_object_size(d, 0), 56, "gort_gc_alloc_uncollectable(56)");
  EXPECT(a != NULL && b != NULL && c != NULL && d != NULL);
  gort_free(d);
}

TEST(dynamic_object_size_sees_sizes_known_only_at_run_time) {
#ifndef HAVE_DYNAMIC_OBJECT_SIZE
  SKIP_IF(1, "needs __builtin_dynamic_object_size (GCC 12, clang 9) and optimization");
#else
  size_t n = opaque(1234), m = opaque(5);
  char *p = gort_malloc(n);
  EXPECT_EQ_U64(__builtin_dynamic_object_size(p, 0), 1234);
  char *q = gort_calloc(n, m);
  EXPECT_EQ_U64(__builtin_dynamic_object_size(q, 0), 1234 * 5);
  gort_free(p);
  gort_free(q);
#endif
}

TEST(the_compiler_knows_the_alignment_of_gort_aligned_alloc) {
#ifndef __OPTIMIZE__
  SKIP_IF(1, "alignment is propagated only when optimizing");
#endif
  char *a = gort_aligned_alloc(64, opaque(100));
  bool aligned = ((uintptr_t)a & 63) == 0;
  EXPECT(__builtin_constant_p(aligned) && aligned,
         "alloc_align(1) lets the compiler fold the test");
  gort_free(a);
}
