/* bench/gc/gcb.h: what the collector benchmarks share, so that one source
 * builds three ways. Define exactly one of:
 *   IMPL_GORT    gort_gc_alloc / gort_gc_alloc_noscan (link build/libgort.a)
 *   IMPL_BDWGC   GC_MALLOC / GC_MALLOC_ATOMIC (link -lgc)
 *   IMPL_MALLOC  malloc, and the program frees what it knows is dead
 * and, with IMPL_GORT, GCB_WB for gort's barriered objects
 * (gort_gc_alloc_barriered, pages never write-protected by the concurrent
 * mark; every pointer store through gort_gc_write_ptr): "gort-wb".
 *
 * A program calls gcb_init() first, allocates with gcb_alloc (may hold
 * pointers: scanned) and gcb_alloc_noscan (never holds pointers), frees
 * with gcb_free (a no-op under a collector; GCB_MANUAL says whether frees
 * happen, for code that walks a structure only to free it), stores every
 * pointer into a scanned object with gcb_store(lvalue, value) (a plain
 * assignment but under GCB_WB), and ends with
 * gcb_finish(workload, checksum), which prints the one result line:
 *
 *   workload impl cpu_s wall_s maxrss_mib cycles stw_max_ms stw_p99_ms
 *   gap_probe_ms gap_mutator_ms checksum
 *
 * cpu_s: user + system time of the whole process (getrusage), every thread
 * included (collector threads, the probe). wall_s: from gcb_init to
 * gcb_finish. maxrss_mib: ru_maxrss. cycles: collections completed.
 * stw_*: the longest and the 99th-percentile (nearest rank) stop of the
 * world, one figure per cycle:
 *   gort:  gort_memstats_t.pause_ns, Go's PauseNs ring (the pause of cycle
 *          k, counting from 1, at pause_ns[(k - 1) % 256]), read every 10 ms
 *          by a monitor thread so that a ring that wraps loses nothing;
 *          cycles = num_gc.
 *   bdwgc: GC_set_on_collection_event, from GC_EVENT_PRE_STOP_WORLD to
 *          GC_EVENT_POST_START_WORLD (the world is stopped for the whole
 *          mark); cycles = GC_get_gc_no() less the collection GC_INIT
 *          makes before the program starts.
 *   malloc: 0.
 * gap_probe_ms: a thread known to the collector sleeps 100 us in a loop
 * (timer slack 1 ns); the largest wake-up interval minus the 100 us.
 * gap_mutator_ms: the largest interval between two clock readings taken by
 * the program itself every GCB_TICK_EVERY steps (a step is an allocation,
 * or one step of a loop that does not allocate: filling the array, walking
 * a tree, checking the cache), so that the figure shows the collector and
 * not a long stretch of the program's own work. With GCB_GAPS set in the
 * environment, each such interval over 2 ms, and each probe oversleep over
 * 2 ms, is printed to stderr with the time it ended (to line up with
 * GORT_DEBUG=gctrace=1's cycles; on the VM of 2026-12-04 the probe sees
 * 8-30 ms gaps every 0.5 s and a 100 ms one now and then with plain
 * malloc too, no collector or scavenger running: the host's).
 * The Go version (go/harness.go) measures the same things the same way.
 */
#ifndef GCB_H
#define GCB_H

#if defined(IMPL_GORT) + defined(IMPL_BDWGC) + defined(IMPL_MALLOC) != 1
#error "define exactly one of IMPL_GORT, IMPL_BDWGC, IMPL_MALLOC"
#endif

#if defined(IMPL_BDWGC)
/* Before anything that includes pthread.h: pthread_create becomes
 * GC_pthread_create, so the probe thread is registered and stopped. */
#define GC_THREADS
#include <gc.h>
#endif

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#if defined(IMPL_GORT)
#include <gort/gc.h>
#include <gort/metrics.h>
#define GCB_MANUAL 0
#if defined(GCB_WB)
#define GCB_IMPL "gort-wb"
#define gcb_raw_alloc(n) gort_gc_alloc_barriered(n)
#define gcb_store(slot, v) gort_gc_write_ptr((void **)&(slot), (v))
#else
#define GCB_IMPL "gort"
#define gcb_raw_alloc(n) gort_gc_alloc(n)
#endif
#define gcb_raw_alloc_noscan(n) gort_gc_alloc_noscan(n)
#define gcb_free(p) ((void)(p))
#elif defined(IMPL_BDWGC)
#define GCB_IMPL "bdwgc"
#define GCB_MANUAL 0
/* GC_MALLOC zeroes; GC_MALLOC_ATOMIC does not (every program fills its
 * noscan objects entirely). */
#define gcb_raw_alloc(n) GC_MALLOC(n)
#define gcb_raw_alloc_noscan(n) GC_MALLOC_ATOMIC(n)
#define gcb_free(p) ((void)(p))
#else
#define GCB_IMPL "malloc"
#define GCB_MANUAL 1
/* The programs set every field of what they allocate: plain malloc. */
#define gcb_raw_alloc(n) malloc(n)
#define gcb_raw_alloc_noscan(n) malloc(n)
#define gcb_free(p) free(p)
#endif

#ifndef gcb_store
#define gcb_store(slot, v) ((slot) = (v))
#endif

#define GCB_TICK_EVERY 256u     /* allocations between mutator clock readings */
#define GCB_PROBE_NS 100000ull  /* the probe's sleep */

static inline uint64_t gcb_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64: the workloads' random numbers, the same in bench/gc/go. */
static inline __attribute__((unused)) uint64_t gcb_rand(uint64_t *state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void gcb_die(const char *what) {
  fprintf(stderr, "gcbench(%s): %s\n", GCB_IMPL, what);
  exit(2);
}

/* ---- the mutator's own clock ---------------------------------------------- */
static uint64_t gcb_mut_count, gcb_mut_last, gcb_mut_max, gcb_start_ns;
static int gcb_gaps; /* GCB_GAPS set: each gap over 2 ms to stderr, with when it ended */

static __attribute__((noinline)) void gcb_tick_slow(void) {
  uint64_t t = gcb_now_ns();
  if (t - gcb_mut_last > gcb_mut_max) gcb_mut_max = t - gcb_mut_last;
  if (gcb_gaps && t - gcb_mut_last > 2000000)
    fprintf(stderr, "gcb: mutator gap %.3f ms ending at %.3f s\n", (double)(t - gcb_mut_last) / 1e6,
            (double)(t - gcb_start_ns) / 1e9);
  gcb_mut_last = t;
}

/* One step of the program: every allocation, and each step of a loop that
 * allocates nothing. */
static inline void gcb_tick(void) {
  if (__builtin_expect((++gcb_mut_count & (GCB_TICK_EVERY - 1)) == 0, 0)) gcb_tick_slow();
}

static inline void *gcb_alloc(size_t n) {
  gcb_tick();
  void *p = gcb_raw_alloc(n);
  if (__builtin_expect(p == NULL, 0)) gcb_die("out of memory");
  return p;
}

static inline void *gcb_alloc_noscan(size_t n) {
  gcb_tick();
  void *p = gcb_raw_alloc_noscan(n);
  if (__builtin_expect(p == NULL, 0)) gcb_die("out of memory");
  return p;
}

/* ---- pauses ------------------------------------------------------------------ */
/* Kept in an anonymous mapping: no collector scans it, and it costs only
 * the pages touched. */
#define GCB_MAX_PAUSES (1u << 20)
static uint64_t *gcb_pauses;
static size_t gcb_npauses;
static uint64_t gcb_pauses_lost;

static __attribute__((unused)) void gcb_pause_add(uint64_t ns) {
  if (gcb_npauses < GCB_MAX_PAUSES)
    gcb_pauses[gcb_npauses++] = ns;
  else
    gcb_pauses_lost++;
}

#if defined(IMPL_BDWGC)
static uint64_t gcb_bdw_stop_start;
static GC_word gcb_bdw_gc_no0;  /* GC_INIT's own collection is not counted */
static void GC_CALLBACK gcb_bdw_event(GC_EventType e) {
  /* Called by the collecting thread with the GC lock held. */
  if (e == GC_EVENT_PRE_STOP_WORLD)
    gcb_bdw_stop_start = gcb_now_ns();
  else if (e == GC_EVENT_POST_START_WORLD && gcb_bdw_stop_start != 0) {
    gcb_pause_add(gcb_now_ns() - gcb_bdw_stop_start);
    gcb_bdw_stop_start = 0;
  }
}
#endif

#if defined(IMPL_GORT)
static uint32_t gcb_gort_seen;  /* cycles whose pause is recorded */
static uint32_t gcb_gort_num_gc;

/* Records the pauses of the cycles completed since the last call. */
static void gcb_gort_poll(void) {
  gort_memstats_t ms;
  gort_read_memstats(&ms);
  uint32_t n = ms.num_gc;
  uint32_t ring = (uint32_t)(sizeof ms.pause_ns / sizeof ms.pause_ns[0]);
  if (n - gcb_gort_seen > ring) {
    gcb_pauses_lost += n - gcb_gort_seen - ring;
    gcb_gort_seen = n - ring;
  }
  for (uint32_t k = gcb_gort_seen; k != n; k++) gcb_pause_add(ms.pause_ns[k % ring]);
  gcb_gort_seen = n;
  gcb_gort_num_gc = n;
}
#endif

/* ---- the probe (and gort's monitor) -------------------------------------- */
static volatile int gcb_stop_flag;
static uint64_t gcb_probe_max, gcb_probe_wakeups;
static pthread_t gcb_probe_thread;
#if defined(IMPL_GORT)
static pthread_t gcb_monitor_thread;
#endif

static int gcb_stopping(void) { return __atomic_load_n(&gcb_stop_flag, __ATOMIC_ACQUIRE); }

static void *gcb_probe_main(void *arg) {
  (void)arg;
  prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  uint64_t prev = gcb_now_ns();
  while (!gcb_stopping()) {
    struct timespec req = {0, (long)GCB_PROBE_NS};
    nanosleep(&req, NULL);  /* EINTR (a stop signal) is fine: we time it */
    uint64_t t = gcb_now_ns();
    uint64_t d = t - prev;
    if (d > GCB_PROBE_NS && d - GCB_PROBE_NS > gcb_probe_max) gcb_probe_max = d - GCB_PROBE_NS;
    if (gcb_gaps && d > GCB_PROBE_NS + 2000000)
      fprintf(stderr, "gcb: probe gap %.3f ms ending at %.3f s\n", (double)(d - GCB_PROBE_NS) / 1e6,
              (double)(t - gcb_start_ns) / 1e9);
    gcb_probe_wakeups++;
    prev = t;
  }
  return NULL;
}

#if defined(IMPL_GORT)
static void *gcb_monitor_main(void *arg) {
  (void)arg;
  while (!gcb_stopping()) {
    struct timespec req = {0, 10 * 1000 * 1000};
    nanosleep(&req, NULL);
    gcb_gort_poll();
  }
  return NULL;
}
#endif

static void gcb_init(void) {
  gcb_gaps = getenv("GCB_GAPS") != NULL;
#if defined(IMPL_BDWGC)
  GC_INIT();
  /* bdwgc's incremental mode (mprotect and a SIGSEGV per first write), for
   * run.sh's bdwgc-inc. */
  if (getenv("GCB_BDW_INCREMENTAL") != NULL) GC_enable_incremental();
  GC_set_on_collection_event(gcb_bdw_event);
  gcb_bdw_gc_no0 = GC_get_gc_no();
#endif
  void *m = mmap(NULL, GCB_MAX_PAUSES * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) gcb_die("mmap failed");
  gcb_pauses = m;
  gcb_start_ns = gcb_now_ns();  /* before the probe, which reads it */
  if (pthread_create(&gcb_probe_thread, NULL, gcb_probe_main, NULL) != 0) gcb_die("pthread_create failed");
#if defined(IMPL_GORT)
  if (pthread_create(&gcb_monitor_thread, NULL, gcb_monitor_main, NULL) != 0) gcb_die("pthread_create failed");
#endif
  gcb_mut_last = gcb_now_ns();
}

static int gcb_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void gcb_finish(const char *workload, uint64_t checksum) {
  uint64_t end = gcb_now_ns();
  gcb_tick_slow();  /* the tail since the last tick counts too */
  __atomic_store_n(&gcb_stop_flag, 1, __ATOMIC_RELEASE);
  pthread_join(gcb_probe_thread, NULL);
  uint64_t cycles = 0;
#if defined(IMPL_GORT)
  pthread_join(gcb_monitor_thread, NULL);
  gcb_gort_poll();
  cycles = gcb_gort_num_gc;
#elif defined(IMPL_BDWGC)
  cycles = GC_get_gc_no() - gcb_bdw_gc_no0;
#endif
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  double stw_max = 0, stw_p99 = 0;
  if (gcb_npauses > 0) {
    qsort(gcb_pauses, gcb_npauses, sizeof(uint64_t), gcb_cmp_u64);
    size_t rank = (gcb_npauses * 99 + 99) / 100;  /* ceil(0.99 n), nearest rank */
    stw_max = (double)gcb_pauses[gcb_npauses - 1] / 1e6;
    stw_p99 = (double)gcb_pauses[rank - 1] / 1e6;
  }
  if (getenv("GCB_PAUSES") != NULL) {  /* every pause, in ms, sorted */
    for (size_t i = 0; i < gcb_npauses; i++)
      fprintf(stderr, "%.3f%c", (double)gcb_pauses[i] / 1e6, i + 1 == gcb_npauses ? '\n' : ' ');
  }
  if (gcb_pauses_lost)
    fprintf(stderr, "gcbench(%s): %llu pauses not recorded\n", GCB_IMPL,
            (unsigned long long)gcb_pauses_lost);
  fprintf(stderr, "# %s %s: %zu pauses recorded, %llu probe wake-ups\n", workload, GCB_IMPL,
          gcb_npauses, (unsigned long long)gcb_probe_wakeups);
#if defined(IMPL_BDWGC)
  fprintf(stderr, "# bdwgc %u.%u.%u, %d marker threads\n", (GC_get_version() >> 16),
          (GC_get_version() >> 8) & 0xff, GC_get_version() & 0xff, GC_get_parallel() + 1);
#endif
  printf("%s %s %.3f %.3f %.1f %llu %.3f %.3f %.3f %.3f %llu\n", workload, GCB_IMPL, cpu,
         (double)(end - gcb_start_ns) / 1e9, (double)ru.ru_maxrss / 1024.0,
         (unsigned long long)cycles, stw_max, stw_p99, (double)gcb_probe_max / 1e6,
         (double)gcb_mut_max / 1e6, (unsigned long long)checksum);
  fflush(stdout);
}

#endif /* GCB_H */
