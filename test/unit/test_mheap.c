// Unit tests of the page heap: allocation, coalescing, alignment, growth in
// place, release to the OS and the accounting that stats rely on.

#include <errno.h>
#include <string.h>

#include "alloc/mheap.h"
#include "alloc/alloc_init.h"
#include "gort/alloc.h"
#include "os/os.h"
#include "test.h"

// The program's own allocations share this heap: libgort.a always brings
// gort's malloc along, so libc's allocations (the DTV of each new thread,
// stdio buffers) come from it too. settle() makes the ones gort's start-up
// causes, its scavenger thread's, happen before a case reads its baseline.
static void settle(void) {
  gort__start_ensure();
  gort_free(gort_malloc(8 << 20));  // enough freed to start the scavenger thread
}

static void check_heap(const char *when) {
  EXPECT(gort__mheap_is_valid(), "heap invalid %s", when);
  heap_stats_t st;
  gort__mheap_read_stats(&st);
  EXPECT_EQ_U64(st.inuse_bytes + st.free_bytes, st.sys_bytes, "%s", when);
  EXPECT_LE_U64(st.released_bytes, st.free_bytes, "%s", when);
}

TEST(alloc_maps_every_page_to_its_span) {
  gort__start_ensure();
  for (uintptr_t n = 1; n < 300; n += 37) {
    mspan_t *s = gort__mheap_alloc(n, 1, SPAN_LARGE);
    ASSERT_NOT_NULL(s, "n=%lu", (unsigned long)n);
    EXPECT_EQ_U64(s->npages, n);
    for (uintptr_t p = s->base; p < s->base + span_bytes(s); p += GORT_PAGE_SIZE)
      EXPECT(span_of(p) == s, "page %lu of %lu", (unsigned long)((p - s->base) >> 13), (unsigned long)n);
    EXPECT(span_of(s->base + span_bytes(s) - 1) == s);
    memset((void *)s->base, 0xab, span_bytes(s));
    gort__mheap_free(s);
    check_heap("after free");
  }
}

TEST(free_runs_coalesce_back_into_one) {
  settle();
  heap_stats_t start;
  gort__mheap_read_stats(&start);
  enum { N = 200 };
  mspan_t *spans[N];
  for (int i = 0; i < N; i++) {
    spans[i] = gort__mheap_alloc((uintptr_t)(1 + i % 5), 1, SPAN_LARGE);
    ASSERT_NOT_NULL(spans[i]);
  }
  check_heap("after allocs");
  heap_stats_t before;
  gort__mheap_read_stats(&before);
  // Free in an interleaved order so that merges happen left, right and both.
  for (int i = 0; i < N; i += 2) gort__mheap_free(spans[i]);
  check_heap("after even frees");
  for (int i = 1; i < N; i += 2) gort__mheap_free(spans[i]);
  check_heap("after all frees");
  heap_stats_t after;
  gort__mheap_read_stats(&after);
  EXPECT_EQ_U64(after.inuse_bytes, start.inuse_bytes, "everything this case took was freed");
  EXPECT_EQ_U64(after.sys_bytes, before.sys_bytes, "freeing never grows the heap");
  // check_heap's validator found no two free runs adjacent: every freed
  // span merged with its free neighbours.
}

TEST(aligned_spans_start_on_their_alignment) {
  gort__start_ensure();
  mspan_t *pad = gort__mheap_alloc(3, 1, SPAN_LARGE);  // unalign the free run
  for (uintptr_t align = 1; align <= 1024; align *= 2) {
    mspan_t *s = gort__mheap_alloc(5, align, SPAN_LARGE);
    ASSERT_NOT_NULL(s);
    EXPECT_EQ_U64(s->base % (align * GORT_PAGE_SIZE), 0, "align %lu pages", (unsigned long)align);
    gort__mheap_free(s);
    check_heap("after aligned");
  }
  gort__mheap_free(pad);
}

TEST(grow_in_place_takes_the_free_pages_after_a_span) {
  gort__start_ensure();
  mspan_t *s = gort__mheap_alloc(4, 1, SPAN_LARGE);
  ASSERT_NOT_NULL(s);
  uintptr_t base = s->base;
  EXPECT(gort__mheap_grow_in_place(s, 40));
  EXPECT_EQ_U64(s->base, base);
  EXPECT_EQ_U64(s->npages, 40);
  for (uintptr_t p = s->base; p < s->base + span_bytes(s); p += GORT_PAGE_SIZE) EXPECT(span_of(p) == s);
  check_heap("after growth");
  mspan_t *blocker = gort__mheap_alloc(1, 1, SPAN_LARGE);
  if (blocker->base == s->base + span_bytes(s)) EXPECT(!gort__mheap_grow_in_place(s, 41));
  gort__mheap_free(blocker);
  gort__mheap_free(s);
  check_heap("after free");
}

TEST(released_pages_are_counted_and_reused_correctly) {
  settle();
  mspan_t *s = gort__mheap_alloc(512, 1, SPAN_LARGE);  // 4 MiB
  ASSERT_NOT_NULL(s);
  uintptr_t base = s->base;
  memset((void *)base, 0x5a, span_bytes(s));
  EXPECT(gort__os_resident((void *)base, span_bytes(s)) >= (int64_t)span_bytes(s) / 2);
  gort__mheap_free(s);
  uint64_t got = gort__mheap_release(UINT64_MAX, -1);
  EXPECT(got >= 512 * GORT_PAGE_SIZE, "released %lu", (unsigned long)got);
  EXPECT_EQ_U64(gort__os_resident((void *)base, 512 * GORT_PAGE_SIZE), 0, "pages still resident");
  check_heap("after release");
  heap_stats_t st;
  gort__mheap_read_stats(&st);
  EXPECT_EQ_U64(st.released_bytes, st.free_bytes, "everything free is released");
  // Reusing released pages: they read as zero (MADV_DONTNEED) and work.
  mspan_t *t = gort__mheap_alloc(512, 1, SPAN_LARGE);
  ASSERT_NOT_NULL(t);
  EXPECT(!t->needzero, "released pages are known zero");
  for (uintptr_t p = t->base; p < t->base + span_bytes(t); p += 4096) EXPECT(*(char *)p == 0);
  memset((void *)t->base, 1, span_bytes(t));
  gort__mheap_free(t);
  check_heap("after reuse");
}

TEST(span_of_says_not_ours_for_foreign_addresses) {
  gort__start_ensure();
  int local;
  static int global;
  EXPECT(span_of((uintptr_t)&local) == NULL);
  EXPECT(span_of((uintptr_t)&global) == NULL);
  EXPECT(span_of(0) == NULL);
  EXPECT(span_of(UINTPTR_MAX) == NULL);
  EXPECT(span_of((uintptr_t)1 << 47) == NULL);
  EXPECT(span_of((uintptr_t)&check_heap) == NULL);
}

TEST(os_refusal_returns_enomem_and_keeps_the_heap) {
  gort__start_ensure();
  errno = 0;
  mspan_t *s = gort__mheap_alloc((uintptr_t)1 << 40, 1, SPAN_LARGE);  // 8 EiB
  EXPECT(s == NULL);
  EXPECT_EQ_U64(errno, ENOMEM);
  check_heap("after refusal");
}

// The tracked zone (the collector's scanned objects): its spans never
// share an arena with the main zone's, never merge with them, are the only
// ones listed for dirty tracking, and its pages are released like any
// others.
static bool in_reservations(uintptr_t a) {
  for (uint32_t i = 0; i < gort__mheap_nreservations(); i++) {
    uintptr_t lo, hi;
    gort__mheap_reservation(i, &lo, &hi);
    if (a >= lo && a < hi) return true;
  }
  return false;
}

TEST(the_tracked_zone_keeps_to_its_own_arenas_and_lists) {
  settle();
  enum { N = 64 };
  mspan_t *z[N], *m[N];
  uint64_t rng = harness_seed();
  for (int i = 0; i < N; i++) {
    uintptr_t n = 1 + test_rand(&rng) % 200;  // exact lists and the large one
    z[i] = gort__mheap_alloc_in(n, 1, SPAN_LARGE, MHEAP_ZONE_TRACKED);
    m[i] = gort__mheap_alloc_in(n, 1, SPAN_LARGE, MHEAP_ZONE_MAIN);
    ASSERT_NOT_NULL(z[i]);
    ASSERT_NOT_NULL(m[i]);
    EXPECT_EQ_U64(mheap_zone_of(z[i]->base), MHEAP_ZONE_TRACKED);
    EXPECT_EQ_U64(mheap_zone_of(z[i]->base + span_bytes(z[i]) - 1), MHEAP_ZONE_TRACKED);
    EXPECT_EQ_U64(mheap_zone_of(m[i]->base), MHEAP_ZONE_MAIN);
    EXPECT(in_reservations(z[i]->base), "a tracked span at %#lx is not listed", (unsigned long)z[i]->base);
    EXPECT(!in_reservations(m[i]->base), "a main span at %#lx is listed", (unsigned long)m[i]->base);
  }
  check_heap("after allocating in both zones");
  // A free run of one zone never takes the other's pages, however freed.
  for (int i = 0; i < N; i += 2) gort__mheap_free(z[i]), gort__mheap_free(m[i]);
  check_heap("after freeing half");
  EXPECT(gort__mheap_release(UINT64_MAX, -1) > 0, "the release returned nothing");
  check_heap("after releasing every free page");
  for (int i = 1; i < N; i += 2) {
    mspan_t *s = z[i];
    // Growing in place takes only its own zone's pages.
    if (gort__mheap_grow_in_place(s, s->npages + 8))
      EXPECT_EQ_U64(mheap_zone_of(s->base + span_bytes(s) - 1), MHEAP_ZONE_TRACKED);
    gort__mheap_free(s), gort__mheap_free(m[i]);
  }
  check_heap("after freeing everything");
}

// The tracked zone starts 4 GiB below the main one; past that it grows
// down from its start, so the heap's bounds stay a few GiB wide (they once
// jumped to 124 GiB: the marker's bounds test and the leak check's
// bitmaps then spanned 5.7 TiB). Address space only: nothing is touched.
TEST(the_tracked_zone_grows_down_once_it_meets_the_main_one) {
  settle();
  enum { N = 80, PAGES = 8192 };  // 80 spans of 64 MiB: 5 GiB
  mspan_t *main_span = gort__mheap_alloc_in(1, 1, SPAN_LARGE, MHEAP_ZONE_MAIN);
  ASSERT_NOT_NULL(main_span);
  static mspan_t *t[N];
  for (int i = 0; i < N; i++) {
    t[i] = gort__mheap_alloc_in(PAGES, 1, SPAN_LARGE, MHEAP_ZONE_TRACKED);
    ASSERT_NOT_NULL(t[i], "tracked span %d", i);
    EXPECT_EQ_U64(mheap_zone_of(t[i]->base), MHEAP_ZONE_TRACKED);
    EXPECT(in_reservations(t[i]->base), "a tracked span at %#lx is not listed", (unsigned long)t[i]->base);
  }
  uintptr_t lo, hi;
  gort__mheap_arena_range(&lo, &hi);
  EXPECT_LE_U64(hi - lo, (uint64_t)16 << 30, "the heap spans %#lx-%#lx", (unsigned long)lo, (unsigned long)hi);
  EXPECT(main_span->base < hi && main_span->base >= lo);
  check_heap("after 5 GiB of tracked spans");
  for (int i = 0; i < N; i++) gort__mheap_free(t[i]);
  gort__mheap_free(main_span);
  check_heap("after freeing them");
}
