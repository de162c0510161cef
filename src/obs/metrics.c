// Named metrics (Go: runtime/metrics, metrics.go). One table holds every
// metric's name, description, kind and how it is computed from a MemStats
// snapshot; the API, the list call and docs/METRICS.md (tools/mkmetricsdoc)
// all come from it. Names and units follow Go's where the figure is the
// same; gort's own figures live under /gort/.

#include <string.h>

#include "gort/metrics.h"
#include "heapstats.h"
#include "../gc/gc.h"
#include "../sched/sched.h"

typedef uint64_t (*compute_fn)(const gort_memstats_t *m);

#define M(field) static uint64_t get_##field(const gort_memstats_t *m) { return m->field; }
M(total_alloc)
M(mallocs)
M(frees)
M(heap_objects)
M(heap_released)
M(heap_sys)
M(sys)
M(rss)
M(scavenge_cycles)
M(scavenged_bytes)
M(threads)
M(mspan_inuse)
M(mcache_inuse)
M(num_gc)
M(next_gc)
M(pool_gets)
M(pool_puts)
M(pool_misses)
M(pool_drops)
#undef M

static uint64_t freed_bytes(const gort_memstats_t *m) { return m->total_alloc - m->heap_alloc; }
static uint64_t heap_objects_bytes(const gort_memstats_t *m) { return m->heap_alloc; }
static uint64_t heap_unused(const gort_memstats_t *m) { return m->heap_inuse - m->heap_alloc; }
static uint64_t heap_free(const gort_memstats_t *m) { return m->heap_idle - m->heap_released; }
static uint64_t meta_other(const gort_memstats_t *m) { return m->sys - m->heap_sys - m->mspan_inuse - m->mcache_inuse; }
static uint64_t mem_limit(const gort_memstats_t *m) { return (uint64_t)m->memory_limit; }
static uint64_t goroutines(const gort_memstats_t *m) { (void)m; return (uint64_t)gort__sched_ngoroutine(); }

// Times from runnable to running, in seconds (Go's /sched/latencies:seconds):
// the scheduler samples them by log2 of nanoseconds.
static void latencies(gort_metric_histogram_t *h) {
  uint64_t c[32];
  gort__sched_latencies(c);
  h->buckets[0] = 0;
  for (int i = 0; i < GORT_METRIC_HIST_BUCKETS; i++) {
    h->counts[i] = c[i];
    if (i > 0) h->buckets[i] = (double)(1ULL << (i - 1)) * 1e-9;
  }
  h->buckets[GORT_METRIC_HIST_BUCKETS] = __builtin_inf();
}

static uint64_t gc_dirty_pages(const gort_memstats_t *m) { return m->gc_dirty_pages; }
static uint64_t limiter_last(const gort_memstats_t *m) {
  (void)m;
  gc_figures_t g;
  gort__gc_read_figures(&g);
  return g.limiter_last;
}
static uint64_t stops_asked(const gort_memstats_t *m) {
  (void)m;
  uint64_t asked, signalled;
  gort__stw_stop_counts(&asked, &signalled);
  return asked;
}
static uint64_t stops_signalled(const gort_memstats_t *m) {
  (void)m;
  uint64_t asked, signalled;
  gort__stw_stop_counts(&asked, &signalled);
  return signalled;
}

// Every stop of the world, in seconds (Go's /gc/pauses:seconds): the
// collector counts stops by log2 of their microseconds.
static void pauses(gort_metric_histogram_t *h) {
  gc_figures_t g;
  gort__gc_read_figures(&g);
  h->buckets[0] = 0;
  for (int i = 0; i < GORT_METRIC_HIST_BUCKETS; i++) {
    h->counts[i] = g.pause_hist[i];
    if (i > 0) h->buckets[i] = (double)(1ULL << (i - 1)) * 1e-6;
  }
  h->buckets[GORT_METRIC_HIST_BUCKETS] = __builtin_inf();
}

typedef struct {
  gort_metric_desc_t desc;
  compute_fn get;
  void (*hist)(gort_metric_histogram_t *h);  // for GORT_METRIC_FLOAT64_HISTOGRAM
} metric_t;

static const metric_t metrics[] = {
    {{"/gc/heap/allocs:bytes", "Bytes allocated to the program, ever (malloc and collected).", GORT_METRIC_UINT64, 1}, get_total_alloc, NULL},
    {{"/gc/heap/allocs:objects", "Objects allocated, ever.", GORT_METRIC_UINT64, 1}, get_mallocs, NULL},
    {{"/gc/heap/frees:bytes", "Bytes freed, ever.", GORT_METRIC_UINT64, 1}, freed_bytes, NULL},
    {{"/gc/heap/frees:objects", "Objects freed, ever.", GORT_METRIC_UINT64, 1}, get_frees, NULL},
    {{"/gc/heap/objects:objects", "Live objects in the heap.", GORT_METRIC_UINT64, 0}, get_heap_objects, NULL},
    {{"/gc/heap/goal:bytes", "Heap size at which the next collection starts (0 until the first cycle).", GORT_METRIC_UINT64, 0}, get_next_gc, NULL},
    {{"/gc/cycles/total:gc-cycles", "Collections completed.", GORT_METRIC_UINT64, 1}, get_num_gc, NULL},
    {{"/gc/limiter/last-enabled:gc-cycle", "The last cycle during which the collector's CPU limit was on (0: never): its assists and waits skipped, the heap past its goal.", GORT_METRIC_UINT64, 0}, limiter_last, NULL},
    {{"/gc/pauses:seconds", "Distribution of the collector's stops of the world (each stop; a concurrent cycle has two).", GORT_METRIC_FLOAT64_HISTOGRAM, 1}, NULL, pauses},
    {{"/gort/gc/dirty/rescanned:pages", "Heap pages the program wrote while the collector marked, rescanned, ever.", GORT_METRIC_UINT64, 1}, gc_dirty_pages, NULL},
    {{"/gort/gc/stops/asked:threads", "Running threads that stopped for the collector when asked at a safe point, ever.", GORT_METRIC_UINT64, 1}, stops_asked, NULL},
    {{"/gort/gc/stops/signalled:threads", "Threads the collector's stops had to signal, ever.", GORT_METRIC_UINT64, 1}, stops_signalled, NULL},
    {{"/gc/gomemlimit:bytes", "The soft memory limit in force (GORT_MEMLIMIT); 2^63-1 for none.", GORT_METRIC_UINT64, 0}, mem_limit, NULL},
    {{"/memory/classes/heap/objects:bytes", "Bytes of live objects.", GORT_METRIC_UINT64, 0}, heap_objects_bytes, NULL},
    {{"/memory/classes/heap/unused:bytes", "Bytes in spans in use but not in live objects (fragmentation, free slots).", GORT_METRIC_UINT64, 0}, heap_unused, NULL},
    {{"/memory/classes/heap/free:bytes", "Free heap bytes still backed by memory, that the scavenger may release.", GORT_METRIC_UINT64, 0}, heap_free, NULL},
    {{"/memory/classes/heap/released:bytes", "Free heap bytes returned to the OS.", GORT_METRIC_UINT64, 0}, get_heap_released, NULL},
    {{"/memory/classes/metadata/mspan/inuse:bytes", "Bytes of span structures in use.", GORT_METRIC_UINT64, 0}, get_mspan_inuse, NULL},
    {{"/memory/classes/metadata/mcache/inuse:bytes", "Bytes of thread caches in use.", GORT_METRIC_UINT64, 0}, get_mcache_inuse, NULL},
    {{"/memory/classes/metadata/other:bytes", "Other metadata: arena page maps, profiler buckets, free structures.", GORT_METRIC_UINT64, 0}, meta_other, NULL},
    {{"/memory/classes/total:bytes", "All memory gort mapped: the heap's address space and its metadata.", GORT_METRIC_UINT64, 0}, get_sys, NULL},
    {{"/sched/goroutines:goroutines", "Live goroutines (gort_num_goroutine).", GORT_METRIC_UINT64, 0}, goroutines, NULL},
    {{"/sched/latencies:seconds", "Distribution of the time goroutines waited runnable before running (one transition in 64 sampled).", GORT_METRIC_FLOAT64_HISTOGRAM, 1}, NULL, latencies},
    {{"/gort/heap/sys:bytes", "Heap address space reserved in arenas (HeapSys).", GORT_METRIC_UINT64, 0}, get_heap_sys, NULL},
    {{"/gort/process/rss:bytes", "Resident set of the whole process, from the kernel.", GORT_METRIC_UINT64, 0}, get_rss, NULL},
    {{"/gort/scavenge/cycles:cycles", "Background scavenger cycles.", GORT_METRIC_UINT64, 1}, get_scavenge_cycles, NULL},
    {{"/gort/scavenge/released:bytes", "Bytes returned to the OS by the scavenger, on request or at the limit, ever.", GORT_METRIC_UINT64, 1}, get_scavenged_bytes, NULL},
    {{"/gort/threads/caches:threads", "Threads with a thread cache.", GORT_METRIC_UINT64, 0}, get_threads, NULL},
    {{"/gort/pool/gets:calls", "gort_pool_get calls, over every pool.", GORT_METRIC_UINT64, 1}, get_pool_gets, NULL},
    {{"/gort/pool/puts:calls", "gort_pool_put calls with an object, over every pool.", GORT_METRIC_UINT64, 1}, get_pool_puts, NULL},
    {{"/gort/pool/misses:calls", "Pool gets that found the pool empty (new_fn called, if any).", GORT_METRIC_UINT64, 1}, get_pool_misses, NULL},
    {{"/gort/pool/drops:objects", "Objects pools dropped at rotations (unused for two cycles).", GORT_METRIC_UINT64, 1}, get_pool_drops, NULL},
};

#define NMETRICS (sizeof metrics / sizeof metrics[0])
static gort_metric_desc_t descs[NMETRICS];

size_t gort_metrics_all(const gort_metric_desc_t **out) {
  for (size_t i = 0; i < NMETRICS; i++) descs[i] = metrics[i].desc;
  *out = descs;
  return NMETRICS;
}

void gort_metrics_read(gort_metric_sample_t *samples, size_t n) {
  gort_memstats_t m;
  gort_read_memstats(&m);
  for (size_t i = 0; i < n; i++) {
    samples[i].kind = GORT_METRIC_BAD;
    samples[i].value.u64 = 0;
    if (samples[i].name == NULL) continue;
    for (size_t j = 0; j < NMETRICS; j++) {
      if (strcmp(samples[i].name, metrics[j].desc.name) == 0) {
        samples[i].kind = metrics[j].desc.kind;
        if (metrics[j].hist != NULL)
          metrics[j].hist(&samples[i].value.hist);
        else
          samples[i].value.u64 = metrics[j].get(&m);
        break;
      }
    }
  }
}
