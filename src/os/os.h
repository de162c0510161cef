// The OS layer: the only code in gort that calls mmap, madvise, munmap,
// futex and getrandom. The contract: addresses and lengths are multiples of
// the OS page size; every call returns 0 (or a pointer) on success and a
// negative errno (or NULL with *err set) on failure; none allocates.

#ifndef GORT_OS_OS_H
#define GORT_OS_OS_H

#include <stddef.h>
#include <stdint.h>

// Reserves size bytes of read-write address space aligned to align (a power
// of two, at least the OS page), backed lazily by zero pages and not counted
// against overcommit. hint is where to try first (0: anywhere). Returns NULL
// and sets *err to a negative errno when the OS refuses.
void *gort__os_reserve(uintptr_t hint, size_t size, size_t align, int *err);
// Unmaps a range (used only to trim alignment slop and in tests).
int gort__os_unmap(void *p, size_t size);
// Returns pages to the OS. dontneed selects MADV_DONTNEED (RSS drops at once,
// the pages read as zero afterwards) over MADV_FREE (cheaper; the kernel
// takes the pages when it needs them, and until then they keep their data).
int gort__os_release(void *p, size_t size, int dontneed);
// Physical memory plus swap, from sysinfo(2) (UINT64_MAX if unknown): what
// the kernel's default overcommit heuristic lets one mapping reach.
uint64_t gort__os_memory_bytes(void);
// Bytes of an address range that are resident, from mincore(2); -errno.
int64_t gort__os_resident(void *p, size_t size);
// The process's resident set size in bytes, from /proc/self/statm; -errno.
int64_t gort__os_rss(void);

// Threads and signals (thread.c).
#include <pthread.h>
#include <signal.h>
// The real pthread_create (gort exports its own: gc/stw.c).
int gort__os_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
                            void *arg);
int gort__os_gettid(void);
// Sends sig to thread tid of this process; 0 or -errno.
int gort__os_tgkill(int tid, int sig);
// Installs handler (SA_SIGINFO | SA_RESTART, every signal blocked while it
// runs); 0 or -errno.
int gort__os_sigaction(int sig, void (*handler)(int, siginfo_t *, void *));
// The calling thread's stack [lo, hi); 0 or -errno. May allocate (glibc
// reads /proc/self/maps for the main thread): not inside malloc.
int gort__os_stack_bounds(uintptr_t *lo, uintptr_t *hi);
// The top of the main thread's stack (above it: argv, the environment);
// 0 if unknown. Reads /proc/self/stat without allocating.
uintptr_t gort__os_main_stack_top(void);

void gort__os_futex_wait(_Atomic uint32_t *addr, uint32_t val);
void gort__os_futex_wake(_Atomic uint32_t *addr, int n);

// 64 random bits from getrandom(2), falling back to the clock and ASLR.
uint64_t gort__os_random64(void);

#endif  // GORT_OS_OS_H
