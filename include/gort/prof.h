/* gort: heap profiles in pprof's format.
 *
 * gort samples about one allocation per GORT_MEMPROFILERATE bytes (default
 * 512 KiB; 0 turns sampling off), Poisson-spaced as Go's and tcmalloc's,
 * records the call stack of each sample, and writes pprof's profile.proto,
 * gzipped, with the sample types alloc_objects, alloc_space,
 * inuse_objects and inuse_space (the default). Counts are scaled up from
 * the samples as Go does, so they estimate the whole heap. Mappings come
 * from /proc/self/maps, so `go tool pprof` symbolizes from the binaries:
 *
 *     GORT_HEAPPROFILE=heap.pb.gz LD_PRELOAD=libgort.so ./app
 *     go tool pprof -top ./app heap.pb.gz
 *
 * GORT_HEAPPROFILE=path writes a profile at exit, and on SIGUSR2 as well
 * with GORT_DEBUG=profsignal=1.
 */
#ifndef GORT_PROF_H
#define GORT_PROF_H

#include "api.h"

GORT_BEGIN_DECLS

/* Writes the current heap profile to fd. Returns 0, or a negative errno
 * (the profile is then incomplete). Never allocates from gort's heap. */
GORT_API int gort_heap_profile_write(int fd);

/* The leak check (GORT_LEAKCHECK=1 runs it at exit): stops the program's
 * threads, marks from every root (thread stacks and registers, static and
 * thread data, the loaded objects' data and bss, registered roots),
 * scanning every malloc block it reaches for pointers, and writes to fd a
 * report of every malloc block left unreached, grouped by the stack that
 * allocated it, in LeakSanitizer's layout, followed by a one-line summary.
 * A block that only a pointer into its middle reaches counts as reachable
 * (the report says how many). Stacks are recorded only if GORT_LEAKCHECK
 * was set when the program started; otherwise the blocks are reported
 * without them. Callable at any time, from any thread (not from a signal
 * handler). Returns the number of leaked blocks reported (suppressions
 * left out), or a negative errno: -ENOMEM if the check's memory was
 * refused (nothing is reported then), or a write error on fd. */
GORT_API int gort_leak_check(int fd);

GORT_END_DECLS

#endif /* GORT_PROF_H */
