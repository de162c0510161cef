// userfaultfd asynchronous write-protect and the PAGEMAP_SCAN ioctl: the
// kernel's record of which pages were written (Linux 6.7+). The collector's
// dirty tracking (gc/dirty.c) is the only user; this file only wraps the
// calls. Debian 12's headers predate both features, so their constants and
// structures are spelled out here, from the kernel's uapi (linux/fs.h,
// linux/userfaultfd.h).

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../base/base.h"
#include "os.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

struct pm_region {
  uint64_t start, end, categories;
};

struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

#define PM_PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#define PM_PAGE_IS_WRITTEN (1 << 1)
#define PM_PAGE_IS_PRESENT (1 << 3)
#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

int gort__os_uffd_open(void) {
  // User-mode-only faults need no privilege (vm.unprivileged_userfaultfd
  // governs only kernel-mode faults); asynchronous write-protect needs no
  // thread to read the descriptor: the kernel resolves each fault itself.
  long fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0) return -errno;
  struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED};
  if (ioctl((int)fd, UFFDIO_API, &api) != 0) {
    int e = errno;
    close((int)fd);
    return -e;
  }
  return (int)fd;
}

int gort__os_uffd_register_wp(int fd, uintptr_t lo, size_t len) {
  struct uffdio_register r = {.range = {.start = lo, .len = len}, .mode = UFFDIO_REGISTER_MODE_WP};
  return ioctl(fd, UFFDIO_REGISTER, &r) == 0 ? 0 : -errno;
}

int gort__os_uffd_unprotect(int fd, uintptr_t lo, size_t len) {
  struct uffdio_writeprotect wp = {.range = {.start = lo, .len = len}, .mode = 0};
  return ioctl(fd, UFFDIO_WRITEPROTECT, &wp) == 0 ? 0 : -errno;
}

int gort__os_pagemap_open(void) {
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

int64_t gort__os_pagemap_written(int pmfd, uintptr_t lo, uintptr_t hi, uintptr_t (*out)[2], size_t n,
                                 uintptr_t *walk_end, bool protect) {
  struct pm_region vec[64];
  if (n > 64) n = 64;
  struct pm_scan_arg a = {
      .size = sizeof a,
      .flags = (protect ? PM_SCAN_WP_MATCHING : 0) | PM_SCAN_CHECK_WPASYNC,
      .start = lo,
      .end = hi,
      .vec = n != 0 ? (uint64_t)(uintptr_t)vec : 0,
      .vec_len = n,
      .category_mask = PM_PAGE_IS_WRITTEN,
      .return_mask = PM_PAGE_IS_WRITTEN,
  };
  long r = ioctl(pmfd, PM_PAGEMAP_SCAN, &a);
  if (r < 0) return -errno;
  for (long i = 0; i < r; i++) {
    out[i][0] = (uintptr_t)vec[i].start;
    out[i][1] = (uintptr_t)vec[i].end;
  }
  *walk_end = (uintptr_t)a.walk_end;
  return r;
}

int gort__os_pagemap_count(int pmfd, uintptr_t lo, uintptr_t hi, uint64_t *present, uint64_t *written) {
  *present = *written = 0;
  while (lo < hi) {
    struct pm_region vec[64];
    struct pm_scan_arg a = {
        .size = sizeof a,
        .start = lo,
        .end = hi,
        .vec = (uint64_t)(uintptr_t)vec,
        .vec_len = 64,
        .category_anyof_mask = PM_PAGE_IS_PRESENT,
        .return_mask = PM_PAGE_IS_PRESENT | PM_PAGE_IS_WRITTEN,
    };
    long r = ioctl(pmfd, PM_PAGEMAP_SCAN, &a);
    if (r < 0) return -errno;
    for (long i = 0; i < r; i++) {
      uint64_t pages = (vec[i].end - vec[i].start) >> 12;
      *present += pages;
      if (vec[i].categories & PM_PAGE_IS_WRITTEN) *written += pages;
    }
    if (a.walk_end <= lo) break;  // no progress: cannot happen, but never spin
    lo = (uintptr_t)a.walk_end;
  }
  return 0;
}
