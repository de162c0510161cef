// Finalizers and weak pointers (Go: mfinal.go, the specials of mheap.go,
// weak.Pointer).
//
// See mgc.c for the collector's design. A finalizer is a record {object,
// fn, arg} in a hash table keyed by the object; a weak pointer is a
// handle, itself a collected noscan object (so it never keeps its target
// alive), listed in a registry. Both are processed with the world stopped,
// right after the mark from the roots, in three steps (Go's order):
//   1. For every finalizable object the mark did not reach, mark what it
//      points at (not the object itself) and its finalizer's arg. So the
//      object and everything it reaches survive until the finalizer ran.
//      A chain A -> B of finalizable objects: B is reached from A, so only
//      A is finalized this cycle, and B in a later one, as in Go. A cycle
//      of finalizable objects reaches itself and is never finalized (Go's
//      rule too; break such cycles by hand).
//   2. Every weak handle the mark reached whose target it did not reach is
//      cleared. This is before step 3, so a finalizer that resurrects its
//      object still finds its weak pointers cleared. Handles the mark did
//      not reach leave the registry (the sweep frees them).
//   3. Every finalizable object still unmarked leaves the table for the
//      queue of finalizers to run and is marked (its children were, in
//      step 1), once all are decided: tiny objects share a block
//      (tiny.c), and the first one's mark hid the others for a cycle.
//      The queue is a root until the finalizer has run; a later cycle
//      frees the object if the finalizer left it unreachable.
// The finalizer thread, registered like any thread that runs the
// program's code, runs the queue in order.

#include <string.h>

#include "../base/noscan.h"
#include "../base/persistent.h"
#include "../os/os.h"
#include "gc.h"
#include "gort/gc.h"
#include "tiny.h"

typedef void (*finalizer_fn)(void *obj, void *arg);

typedef struct special {
  struct special *next;
  uintptr_t obj;   // the program's pointer (past a typed object's header)
  uintptr_t block; // the object's block (what the mark bits describe)
  finalizer_fn fn;
  void *arg;
} special_t;

#define NBUCKETS 4096

struct gort_weak {
  _Atomic uintptr_t target;
};

typedef struct {
  uintptr_t obj;
  finalizer_fn fn;
  void *arg;
  uintptr_t block;  // marked once every record was decided (step 3)
} queued_t;

static struct {
  lock_t lock;  // rank LOCK_CENTRAL; guards everything here
  special_t *table[NBUCKETS];
  fixalloc_t records;
  gort_weak_t **weak;  // registry of handles
  size_t nweak, weak_cap;
  queued_t *queue;     // finalizers to run, in order from head
  size_t qhead, qtail, qcap;
  _Atomic uint32_t queued;  // bumped when the queue gains work
  bool thread_started, inited;
} fin = {.lock = LOCK_INIT};
// Its table holds records (fixalloc), and its queue is scanned as roots
// by itself (gort__gc_finalizers_roots): scanned whole, the table's 32 KiB
// were a sixth of each root scan of a statically linked program.
GORT_NOSCAN(fin)

static size_t bucket_of(uintptr_t obj) { return (size_t)((obj >> 4) * 0x9E3779B97F4A7C15ULL >> 52); }

// The block of collected object p (the program's pointer to its start), or
// 0 if p is not the start of one.
static uintptr_t block_of(const void *p) {
  mspan_t *s;
  uintptr_t b = gort__gc_find_object((uintptr_t)p, &s);
  if (b == 0) return 0;
  uintptr_t start = b + (s->kind == KIND_GC_TYPED ? SPAN_TYPED_HEADER : 0);
  if (s->kind == KIND_GC_TINY) start = gort__gc_tiny_object((uintptr_t)p, s, b, NULL);
  return start == (uintptr_t)p ? b : 0;
}

static void init_locked(void) {
  if (fin.inited) return;
  gort__fixalloc_init(&fin.records, sizeof(special_t));
  fin.inited = true;
}

// ---- the finalizer thread ---------------------------------------------------------------

static void *finalizer_main(void *arg) {
  (void)arg;
  gort__stw_register_internal_self();  // it runs the program's finalizers
  uint32_t seen = 0;
  for (;;) {
    lock(&fin.lock);
    bool have = fin.qhead != fin.qtail;
    queued_t q = {0};
    if (have) {
      q = fin.queue[fin.qhead];
      fin.queue[fin.qhead] = (queued_t){0};
      fin.qhead++;
    }
    unlock(&fin.lock);
    if (have) {
      gort__os_internal_runs_program(true);
      q.fn((void *)q.obj, q.arg);  // q is on this stack: a root until done
      gort__os_internal_runs_program(false);
      q.obj = 0;
      continue;
    }
    uint32_t now = atomic_load(&fin.queued);
    if (now == seen) {
      gort__stw_program_wait_ns(&fin.queued, seen, -1);  // a stop holds it here
      continue;
    }
    seen = now;
  }
  return NULL;
}

void gort__gc_finalizers_fork(int phase) {
  if (phase == 0) lock(&fin.lock); else if (phase == 1) unlock(&fin.lock); else lock_reinit(&fin.lock);
}

void gort__gc_finalizers_after_fork_child(void) {
  if (fin.thread_started) fin.thread_started = false;  // else no page to copy
}

// After the world restarts (the queue's lock is taken: a peek without it
// was a data race, if a harmless one).
void gort__gc_finalizers_wake(void) {
  lock(&fin.lock);
  bool empty = fin.qhead == fin.qtail;
  unlock(&fin.lock);
  if (empty) return;
  atomic_fetch_add(&fin.queued, 1);
  gort__os_futex_wake(&fin.queued, 1);
}

// ---- the API ----------------------------------------------------------------------

void gort_gc_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg) {
  gort__start_ensure();
  uintptr_t block = block_of(obj);
  if (block == 0) gort__fatal("gort_gc_set_finalizer(): not the start of a collected object", obj);
  bool start_thread = false;
  lock(&fin.lock);
  init_locked();
  special_t **p = &fin.table[bucket_of((uintptr_t)obj)];
  while (*p != NULL && (*p)->obj != (uintptr_t)obj) p = &(*p)->next;
  if (fn == NULL) {
    if (*p != NULL) {
      special_t *r = *p;
      *p = r->next;
      gort__fixalloc_free(&fin.records, r);
    }
  } else {
    special_t *r = *p;
    if (r == NULL && (r = gort__fixalloc_alloc(&fin.records)) != NULL) {
      r->next = NULL;
      *p = r;
    }
    if (r != NULL) {
      r->obj = (uintptr_t)obj;
      r->block = block;
      r->fn = fn;
      r->arg = arg;
    }
    start_thread = !fin.thread_started;
    fin.thread_started = true;
  }
  unlock(&fin.lock);
  if (start_thread && gort__stw_internal_thread(finalizer_main, NULL) != 0)
    gort__warn("gort_gc_set_finalizer: cannot start the finalizer thread; finalizers will not run");
}

gort_weak_t *gort_gc_weak_make(void *obj) {
  gort__start_ensure();
  if (block_of(obj) == 0) gort__fatal("gort_gc_weak_make(): not the start of a collected object", obj);
  gort_weak_t *h = gort_gc_alloc_noscan(sizeof(gort_weak_t) < 16 ? 16 : sizeof(gort_weak_t));
  if (h == NULL) return NULL;
  atomic_store_explicit(&h->target, (uintptr_t)obj, memory_order_relaxed);
  lock(&fin.lock);
  if (fin.nweak == fin.weak_cap) {
    size_t cap = fin.weak_cap ? fin.weak_cap * 2 : 256;
    gort_weak_t **n = gort__persistent_alloc(cap * sizeof *n, 16);  // the old array stays
    if (n == NULL) {
      unlock(&fin.lock);
      return NULL;
    }
    if (fin.nweak) memcpy(n, fin.weak, fin.nweak * sizeof *n);
    fin.weak = n;
    fin.weak_cap = cap;
  }
  fin.weak[fin.nweak++] = h;
  unlock(&fin.lock);
  return h;
}

void *gort_gc_weak_get(gort_weak_t *w) {
  if (w == NULL) return NULL;
  return (void *)atomic_load_explicit(&w->target, memory_order_acquire);
}

// ---- with the world stopped ----------------------------------------------------------------

static bool scanned_kind(uintptr_t block) {
  mspan_t *s = span_of(block);
  return s != NULL && (kind_scanned_whole(s->kind) || s->kind == KIND_GC_TYPED);
}

static void mark_arg(uintptr_t lo, uintptr_t hi, void *arg);

void gort__gc_finalizers_mark(void) {
  if (!fin.inited && fin.nweak == 0) return;
  // 1. What unreached finalizable objects reach survives.
  if (fin.inited)
    for (size_t i = 0; i < NBUCKETS; i++)
      for (special_t *r = fin.table[i]; r != NULL; r = r->next) {
        if (!gort__gc_is_marked(r->block) && scanned_kind(r->block)) gort__gc_mark_children(r->block);
        mark_arg((uintptr_t)&r->arg, (uintptr_t)(&r->arg + 1), NULL);
      }
  gort__gc_mark_drain();
  // 2. Weak pointers to the unreached are cleared; dead handles leave.
  size_t j = 0;
  for (size_t i = 0; i < fin.nweak; i++) {
    gort_weak_t *h = fin.weak[i];
    if (!gort__gc_is_marked((uintptr_t)h)) continue;
    uintptr_t t = atomic_load_explicit(&h->target, memory_order_relaxed);
    if (t != 0) {
      mspan_t *s;
      uintptr_t b = gort__gc_find_object(t, &s);
      // A tiny object freed by hand in a block that lives on is gone too.
      if (b == 0 || !gort__gc_is_marked(b) || (s->kind == KIND_GC_TINY && gort__gc_tiny_object(t, s, b, NULL) != t))
        atomic_store_explicit(&h->target, 0, memory_order_release);
    }
    fin.weak[j++] = h;
  }
  fin.nweak = j;
  // 3. The unreached finalizable objects go to the queue, marked.
  if (!fin.inited) return;
  size_t before = fin.qtail - fin.qhead;  // an index from qhead survives a compaction
  for (size_t i = 0; i < NBUCKETS; i++)
    for (special_t **p = &fin.table[i]; *p != NULL;) {
      special_t *r = *p;
      if (gort__gc_is_marked(r->block)) {
        p = &r->next;
        continue;
      }
      if (fin.qtail == fin.qcap) {
        // Compact, or grow (persistent memory: the old array stays).
        size_t live = fin.qtail - fin.qhead;
        if (fin.qhead > 0 && live < fin.qcap / 2) {
          memmove(fin.queue, fin.queue + fin.qhead, live * sizeof *fin.queue);
        } else {
          size_t cap = fin.qcap ? fin.qcap * 2 : 256;
          queued_t *n = gort__persistent_alloc(cap * sizeof *n, 16);
          if (n == NULL) break;  // keep the rest for a later cycle (they are marked below? no: kept)
          if (live) memcpy(n, fin.queue + fin.qhead, live * sizeof *n);
          fin.queue = n;
          fin.qcap = cap;
        }
        fin.qhead = 0;
        fin.qtail = live;
      }
      fin.queue[fin.qtail++] = (queued_t){r->obj, r->fn, r->arg, r->block};
      *p = r->next;
      gort__fixalloc_free(&fin.records, r);
    }
  for (size_t k = fin.qhead + before; k < fin.qtail; k++) gort__gc_mark_object(fin.queue[k].block);
  // Anything left in the table unmarked (the queue could not grow) must
  // survive too: mark it for this cycle.
  for (size_t i = 0; i < NBUCKETS; i++)
    for (special_t *r = fin.table[i]; r != NULL; r = r->next)
      if (!gort__gc_is_marked(r->block)) gort__gc_mark_object(r->block);
}

static void (*roots_scan)(uintptr_t, uintptr_t, void *);

static void mark_arg(uintptr_t lo, uintptr_t hi, void *arg) {
  if (roots_scan != NULL) roots_scan(lo, hi, arg);
}

void gort__gc_finalizers_roots(void (*scan)(uintptr_t lo, uintptr_t hi, void *arg), void *arg) {
  roots_scan = scan;
  if (fin.qtail > fin.qhead)
    scan((uintptr_t)(fin.queue + fin.qhead), (uintptr_t)(fin.queue + fin.qtail), arg);
}
