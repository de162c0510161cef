// Finalizers and weak pointers (Go: mfinal.go, the specials of mheap.go,
// weak.Pointer).
//
// See mgc.c for the collector's design. A finalizer is a record {object,
// fn, arg} in a hash table keyed by the object; a weak pointer is a
// handle, itself a collected noscan object (so it never keeps its target
// alive), with a record {target, handle} in the same table (Go keeps both
// as specials on the object's span). The table is neither scanned nor a
// root. The records are processed with the world stopped, right after the
// mark from the roots, in three steps (Go's order):
//   1. For every finalizable object the mark did not reach, mark what it
//      points at (not the object itself) and its finalizer's arg. So the
//      object and everything it reaches survive until the finalizer ran.
//      A chain A -> B of finalizable objects: B is reached from A, so only
//      A is finalized this cycle, and B in a later one, as in Go. A cycle
//      of finalizable objects reaches itself and is never finalized (Go's
//      rule too; break such cycles by hand).
//   2. Every weak handle the mark reached whose target it did not reach is
//      cleared. This is before step 3, so a finalizer that resurrects its
//      object still finds its weak pointers cleared. The records of handles
//      the mark did not reach leave the table (the sweep frees them).
//   3. Every finalizable object still unmarked leaves the table for the
//      queue of finalizers to run and is marked (its children were, in
//      step 1), once all are decided: tiny objects share a block
//      (tiny.c), and the first one's mark hid the others for a cycle.
//      The queue is a root until the finalizer has run; a later cycle
//      frees the object if the finalizer left it unreachable.
// The finalizer thread, registered like any thread that runs the
// program's code, runs the queue in order.
//
// gort_free of a collected object takes its records with it, before the
// block is freed: its finalizer is dropped (the program took charge of the
// object; bdwgc's GC_free does the same) and its weak pointers are
// cleared, and a weak handle freed by hand leaves the table. A record
// that outlived its object was found by the next cycle unmarked, so the
// finalizer ran on whatever object had taken the address, or a weak
// pointer named it. A free must not search the table when nothing in the
// object's span ever had a record: the first record in a span sets the
// span's specials flag (cleared only when the span is made anew), and
// gc_free looks at the table only when it is set (Go's span specials
// list serves the same purpose). realloc that moves an object moves its
// finalizer with it; its weak pointers are cleared, as for any pointer to
// the old address.
// A free of an object whose finalizer is already queued (a cycle found it
// unreachable, yet the program still had its address, hidden from the
// collector) empties its queue entry, so that the finalizer never runs on
// freed memory and the entry, a root, keeps no later object at that
// address alive. The entry is found through an index of the queued
// objects by address (qnode_t), not by walking the queue: with 100,000
// finalizers queued behind a slow one, 100,000 frees of other objects in
// their spans took 8 s walking and take 0.06 s with the index. The index
// names an entry by its position counted from the first entry ever
// queued, which does not change when the queue's array grows or compacts.

#include <errno.h>
#include <string.h>

#include "../base/noscan.h"
#include "../base/persistent.h"
#include "../os/os.h"
#include "gc.h"
#include "gort/alloc.h"
#include "gort/gc.h"
#include "tiny.h"

typedef void (*finalizer_fn)(void *obj, void *arg);

typedef struct special {
  struct special *next;
  uintptr_t obj;   // the program's pointer (past a typed object's header)
  uintptr_t block; // the object's block (what the mark bits describe)
  finalizer_fn fn; // NULL: a weak pointer's record
  void *arg;       // the finalizer's argument, or the weak handle
} special_t;

#define NBUCKETS 4096

struct gort_weak {
  _Atomic uintptr_t target;
};
// A handle is a 16-byte noscan object: never tiny, so always a block.
#define WEAK_HANDLE_BYTES 16

typedef struct {
  uintptr_t obj;
  finalizer_fn fn;
  void *arg;
  uintptr_t block;  // marked once every record was decided (step 3)
} queued_t;

// A queued finalizer's object, filed by address, so that a free finds its
// queue entry without walking the queue: with 100,000 finalizers queued
// behind a slow one, 100,000 frees of other objects of their spans took
// 8 s, each scanning the whole queue.
typedef struct qnode {
  struct qnode *next;
  uintptr_t obj;
  size_t seq;  // its entry's position, counted from the first entry ever queued
} qnode_t;
#define QBUCKET_BITS 16

static struct {
  lock_t lock;  // rank LOCK_CENTRAL; guards everything here
  special_t *table[NBUCKETS];
  fixalloc_t records;
  queued_t *queue;     // finalizers to run, in order from head
  size_t qhead, qtail, qcap;
  size_t qbase;        // the position of queue[0] (see qnode_t)
  qnode_t **qtab;      // 1 << QBUCKET_BITS chains of the queued objects; NULL until needed
  fixalloc_t qnodes;
  size_t unindexed;    // queued entries without a node (no memory for one): searched by a walk
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
  gort__fixalloc_init(&fin.qnodes, sizeof(qnode_t));
  fin.inited = true;
}

// ---- the queue's index (qnode_t) ----------------------------------------------------------
// Under the lock, or with the world stopped (step 3).

static qnode_t **qchain(uintptr_t obj) {
  return &fin.qtab[(obj >> 4) * 0x9E3779B97F4A7C15ULL >> (64 - QBUCKET_BITS)];
}

// Files the entry at position seq, just queued, for obj.
static void qindex(uintptr_t obj, size_t seq) {
  if (fin.qtab == NULL)
    fin.qtab = gort__persistent_alloc(sizeof(qnode_t *) << QBUCKET_BITS, GORT_CACHELINE);
  qnode_t *n = fin.qtab != NULL ? gort__fixalloc_alloc(&fin.qnodes) : NULL;
  if (n == NULL) {
    fin.unindexed++;
    return;
  }
  qnode_t **c = qchain(obj);
  *n = (qnode_t){.next = *c, .obj = obj, .seq = seq};
  *c = n;
}

// Takes the node of the entry at position seq for obj off the index;
// false if it had none.
static bool qunindex(uintptr_t obj, size_t seq) {
  if (fin.qtab == NULL) return false;
  for (qnode_t **c = qchain(obj); *c != NULL; c = &(*c)->next)
    if ((*c)->obj == obj && (*c)->seq == seq) {
      qnode_t *n = *c;
      *c = n->next;
      gort__fixalloc_free(&fin.qnodes, n);
      return true;
    }
  return false;
}

// Empties the queue entries of obj, whose block is being freed: its
// finalizer must not run, and the entry, a root, must not keep whatever
// object takes the address alive.
static void qcancel(uintptr_t obj) {
  if (fin.qtab != NULL)
    for (qnode_t **c = qchain(obj); *c != NULL;) {
      qnode_t *n = *c;
      if (n->obj != obj) {
        c = &n->next;
        continue;
      }
      size_t k = n->seq - fin.qbase;
      if (k >= fin.qhead && k < fin.qtail && fin.queue[k].obj == obj) fin.queue[k] = (queued_t){0};
      *c = n->next;
      gort__fixalloc_free(&fin.qnodes, n);
    }
  for (size_t k = fin.qhead; fin.unindexed != 0 && k < fin.qtail; k++)
    if (fin.queue[k].obj == obj) {
      fin.queue[k] = (queued_t){0};
      fin.unindexed--;
    }
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
      if (q.obj != 0 && !qunindex(q.obj, fin.qbase + fin.qhead)) fin.unindexed--;
      fin.qhead++;
    }
    unlock(&fin.lock);
    if (have) {
      if (q.fn != NULL) {  // NULL: its object was freed while it waited
        gort__os_internal_runs_program(true);
        q.fn((void *)q.obj, q.arg);  // q is on this stack: a root until done
        gort__os_internal_runs_program(false);
      }
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

// ---- the table ----------------------------------------------------------------------

// The stop reads the table without its lock (gort__gc_finalizers_mark): a
// thread the stop does not reach holds it off while it changes the table.
static bool table_lock(void) {
  bool registered = gort__stw_registered();
  if (!registered) gort__stw_hold_off();
  lock(&fin.lock);
  init_locked();
  return registered;
}

static void table_unlock(bool registered) {
  unlock(&fin.lock);
  if (!registered) gort__stw_allow();
}

// From now on a free in block's span looks for records (see the top).
static void span_has_specials(uintptr_t block) {
  atomic_store_explicit(&span_of(block)->specials, 1, memory_order_relaxed);
}

static void unlink_record(special_t **p) {
  special_t *r = *p;
  *p = r->next;
  gort__fixalloc_free(&fin.records, r);
}

// gc_free's (malloc_gc.c), before p's block is freed, when p's span has
// had records; moved_to is realloc's new object, or 0. maybe_handle: p is
// the size of a weak handle, so its first word may be a handle's target.
void gort__gc_specials_free(uintptr_t p, bool maybe_handle, uintptr_t moved_to) {
  uintptr_t moved_block = moved_to != 0 ? block_of((void *)moved_to) : 0;
  bool registered = table_lock();
  // p as a weak handle: its record is filed under its target (cleared
  // only with the record). No record names a handle that is not live, so
  // the match is exact even when p is no handle at all.
  uintptr_t t = maybe_handle ? atomic_load_explicit(&((gort_weak_t *)p)->target, memory_order_relaxed) : 0;
  if (t != 0)
    for (special_t **q = &fin.table[bucket_of(t)]; *q != NULL; q = &(*q)->next)
      if ((*q)->fn == NULL && (*q)->arg == (void *)p) {
        unlink_record(q);
        // A handle realloc moved: its copy is a cleared handle, not one
        // that keeps reading a target nobody clears.
        if (moved_to != 0) atomic_store_explicit(&((gort_weak_t *)moved_to)->target, 0, memory_order_relaxed);
        break;
      }
  // p's finalizer already queued: a cycle found p unreachable, yet the
  // program held a pointer the collector could not see (one hidden in an
  // integer, say). It must not run on freed memory either.
  qcancel(p);
  // p as a finalizable or weakly referenced object.
  for (special_t **q = &fin.table[bucket_of(p)]; *q != NULL;) {
    special_t *r = *q;
    if (r->obj != p) {
      q = &r->next;
      continue;
    }
    if (r->fn != NULL && moved_block != 0) {  // the finalizer goes with the object
      *q = r->next;
      r->obj = moved_to;
      r->block = moved_block;
      special_t **to = &fin.table[bucket_of(moved_to)];
      r->next = *to;
      *to = r;
      span_has_specials(moved_block);
      continue;
    }
    if (r->fn == NULL) atomic_store_explicit(&((gort_weak_t *)r->arg)->target, 0, memory_order_release);
    unlink_record(q);
  }
  table_unlock(registered);
}

// ---- the API ----------------------------------------------------------------------

void gort_gc_set_finalizer(void *obj, void (*fn)(void *obj, void *arg), void *arg) {
  gort__start_ensure();
  uintptr_t block = block_of(obj);
  if (block == 0) gort__fatal("gort_gc_set_finalizer(): not the start of a collected object", obj);
  bool start_thread = false;
  bool registered = table_lock();
  special_t **p = &fin.table[bucket_of((uintptr_t)obj)];
  while (*p != NULL && ((*p)->obj != (uintptr_t)obj || (*p)->fn == NULL)) p = &(*p)->next;
  if (fn == NULL) {
    if (*p != NULL) unlink_record(p);
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
      span_has_specials(block);
    }
    start_thread = !fin.thread_started;
    fin.thread_started = true;
  }
  table_unlock(registered);
  if (start_thread && gort__stw_internal_thread(finalizer_main, NULL) != 0)
    gort__warn("gort_gc_set_finalizer: cannot start the finalizer thread; finalizers will not run");
}

gort_weak_t *gort_gc_weak_make(void *obj) {
  gort__start_ensure();
  uintptr_t block = block_of(obj);
  if (block == 0) gort__fatal("gort_gc_weak_make(): not the start of a collected object", obj);
  gort_weak_t *h = gort_gc_alloc_noscan(WEAK_HANDLE_BYTES);
  if (h == NULL) return NULL;
  atomic_store_explicit(&h->target, (uintptr_t)obj, memory_order_relaxed);
  bool registered = table_lock();
  special_t *r = gort__fixalloc_alloc(&fin.records);
  if (r != NULL) {
    special_t **head = &fin.table[bucket_of((uintptr_t)obj)];
    *r = (special_t){.next = *head, .obj = (uintptr_t)obj, .block = block, .fn = NULL, .arg = h};
    *head = r;
    span_has_specials(block);
    span_has_specials((uintptr_t)h);  // a gort_free of the handle takes its record
  }
  table_unlock(registered);
  if (r == NULL) {
    gort_free(h);
    errno = ENOMEM;
    return NULL;
  }
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
  if (!fin.inited) return;
  // 1. What unreached finalizable objects reach survives.
  for (size_t i = 0; i < NBUCKETS; i++)
    for (special_t *r = fin.table[i]; r != NULL; r = r->next) {
      if (r->fn == NULL) continue;
      if (!gort__gc_is_marked(r->block) && scanned_kind(r->block)) gort__gc_mark_children(r->block);
      mark_arg((uintptr_t)&r->arg, (uintptr_t)(&r->arg + 1), NULL);
    }
  gort__gc_mark_drain();
  // 2. Weak pointers to the unreached are cleared; dead handles' records
  // leave.
  for (size_t i = 0; i < NBUCKETS; i++)
    for (special_t **p = &fin.table[i]; *p != NULL;) {
      special_t *r = *p;
      if (r->fn != NULL || (gort__gc_is_marked((uintptr_t)r->arg) && gort__gc_is_marked(r->block))) {
        p = &r->next;
        continue;
      }
      if (gort__gc_is_marked((uintptr_t)r->arg))
        atomic_store_explicit(&((gort_weak_t *)r->arg)->target, 0, memory_order_release);
      unlink_record(p);
    }
  // 3. The unreached finalizable objects go to the queue, marked.
  size_t before = fin.qtail - fin.qhead;  // an index from qhead survives a compaction
  for (size_t i = 0; i < NBUCKETS; i++)
    for (special_t **p = &fin.table[i]; *p != NULL;) {
      special_t *r = *p;
      if (r->fn == NULL || gort__gc_is_marked(r->block)) {
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
          if (n == NULL) break;  // the rest stay in the table, marked below
          if (live) memcpy(n, fin.queue + fin.qhead, live * sizeof *n);
          fin.queue = n;
          fin.qcap = cap;
        }
        fin.qbase += fin.qhead;
        fin.qhead = 0;
        fin.qtail = live;
      }
      qindex(r->obj, fin.qbase + fin.qtail);
      fin.queue[fin.qtail++] = (queued_t){r->obj, r->fn, r->arg, r->block};
      *p = r->next;
      gort__fixalloc_free(&fin.records, r);
    }
  for (size_t k = fin.qhead + before; k < fin.qtail; k++) gort__gc_mark_object(fin.queue[k].block);
  // Anything left in the table unmarked (the queue could not grow) must
  // survive too: mark it for this cycle.
  for (size_t i = 0; i < NBUCKETS; i++)
    for (special_t *r = fin.table[i]; r != NULL; r = r->next)
      if (r->fn != NULL && !gort__gc_is_marked(r->block)) gort__gc_mark_object(r->block);
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
