// Virtual memory: reservation, release and residency. See os.h for the
// contract.

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

#include "../base/base.h"
#include "os.h"

#ifndef MADV_FREE
#define MADV_FREE 8
#endif

// Every call here leaves errno as it found it: failures are reported through
// the return value, and malloc must not change errno when it succeeds.
static void *map_at(uintptr_t hint, size_t size, int *err) {
  int saved = errno;
  void *p = mmap((void *)hint, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    *err = -errno;
    errno = saved;
    return NULL;
  }
  return p;
}

// The size is rounded up to whole pages before the slop is trimmed: the
// trim's addresses must be page-aligned (munmap refuses others with EINVAL),
// and a caller's later unmap of its own size, which the kernel rounds up,
// must cover exactly what was kept. A size of 6144 (the heap profiler's
// registry at 256 entries) once left the third page of every reservation
// mapped: each rehash of the registry leaked a mapping, and a program
// sampling every allocation reached 29,000 mappings, and forks ten times
// slower, within a minute.
void *gort__os_reserve(uintptr_t hint, size_t size, size_t align, int *err) {
  *err = 0;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (align < page) align = page;
  if (size > SIZE_MAX - page) {
    *err = -ENOMEM;
    return NULL;
  }
  size = GORT_ALIGN_UP(size, page);
  if (hint != 0 && (hint & (align - 1)) == 0) {
    void *p = map_at(hint, size, err);
    if (p == (void *)hint) return p;
    if (p != NULL) gort__os_unmap(p, size);
  }
  // Over-reserve by align, then trim both ends to an aligned range.
  size_t total = size + align;
  if (total < size) {
    *err = -ENOMEM;
    return NULL;
  }
  char *p = map_at(0, total, err);
  if (p == NULL) return NULL;
  uintptr_t start = GORT_ALIGN_UP((uintptr_t)p, align);
  size_t head = start - (uintptr_t)p;
  if (head > 0) gort__os_unmap(p, head);
  size_t tail = total - head - size;
  if (tail > 0) gort__os_unmap((void *)(start + size), tail);
  return (void *)start;
}

int gort__os_unmap(void *p, size_t size) {
  int saved = errno;
  int r = munmap(p, size) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}

int gort__os_protect(void *p, size_t size, int writable) {
  int saved = errno;
  int r = mprotect(p, size, writable ? PROT_READ | PROT_WRITE : PROT_READ) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}

uint64_t gort__os_memory_bytes(void) {
  struct sysinfo si;
  int saved = errno;
  int r = sysinfo(&si);
  errno = saved;
  if (r != 0) return UINT64_MAX;
  return ((uint64_t)si.totalram + (uint64_t)si.totalswap) * (si.mem_unit ? si.mem_unit : 1);
}

int gort__os_release(void *p, size_t size, int dontneed) {
  int advice = dontneed ? MADV_DONTNEED : MADV_FREE;
  int saved = errno;
  int e = 0;
  if (madvise(p, size, advice) != 0) {
    e = errno;
    // Kernels before 4.5 lack MADV_FREE; DONTNEED is always a correct fallback.
    if (!dontneed && e == EINVAL && madvise(p, size, MADV_DONTNEED) == 0) e = 0;
  }
  errno = saved;
  return -e;
}

int gort__os_huge_pages(void *p, size_t size, int on) {
  int saved = errno;
  int r = madvise(p, size, on ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}

int64_t gort__os_resident(void *p, size_t size) {
  unsigned char vec[256];
  long psz = sysconf(_SC_PAGESIZE);
  int64_t resident = 0;
  for (size_t off = 0; off < size;) {
    size_t chunk = size - off;
    if (chunk > sizeof vec * (size_t)psz) chunk = sizeof vec * (size_t)psz;
    if (mincore((char *)p + off, chunk, vec) != 0) return -errno;
    size_t n = (chunk + (size_t)psz - 1) / (size_t)psz;
    for (size_t i = 0; i < n; i++) resident += (vec[i] & 1) ? psz : 0;
    off += chunk;
  }
  return resident;
}

static int64_t clock_ns(clockid_t id) {
  struct timespec ts;
  int saved = errno;
  int r = clock_gettime(id, &ts);
  errno = saved;
  return r == 0 ? (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec : -1;
}

int64_t gort__os_thread_cpu_ns(void) { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

// The kernel's per-thread CPU clock id of any thread of the process
// (CPUCLOCK_SCHED with the per-thread bit, as pthread_getcpuclockid makes
// it from a pthread_t, which the caller may not have).
int64_t gort__os_tid_cpu_ns(int tid) { return clock_ns((clockid_t)((~(unsigned)tid << 3) | 6)); }

int64_t gort__os_rss(void) {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  char buf[128];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -EIO;
  buf[n] = '\0';
  // Fields: size resident shared ...; take the second.
  const char *s = buf;
  while (*s && *s != ' ') s++;
  while (*s == ' ') s++;
  int64_t pages = 0;
  while (*s >= '0' && *s <= '9') pages = pages * 10 + (*s++ - '0');
  return pages * sysconf(_SC_PAGESIZE);
}

// Both keep errno, as the timed wait does: a wait whose word changed
// first fails with EAGAIN, and the caller may be the program's own thread
// in the middle of a channel operation or a lock.
void gort__os_futex_wait(_Atomic uint32_t *addr, uint32_t val) {
#ifdef GORT_FUTEX_MAX_NS
  gort__os_futex_wait_ns(addr, val, GORT_FUTEX_MAX_NS);
#else
  int saved = errno;
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
  errno = saved;
#endif
}

void gort__os_futex_wake(_Atomic uint32_t *addr, int n) {
  int saved = errno;
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
  errno = saved;
}

uint64_t gort__os_random64(void) {
  uint64_t v = 0;
  if (syscall(SYS_getrandom, &v, sizeof v, GRND_NONBLOCK) == (long)sizeof v && v != 0) return v;
  // No entropy yet (early boot): mix the clock with an ASLR'd address.
  v = (uint64_t)gort__nanotime() ^ ((uint64_t)(uintptr_t)&v << 17) ^ 0x9e3779b97f4a7c15ULL;
  return v * 0xbf58476d1ce4e5b9ULL;
}
