// The OS layer: the only code in gort that calls mmap, madvise, munmap,
// futex and getrandom, and that reads /proc and /sys. The contract:
// addresses and lengths are multiples of the OS page size; every call
// returns 0 (or a pointer, or a count) on success and a negative errno (or
// NULL with *err set) on failure; none allocates, and none changes errno.

#ifndef GORT_OS_OS_H
#define GORT_OS_OS_H

#include <stddef.h>
#include <stdint.h>

// Reserves size bytes of read-write address space aligned to align (a power
// of two; less than the OS page counts as the page), backed lazily by zero
// pages and not counted against overcommit. A size that is not a multiple of
// the page is rounded up; gort__os_unmap of the same size then releases it
// all. hint is where to try first (0: anywhere). Returns NULL and sets *err
// to a negative errno when the OS refuses.
void *gort__os_reserve(uintptr_t hint, size_t size, size_t align, int *err);
// Unmaps a range (used only to trim alignment slop and in tests).
int gort__os_unmap(void *p, size_t size);
// Returns pages to the OS. dontneed selects MADV_DONTNEED (RSS drops at once,
// the pages read as zero afterwards) over MADV_FREE (cheaper; the kernel
// takes the pages when it needs them, and until then they keep their data).
int gort__os_release(void *p, size_t size, int dontneed);
// Asks the kernel to back [p, p + size) with transparent huge pages (on:
// MADV_HUGEPAGE) or never to (MADV_NOHUGEPAGE); 0 or -errno (-EINVAL
// where the kernel has no transparent huge pages).
int gort__os_huge_pages(void *p, size_t size, int on);
// Makes [p, p + size) read-only (writable 0) or read-write again (1), for
// the collector's mprotect dirty tracking; async-signal-safe. 0 or -errno
// (-ENOMEM when the split would pass vm.max_map_count).
int gort__os_protect(void *p, size_t size, int writable);
// Physical memory plus swap, from sysinfo(2) (UINT64_MAX if unknown): what
// the kernel's default overcommit heuristic lets one mapping reach.
uint64_t gort__os_memory_bytes(void);
// Bytes of an address range that are resident, from mincore(2); -errno.
int64_t gort__os_resident(void *p, size_t size);
// The process's resident set size in bytes, from /proc/self/statm; -errno.
int64_t gort__os_rss(void);
// The calling thread's CPU time in ns (user and system; not the time it
// waited for a CPU), or -1.
int64_t gort__os_thread_cpu_ns(void);

// Threads and signals (thread.c).
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
// The real pthread_create (gort exports its own: gc/stw.c).
int gort__os_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                            void *arg);
// The real pthread_join and pthread_exit (gort wraps them: gc/pthread_wrap.c).
int gort__os_pthread_join(pthread_t t, void **ret);
// libc's condition-variable waits and clock_nanosleep, past gort's
// (gc/blocking.c), found on
// the first call (never inside a blocking call: the lookup is the
// loader's code).
typedef int (*gort_cond_wait_fn)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*gort_cond_timedwait_fn)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
gort_cond_wait_fn gort__os_cond_wait_fn(void);
gort_cond_timedwait_fn gort__os_cond_timedwait_fn(void);
typedef int (*gort_cond_clockwait_fn)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
gort_cond_clockwait_fn gort__os_cond_clockwait_fn(void);
typedef int (*gort_clock_nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);
gort_clock_nanosleep_fn gort__os_clock_nanosleep_fn(void);
_Noreturn void gort__os_pthread_exit(void *ret);
// The calling thread's signal mask, set with the system call itself (never
// through the program's pthread_sigmask, which gort wraps); 0 or an error
// number, as pthread_sigmask.
int gort__os_sigmask(int how, const sigset_t *set, sigset_t *old);
// A detached thread of gort's own, never running the program's code, with
// every signal blocked (stack_bytes 0: the default); 0 or an error number.
int gort__os_internal_thread(void *(*fn)(void *), void *arg, size_t stack_bytes);
int gort__os_gettid(void);
// Sends sig to thread tid of this process; 0 or -errno.
int gort__os_tgkill(int tid, int sig);
// The CPU time of thread tid of this process in ns, up to date while it
// runs on another CPU (user and system; not the time it waited for a
// CPU); -1 if the thread is gone.
int64_t gort__os_tid_cpu_ns(int tid);
// The main thread's stack limit in bytes (RLIMIT_STACK; 8 MiB when
// unlimited), or 0 if unknown.
uintptr_t gort__os_main_stack_limit(void);
// Installs handler (SA_SIGINFO | SA_RESTART, every signal blocked while it
// runs); 0 or -errno.
int gort__os_sigaction(int sig, void (*handler)(int, siginfo_t *, void *));
// Whether the program has installed a signal handler of its own (sigaction
// or signal, through gort's wrappers; os/fault.c). Inline, with no call:
// gc/blocking.c reads it where a call would save the program's registers
// in a frame that outlives them.
int gort__os_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
extern _Atomic bool gort__os_handlers_installed __attribute__((visibility("hidden")));
static inline __attribute__((always_inline)) bool gort__os_program_handlers(void) {
  return atomic_load_explicit(&gort__os_handlers_installed, memory_order_relaxed);
}
// The calling thread's stack [lo, hi); 0 or -errno. May allocate (glibc
// reads /proc/self/maps for the main thread): not inside malloc.
int gort__os_stack_bounds(uintptr_t *lo, uintptr_t *hi);
// An upper bound of the main thread's frames: the top of its stack (the
// program's file name, above argv, the environment and auxv); 0 if
// unknown. Never allocates.
uintptr_t gort__os_main_stack_top(void);

// Every caller re-checks its condition in a loop, as futex's spurious
// wake-ups require. ThreadSanitizer runs the program's signal handler only
// at the next call or atomic it instruments, which a thread asleep in a
// raw futex call never reaches: the collector's stop waited for ever for
// an idle M (test_pool_threads hung about 1 run in 30). So its builds
// sleep at most GORT_FUTEX_MAX_NS at a time.
#if defined(__SANITIZE_THREAD__)
#define GORT_FUTEX_MAX_NS 10000000
#endif
void gort__os_futex_wait(_Atomic uint32_t *addr, uint32_t val);
void gort__os_futex_wake(_Atomic uint32_t *addr, int n);
// As gort__os_futex_wait, for at most ns nanoseconds (ns < 0: no limit).
void gort__os_futex_wait_ns(_Atomic uint32_t *addr, uint32_t val, int64_t ns);
// CLOCK_MONOTONIC_COARSE in ns: a few ns instead of ~20, at the kernel
// tick's resolution (1-4 ms); for wait times shown in goroutine dumps.
int64_t gort__os_nanotime_coarse(void);
// Sleeps the calling thread for ns nanoseconds (all of them: EINTR resumes).
void gort__os_sleep_ns(int64_t ns);

// ---- the scheduler's calls (sched.c) ----------------------------------------------------

// The CPUs this process may run on: its affinity mask, bounded by the CPU
// quota of its cgroup (v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us,
// rounded up), at least 1.
int gort__os_ncpu(void);
// Its two parts: the calling thread's affinity (one system call), and n
// bounded by the cgroup's quota (files to read).
int gort__os_ncpu_affinity(void);
int gort__os_ncpu_quota(int n);
// Makes [p, p + size) a guard region: any access faults. Without
// use_mprotect, 0 with a MADV_GUARD_INSTALL guard (no new mapping); with
// it, 1 with an mprotect(PROT_NONE) one (one more mapping, two if it
// splits one); else -errno. The caller chooses, so that a forced fallback
// (GORT_DEBUG=stackguard=1) is the fallback on kernels that have the
// better one too.
int gort__os_guard(void *p, size_t size, int use_mprotect);
// Makes n guard regions of size bytes, at first, first + stride, ..., with
// one system call (process_madvise on the calling process, Linux 6.15+);
// 0 if every region is a guard, else -errno (some may be: the caller falls
// back to gort__os_guard for each, which is idempotent).
int gort__os_guard_strided(uintptr_t first, size_t stride, int n, size_t size);
// Faults in n ranges of size bytes, stride apart, as first writes would
// (pages already there keep their contents), in one system call
// (MADV_POPULATE_WRITE through process_madvise). 0; -EAGAIN if only part
// was; else -errno (the kernel cannot, or no memory).
int gort__os_populate_strided(uintptr_t first, size_t stride, int n, size_t size);
// Asks the kernel never to back [p, p + size) with transparent huge pages
// (MADV_NOHUGEPAGE); 0 or -errno.
int gort__os_no_huge_pages(void *p, size_t size);
// Gives the calling thread an alternate signal stack of size bytes at p.
int gort__os_sigaltstack(void *p, size_t size);
// Memory faults (fault.c): one SIGSEGV/SIGBUS handler for gort, which asks
// the hooks in slot order and chains a fault none claims to the program's
// handler. A hook runs in the signal handler (async-signal-safe, no lock)
// and returns true if the fault was its own (the instruction then runs
// again). Every signal is blocked while the hooks run. keep_blocked: a
// signal of gort's own that the program's chained handler never runs with
// blocked, whatever its sa_mask (0: none). 0 or -errno.
enum { GORT_FAULT_HOOK_DIRTY, GORT_FAULT_HOOK_STACK, GORT_FAULT_HOOKS };
typedef bool (*gort__os_fault_hook_t)(int sig, siginfo_t *info, void *uctx);
int gort__os_fault_hook(int slot, gort__os_fault_hook_t fn, int keep_blocked);

// The threads of this process (the kernel's count), or -1; and how many
// of them are gort's own (started by gort__os_internal_thread and running).
int gort__os_nthreads(void);
int gort__os_internal_threads(void);
// An internal thread runs the program's code (a finalizer, a pool's
// release function): it counts as the program's meanwhile, so that the
// deadlock detector sees it running, or blocked for ever like the
// program's other threads (a finalizer waiting on a channel). A helper's
// hunt: a running finalizer was nobody's thread, and a report came while
// it was about to wake main; a blocked one counted among the blocked but
// not among the threads they are compared with.
void gort__os_internal_runs_program(bool on);
// 1 if the main thread (the thread group's leader) has exited, all of its
// exit done, while other threads run on (pthread_exit from main); 0 if
// not, or if /proc cannot tell.
int gort__os_main_thread_exited(void);

// Gives the CPU to another runnable thread (sched_yield).
void gort__os_yield(void);

// Asymmetric fences (membarrier(2), private expedited). Registering once
// per process lets gort__os_membarrier make every thread of the process
// that runs at the moment pass a full memory barrier (an interrupt to each
// CPU running one; the others pass one in the kernel's switch). 0 or
// -errno (ENOSYS, EINVAL, or EPERM from a seccomp filter).
int gort__os_membarrier_register(void);
int gort__os_membarrier(void);

// 64 random bits from getrandom(2), falling back to the clock and ASLR.
uint64_t gort__os_random64(void);

// Whether ld.so loaded the program (it is dynamically linked), however it
// was started (loader.c).
bool gort__os_loaded_by_ld_so(void);

// ---- files (file.c) -------------------------------------------------------------

// Opens path for writing, created (0644) or truncated; an fd or -errno.
int gort__os_open_write(const char *path);
int gort__os_open_read(const char *path);
int gort__os_close(int fd);
// read(2), retried on EINTR: bytes read, 0 at the end, or -errno.
int64_t gort__os_read(int fd, void *buf, size_t size);
// Reads up to size - 1 bytes of a (small) file and NUL-terminates them;
// returns the length or -errno.
int64_t gort__os_read_file(const char *path, char *buf, size_t size);
// 0 if this process may write path, else the -errno that opening it for
// writing meets. Leaves no file behind and never blocks (file.c says how).
int gort__os_check_writable(const char *path);
// The program's name (argv[0]'s last component, else /proc/self/comm) in
// buf, NUL-terminated; returns its length (0 if unknown).
size_t gort__os_program_name(char *buf, size_t size);
// Maps a regular file read-only (the symbolizer reads ELF files so):
// its address and *size, or NULL with *err set. Unmap with unmap_file.
void *gort__os_map_file(const char *path, size_t *size, int *err);
int gort__os_unmap_file(void *p, size_t size);

// ---- cgroups (cgroup.c) -------------------------------------------------------------

// The memory limit of this process's cgroup in bytes, INT64_MAX for none:
// the smallest memory.max or memory.high (cgroup v2) or
// memory.limit_in_bytes (v1) on the path from the process's own cgroup up
// to the root of its hierarchy, found through /proc/self/cgroup and
// /proc/self/mountinfo. root prefixes every path read (NULL or "" for the
// real ones; tests pass a fake tree).
int64_t gort__os_cgroup_memory_limit(const char *root);
// In a forked child: a read another thread had in flight is abandoned.
void gort__os_cgroup_after_fork_child(void);

// ---- dirty pages (uffd.c): userfaultfd async write-protect + PAGEMAP_SCAN ----------

// A userfaultfd with asynchronous write-protect (the kernel resolves each
// write fault itself and marks the page written); an fd or -errno.
int gort__os_uffd_open(void);
// Registers [lo, lo + len) for write-protect tracking (its pages start out
// written); 0 or -errno.
int gort__os_uffd_register_wp(int fd, uintptr_t lo, size_t len);
// Clears write protection on a range (writes stop faulting); 0 or -errno.
int gort__os_uffd_unprotect(int fd, uintptr_t lo, size_t len);
// /proc/self/pagemap, for PAGEMAP_SCAN; an fd or -errno.
int gort__os_pagemap_open(void);
// Writes into out (at most n, at most 64) the runs of pages in [lo, hi)
// written since they were last protected, and, if protect, protects them
// again in the same step; *walk_end is where the walk stopped (hi, or
// earlier when out filled). n == 0 only protects. The count of runs, or
// -errno.
int64_t gort__os_pagemap_written(int pmfd, uintptr_t lo, uintptr_t hi, uintptr_t (*out)[2], size_t n,
                                 uintptr_t *walk_end, bool protect);
// Counts the present pages of [lo, hi) and those of them written since
// they were last protected, changing nothing; 0 or -errno.
int gort__os_pagemap_count(int pmfd, uintptr_t lo, uintptr_t hi, uint64_t *present, uint64_t *written);

#endif  // GORT_OS_OS_H
