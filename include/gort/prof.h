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

GORT_END_DECLS

#endif /* GORT_PROF_H */
