/* gort: object pools, with the semantics of the Pool of Go's package sync.
 *
 * A pool keeps objects that were put back, so that the next get reuses one
 * instead of allocating: request buffers, parsers, scratch structs made and
 * dropped at a high rate. Like Go's sync.Pool it is a cache, not a free
 * list: every collection moves what the pool holds to a victim cache and
 * drops the previous victims, so an object that stayed in the pool for two
 * cycles is gone, and a burst of puts does not pin memory forever. When
 * no collection rotated the pools for GORT_DEBUG=scavdelay (500 ms by
 * default), because the collector is off (GORT_GC=off) or idle (a program
 * that allocates no collected objects), the scavenger's cycle rotates them
 * instead.
 *
 *   static void *new_buf(void) { return gort_malloc(4096); }
 *   static void clear_buf(void *b) { memset(b, 0, 64); }
 *   static gort_pool_t bufs = GORT_POOL_INIT(new_buf, clear_buf, NULL);
 *   char *b = gort_pool_get(&bufs);  ...  gort_pool_put(&bufs, b);
 *
 * new_fn makes an object on a miss (a get from an empty pool); without it
 * such a get returns NULL. reset_fn, if any, runs on every put, on the
 * putting thread, before the object enters the pool. release_fn, if any,
 * runs on each object the pool drops; without it a dropped gort_malloc
 * or uncollectable object is given to gort_free and a dropped collected
 * object (gort_gc_alloc) is left to the collector. Dropped objects are released
 * on gort's pool thread, a thread of its own that the collector stops like
 * any other, after the rotation.
 *
 * Objects must come from gort (gort_malloc and kin, or gort_gc_alloc and
 * kin): a put of a pointer gort did not hand out is a fatal error naming
 * it; a put of NULL is ignored. A collected object held only by a pool
 * stays alive while it is pooled (the pool's storage is a root).
 *
 * Every call is safe from any thread and from goroutines. A get returns
 * any pooled object, not the most recently put one, except that a get
 * after a put on the same thread, with nothing between them, returns that
 * object. A pool must outlive every call on it and stay at one address:
 * give it static storage (GORT_POOL_INIT) or never free it; gort keeps a
 * list of the pools in use.
 */
#ifndef GORT_POOL_H
#define GORT_POOL_H

#include <stdint.h>

#include "api.h"

GORT_BEGIN_DECLS

typedef struct gort_pool {
  void *(*new_fn)(void);
  void (*reset_fn)(void *);
  void (*release_fn)(void *);
  /* gort's own (src/pool): zero in GORT_POOL_INIT, never touched by the
   * program. */
  void *gort_locals_;
  struct gort_pool *gort_next_;
  uint64_t gort_drops_;
  int gort_registered_;
  int gort_dropping_;
} gort_pool_t;

#define GORT_POOL_INIT(new_fn, reset_fn, release_fn) \
  { (new_fn), (reset_fn), (release_fn), 0, 0, 0, 0, 0 }

/* An object from the pool, or new_fn's on a miss; NULL if the pool is
 * empty and has no new_fn (or new_fn returned NULL). */
GORT_API void *gort_pool_get(gort_pool_t *pool);
/* Gives obj to the pool (reset_fn first). NULL is ignored. */
GORT_API void gort_pool_put(gort_pool_t *pool, void *obj);

typedef struct {
  uint64_t gets;    /* gort_pool_get calls */
  uint64_t puts;    /* gort_pool_put calls with an object */
  uint64_t misses;  /* gets that found the pool empty (new_fn called if set) */
  uint64_t drops;   /* objects the pool dropped at rotations */
} gort_pool_stats_t;

/* The figures of pool, or the sum over every pool used when pool is NULL.
 * Counted per thread and summed without stopping anyone: a figure lags
 * calls in flight. */
GORT_API void gort_pool_stats(gort_pool_t *pool, gort_pool_stats_t *out);

GORT_END_DECLS

#endif /* GORT_POOL_H */
