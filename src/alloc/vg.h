// Valgrind annotations (make VALGRIND=1, which defines GORT_VALGRIND).
//
// memcheck does not know gort's heap: gort maps arenas and hands out
// blocks itself. Built with VALGRIND=1, every public entry point tells
// memcheck which blocks it hands out and takes back (MALLOCLIKE and
// FREELIKE), so memcheck reports the program's use after free, overflow
// into a neighbour's freed block, uninitialized reads and leaks as it
// would with glibc. gort's own code writes free-list links into freed
// blocks, which memcheck would flag, so error reporting is suspended
// while gort itself runs. In every other build these are no-ops.
//
// Limitation: memcheck's leak scan reads gort's metadata, where a span
// records its first page's address; a leaked block that starts a span (the
// first block of a small span, or any large block) is therefore reported
// as "still reachable" rather than "definitely lost".

#ifndef GORT_ALLOC_VG_H
#define GORT_ALLOC_VG_H

#ifdef GORT_VALGRIND
#include <valgrind/memcheck.h>
#define VG_ENTER() VALGRIND_DISABLE_ERROR_REPORTING
#define VG_LEAVE() VALGRIND_ENABLE_ERROR_REPORTING
#define VG_ALLOC(p, n, zeroed)                                   \
  do {                                                           \
    if ((p) != NULL) VALGRIND_MALLOCLIKE_BLOCK((p), (n), 0, (zeroed)); \
  } while (0)
#define VG_FREE(p)                                   \
  do {                                               \
    if ((p) != NULL) VALGRIND_FREELIKE_BLOCK((p), 0); \
  } while (0)
#define VG_NOACCESS(p, n) VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define VG_DEFINED(p, n)                                  \
  do {                                                    \
    if ((p) != NULL) VALGRIND_MAKE_MEM_DEFINED((p), (n)); \
  } while (0)
#define GORT_VG_ON 1
#else
#define VG_ENTER() ((void)0)
#define VG_LEAVE() ((void)0)
#define VG_ALLOC(p, n, zeroed) ((void)0)
#define VG_FREE(p) ((void)0)
#define VG_NOACCESS(p, n) ((void)0)
#define VG_DEFINED(p, n) ((void)0)
#define GORT_VG_ON 0
#endif

#endif  // GORT_ALLOC_VG_H
