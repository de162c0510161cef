// Where each process's reports go: %p and %e in paths, one file per
// process of a tree, checks at start-up. See outpath.c.

#ifndef GORT_OBS_OUTPATH_H
#define GORT_OBS_OUTPATH_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
  OUT_STATS,        // GORT_STATS_FILE (with GORT_STATS)
  OUT_HEAPPROFILE,  // GORT_HEAPPROFILE
  OUT_LEAKCHECK,    // GORT_LEAKCHECK_FILE (with GORT_LEAKCHECK)
  OUT_LEAKPROFILE,  // GORT_LEAKCHECK_PROFILE
  OUT_KINDS,
} out_kind_t;

#define OUTPATH_MAX 4096

// Start-up (obs init): takes the paths from the options, or inherited from
// a parent gort process; marks the variables passed on to children; checks
// each path and prints one warning per problem. Allocates nothing.
void gort__outpath_init(void);
// The file the report of kind k goes to now, expanded into out (of
// OUTPATH_MAX bytes); NULL if there is none (not set, or found unwritable
// at start-up, which said so).
const char *gort__outpath_get(out_kind_t k, char *out);
// The variable's name, for messages.
const char *gort__outpath_var(out_kind_t k);

// Expands pattern into out: %p the pid, %e prog, %% a %; any other %
// sequence is copied as it is. With add_pid and no %p in pattern, appends
// ".<pid>". Returns the length, or 0 if out (size bytes) is too small.
size_t gort__outpath_expand(const char *pattern, int pid, const char *prog, bool add_pid, char *out,
                            size_t size);

#endif  // GORT_OBS_OUTPATH_H
