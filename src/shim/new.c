// C++ operator new and delete, all twenty variants, on gort's heap.
//
// Written in C under their mangled names so that libgort.so does not
// depend on libstdc++: a C program loading gort would otherwise map about
// 1 MiB of C++ runtime it never uses (measured: RSS 2.8 MiB -> 1.6 MiB for
// a small C program). The two things operator new needs from the C++
// runtime, std::get_new_handler and std::__throw_bad_alloc, are weak
// references: the operators are only ever called by C++ code, and C++
// code always has libstdc++ loaded, so they resolve exactly when needed.
//
// Semantics, as the standard library's own operators:
//   - new: on failure call the new-handler and retry; with no handler,
//     throw std::bad_alloc (std::__throw_bad_alloc).
//   - nothrow new: the same loop, but return NULL where new would throw.
//     (A handler that itself throws out of a nothrow new terminates the
//     program, as the exception meets a noexcept function.)
//   - aligned new: std::align_val_t is a size_t in the ABI.
//   - every delete frees; sized deletes ignore the size.

#include <stddef.h>

#include "alloc/malloc_fast.h"
#include "gort/alloc.h"

#define SHIM __attribute__((visibility("default")))

// What shim.c names so that static links take both files (see there).
const char gort__new_anchor GORT_HIDDEN = 0;

typedef void (*new_handler_t)(void);
extern new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

// With VALGRIND=1 every name goes through gort_* for the annotations.
#ifdef GORT_VALGRIND
#define malloc_fast gort_malloc
#define free_fast gort_free
#endif

static GORT_NOINLINE void *new_loop(size_t n, size_t align, int may_throw) {
  for (;;) {
    void *p = align ? gort_aligned_alloc(align, n) : gort_malloc(n);
    if (p != NULL) return p;
    new_handler_t h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
    if (h == NULL) {
      if (may_throw && _ZSt17__throw_bad_allocv) _ZSt17__throw_bad_allocv();
      return NULL;
    }
    h();
  }
}

// Declarations first (-Wmissing-prototypes); the comments give the C++ names.
SHIM void *_Znwm(size_t n);                              // new(size_t)
SHIM void *_Znam(size_t n);                              // new[](size_t)
SHIM void *_ZnwmRKSt9nothrow_t(size_t n, const void *);  // new(size_t, nothrow)
SHIM void *_ZnamRKSt9nothrow_t(size_t n, const void *);
SHIM void *_ZnwmSt11align_val_t(size_t n, size_t al);    // new(size_t, align_val_t)
SHIM void *_ZnamSt11align_val_t(size_t n, size_t al);
SHIM void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *);
SHIM void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *);
SHIM void _ZdlPv(void *p);                               // delete(void*)
SHIM void _ZdaPv(void *p);
SHIM void _ZdlPvRKSt9nothrow_t(void *p, const void *);
SHIM void _ZdaPvRKSt9nothrow_t(void *p, const void *);
SHIM void _ZdlPvm(void *p, size_t n);                    // delete(void*, size_t)
SHIM void _ZdaPvm(void *p, size_t n);
SHIM void _ZdlPvSt11align_val_t(void *p, size_t al);
SHIM void _ZdaPvSt11align_val_t(void *p, size_t al);
SHIM void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *);
SHIM void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *);
SHIM void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al);
SHIM void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al);

// The common new is malloc's fast path; only a failure takes the loop.
void *_Znwm(size_t n) {
  void *p = malloc_fast(n);
  return gort_likely(p != NULL) ? p : new_loop(n, 0, 1);
}
void *_Znam(size_t n) {
  void *p = malloc_fast(n);
  return gort_likely(p != NULL) ? p : new_loop(n, 0, 1);
}
void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt) { (void)nt; return new_loop(n, 0, 0); }
void *_ZnamRKSt9nothrow_t(size_t n, const void *nt) { (void)nt; return new_loop(n, 0, 0); }
void *_ZnwmSt11align_val_t(size_t n, size_t al) { return new_loop(n, al, 1); }
void *_ZnamSt11align_val_t(size_t n, size_t al) { return new_loop(n, al, 1); }
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt) {
  (void)nt;
  return new_loop(n, al, 0);
}
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt) {
  (void)nt;
  return new_loop(n, al, 0);
}

void _ZdlPv(void *p) { free_fast(p); }
void _ZdaPv(void *p) { free_fast(p); }
void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt; free_fast(p); }
void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt; free_fast(p); }
void _ZdlPvm(void *p, size_t n) { (void)n; free_fast(p); }
void _ZdaPvm(void *p, size_t n) { (void)n; free_fast(p); }
void _ZdlPvSt11align_val_t(void *p, size_t al) { (void)al; free_fast(p); }
void _ZdaPvSt11align_val_t(void *p, size_t al) { (void)al; free_fast(p); }
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt) {
  (void)al, (void)nt;
  free_fast(p);
}
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt) {
  (void)al, (void)nt;
  free_fast(p);
}
void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al) { (void)n, (void)al; free_fast(p); }
void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al) { (void)n, (void)al; free_fast(p); }
