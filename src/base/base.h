// Base layer: compiler helpers, assertions, fatal paths and printing.
//
// Everything in gort may include this file; it includes nothing of gort's.
// Nothing declared here allocates, so every function is safe inside malloc,
// before libc is initialized and on a fatal path.

#ifndef GORT_BASE_BASE_H
#define GORT_BASE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define gort_likely(x) __builtin_expect(!!(x), 1)
#define gort_unlikely(x) __builtin_expect(!!(x), 0)
#define GORT_NOINLINE __attribute__((noinline))
#define GORT_INLINE static inline __attribute__((always_inline))
#define GORT_NORETURN __attribute__((noreturn))
#define GORT_HIDDEN __attribute__((visibility("hidden")))
#define GORT_TLS __thread __attribute__((tls_model("initial-exec")))
#define GORT_CACHELINE 64

GORT_INLINE void gort__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ volatile("yield");
#endif
}

// Starts fetching p's cache line for writing. A block freed by another
// thread than the one that last wrote it is read and then written: a plain
// load takes the line shared and the store must then take it again, two
// trips between the cores where this takes one. (A hint: it never faults,
// so a wild pointer is still caught by the checks after it. Every AMD64
// CPU has prefetchw, Intel's since Broadwell; older Intel cores run it as
// a no-op, which 64-bit Windows 8.1 and later rely on, though no manual
// promises it.)
GORT_INLINE void gort__prefetch_write(const void *p) {
#if defined(__x86_64__)
  __asm__("prefetchw %0" : : "m"(*(const char *)p));
#else
  __builtin_prefetch(p, 1);
#endif
}

// GORT_DEBUG_LEVEL is a build setting (MODE=debug sets 3). It is an integer
// tested with if(), not #if, so that every level is always compiled.
#ifndef GORT_DEBUG_LEVEL
#define GORT_DEBUG_LEVEL 0
#endif

// Assertions. A failing assertion is a bug in gort (or, at level 1, API
// misuse that the cheap checks did not catch): it throws.
#define gort__assert_level(level, cond)                                         \
  do {                                                                          \
    if (GORT_DEBUG_LEVEL >= (level) && gort_unlikely(!(cond)))                  \
      gort__throw_at(__FILE__, __LINE__, "assertion failed: " #cond);           \
  } while (0)
#define gort_assert(cond) gort__assert_level(1, cond)
#define gort_assert_internal(cond) gort__assert_level(2, cond)
#define gort_assert_expensive(cond) gort__assert_level(3, cond)

// gort_check stays on in release builds: cheap checks that protect the heap.
#define gort_check(cond, msg)                                                   \
  do {                                                                          \
    if (gort_unlikely(!(cond))) gort__throw_at(__FILE__, __LINE__, msg);        \
  } while (0)

// Printing to stderr with write(2); a small printf subset:
// %s %c %d %i %u %x %p %zu %zd %zx %ld %lu %lx %lld %llu %llx %%, with an
// optional width, '0' flag on integers and '-' flag on strings. The _fd
// forms return 0 or the negative errno of a failed write (errno is kept).
void gort__print(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int gort__vprint_fd(int fd, const char *fmt, va_list ap);
int gort__print_fd(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Formats into buf (always NUL-terminated); returns the length written.
size_t gort__snprint(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t gort__vsnprint(char *buf, size_t size, const char *fmt, va_list ap);

// User misuse: prints "gort: fatal error: <msg> <addr>" and aborts.
GORT_NORETURN void gort__fatal(const char *msg, const void *addr);
// A bug in gort: prints "gort: internal error: <msg> at file:line" and aborts.
GORT_NORETURN void gort__throw_at(const char *file, int line, const char *msg);
#define gort__throw(msg) gort__throw_at(__FILE__, __LINE__, msg)
// The text of errno value err (either sign), as glibc's C locale words it,
// without malloc or locale (strerror.c); buf holds "error N" for others.
const char *gort__strerror(int err, char *buf, size_t size);
// Prints "gort: warning: <msg>" and goes on.
void gort__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// Nanoseconds from CLOCK_MONOTONIC; no allocation, vDSO.
int64_t gort__nanotime(void);

#define GORT_ALIGN_UP(x, a) (((x) + ((a)-1)) & ~((__typeof__(x))(a)-1))
#define GORT_ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))

#endif  // GORT_BASE_BASE_H
