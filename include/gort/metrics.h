/* gort: memory statistics and named metrics.
 *
 * gort_read_memstats fills Go's runtime.MemStats fields that make sense in
 * gort. gort_metrics_read reads figures by Go's runtime/metrics names
 * ("/gc/heap/allocs:bytes"); gort_metrics_all lists them all. The
 * collector's fields (NextGC, NumGC, pauses...) read zero until its first
 * cycle.
 *
 * Snapshots: page-heap figures are read under one lock, so HeapInuse +
 * HeapIdle == HeapSys exactly. Per-thread counters are summed without
 * stopping threads: frees are read before mallocs, so HeapObjects and
 * HeapAlloc never go negative and lag reality by at most the operations
 * made during the read.
 */
#ifndef GORT_METRICS_H
#define GORT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"

GORT_BEGIN_DECLS

#define GORT_NUM_SIZE_CLASSES 73

typedef struct {
  uint32_t size;      /* block size of the class (0 for the large class) */
  uint64_t mallocs;   /* objects allocated */
  uint64_t frees;     /* objects freed */
} gort_class_stats_t;

typedef struct {
  /* General. */
  uint64_t alloc;        /* bytes of live objects (= heap_alloc) */
  uint64_t total_alloc;  /* bytes allocated, ever */
  uint64_t sys;          /* bytes of address space obtained from the OS */
  uint64_t mallocs;      /* objects allocated, ever */
  uint64_t frees;        /* objects freed, ever */
  /* Heap. */
  uint64_t heap_alloc;     /* bytes of live objects */
  uint64_t heap_sys;       /* bytes of heap address space (arenas) */
  uint64_t heap_idle;      /* bytes in free page runs */
  uint64_t heap_inuse;     /* bytes in spans in use */
  uint64_t heap_released;  /* idle bytes returned to the OS */
  uint64_t heap_objects;   /* live objects */
  /* Metadata. */
  uint64_t mspan_inuse, mspan_sys;    /* span structs */
  uint64_t mcache_inuse, mcache_sys;  /* thread caches */
  uint64_t other_sys;                 /* other metadata (arena tables) */
  /* The operator's figures. */
  uint64_t rss;               /* resident set of the whole process (kernel) */
  uint64_t scavenge_cycles;   /* background scavenger cycles */
  uint64_t scavenged_bytes;   /* bytes released to the OS, ever */
  int64_t memory_limit;       /* the soft limit in force (INT64_MAX: none) */
  uint64_t threads;           /* thread caches alive */
  /* The collector (zero until its first cycle). */
  uint64_t next_gc;
  uint64_t last_gc;           /* ns since the epoch */
  uint64_t pause_total_ns;
  uint64_t pause_ns[256];
  uint32_t num_gc;
  uint32_t num_forced_gc;
  double gc_cpu_fraction;
  /* Per size class; class 0 holds the large objects. */
  gort_class_stats_t by_size[GORT_NUM_SIZE_CLASSES];
  /* Object pools (gort/pool.h), summed over every pool used. */
  uint64_t pool_gets;    /* gort_pool_get calls */
  uint64_t pool_puts;    /* gort_pool_put calls with an object */
  uint64_t pool_misses;  /* gets that found their pool empty */
  uint64_t pool_drops;   /* objects pools dropped at rotations */
  /* Concurrent marking (gort's own): heap pages the program wrote while
   * the collector marked, rescanned, ever; and whether cycles mark
   * concurrently (1) or with the world stopped (0). */
  uint64_t gc_dirty_pages;
  uint32_t gc_concurrent;
} gort_memstats_t;

/* Fills *out with the figures above, read now (see "Snapshots"). */
GORT_API void gort_read_memstats(gort_memstats_t *out);

/* Named metrics, Go's runtime/metrics: a sample names a metric; reading
 * fills in its kind and value. An unknown name reads as GORT_METRIC_BAD. */
typedef enum {
  GORT_METRIC_BAD = 0,
  GORT_METRIC_UINT64 = 1,
  GORT_METRIC_FLOAT64 = 2,
  GORT_METRIC_FLOAT64_HISTOGRAM = 3,
} gort_metric_kind_t;

/* Go's Float64Histogram: counts[i] samples fell in [buckets[i],
 * buckets[i + 1]); the first bucket starts at 0, the last ends at +Inf. */
#define GORT_METRIC_HIST_BUCKETS 32
typedef struct {
  uint64_t counts[GORT_METRIC_HIST_BUCKETS];
  double buckets[GORT_METRIC_HIST_BUCKETS + 1];
} gort_metric_histogram_t;

typedef struct {
  const char *name;  /* e.g. "/gc/heap/allocs:bytes" */
  gort_metric_kind_t kind;
  union {
    uint64_t u64;
    double f64;
    gort_metric_histogram_t hist;
  } value;
} gort_metric_sample_t;

typedef struct {
  const char *name;
  const char *description;
  gort_metric_kind_t kind;
  int cumulative; /* only ever grows */
} gort_metric_desc_t;

/* Reads every sample from one consistent snapshot. */
GORT_API void gort_metrics_read(gort_metric_sample_t *samples, size_t n);
/* Every supported metric; returns how many, *out points at a static table. */
GORT_API size_t gort_metrics_all(const gort_metric_desc_t **out);

GORT_END_DECLS

#endif /* GORT_METRICS_H */
