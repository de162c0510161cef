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

void gort__os_futex_wait(_Atomic uint32_t *addr, uint32_t val);
void gort__os_futex_wake(_Atomic uint32_t *addr, int n);

// 64 random bits from getrandom(2), falling back to the clock and ASLR.
uint64_t gort__os_random64(void);

#endif  // GORT_OS_OS_H
