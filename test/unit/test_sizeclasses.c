// Unit tests of the size-class table (tools/mksizeclasses.py output).

#include "alloc/malloc_fast.h"
#include "test.h"

TEST(classes_are_16_byte_multiples_and_increasing) {
  for (int c = 1; c < GORT_NUM_CLASSES; c++) {
    EXPECT_EQ_U64(gort__class_size[c] % 16, 0, "class %d", c);
    if (c > 1) EXPECT(gort__class_size[c] > gort__class_size[c - 1], "class %d", c);
  }
  EXPECT_EQ_U64(gort__class_size[GORT_NUM_CLASSES - 1], GORT_SMALL_MAX);
}

TEST(size_class_is_the_smallest_that_fits) {
  for (size_t n = 0; n <= GORT_SMALL_MAX; n++) {
    unsigned c = size_class(n);
    EXPECT(c >= 1 && c < GORT_NUM_CLASSES, "n=%zu", n);
    EXPECT(gort__class_size[c] >= n, "n=%zu class=%u", n, c);
    if (c > 1) EXPECT(gort__class_size[c - 1] < n || n == 0, "n=%zu class=%u", n, c);
  }
}

TEST(rounding_waste_is_at_most_an_eighth_from_128_bytes) {
  for (size_t n = 128; n <= GORT_SMALL_MAX; n++) {
    uint32_t sz = gort__class_size[size_class(n)];
    EXPECT((sz - n) * 8 <= sz, "n=%zu rounds to %u", n, sz);
  }
}

TEST(span_tail_waste_is_at_most_an_eighth) {
  for (int c = 1; c < GORT_NUM_CLASSES; c++) {
    uint64_t span = (uint64_t)gort__class_npages[c] * GORT_PAGE_SIZE;
    EXPECT_EQ_U64(gort__class_nelems[c], span / gort__class_size[c], "class %d", c);
    EXPECT((span % gort__class_size[c]) * 8 <= span, "class %d", c);
    EXPECT(gort__class_nelems[c] <= GORT_MAX_SPAN_ELEMS, "class %d", c);
  }
}

TEST(divmul_divides_exactly_for_every_offset_in_a_span) {
  for (int c = 1; c < GORT_NUM_CLASSES; c++) {
    mspan_t s = {.elemsize = gort__class_size[c], .divmul = gort__class_divmul[c]};
    uint64_t span = (uint64_t)gort__class_npages[c] * GORT_PAGE_SIZE;
    for (uint64_t off = 0; off < span; off++)
      if (span_elem_index(&s, off) != off / s.elemsize)
        harness_fail(__FILE__, __LINE__, "class %d off %lu", c, (unsigned long)off);
  }
}
