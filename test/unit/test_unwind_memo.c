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

// Kept walks (gort__unwind_capture_tagged): a hit names a walk kept
// earlier; what that walk returned must be what a full walk returns now.
#define NTAGS 256
static uintptr_t tagged_pcs[NTAGS][MAXF];
static uint32_t tagged_n[NTAGS], ntags;
static int tag_hits, tag_mismatches;

__attribute__((noinline)) static void tagged_leaf(void) {
  uintptr_t a[MAXF], b[MAXF];
  unwind_tag_t t = {.m = &memo};
  uint32_t na = gort__unwind_capture_tagged(a, MAXF, &t);
  uint32_t nb = gort__unwind_capture(b, MAXF);
  if (t.tag != 0) {
    tag_hits++;
    uint32_t k = t.tag - 1;
    if (tagged_n[k] != na || na != nb || memcmp(tagged_pcs[k] + 1, b + 1, (nb - 1) * sizeof b[0]) != 0)
      tag_mismatches++;
  } else {
    if (na != nb || memcmp(a + 1, b + 1, (na - 1) * sizeof a[0]) != 0) tag_mismatches++;
    uint32_t tag = 0;
    if (ntags < NTAGS) {
      memcpy(tagged_pcs[ntags], a, na * sizeof a[0]);
      tagged_n[ntags] = na;
      tag = ++ntags;
    }
    gort__unwind_memo_keep(&t, tag);
  }
  sink++;
}

__attribute__((noinline)) static void tagged_a(void) { tagged_leaf(); sink++; }
__attribute__((noinline)) static void tagged_b(void) { tagged_leaf(); sink += 2; }
__attribute__((noinline)) static void tagged_via(int k) {
  if (k & 1) tagged_a(); else tagged_b();
  sink++;
}
__attribute__((noinline)) static void tagged_twin1(int k) { tagged_via(k); sink++; }
__attribute__((noinline)) static void tagged_twin2(int k) { tagged_via(k); sink++; }
__attribute__((noinline)) static void tagged_recurse(int d) {
  if (d == 0) tagged_leaf();
  else tagged_recurse(d - 1);
  sink++;
}

TEST(kept_walks_name_only_identical_stacks) {
  gort__unwind_init();
  memset(&memo, 0, sizeof memo);
  for (int i = 0; i < 300; i++) {
    tagged_leaf();
    tagged_a();
    tagged_b();
    if (i % 2) tagged_twin1(i); else tagged_twin2(i);
    tagged_recurse(i % 5);
    big_frame(i);  // a memo walk between: the kept walks must not mind
  }
  EXPECT_EQ_U64(tag_mismatches, 0);
  EXPECT(tag_hits > 300, "repeated stacks are found among the kept walks (%d hits)", tag_hits);
}

TEST(kept_walk_with_another_max_is_not_reused) {
  memset(&memo, 0, sizeof memo);
  uintptr_t a[MAXF];
  for (int i = 0; i < 4; i++) {
    unwind_tag_t t = {.m = &memo};
    uint32_t max = i % 2 ? 3 : MAXF;
    uint32_t n = gort__unwind_capture_tagged(a, max, &t);
    EXPECT(n <= max, "n %u max %u", n, max);
    EXPECT(t.tag == 0 || t.tag == max, "tag %u for max %u", t.tag, max);
    if (t.tag == 0) gort__unwind_memo_keep(&t, max);
  }
}

// The leak check's inline hit (gort__unwind_kept_last), from a frame
// state as its record stub passes it: a tag it returns must name a walk
// equal to a full walk from the same state now; on 0, the tagged walk
// goes on as the record does (the other kept walks, else a walk kept
// under a new tag). The same paths as above, alternating, so that the
// kept walk found last keeps changing and is often rebuilt.
#if defined(__x86_64__) && defined(__linux__)
void kept_state(uintptr_t st[3]);
__asm__(".pushsection .text\n"
        ".type kept_state, @function\n"
        "kept_state:\n"
        "  movq (%rsp), %rax\n"
        "  movq %rax, (%rdi)\n"
        "  leaq 8(%rsp), %rax\n"
        "  movq %rax, 8(%rdi)\n"
        "  movq %rbp, 16(%rdi)\n"
        "  ret\n"
        ".size kept_state, .-kept_state\n"
        ".popsection\n");

static uintptr_t last_pcs[NTAGS][MAXF];
static uint32_t last_n[NTAGS], nlast;
static int last_hits, last_mismatches;

__attribute__((noinline)) static void last_leaf(void) {
  uintptr_t st[3], a[MAXF], b[MAXF];
  kept_state(st);
  uint32_t nb = gort__unwind_walk(b, MAXF, st[0], st[1], st[2]);
  uint32_t tag = gort__unwind_kept_last(&memo, MAXF, st[0], st[1], st[2]);
  if (tag != 0) {
    last_hits++;
  } else {
    unwind_tag_t t = {.m = &memo};
    uint32_t na = gort__unwind_walk_tagged(a, MAXF, st[0], st[1], st[2], &t);
    tag = t.tag;
    if (tag == 0) {
      if (na != nb || memcmp(a, b, na * sizeof a[0]) != 0) last_mismatches++;
      if (nlast < NTAGS) {
        memcpy(last_pcs[nlast], a, na * sizeof a[0]);
        last_n[nlast] = na;
        tag = ++nlast;
      }
      gort__unwind_memo_keep(&t, tag);
      tag = 0;
    }
  }
  if (tag != 0 && (last_n[tag - 1] != nb || memcmp(last_pcs[tag - 1], b, nb * sizeof b[0]) != 0))
    last_mismatches++;
  sink++;
}

__attribute__((noinline)) static void last_a(void) { last_leaf(); sink++; }
__attribute__((noinline)) static void last_b(void) { last_leaf(); sink += 2; }
__attribute__((noinline)) static void last_via(int k) {
  if (k & 1) last_a(); else last_b();
  sink++;
}
__attribute__((noinline)) static void last_twin1(int k) { last_via(k); sink++; }
__attribute__((noinline)) static void last_twin2(int k) { last_via(k); sink++; }
__attribute__((noinline)) static void last_recurse(int d) {
  if (d == 0) last_leaf();
  else last_recurse(d - 1);
  sink++;
}

TEST(kept_last_names_only_identical_stacks) {
  gort__unwind_init();
  memset(&memo, 0, sizeof memo);
  for (int i = 0; i < 400; i++) {
    for (int k = 0; k < i % 3 + 1; k++) last_leaf();  // the same stack again: the inline hit
    last_a();
    if (i % 2) last_twin1(i); else last_twin2(i);
    last_recurse(i % 11);  // more stacks than kept slots: slots are rebuilt
    if (i % 50 == 0) gort__unwind_memo_forget(&memo);
  }
  EXPECT_EQ_U64(last_mismatches, 0);
  EXPECT(last_hits > 100, "a repeated stack is the inline hit (%d hits)", last_hits);
}
#endif
