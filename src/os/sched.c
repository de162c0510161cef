// The kernel calls of the goroutine scheduler: timed futex waits, CPU
// counts, stack guards and the alternate signal stack. See os.h for the
// contract, and sched/proc.c for why the scheduler needs each.

#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../base/base.h"
#include "../base/vg.h"
#include "os.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

void gort__os_futex_wait_ns(_Atomic uint32_t *addr, uint32_t val, int64_t ns) {
#ifdef GORT_FUTEX_MAX_NS
  if (ns < 0 || ns > GORT_FUTEX_MAX_NS) ns = GORT_FUTEX_MAX_NS;
#endif
  if (ns < 0) {
    gort__os_futex_wait(addr, val);
    return;
  }
  int saved = errno;
  struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
  errno = saved;
}

int64_t gort__os_nanotime_coarse(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void gort__os_sleep_ns(int64_t ns) {
  if (ns <= 0) return;
  int saved = errno;
  // To an absolute deadline: a relative sleep restarted with the time left
  // after each signal overran by the timer slack and rounding of every
  // restart, without bound under frequent signals (a profiler's).
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t end = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  end = end > INT64_MAX - ns ? INT64_MAX : end + ns;
  ts = (struct timespec){.tv_sec = end / 1000000000, .tv_nsec = end % 1000000000};
  // The system call itself: clock_nanosleep is the program's wrapper
  // (gc/blocking.c), which gort's own sleeps must not take.
  while (syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0 && errno == EINTR) {
  }
  errno = saved;
}

// ---- CPUs -------------------------------------------------------------------------------

static int64_t parse_num(const char **s) {
  if (**s < '0' || **s > '9') return -1;
  int64_t v = 0;
  while (**s >= '0' && **s <= '9') v = v * 10 + (*(*s)++ - '0');
  return v;
}

static int64_t read_num(const char *path) {
  char buf[64];
  if (gort__os_read_file(path, buf, sizeof buf) <= 0) return -1;
  const char *s = buf;
  return parse_num(&s);
}

// The quota of the process's own cgroup as a CPU count (rounded up), 0 for
// none. Only the process's own directory is read (not its parents), and
// only at the usual mount points: a quota on a parent slice, or cgroupfs
// mounted elsewhere, is not seen (TODO: share cgroup.c's mount walk).
static int cgroup_cpus(void) {
  char buf[4096], path[1200], val[64];
  if (gort__os_read_file("/proc/self/cgroup", buf, sizeof buf) <= 0) return 0;
  int best = 0;
  for (char *line = buf; line != NULL && *line != '\0';) {
    char *nl = strchr(line, '\n');
    if (nl != NULL) *nl = '\0';
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    int64_t quota = -1, period = -1;
    if (c2 != NULL && strlen(c2 + 1) < 1000) {
      const char *cpath = strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1;
      *c2 = '\0';
      const char *ctl = c1 + 1;
      if (strcmp(line, "0:") == 0 || (c1 == line + 1 && line[0] == '0' && *ctl == '\0')) {
        gort__snprint(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", cpath);  // v2
        if (gort__os_read_file(path, val, sizeof val) > 0) {
          const char *s = val;
          quota = parse_num(&s);
          if (quota > 0 && *s == ' ') s++, period = parse_num(&s);
        }
      } else if (strcmp(ctl, "cpu") == 0 || strcmp(ctl, "cpu,cpuacct") == 0 ||
                 strcmp(ctl, "cpuacct,cpu") == 0) {
        const char *dirs[] = {"cpu,cpuacct", "cpu"};
        for (int i = 0; i < 2 && quota <= 0; i++) {
          gort__snprint(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_quota_us", dirs[i], cpath);
          quota = read_num(path);
          gort__snprint(path, sizeof path, "/sys/fs/cgroup/%s%s/cpu.cfs_period_us", dirs[i], cpath);
          period = read_num(path);
        }
      }
    }
    if (quota > 0 && period > 0) {
      int n = (int)((quota + period - 1) / period);
      if (best == 0 || n < best) best = n;
    }
    line = nl != NULL ? nl + 1 : NULL;
  }
  return best;
}

int gort__os_ncpu_affinity(void) {
  cpu_set_t set;
  int n = 1;
  if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
  else {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    if (c > 0) n = (int)c;
  }
  return n < 1 ? 1 : n;
}

int gort__os_ncpu_quota(int n) {
  int q = cgroup_cpus();
  if (q > 0 && q < n) n = q;
  return n < 1 ? 1 : n;
}

int gort__os_ncpu(void) { return gort__os_ncpu_quota(gort__os_ncpu_affinity()); }

// ---- stacks and signals -------------------------------------------------------------------

int gort__os_guard(void *p, size_t size, int use_mprotect) {
  int saved = errno;
  int r;
  if (use_mprotect) r = mprotect(p, size, PROT_NONE) == 0 ? 1 : -errno;
  else r = madvise(p, size, MADV_GUARD_INSTALL) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}

// PIDFD_SELF_THREAD (Linux 6.15): the caller's own process, with no pidfd
// to open, and none to outlive a fork (a pidfd kept from the parent would
// name the parent in the child).
#define GORT_PIDFD_SELF_THREAD (-10000)
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

// One process_madvise call for n ranges of size bytes, stride apart.
static int madvise_strided(uintptr_t first, size_t stride, int n, size_t size, int advice) {
  enum { MAX = 64 };
  if (n <= 0 || n > MAX) return -EINVAL;
  if (VG_RUNNING()) return -ENOSYS;  // base/vg.h
  struct iovec iov[MAX];
  for (int i = 0; i < n; i++) iov[i] = (struct iovec){(void *)(first + (size_t)i * stride), size};
  int saved = errno;
  long r = syscall(SYS_process_madvise, GORT_PIDFD_SELF_THREAD, iov, (size_t)n, advice, 0);
  int err = r < 0 ? errno : (size_t)r == (size_t)n * size ? 0 : EAGAIN;
  errno = saved;
  return -err;
}

int gort__os_guard_strided(uintptr_t first, size_t stride, int n, size_t size) {
  return madvise_strided(first, stride, n, size, MADV_GUARD_INSTALL);
}

int gort__os_populate_strided(uintptr_t first, size_t stride, int n, size_t size) {
  return madvise_strided(first, stride, n, size, MADV_POPULATE_WRITE);
}

int gort__os_no_huge_pages(void *p, size_t size) {
  int saved = errno;
  int r = madvise(p, size, MADV_NOHUGEPAGE) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}

int gort__os_sigaltstack(void *p, size_t size) {
  stack_t ss = {.ss_sp = p, .ss_size = size, .ss_flags = 0};
  int saved = errno;
  int r = sigaltstack(&ss, NULL) == 0 ? 0 : -errno;
  errno = saved;
  return r;
}

void gort__os_yield(void) { sched_yield(); }

static int membarrier_cmd(int cmd) {
  int saved = errno;
  long r = syscall(SYS_membarrier, cmd, 0, 0);
  int err = r < 0 ? -errno : 0;
  errno = saved;
  return err;
}

int gort__os_membarrier_register(void) {
  return membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
}

int gort__os_membarrier(void) { return membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED); }
