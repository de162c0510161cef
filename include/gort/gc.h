/* gort: the garbage collector.
 *
 * Collected objects come from gort_gc_alloc and its kin. They are zeroed,
 * 16-byte aligned, and freed by the collector once nothing reachable points
 * at them (at their start or inside them). What the collector looks at to
 * decide what is reachable (the roots):
 *   - the stacks and registers of every thread gort knows: threads started
 *     with pthread_create while gort is linked or preloaded (gort's own
 *     pthread_create registers them), the main thread, and threads that
 *     called gort_gc_register_thread;
 *   - the data and bss of the program and of every loaded library
 *     (dlopen'ed ones too, re-read each cycle);
 *   - ranges registered with gort_gc_add_roots;
 *   - objects from gort_gc_alloc_uncollectable, scanned while they live.
 * Memory from plain malloc (gort_malloc and the libc names) is NOT scanned:
 * a pointer to a collected object kept only in a malloc'd block does not
 * keep it alive. Use gort_gc_alloc_uncollectable for such holders, or
 * register the block's range as roots.
 *
 * The argument given to pthread_create is held for the new thread until it
 * runs, and a thread's value (its start routine's result, or pthread_exit's
 * argument) until pthread_join returns it (a thread joined otherwise, with
 * pthread_tryjoin_np or pthread_timedjoin_np, keeps its value alive until
 * the process ends: retained, never freed early). gort's pthread_sigmask
 * and sigprocmask never block the signal that stops threads for a
 * collection (SIGPWR, or GORT_DEBUG=gcsignal=N); a thread that blocks it by
 * other means (sigsuspend, ppoll, pselect with a mask) holds up every
 * collection until that call returns. Nor do they block SIGSEGV and SIGBUS.
 * A thread asleep in nanosleep, usleep or sleep, or waiting in poll, select,
 * epoll_wait, pthread_cond_wait, pthread_cond_timedwait, sem_timedwait,
 * recv, recvfrom or recvmsg (gort's, which call libc's), gets no signal
 * while the
 * program has no signal handler of its own (gort sees those installed
 * with sigaction, signal, bsd_signal, sysv_signal and sigset; install
 * none by a raw system call): a collection takes it as stopped, and its
 * call is not ended with EINTR.
 *
 * Where the kernel refuses userfaultfd, or with GORT_DEBUG=gcdirty=mprotect,
 * the heap is write-protected while a cycle marks and gort's SIGSEGV handler
 * takes each first write (sigaction and signal are gort's too, so that the
 * program's own handler still gets every other fault). The kernel then
 * fails, with EFAULT, a system call that writes into a scanned collected
 * object, except read, pread, readv, recv, recvfrom and recvmsg, which gort
 * wraps: keep other calls' output (stat, poll, epoll_wait, accept's
 * address) on the stack, in malloc'd memory or in a noscan object (never
 * protected), and do not mprotect scanned collected objects.
 *
 * Scanning is conservative: any aligned word whose value points into a
 * collected object keeps it alive, whether or not it is a pointer.
 * gort_gc_alloc_noscan objects are never scanned (strings, numbers,
 * buffers); gort_gc_alloc_typed objects are scanned only at the words their
 * layout names.
 *
 * Cycles run when the collected heap has grown by GORT_GC percent (Go's
 * GOGC, default 100) over what the last cycle found live, with a 4 MiB
 * minimum, or near the soft memory limit; gort_gc_collect runs one now.
 * The CPU the collector burns (its stops, assists, a quarter of the CPUs
 * for the background mark) is held near half of the program's over about
 * a second (Go's GC CPU limit): past it, allocating threads stop assisting
 * and waiting for the mark, and the heap passes its goal, the soft memory
 * limit's included (not the hard goal when the limit is the cgroup's
 * memory.max). Threads parked until a mark ends burn nothing and do not
 * count, as in Go.
 * GORT_DEBUG=gctrace=1 prints one line per cycle, in Go's format.
 *
 * Errors: allocation returns NULL with errno ENOMEM. Misuse (a pointer gort
 * did not hand out given to gort_gc_set_finalizer, gort_gc_size or
 * gort_gc_weak_make; gort_free of an interior pointer; a double free) is
 * fatal with one "gort: fatal error: ..." line naming the call and address.
 */
#ifndef GORT_GC_H
#define GORT_GC_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

GORT_BEGIN_DECLS

/* A zeroed collected object of size bytes, scanned conservatively. */
GORT_API void *gort_gc_alloc(size_t size) GORT_MALLOC_LIKE GORT_ALLOC_SIZE(1) GORT_WARN_UNUSED;
/* A zeroed collected object that is never scanned: it may hold anything
 * but pointers that must keep other collected objects alive. Objects under
 * 16 bytes share 16-byte blocks (as Go's tiny allocator), aligned to 2, 4
 * or 8 bytes by size: each is still freed, measured (gort_usable_size
 * counts only its own bytes), finalized and weakly referenced on its own,
 * but the collector keeps a block while any pointer into it remains, and
 * gort_free returns a block once all of its objects are freed and its
 * thread has moved on to another block (or exited). */
GORT_API void *gort_gc_alloc_noscan(size_t size)
    GORT_MALLOC_LIKE GORT_ALLOC_SIZE(1) GORT_WARN_UNUSED;

/* A pointer layout: bit i of ptrmap[i / 64] set means word i may hold a
 * pointer. Layouts are interned and live forever; the same arguments give
 * the same layout. nwords >= 1. */
typedef struct gort_gc_layout gort_gc_layout_t;
GORT_API const gort_gc_layout_t *gort_gc_layout(const uint64_t *ptrmap, size_t nwords);
/* A zeroed collected object of size bytes in which only the words the
 * layout names are scanned; an object longer than the layout repeats it
 * (an array of the type). */
GORT_API void *gort_gc_alloc_typed(size_t size, const gort_gc_layout_t *layout)
    GORT_MALLOC_LIKE GORT_ALLOC_SIZE(1) GORT_WARN_UNUSED;

/* A zeroed object that is scanned like gort_gc_alloc's but never
 * collected: released with gort_free (bdwgc's uncollectable), for holders
 * of collected pointers in manually managed structures. */
GORT_API void *gort_gc_alloc_uncollectable(size_t size)
    GORT_MALLOC_LIKE GORT_ALLOC_SIZE(1) GORT_WARN_UNUSED;

/* A zeroed collected object, scanned like gort_gc_alloc's, whose pages the
 * concurrent mark never write-protects: no fault on its writes and no
 * rescan of its pages in the mark's final stop. In exchange, every store
 * of a pointer into it (initialization included) must go through
 * gort_gc_write_ptr; a plain assignment, memcpy or read(2) of pointers
 * into it may let what they point to be freed (GORT_DEBUG=gccheckmark=1
 * reports such a miss). realloc and gort_free work as for any collected
 * object. */
GORT_API void *gort_gc_alloc_barriered(size_t size)
    GORT_MALLOC_LIKE GORT_ALLOC_SIZE(1) GORT_WARN_UNUSED;
/* Stores val in *slot, with Go's write barrier while a mark runs (the old
 * and the new pointee are marked); a plain store otherwise. Any slot may
 * be written this way; only barriered objects need it. */
GORT_API void gort_gc_write_ptr(void **slot, void *val);

/* A full blocking cycle that also finishes the sweep (Go's runtime.GC). */
GORT_API void gort_gc_collect(void);
/* Sets GORT_GC (percent; negative turns the collector off) and returns the
 * previous value. */
GORT_API int gort_gc_set_percent(int percent);

/* Adds [start, end) to the roots; removing a range removes exactly the
 * bytes given (overlaps and repeated removals are handled). */
GORT_API void gort_gc_add_roots(void *start, void *end);
GORT_API void gort_gc_remove_roots(void *start, void *end);

/* Runs fn(obj, arg) on the finalizer thread once obj is found unreachable.
 * obj and everything it reaches stay alive until fn has run; if fn leaves
 * obj unreachable, a later cycle collects it (fn may resurrect it). Chains
 * are finalized one link per cycle; cycles of finalizable objects are never
 * finalized (as in Go). A NULL fn clears obj's finalizer. gort_free of obj
 * drops its finalizer (it never runs), and a gort_realloc that moves obj
 * moves the finalizer to the new object. */
GORT_API void gort_gc_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg);

/* Weak pointers (Go's weak.Pointer): a handle, itself a collected object,
 * that does not keep obj alive. gort_gc_weak_get returns obj while it is
 * reachable and NULL once a cycle has found it unreachable (cleared before
 * its finalizer runs, even if the finalizer resurrects it), or once obj is
 * freed by gort_free or moved by gort_realloc. A handle may be left to the
 * collector or freed with gort_free. */
typedef struct gort_weak gort_weak_t;
GORT_API gort_weak_t *gort_gc_weak_make(void *obj);
GORT_API void *gort_gc_weak_get(gort_weak_t *w);

/* For threads gort did not see start (created before gort was loaded, or
 * by a raw clone): register before keeping collected pointers on the
 * stack, unregister before exiting. */
GORT_API void gort_gc_register_thread(void);
GORT_API void gort_gc_unregister_thread(void);

/* The usable size of the collected object containing p (any interior
 * pointer); fatal if p is not in a collected object. */
GORT_API size_t gort_gc_size(const void *p);
/* The start of the collected object containing p, or NULL if p is not in
 * one (any pointer may be asked). */
GORT_API void *gort_gc_base(const void *p);

GORT_END_DECLS

#endif /* GORT_GC_H */
