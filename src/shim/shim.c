// The libc allocation surface: every name glibc programs and libraries
// call, routed to gort's heap. A name left to glibc would mix two heaps and
// crash (a block from glibc's malloc freed into gort's, or the reverse).
//
// This file only translates; semantics live in alloc/. Choices, documented
// in docs/MALLOC.md:
//   - malloc(0) returns a unique pointer; realloc(p, 0) frees p and returns
//     NULL (glibc's behaviour); every NULL comes with errno ENOMEM, or
//     EINVAL for a bad alignment.
//   - memalign and its kin round a non-power-of-two alignment up, as glibc
//     does; aligned_alloc rejects it with EINVAL (C17 DR 460).
//   - mallopt accepts every parameter and changes nothing: gort's knobs are
//     GORT_* variables. malloc_trim returns free pages to the OS.

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "alloc/malloc_fast.h"
#include "alloc/mheap.h"
#include "alloc/scavenger.h"
#include "gort/alloc.h"
#include "alloc/alloc_init.h"
#include "obs/heapstats.h"

#define SHIM __attribute__((visibility("default")))

// Statically linked, the libc names and the C++ operators come in
// together, whatever pulled in the first (base/start.c says why).
const char gort__shim_anchor GORT_HIDDEN = 0;
extern const char gort__new_anchor GORT_HIDDEN;
__attribute__((used)) static const char *const new_anchor = &gort__new_anchor;

// Names that <malloc.h> does not declare (or declares only under feature
// macros); declared here so that each definition has its prototype.
SHIM void cfree(void *p);
SHIM void *aligned_alloc(size_t align, size_t size);
SHIM int posix_memalign(void **out, size_t align, size_t size);
SHIM void *__libc_malloc(size_t size);
SHIM void __libc_free(void *p);
SHIM void *__libc_calloc(size_t n, size_t size);
SHIM void *__libc_realloc(void *p, size_t size);
SHIM void *__libc_memalign(size_t align, size_t size);
SHIM void *__libc_valloc(size_t size);
SHIM void *__libc_pvalloc(size_t size);
SHIM int __posix_memalign(void **out, size_t align, size_t size);

// With VALGRIND=1 every name goes through gort_* for the annotations.
#ifdef GORT_VALGRIND
#define malloc_fast gort_malloc
#define free_fast gort_free
#endif

SHIM void *malloc(size_t size) { return malloc_fast(size); }
SHIM void free(void *p) { free_fast(p); }
SHIM void cfree(void *p) { free_fast(p); }
SHIM void *calloc(size_t n, size_t size) { return gort_calloc(n, size); }
SHIM void *realloc(void *p, size_t size) { return gort_realloc(p, size); }

SHIM void *reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return gort_realloc(p, total);
}

static size_t round_up_pow2(size_t a) {
  if (a <= 16) return 16;
  if ((a & (a - 1)) == 0) return a;
  if (a > ((size_t)1 << 62)) return 0;
  return (size_t)1 << (64 - __builtin_clzl(a));
}

SHIM void *memalign(size_t align, size_t size) {
  size_t a = round_up_pow2(align);
  if (a == 0) {
    errno = EINVAL;
    return NULL;
  }
  return gort_aligned_alloc(a, size);
}

SHIM void *aligned_alloc(size_t align, size_t size) { return gort_aligned_alloc(align, size); }

SHIM int posix_memalign(void **out, size_t align, size_t size) {
  if (align < sizeof(void *) || (align & (align - 1)) != 0) return EINVAL;
  int saved = errno;
  void *p = gort_aligned_alloc(align, size);
  if (p == NULL) {
    int e = errno;
    errno = saved;  // posix_memalign reports through its result only
    return e;
  }
  *out = p;
  return 0;
}

SHIM void *valloc(size_t size) { return gort_aligned_alloc(4096, size); }

SHIM void *pvalloc(size_t size) {
  size_t rounded = (size + 4095) & ~(size_t)4095;
  if (rounded < size) {
    errno = ENOMEM;
    return NULL;
  }
  return gort_aligned_alloc(4096, rounded == 0 ? 4096 : rounded);
}

SHIM size_t malloc_usable_size(void *p) { return gort_usable_size(p); }

// glibc's internal names, which some programs and libraries call directly.
SHIM void *__libc_malloc(size_t size) { return malloc_fast(size); }
SHIM void __libc_free(void *p) { free_fast(p); }
SHIM void *__libc_calloc(size_t n, size_t size) { return gort_calloc(n, size); }
SHIM void *__libc_realloc(void *p, size_t size) { return gort_realloc(p, size); }
SHIM void *__libc_memalign(size_t align, size_t size) { return memalign(align, size); }
SHIM void *__libc_valloc(size_t size) { return valloc(size); }
SHIM void *__libc_pvalloc(size_t size) { return pvalloc(size); }
SHIM int __posix_memalign(void **out, size_t align, size_t size) {
  return posix_memalign(out, align, size);
}

// ---- glibc's introspection, answered with gort's numbers ---------------------

SHIM int malloc_trim(size_t pad) {
  (void)pad;
  return gort__scavenger_free_os_memory() > 0;
}

SHIM struct mallinfo2 mallinfo2(void) {
  gort_heap_figures_t f;
  gort__heap_figures(&f);
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = f.heap_sys;              // address space of the heap
  mi.ordblks = 0;
  mi.hblks = f.large_objects;         // blocks with a span of their own
  mi.hblkhd = f.large_bytes;
  mi.uordblks = f.heap_alloc;         // bytes in live blocks
  mi.fordblks = f.heap_sys - f.heap_alloc;
  mi.keepcost = f.heap_released;
  return mi;
}

static int clamp(size_t v) { return v > 0x7fffffff ? 0x7fffffff : (int)v; }

SHIM struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi;
  memset(&mi, 0, sizeof mi);
  mi.arena = clamp(m2.arena);
  mi.hblks = clamp(m2.hblks);
  mi.hblkhd = clamp(m2.hblkhd);
  mi.uordblks = clamp(m2.uordblks);
  mi.fordblks = clamp(m2.fordblks);
  mi.keepcost = clamp(m2.keepcost);
  return mi;
}

SHIM void malloc_stats(void) { gort__heap_print_summary(2); }

SHIM int malloc_info(int options, FILE *fp) {
  if (options != 0 || fp == NULL) {
    errno = EINVAL;
    return -1;
  }
  gort_heap_figures_t f;
  gort__heap_figures(&f);
  fprintf(fp,
          "<malloc version=\"gort-1\">\n"
          "<total type=\"heap\" size=\"%llu\"/>\n"
          "<total type=\"inuse\" size=\"%llu\"/>\n"
          "<total type=\"idle\" size=\"%llu\"/>\n"
          "<total type=\"released\" size=\"%llu\"/>\n"
          "<system type=\"current\" size=\"%llu\"/>\n"
          "</malloc>\n",
          (unsigned long long)f.heap_sys, (unsigned long long)f.heap_alloc,
          (unsigned long long)f.heap_idle, (unsigned long long)f.heap_released,
          (unsigned long long)f.sys);
  return 0;
}

// Every parameter is accepted and has no effect: see the file comment.
SHIM int mallopt(int param, int value) {
  (void)param;
  (void)value;
  return 1;
}
