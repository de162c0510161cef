// MemStats: Go's runtime.MemStats for gort (Go: mstats.go).
//
// The allocator keeps its counters where they are cheap to update: per
// thread cache (objects allocated and freed per size class, written only
// by the owning thread, without atomics) and in the page heap (under its
// lock). A read sums the shards. It reads every cache's free counts before
// any malloc count: a counted free implies its malloc happened earlier, so
// the malloc is in the later read and live counts never go negative.

#include <string.h>
#include <unistd.h>

#include "../alloc/mcache.h"
#include "../alloc/mheap.h"
#include "../alloc/scavenger.h"
#include "../base/persistent.h"
#include "../gc/gc.h"
#include "../os/os.h"
#include "gort/pool.h"
#include "heapstats.h"

typedef struct {
  uint64_t nmalloc[GORT_NUM_CLASSES];
  uint64_t nfree[GORT_NUM_CLASSES];
} class_counts_t;

static void add_frees(mcache_t *c, void *arg) {
  class_counts_t *cc = arg;
  for (int i = 0; i < GORT_NUM_CLASSES; i++) cc->nfree[i] += counter_read(&c->k[i].nfree);
}

static void add_mallocs(mcache_t *c, void *arg) {
  class_counts_t *cc = arg;
  for (int i = 0; i < GORT_NUM_CLASSES; i++) cc->nmalloc[i] += counter_read(&c->k[i].nmalloc);
}

static void read_counts(class_counts_t *cc, heap_stats_t *hs) {
  memset(cc, 0, sizeof *cc);
  uint64_t rm[GORT_NUM_CLASSES], rf[GORT_NUM_CLASSES];
  gort__mcache_retired_counts(rm, rf);
  gort__mcache_foreach(add_frees, cc);
  gort__mheap_read_stats(hs);
  // Each counter_read is relaxed; the cache registry lock taken by the
  // second foreach orders it after the first.

  gort__mcache_foreach(add_mallocs, cc);
  for (int i = 0; i < GORT_NUM_CLASSES; i++) {
    cc->nmalloc[i] += rm[i];
    cc->nfree[i] += rf[i];
    if (i > 0 && cc->nfree[i] > cc->nmalloc[i]) cc->nmalloc[i] = cc->nfree[i];  // a thread exited mid-read
  }
  // Large blocks that threads keep and reuse (alloc/mcache.c, "Large
  // blocks") are counted in the caches' class 0, not by the heap: a block
  // may come from one and go back to the other, so only the sums are
  // figures, and they are read after the heap's (hence the clamps).
  uint64_t ab, fb;
  gort__mcache_large_bytes(&ab, &fb);
  hs->large_allocs += cc->nmalloc[0];
  hs->large_frees += cc->nfree[0];
  hs->large_alloc_bytes += ab;
  hs->large_free_bytes += fb;
  if (hs->large_frees > hs->large_allocs) hs->large_allocs = hs->large_frees;
  if (hs->large_free_bytes > hs->large_alloc_bytes) hs->large_alloc_bytes = hs->large_free_bytes;
}

static void figures_from(const class_counts_t *cc, const heap_stats_t *hs, gort_heap_figures_t *f) {
  memset(f, 0, sizeof *f);
  for (int i = 1; i < GORT_NUM_CLASSES; i++) {
    f->mallocs += cc->nmalloc[i];
    f->frees += cc->nfree[i];
    f->total_alloc += cc->nmalloc[i] * gort__class_size[i];
    f->heap_alloc += (cc->nmalloc[i] - cc->nfree[i]) * gort__class_size[i];
  }
  f->mallocs += hs->large_allocs;
  f->frees += hs->large_frees;
  f->total_alloc += hs->large_alloc_bytes;
  f->large_objects = hs->large_allocs - hs->large_frees;
  f->large_bytes = hs->large_alloc_bytes - hs->large_free_bytes;
  f->heap_alloc += f->large_bytes;
  // Small collected objects (large ones are in the page heap's figures):
  // counted when allocated, and when the sweep (or gort_free) frees them.
  // The frees are read after the allocations' counters were, so the live
  // figures never go negative.
  uint64_t gn, gb;
  gort__mcache_gc_counts(&gn, &gb);
  gc_figures_t g;
  gort__gc_read_figures(&g);
  if (g.objects_freed > gn) g.objects_freed = gn;
  if (g.bytes_freed > gb) g.bytes_freed = gb;
  f->mallocs += gn;
  f->frees += g.objects_freed;
  f->total_alloc += gb;
  f->heap_alloc += gb - g.bytes_freed;
  f->heap_objects = f->mallocs - f->frees;
  f->heap_sys = hs->sys_bytes;
  f->heap_inuse = hs->inuse_bytes;
  f->heap_idle = hs->free_bytes;
  f->heap_released = hs->released_bytes;
  f->sys = hs->sys_bytes + gort__persistent_sys_bytes();
}

void gort__heap_figures(gort_heap_figures_t *f) {
  class_counts_t cc;
  heap_stats_t hs;
  read_counts(&cc, &hs);
  figures_from(&cc, &hs, f);
}

void gort_read_memstats(gort_memstats_t *out) {
  class_counts_t cc;
  heap_stats_t hs;
  read_counts(&cc, &hs);
  gort_heap_figures_t f;
  figures_from(&cc, &hs, &f);
  memset(out, 0, sizeof *out);
  out->alloc = out->heap_alloc = f.heap_alloc;
  out->total_alloc = f.total_alloc;
  out->sys = f.sys;
  out->mallocs = f.mallocs;
  out->frees = f.frees;
  out->heap_sys = f.heap_sys;
  out->heap_idle = f.heap_idle;
  out->heap_inuse = f.heap_inuse;
  out->heap_released = f.heap_released;
  out->heap_objects = f.heap_objects;
  out->mspan_inuse = hs.span_structs * sizeof(mspan_t);
  out->mspan_sys = hs.span_structs_sys;
  out->mcache_inuse = gort__mcache_count() * sizeof(mcache_t);
  out->mcache_sys = out->mcache_inuse;
  out->other_sys = gort__persistent_sys_bytes() - out->mspan_sys;
  int64_t rss = gort__os_rss();
  out->rss = rss > 0 ? (uint64_t)rss : 0;
  gort_scavenger_stats_t ss;
  gort__scavenger_stats(&ss);
  out->scavenge_cycles = ss.cycles;
  out->scavenged_bytes = ss.released_bytes;
  out->memory_limit = ss.memory_limit;
  out->threads = gort__mcache_count();
  gc_figures_t g;
  gort__gc_read_figures(&g);
  out->num_gc = g.num_gc;
  out->num_forced_gc = g.num_forced_gc;
  out->pause_total_ns = g.pause_total_ns;
  memcpy(out->pause_ns, g.pause_ns, sizeof out->pause_ns);
  out->last_gc = g.last_gc_unix_ns;
  out->next_gc = g.next_gc;
  out->gc_cpu_fraction = g.cpu_fraction;
  out->gc_dirty_pages = g.dirty_pages;
  out->gc_concurrent = g.concurrent;
  for (int i = 0; i < GORT_NUM_CLASSES; i++) {
    out->by_size[i].size = gort__class_size[i];
    out->by_size[i].mallocs = cc.nmalloc[i];
    out->by_size[i].frees = cc.nfree[i];
  }
  out->by_size[0].mallocs = hs.large_allocs;
  out->by_size[0].frees = hs.large_frees;
  gort_pool_stats_t ps;
  gort_pool_stats(NULL, &ps);
  out->pool_gets = ps.gets;
  out->pool_puts = ps.puts;
  out->pool_misses = ps.misses;
  out->pool_drops = ps.drops;
}

// The summary's lines; returns the first write error (0 or -errno).
static int kib(int fd, const char *name, uint64_t bytes) {
  return gort__print_fd(fd, "gort:   %-14s %12llu KiB\n", name, (unsigned long long)(bytes >> 10));
}

static int print_counts(int fd, const gort_memstats_t *m) {
  int err = gort__print_fd(fd, "gort:   %-14s %12llu\ngort:   %-14s %12llu\ngort:   %-14s %12llu\n",
                           "Mallocs", (unsigned long long)m->mallocs, "Frees",
                           (unsigned long long)m->frees, "HeapObjects",
                           (unsigned long long)m->heap_objects);
  int e = gort__print_fd(fd, "gort:   %-14s %12llu (%llu KiB released)\n", "ScavCycles",
                         (unsigned long long)m->scavenge_cycles,
                         (unsigned long long)(m->scavenged_bytes >> 10));
  if (err == 0) err = e;
  // The collector, in a program that collected.
  if (err == 0 && m->num_gc != 0) {
    uint64_t max = 0;
    for (uint32_t i = 0; i < m->num_gc && i < 256; i++)
      if (m->pause_ns[i] > max) max = m->pause_ns[i];
    err = gort__print_fd(fd, "gort:   %-14s %12u (%s%s; %llu us paused in all, at most %llu us a cycle; %llu written pages rescanned)\n",
                         "NumGC", m->num_gc,
                         m->gc_concurrent ? "concurrent mark, dirty pages from " : "stop-the-world mark",
                         m->gc_concurrent ? gort__dirty_name() : "",
                         (unsigned long long)(m->pause_total_ns / 1000), (unsigned long long)(max / 1000),
                         (unsigned long long)m->gc_dirty_pages);
  }
  // Pools, in a program that used one.
  if (err == 0 && (m->pool_gets | m->pool_puts) != 0)
    err = gort__print_fd(fd, "gort:   %-14s %12llu (%llu misses)\ngort:   %-14s %12llu (%llu dropped)\n",
                         "PoolGets", (unsigned long long)m->pool_gets,
                         (unsigned long long)m->pool_misses, "PoolPuts",
                         (unsigned long long)m->pool_puts, (unsigned long long)m->pool_drops);
  return err;
}

static int print_classes(int fd, const gort_memstats_t *m) {
  int err = gort__print_fd(fd, "gort:   by size class (live objects / allocated):\n");
  for (int i = 0; i < GORT_NUM_CLASSES && err == 0; i++) {
    const gort_class_stats_t *c = &m->by_size[i];
    if (c->mallocs == 0) continue;
    unsigned long long live = c->mallocs - c->frees, all = c->mallocs;
    if (i == 0)
      err = gort__print_fd(fd, "gort:     %8s %10llu / %llu\n", "large", live, all);
    else
      err = gort__print_fd(fd, "gort:     %8u %10llu / %llu\n", c->size, live, all);
  }
  return err;
}

int gort__heap_print_summary(int fd) {
  gort_memstats_t *m = &(gort_memstats_t){0};
  gort_read_memstats(m);
  char prog[256];
  gort__os_program_name(prog, sizeof prog);
  // The process names itself: a tree of processes under GORT_STATS=1
  // prints one summary each, to the same stderr.
  int err = gort__print_fd(fd, "gort: memory summary of pid %d (%s)\n", (int)getpid(), prog);
  const struct {
    const char *name;
    uint64_t v;
  } rows[] = {{"HeapAlloc", m->heap_alloc},       {"HeapInuse", m->heap_inuse},
              {"HeapIdle", m->heap_idle},         {"HeapReleased", m->heap_released},
              {"HeapSys", m->heap_sys},           {"Sys", m->sys},
              {"RSS", m->rss},                    {"TotalAlloc", m->total_alloc}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0] && err == 0; i++)
    err = kib(fd, rows[i].name, rows[i].v);
  if (err == 0) err = print_counts(fd, m);
  if (err == 0) err = print_classes(fd, m);
  return err;
}
