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
//
// Collected objects (gc/malloc_gc.c). Their slots are made addressable
// and defined when a cache takes them (link_run; large spans whole), and
// an object is defined again when handed out (it is zeroed). They are not
// MALLOCLIKE: the collector frees them, not the program, and memcheck
// would call every one a leak. So memcheck sees the program's uses of
// them, and a use after gort_free of one (which makes it unaddressable:
// malloc.c, vg_free; past its first 16 bytes), but not the collector's frees (which, for a
// reachable object, cannot matter). Uncollectable objects are the
// program's to free, so they are registered as malloc's blocks are.
// The conservative scan reads stack words never written: each word it
// tests is declared defined first (VG_DEFINE_VALUE in mark_value), else
// memcheck's "undefined" reached the mark bits, then the live bits, then
// the pointers allocation hands out. The collector's entry points
// (gort_gc_alloc*, gort_gc_collect), its stop signal's handler and its
// threads' work (mark helpers, sweeper, cycles; not their waits: a thread
// that ends with reporting off draws a warning at exit, and a finalizer
// runs the program's code) suspend reporting as malloc's do, and so do a
// thread's exit hook and gort_free_os_memory, which write links into
// freed blocks. A hand-freed collected object on a span's list is read
// by the sweeper: CI's first run of the valgrind test caught it. Under
// valgrind (VG_RUNNING) the system calls valgrind does not know are not
// made and the collector marks with the world stopped. Goroutine stacks
// are registered (VALGRIND_STACK_REGISTER, sched/stack.c), so that
// memcheck takes a switch for what it is. docs/valgrind.supp holds the one
// suppression a clean program needs (glibc's per-thread TLS vectors).

#ifndef GORT_BASE_VG_H
#define GORT_BASE_VG_H

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
// A value that memcheck may think undefined (a word of a stack slot never
// written, read by the conservative scan), declared defined: else the
// taint reached the mark bits, then the live bits, then the pointers
// allocation hands out.
#define VG_DEFINE_VALUE(x) VALGRIND_MAKE_MEM_DEFINED(&(x), sizeof(x))
// Under valgrind itself: the calls valgrind does not know (userfaultfd,
// process_madvise: a warning each) and the mprotect dirty tracking (its
// write faults, which memcheck's own signal handling turns into crashes)
// are left out, and the collector marks with the world stopped.
#define VG_RUNNING() (RUNNING_ON_VALGRIND != 0)
#define VG_STACK_REGISTER(lo, hi) VALGRIND_STACK_REGISTER((lo), (hi))
#define VG_STACK_DEREGISTER(id) VALGRIND_STACK_DEREGISTER(id)
#define GORT_VG_ON 1
#else
#define VG_ENTER() ((void)0)
#define VG_LEAVE() ((void)0)
#define VG_ALLOC(p, n, zeroed) ((void)0)
#define VG_FREE(p) ((void)0)
#define VG_NOACCESS(p, n) ((void)0)
#define VG_DEFINED(p, n) ((void)0)
#define VG_DEFINE_VALUE(x) ((void)0)
#define VG_RUNNING() 0
#define VG_STACK_REGISTER(lo, hi) 0u
#define VG_STACK_DEREGISTER(id) ((void)(id))
#define GORT_VG_ON 0
#endif

#endif  // GORT_BASE_VG_H
