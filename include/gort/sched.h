/* gort: goroutines (Go: the go statement, runtime.Gosched, time.Sleep,
 * runtime.GOMAXPROCS, runtime.NumGoroutine).
 *
 * A goroutine is a function running on its own small stack, scheduled by
 * gort onto a few threads (GORT_MAXPROCS of them run goroutines at once;
 * default: the CPUs the process may use, its cgroup's CPU quota included).
 * Any thread may start one; a plain thread such as main() that waits for
 * goroutines blocks itself (the channels and wait groups to wait with are
 * the next step). The program ends when main returns, as in Go, whatever
 * its goroutines are doing.
 *
 * Scheduling is cooperative: a goroutine gives its thread up in gort's
 * calls (gort_yield, gort_sleep, gort_go, waits). One that computes for
 * more than 10 ms is asked to yield at its next such call; a loop that
 * makes none keeps its thread. Wrap a call that may block in the kernel
 * (read, accept, a lock of another library) in gort_syscall_enter() and
 * gort_syscall_exit(): meanwhile other goroutines run on another thread.
 *
 * Stacks are fixed (GORT_STACKSIZE, default 256 KiB), guarded (the lowest
 * eighth, 4 to 64 KiB): an overflow ends the program with "gort: fatal
 * error: goroutine N stack overflow". A frame larger than the guard can
 * step over it unseen unless the code is built with
 * -fstack-clash-protection, which touches every page a frame spans.
 * Memory is only what a stack touches (about 4 KiB for an idle goroutine).
 *
 * errno is saved and restored per goroutine: its value before a gort call
 * that may switch (gort_yield, gort_sleep, gort_go, waits, syscall exit)
 * is its value after it. But the goroutine may resume on another thread,
 * and errno is thread-local: glibc declares __errno_location const, so
 * the compiler may reuse, after the call, the errno address it computed
 * before it in the same function, and read the old thread's errno. Read
 * and set errno after such a call in a function of its own (not inlined),
 * or not at all across it. The same holds for any __thread variable.
 *
 * Undefined: a goroutine that calls pthread_exit, or that longjmps out of
 * its function or into another goroutine's stack.
 */
#ifndef GORT_SCHED_H
#define GORT_SCHED_H

#include <stdint.h>

#include "api.h"

GORT_BEGIN_DECLS

/* Starts fn(arg) as a goroutine. Returns 0, EINVAL if fn is NULL, ENOMEM
 * when no stack can be had. The macro records the call site for
 * gort_goroutines_dump; (gort_go)(fn, arg) calls the function. */
GORT_API int gort_go(void (*fn)(void *), void *arg);
GORT_API int gort__go_at(void (*fn)(void *), void *arg, const char *file, int line);
#define gort_go(fn, arg) gort__go_at((fn), (arg), __FILE__, __LINE__)

/* Lets other goroutines run (on a plain thread: sched_yield). */
GORT_API void gort_yield(void);
/* Sleeps at least ns nanoseconds; other goroutines run meanwhile. ns <= 0
 * returns at once. On a plain thread it sleeps the thread. */
GORT_API void gort_sleep(int64_t ns);
/* Sets how many goroutines may run at once and returns the previous value;
 * n <= 0 only reads it. At most 256. */
GORT_API int gort_maxprocs(int n);
/* Goroutines started and not yet returned. */
GORT_API int64_t gort_num_goroutine(void);
/* The calling goroutine's id (1, 2, ...), 0 on a plain thread. */
GORT_API int64_t gort_goroutine_id(void);
/* Writes every live goroutine to fd: id, state, wait reason and time,
 * where it was created (as Go's goroutine dump). GORT_DEBUG=sigquit=1
 * makes SIGQUIT print it to stderr and exit with status 2, as Go does. */
GORT_API void gort_goroutines_dump(int fd);
/* Around a call that may block in the kernel: the goroutine's thread gives
 * its scheduling slot to another thread while the call blocks (Go's
 * entersyscall). No-ops on a plain thread. */
GORT_API void gort_syscall_enter(void);
GORT_API void gort_syscall_exit(void);

GORT_END_DECLS

#endif /* GORT_SCHED_H */
