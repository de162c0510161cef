// Writing profiles in pprof's format. See pprof.c.

#ifndef GORT_OBS_PPROF_H
#define GORT_OBS_PPROF_H

#include <stdint.h>

typedef struct pprof_writer pprof_writer_t;

// One profile's own part. strings[0] must be ""; the other fields name
// strings by their index in it. The writer adds the mappings (from
// /proc/self/maps), the locations and their strings.
typedef struct {
  const char *const *strings;
  int nstrings;
  const int (*types)[2];  // sample types: {type, unit}
  int ntypes;
  int period_type, period_unit;
  int64_t period;
  int default_type;       // a string: the type `go tool pprof` shows first
  // Calls gort__pprof_sample for each sample.
  void (*samples)(pprof_writer_t *w, void *arg);
  void *arg;
} pprof_spec_t;

// A sample: its stack (return addresses, innermost first), ntypes values,
// and a string label (label_key 0: none).
void gort__pprof_sample(pprof_writer_t *w, const uintptr_t *pcs, uint32_t depth, const int64_t *values,
                        int nvalues, int label_key, int label_str);
// Writes the profile, gzipped, to fd: 0 or a negative errno. Never
// allocates from gort's heap.
int gort__pprof_write(int fd, const pprof_spec_t *spec);

#endif  // GORT_OBS_PPROF_H
