// Aligned allocation in hardened mode (GORT_DEBUG=harden=1): alignments
// of 16 KiB to 1 MiB, sizes from 1 byte to past the largest size class.
// Each block must be aligned, writable in full, freeable, and allocating
// again after the free must not raise a false alarm (hardened mode checks
// a reused small block for writes after free, and must not check memory
// that was never a freed small block).
//
// gort reads GORT_DEBUG once, at start-up, so each case runs this program
// again with harden=1 (harness_run_inner) and checks there first that
// hardened mode is on.

#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "gort/alloc.h"
#include "test.h"

typedef void *(*aligner_t)(size_t align, size_t size);

static void *via_gort_aligned_alloc(size_t a, size_t n) { return gort_aligned_alloc(a, n); }

#ifndef GORT_NO_SHIM  // in TSan's build these names are TSan's, not gort's
static void *via_posix_memalign(size_t a, size_t n) {
  void *p = NULL;
  int err = posix_memalign(&p, a, n);
  if (err != 0) harness_fail(__FILE__, __LINE__, "posix_memalign(%zu, %zu) = %d", a, n, err);
  return p;
}
static void *via_memalign(size_t a, size_t n) { return memalign(a, n); }
#endif

static void expect_hardened(void) {
  // Hardened mode keeps a canary after the bytes asked for: only those are usable.
  void *p = gort_malloc(100);
  EXPECT_EQ_U64(gort_usable_size(p), 100, "GORT_DEBUG=harden=1 is not in effect");
  gort_free(p);
}

static void aligned_round_trips(aligner_t alloc, const char *name) {
  static const size_t aligns[] = {16 << 10, 32 << 10, 64 << 10, 1 << 20};
  static const size_t sizes[] = {1, 100, 4096, 32752, 40000};
  expect_hardened();
  for (int round = 0; round < 8; round++) {
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
      for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
        size_t a = aligns[i], n = sizes[j];
        unsigned char *p = alloc(a, n);
        EXPECT(p != NULL, "%s(%zu, %zu) failed: errno %d", name, a, n, errno);
        EXPECT((uintptr_t)p % a == 0, "%s(%zu, %zu) = %p, not aligned", name, a, n, (void *)p);
        EXPECT(gort_usable_size(p) >= n, "%s(%zu, %zu): usable %zu", name, a, n, gort_usable_size(p));
        memset(p, 0xa5, n);
        // A second block of the same kind while the first is live.
        unsigned char *q = alloc(a, n);
        EXPECT(q != NULL && q != p && (uintptr_t)q % a == 0, "%s(%zu, %zu) second block %p", name, a, n,
               (void *)q);
        memset(q, 0x5a, n);
        EXPECT(p[0] == 0xa5 && p[n - 1] == 0xa5, "%s(%zu, %zu): first block overwritten", name, a, n);
        gort_free(p);
        gort_free(q);
      }
    }
  }
}

INNER_TEST(inner_hardened_gort_aligned_alloc) {
  aligned_round_trips(via_gort_aligned_alloc, "gort_aligned_alloc");
}

TEST(hardened_gort_aligned_alloc_with_large_alignments_round_trips) {
  EXPECT(harness_run_inner("inner_hardened_gort_aligned_alloc", "GORT_DEBUG=harden=1"));
}

#ifndef GORT_NO_SHIM
INNER_TEST(inner_hardened_posix_memalign) { aligned_round_trips(via_posix_memalign, "posix_memalign"); }

TEST(hardened_posix_memalign_with_large_alignments_round_trips) {
  EXPECT(harness_run_inner("inner_hardened_posix_memalign", "GORT_DEBUG=harden=1"));
}

INNER_TEST(inner_hardened_memalign) { aligned_round_trips(via_memalign, "memalign"); }

TEST(hardened_memalign_with_large_alignments_round_trips) {
  EXPECT(harness_run_inner("inner_hardened_memalign", "GORT_DEBUG=harden=1"));
}
#endif
