// The memoized stack walk (obs/unwind.c, gort__unwind_capture_memo): a walk
// that reuses its last walk's frames must return what a full walk returns,
// whatever changed on the stack between the two: another caller at the
// same depth, another path above a frame, a different recursion depth.
// Each capture is checked against gort__unwind_capture made from the same
// frame (their first entries differ: two call sites).

#include <string.h>

#include "obs/unwind.h"
#include "test.h"

#define MAXF 64

static unwind_memo_t memo;
static int mismatches, reused_whole, reused_part;
static volatile int sink;

__attribute__((noinline)) static void leaf(void) {
  uintptr_t a[MAXF], b[MAXF];
  uint32_t na = gort__unwind_capture_memo(a, MAXF, &memo);
  uint32_t nb = gort__unwind_capture(b, MAXF);
  if (memo.reused == 0) reused_whole++;
  else if (memo.reused < na) reused_part++;
  if (na != nb || memcmp(a + 1, b + 1, (na - 1) * sizeof a[0]) != 0) mismatches++;
  sink++;
}

__attribute__((noinline)) static void via_a(void) { leaf(); sink++; }
__attribute__((noinline)) static void via_b(void) { leaf(); sink += 2; }
__attribute__((noinline)) static void big_frame(int k) {
  volatile char pad[512];
  pad[k & 511] = 1;
  if (k & 1) via_a(); else via_b();
  sink += pad[0];
}
__attribute__((noinline)) static void recurse(int d) {
  if (d == 0) {
    leaf();
    return;
  }
  recurse(d - 1);
  sink++;
}

TEST(memo_walks_equal_full_walks) {
  gort__unwind_init();
  memset(&memo, 0, sizeof memo);
  for (int i = 0; i < 200; i++) {
    for (int k = 0; k < sink % 3 + 2; k++) leaf();  // one call site again: copied whole
    via_a();
    via_b();
    big_frame(i);
    recurse(i % 7);
    if (i % 3 == 0) via_a();
  }
  EXPECT_EQ_U64(mismatches, 0);
  EXPECT(reused_whole > 0, "a repeated stack is copied whole (%d)", reused_whole);
  EXPECT(reused_part > 0, "a stack that shares its outer frames copies them (%d)", reused_part);
}

TEST(memo_walks_with_smaller_max_stop_there) {
  memset(&memo, 0, sizeof memo);
  uintptr_t a[4];
  for (int i = 0; i < 3; i++) {
    uint32_t n = gort__unwind_capture_memo(a, 4, &memo);
    EXPECT(n == 4, "n %u", n);
  }
}
