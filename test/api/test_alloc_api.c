// API tests of include/gort/alloc.h: malloc's contract as C programs rely
// on it, alignment, sizes, and failure with errno.

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "test.h"

// Some cases ask for impossible sizes on purpose; the allocation
// attributes (api.h) let the compiler see that.
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

TEST(malloc_zero_returns_distinct_usable_pointers) {
  void *a = gort_malloc(0), *b = gort_malloc(0);
  ASSERT_NOT_NULL(a);
  ASSERT_NOT_NULL(b);
  EXPECT(a != b);
  EXPECT(gort_usable_size(a) >= 1);
  gort_free(a);
  gort_free(b);
}

TEST(blocks_are_16_byte_aligned_and_usable_to_their_size) {
  uint64_t seed = harness_seed();
  for (int i = 0; i < 20000; i++) {
    size_t n = (size_t)(test_rand(&seed) % (i < 10000 ? 2048 : 200000));
    unsigned char *p = gort_malloc(n);
    ASSERT_NOT_NULL(p, "n=%zu", n);
    EXPECT_EQ_U64((uintptr_t)p % 16, 0, "n=%zu", n);
    size_t u = gort_usable_size(p);
    EXPECT(u >= n, "usable %zu < %zu", u, n);
    memset(p, 0xee, u);
    gort_free(p);
  }
}

TEST(free_null_does_nothing) { gort_free(NULL); }

TEST(calloc_zeroes_even_reused_memory) {
  for (int round = 0; round < 3; round++) {
    size_t sizes[] = {1, 16, 100, 1000, 5000, 40000, 300000, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      unsigned char *p = gort_calloc(1, sizes[i]);
      ASSERT_NOT_NULL(p);
      for (size_t j = 0; j < sizes[i]; j++)
        if (p[j] != 0) harness_fail(__FILE__, __LINE__, "size %zu byte %zu not zero", sizes[i], j);
      memset(p, 0x77, sizes[i]);  // dirty it for the next round
      gort_free(p);
    }
  }
}

TEST(calloc_overflow_is_enomem) {
  errno = 0;
  EXPECT(gort_calloc(SIZE_MAX / 2, 3) == NULL);
  EXPECT_EQ_U64(errno, ENOMEM);
  errno = 0;
  EXPECT(gort_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL);
  EXPECT_EQ_U64(errno, ENOMEM);
}

TEST(huge_malloc_is_enomem) {
  size_t sizes[] = {SIZE_MAX, SIZE_MAX - 4096, (size_t)PTRDIFF_MAX + 1, (size_t)1 << 50};
  for (size_t i = 0; i < 4; i++) {
    errno = 0;
    EXPECT(gort_malloc(sizes[i]) == NULL, "size %zx", sizes[i]);
    EXPECT_EQ_U64(errno, ENOMEM, "size %zx", sizes[i]);
  }
}

TEST(realloc_keeps_contents_and_follows_glibc_for_zero) {
  unsigned char *p = gort_realloc(NULL, 10);
  ASSERT_NOT_NULL(p);
  for (int i = 0; i < 10; i++) p[i] = (unsigned char)i;
  size_t sizes[] = {20, 200, 3000, 40000, 100000, 1 << 20, 5000, 64, 5};
  size_t have = 10;
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    p = gort_realloc(p, sizes[k]);
    ASSERT_NOT_NULL(p);
    size_t keep = have < sizes[k] ? have : sizes[k];
    for (size_t i = 0; i < keep; i++)
      if (p[i] != (unsigned char)(i * 7 + 3) && !(have == 10 && p[i] == (unsigned char)i))
        harness_fail(__FILE__, __LINE__, "byte %zu lost at size %zu", i, sizes[k]);
    for (size_t i = 0; i < sizes[k]; i++) p[i] = (unsigned char)(i * 7 + 3);
    have = sizes[k];
  }
  errno = 0;
  EXPECT(gort_realloc(p, 0) == NULL, "realloc(p, 0) frees and returns NULL");
}

TEST(realloc_failure_leaves_the_block_intact) {
  char *p = gort_malloc(100);
  strcpy(p, "still here");
  errno = 0;
  EXPECT(gort_realloc(p, SIZE_MAX - 100) == NULL);
  EXPECT_EQ_U64(errno, ENOMEM);
  EXPECT(strcmp(p, "still here") == 0);
  gort_free(p);
}

TEST(large_realloc_grows_in_place_when_it_can) {
  char *p = gort_malloc(64 << 10);
  memset(p, 1, 64 << 10);
  int moved = 0;
  for (size_t n = 128 << 10; n <= (8 << 20); n += 64 << 10) {
    char *q = gort_realloc(p, n);
    ASSERT_NOT_NULL(q);
    moved += q != p;
    EXPECT(q[0] == 1);
    p = q;
  }
  EXPECT(moved < 10, "moved %d times", moved);
  gort_free(p);
}

// realloc keeps a block from its page info alone (malloc.c, "Realloc"):
// the page count it reads must follow the block as it grows in place, is
// freed and is handed out again at the same address.
TEST(realloc_keeps_a_large_block_exactly_within_its_pages) {
  for (int round = 0; round < 3; round++) {
    char *p = gort_malloc(100000);
    ASSERT_NOT_NULL(p);
    p[0] = 7;
    size_t u = gort_usable_size(p);
    EXPECT(gort_realloc(p, u) == p, "round %d: a realloc to its usable size stays", round);
    EXPECT(gort_realloc(p, u / 2 + 8192) == p, "round %d: down to half its pages stays", round);
    char *q = gort_realloc(p, u + 100000);  // grows in place or moves
    ASSERT_NOT_NULL(q);
    size_t v = gort_usable_size(q);
    EXPECT(v >= u + 100000);
    EXPECT(gort_realloc(q, v) == q, "round %d: the grown block's new pages count", round);
    char *r = gort_realloc(q, u / 4);  // under half its pages: moves
    ASSERT_NOT_NULL(r);
    EXPECT(r != q && r[0] == 7, "round %d", round);
    EXPECT(gort_usable_size(r) >= u / 4);
    char *s = gort_realloc(r, 1000);  // to a small class: moves
    EXPECT(s != r && s[0] == 7);
    gort_free(s);
  }
}

TEST(alignment_matrix_every_power_of_two_to_1mib) {
  size_t extra[] = {1, 15, 16, 17, 100, 4095, 4096, 5000, 32768, 40000, 200000};
  for (size_t align = 1; align <= (1 << 20); align *= 2) {
    for (int k = -1; k < (int)(sizeof extra / sizeof extra[0]); k++) {
      size_t n = k < 0 ? align : extra[k];
      void *ps[4];
      for (int r = 0; r < 4; r++) {
        ps[r] = gort_aligned_alloc(align, n);
        ASSERT_NOT_NULL(ps[r], "align %zu size %zu", align, n);
        EXPECT_EQ_U64((uintptr_t)ps[r] % align, 0, "align %zu size %zu", align, n);
        EXPECT(gort_usable_size(ps[r]) >= n, "align %zu size %zu", align, n);
        memset(ps[r], 0x33, n);
      }
      for (int r = 0; r < 4; r++) gort_free(ps[r]);
    }
  }
}

TEST(bad_alignment_is_einval) {
  size_t bad[] = {0, 3, 24, 48, 1000, 3 << 20};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    EXPECT(gort_aligned_alloc(bad[i], 64) == NULL, "align %zu", bad[i]);
    EXPECT_EQ_U64(errno, EINVAL, "align %zu", bad[i]);
  }
}

// Under an address-space limit the OS refuses new arenas: allocation must
// fail with ENOMEM, never crash, and keep every block already handed out.
TEST(os_refusal_under_ulimit_v_is_enomem_and_loses_nothing) {
#ifdef GORT_NO_SHIM
  // ThreadSanitizer maps memory of its own (shadow, per-thread signal
  // contexts) lazily, and dies when the limit refuses it.
  SKIP_IF(1, "ThreadSanitizer's own mappings fail under the address-space limit");
#endif
  enum { N = 2000 };
  static char *blocks[N];
  for (int i = 0; i < N; i++) {
    blocks[i] = gort_malloc(1000);
    memset(blocks[i], i & 0xff, 1000);
  }
  struct rlimit rl = {.rlim_cur = 0, .rlim_max = RLIM_INFINITY};
  getrlimit(RLIMIT_AS, &rl);
  char buf[256];
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long vm_pages = 0;
  if (f != NULL && fgets(buf, sizeof buf, f)) vm_pages = strtoul(buf, NULL, 10);
  if (f) fclose(f);
  rl.rlim_cur = vm_pages * 4096 + (96 << 20);  // room for little more than one arena
  EXPECT(setrlimit(RLIMIT_AS, &rl) == 0);
  int failures = 0;
  void *held[4096];
  int nheld = 0;
  for (int i = 0; i < 4096; i++) {
    errno = 0;
    void *p = gort_malloc(i % 2 ? 1 << 20 : 20000);
    if (p == NULL) {
      EXPECT_EQ_U64(errno, ENOMEM);
      failures++;
      if (failures > 10) break;
    } else {
      held[nheld++] = p;
    }
  }
  EXPECT(failures > 0, "the limit never bit");
  for (int i = 0; i < N; i++)
    for (int j = 0; j < 1000; j++)
      if ((unsigned char)blocks[i][j] != (i & 0xff)) harness_fail(__FILE__, __LINE__, "block %d corrupted", i);
  for (int i = 0; i < nheld; i++) gort_free(held[i]);
  void *again = gort_malloc(100);
  ASSERT_NOT_NULL(again, "small allocation works after the refusals");
  gort_free(again);
}

TEST(usable_size_of_null_is_zero) { EXPECT_EQ_U64(gort_usable_size(NULL), 0); }
