// Unit tests of the OS layer's reservations: whatever size a caller asks
// for, unmapping that size gives back every page the reservation kept.

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/base.h"
#include "os/os.h"
#include "test.h"

// Whether any page of [p, p + len) is mapped (mincore fails with ENOMEM on
// an unmapped page).
static bool any_page_mapped(uintptr_t p, size_t len) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  unsigned char v;
  for (uintptr_t a = p; a < p + len; a += page)
    if (mincore((void *)a, page, &v) == 0) return true;
  return false;
}

// Each (size, alignment) is reserved and unmapped many times, and no page
// of a reservation may stay mapped after it (in a loop like this one the
// pages left behind are adjacent and merge into one mapping, so a count of
// the mappings would not show them). The heap profiler's registry is
// rehashed into a new reservation of 6144 bytes and the old one unmapped,
// over and over while blocks are sampled and freed: each cycle left a page
// mapped, and forks slowed tenfold.
TEST(a_size_that_is_not_a_page_multiple_is_unmapped_whole) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t sizes[] = {1, 100, 3072, 6144, 10000, 3 * page + 1, 4 * page};
  size_t aligns[] = {8, page, 4 * page, 64 * page};
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
    for (size_t k = 0; k < sizeof aligns / sizeof *aligns; k++) {
      for (int n = 0; n < 200; n++) {
        int err;
        errno = 12345;
        char *p = gort__os_reserve(0, sizes[i], aligns[k], &err);
        ASSERT_NOT_NULL(p, "size %zu align %zu: err %d", sizes[i], aligns[k], err);
        EXPECT(errno == 12345, "errno changed by a reservation that succeeded");
        size_t a = aligns[k] < page ? page : aligns[k];
        EXPECT_EQ_U64((uintptr_t)p % a, 0, "size %zu align %zu", sizes[i], aligns[k]);
        memset(p, 0x5a, sizes[i]);  // every byte asked for is there
        EXPECT(gort__os_unmap(p, sizes[i]) == 0, "size %zu align %zu", sizes[i], aligns[k]);
        // At page alignment the reservation was one mapping of the size
        // rounded up plus a page of slop, trimmed at once: the page after
        // the size is unmapped too (where a page left behind once was).
        size_t span = GORT_ALIGN_UP(sizes[i], page) + (a == page ? page : 0);
        EXPECT(!any_page_mapped((uintptr_t)p, span),
               "size %zu align %zu: a page of it still mapped after the unmap", sizes[i], aligns[k]);
      }
    }
  }
}

TEST(a_size_near_size_max_is_refused_with_enomem) {
  int err = 0;
  errno = 0;
  void *p = gort__os_reserve(0, SIZE_MAX - 100, 4096, &err);
  EXPECT(p == NULL);
  EXPECT(err == -ENOMEM, "err %d", err);
  EXPECT(errno == 0, "errno changed");
}
