// Contexts (Go: context/context.go). See include/gort/context.h.
//
// A context is a node in a tree: its parent links down to it (children,
// a doubly-linked list under the parent's lock) until it is cancelled, so
// that cancelling the parent reaches it. Cancelling a node, under its own
// lock: set err, close done, detach the whole child list; then, with no
// lock held, cancel each child with the same reason (top-down: one lock
// at a time, never a parent's and a child's together), and finally take
// the node off its parent's list.
//
// A cancelling parent detaches its children by clearing their `linked`
// flag under its lock and chaining them through batch_next, which only it
// uses: a child that is cancelled meanwhile on its own finds itself
// unlinked and leaves the parent's list alone, as Go's removeChild does
// with a nil children map.
//
// A deadline is a goroutine that selects on the context's done channel
// with a timeout (Go uses time.AfterFunc): cancelled first, it just ends.

#include "sync.h"

#include <errno.h>

#include "../gc/gc.h"
#include "gort/alloc.h"
#include "gort/context.h"
#include "gort/gc.h"
#include "gort/sched.h"

struct gort_ctx {
  lock_t lock;                   // rank LOCK_SYNC; guards err, children, and
                                 // the linked fields of the children
  int err;                       // GORT_CTX_*, 0 while live
  gort_chan_t *done;             // closed when err is set; NULL for the background
  gort_ctx_t *parent;
  gort_ctx_t *children;          // first child
  gort_ctx_t *prev, *next;       // siblings; guarded by parent->lock
  bool linked;                   // on parent's list; guarded by parent->lock
  gort_ctx_t *batch_next;        // the cancelling parent's private list
  int64_t deadline;              // INT64_MAX: none
};

static gort_ctx_t background = {.lock = LOCK_INIT, .deadline = INT64_MAX};

gort_ctx_t *gort_ctx_background(void) { return &background; }

static void unlink_from_parent(gort_ctx_t *c) {
  gort_ctx_t *p = c->parent;
  if (p == NULL) return;
  lock(&p->lock);
  if (c->linked) {
    if (c->prev != NULL) c->prev->next = c->next;
    else p->children = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->linked = false;
  }
  unlock(&p->lock);
}

static void cancel(gort_ctx_t *c, int err, bool detach) {
  lock(&c->lock);
  if (c->err != 0) {
    unlock(&c->lock);
    return;
  }
  c->err = err;
  gort_ctx_t *batch = NULL;
  for (gort_ctx_t *k = c->children; k != NULL; k = k->next) {
    k->linked = false;
    k->batch_next = batch;
    batch = k;
  }
  c->children = NULL;
  unlock(&c->lock);
  // err is set before the close: a receiver that sees done closed reads it.
  if (c->done != NULL) gort_chan_close(c->done);
  while (batch != NULL) {
    gort_ctx_t *k = batch;
    batch = k->batch_next;
    cancel(k, err, false);
  }
  if (detach) unlink_from_parent(c);
}

static gort_ctx_t *new_child(gort_ctx_t *parent, int64_t deadline) {
  if (parent == NULL) parent = &background;
  gort_ctx_t *c = gort__gc_enabled() ? gort_gc_alloc(sizeof *c) : gort_calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->lock = (lock_t)LOCK_INIT;
  c->done = gort_chan_make(0, 0);
  if (c->done == NULL) return NULL;
  c->parent = parent;
  c->deadline = deadline < parent->deadline ? deadline : parent->deadline;
  lock(&parent->lock);
  int perr = parent->err;
  if (perr == 0 && parent != &background) {
    c->next = parent->children;
    if (c->next != NULL) c->next->prev = c;
    parent->children = c;
    c->linked = true;
  }
  unlock(&parent->lock);
  if (perr != 0) cancel(c, perr, false);
  return c;
}

gort_ctx_t *gort_ctx_with_cancel(gort_ctx_t *parent) { return new_child(parent, INT64_MAX); }

static void deadline_main(void *arg) {
  gort_ctx_t *c = arg;
  gort_select_case_t cs[1] = {{.chan = c->done, .dir = GORT_SELECT_RECV}};
  int64_t left = c->deadline - gort__nanotime();
  if (left <= 0 || gort_select(cs, 1, left) < 0) cancel(c, GORT_CTX_DEADLINE_EXCEEDED, true);
}

gort_ctx_t *gort_ctx_with_deadline(gort_ctx_t *parent, int64_t deadline_ns) {
  if (parent == NULL) parent = &background;
  if (parent->deadline <= deadline_ns) return gort_ctx_with_cancel(parent);  // the parent's is sooner
  gort_ctx_t *c = new_child(parent, deadline_ns);
  if (c == NULL) return NULL;
  if (deadline_ns <= gort__nanotime()) {
    cancel(c, GORT_CTX_DEADLINE_EXCEEDED, true);
    return c;
  }
  int e = gort_go(deadline_main, c);
  if (e != 0) {
    cancel(c, GORT_CTX_CANCELED, true);
    errno = e;
    return NULL;
  }
  return c;
}

gort_ctx_t *gort_ctx_with_timeout(gort_ctx_t *parent, int64_t timeout_ns) {
  int64_t now = gort__nanotime(), d;
  if (__builtin_add_overflow(now, timeout_ns, &d)) d = INT64_MAX - 1;
  return gort_ctx_with_deadline(parent, d);
}

void gort_ctx_cancel(gort_ctx_t *ctx) {
  if (ctx != NULL && ctx != &background) cancel(ctx, GORT_CTX_CANCELED, true);
}

gort_chan_t *gort_ctx_done(gort_ctx_t *ctx) { return ctx != NULL ? ctx->done : NULL; }

int gort_ctx_err(gort_ctx_t *ctx) {
  if (ctx == NULL) return 0;
  lock(&ctx->lock);
  int e = ctx->err;
  unlock(&ctx->lock);
  return e;
}

const char *gort_ctx_err_string(int err) {
  switch (err) {
    case GORT_CTX_CANCELED: return "context canceled";
    case GORT_CTX_DEADLINE_EXCEEDED: return "context deadline exceeded";
    default: return NULL;
  }
}

bool gort_ctx_deadline(gort_ctx_t *ctx, int64_t *deadline_ns) {
  if (ctx == NULL || ctx->deadline == INT64_MAX) return false;
  if (deadline_ns != NULL) *deadline_ns = ctx->deadline;
  return true;
}
