// Central free lists (Go's mcentral).
//
// See malloc.c for the allocator overview and mspan.h for span ownership.
// In gort a thread cache keeps every span it allocated from, so the
// central lists hold only spans that no thread owns: those handed back by
// exiting threads. A thread whose own spans are all full adopts a partial
// span from here before asking the page heap for a fresh one.
//
// A thread that frees into an unowned span adopts it (mimalloc's reclaim
// on free): the next frees into it are the owner's, with no lock, and its
// free blocks serve that thread's next refills. Without this, a thread
// that inherits another's blocks (larson's successors) took this lock
// once per free.
//
// An unowned full span sets NOTIFY in its xfree word. The remote free that
// clears it calls gort__mcentral_notify, which moves the span to partial,
// so no list is ever scanned for spans that gained free blocks. Notices
// can be stale (mcache.c): every entry here checks the span's state.
//
// Invariants (under c->lock):
//   - every span here has owner == NULL and where == WHERE_CENTRAL_*;
//   - spans only leave through adopt (to a cache) or give (to the heap).

#include "mcentral.h"

#include "../base/lock.h"
#include "mheap.h"
#include "pagemap.h"

typedef struct {
  lock_t lock;  // rank LOCK_CENTRAL
  span_link_t partial;
  span_link_t full;
  uint64_t nspans;
  _Atomic uint32_t npartial;  // length of partial; read without the lock as a hint
} __attribute__((aligned(GORT_CACHELINE))) mcentral_t;

static mcentral_t central[GORT_NUM_CLASSES];
static _Atomic int central_ready;
static lock_t central_init_lock = LOCK_INIT;

static mcentral_t *get_central(int cls) {
  if (gort_unlikely(!atomic_load_explicit(&central_ready, memory_order_acquire))) {
    lock(&central_init_lock);
    if (!atomic_load_explicit(&central_ready, memory_order_relaxed)) {
      for (int i = 0; i < GORT_NUM_CLASSES; i++) {
        span_list_init(&central[i].partial);
        span_list_init(&central[i].full);
      }
      atomic_store_explicit(&central_ready, 1, memory_order_release);
    }
    unlock(&central_init_lock);
  }
  return &central[cls];
}

// Sets NOTIFY on a span no remote free has flagged since its last
// collection (neither flag set), keeping its generation; false if one has.
static bool set_notify(mspan_t *s) {
  uintptr_t expected = atomic_load(&s->xfree) & ~(XFREE_NOTIFY | XFREE_HAS);
  return atomic_compare_exchange_strong(&s->xfree, &expected, expected | XFREE_NOTIFY);
}

// Moves remote frees into s->free, keeping used exact, and clears NOTIFY
// and HAS (not the generation). Caller owns s or holds the central lock
// with s unowned. The bits are looked at whatever the flags say.
static void collect_xfree(mspan_t *s) {
  atomic_fetch_and_explicit(&s->xfree, ~(XFREE_NOTIFY | XFREE_HAS), memory_order_seq_cst);  // keeps the generation
  (void)gort__span_pinfo_take_pending(s);
  gort__span_take_remote(s);  // the lock holder writes an unowned span's live bits
}

mspan_t *gort__mcentral_adopt(int cls, mcache_t *c) {
  mcentral_t *mc = get_central(cls);
  if (atomic_load_explicit(&mc->npartial, memory_order_relaxed) == 0) return NULL;
  lock(&mc->lock);
  mspan_t *s;
  while ((s = span_list_first(&mc->partial)) != NULL) {
    span_list_remove(s);
    atomic_fetch_sub_explicit(&mc->npartial, 1, memory_order_relaxed);
    mc->nspans--;
    collect_xfree(s);
    if (s->free != NULL || s->fresh < s->nelems) {
      s->where = WHERE_NONE;
      gort__span_set_owner(s, c);
      unlock(&mc->lock);
      return s;
    }
    // Listed partial but empty (a notify raced with abandonment): full it.
    s->where = WHERE_CENTRAL_FULL;
    span_list_push(&mc->full, s);
    mc->nspans++;
    if (!set_notify(s)) {
      span_list_remove(s);
      span_list_push_back(&mc->partial, s);  // a free arrived: look again later
      atomic_fetch_add_explicit(&mc->npartial, 1, memory_order_relaxed);
      s->where = WHERE_CENTRAL_PARTIAL;
      break;  // do not spin on a span that remote frees keep refilling
    }
  }
  unlock(&mc->lock);
  return NULL;
}

bool gort__mcentral_adopt_span(mspan_t *s, mcache_t *c) {
  mcentral_t *mc = get_central(s->sizeclass);
  lock(&mc->lock);
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) != NULL ||
      (s->where != WHERE_CENTRAL_PARTIAL && s->where != WHERE_CENTRAL_FULL)) {
    unlock(&mc->lock);  // adopted or freed meanwhile
    return false;
  }
  span_list_remove(s);
  if (s->where == WHERE_CENTRAL_PARTIAL) atomic_fetch_sub_explicit(&mc->npartial, 1, memory_order_relaxed);
  mc->nspans--;
  collect_xfree(s);  // also clears NOTIFY
  s->where = WHERE_NONE;
  gort__span_set_owner(s, c);
  unlock(&mc->lock);
  return true;
}

void gort__mcentral_give(mspan_t *s) {
  mcentral_t *mc = get_central(s->sizeclass);
  lock(&mc->lock);
  gort__span_set_owner(s, NULL);
  collect_xfree(s);
  gort_assert_expensive(gort__mspan_is_valid(s));  // tier boundary: a cache hands it back
  if (s->used == 0) {
    unlock(&mc->lock);
    gort__mheap_free(s);
    return;
  }
  mc->nspans++;
  if (s->free == NULL && s->fresh == s->nelems && set_notify(s)) {
    s->where = WHERE_CENTRAL_FULL;
    span_list_push(&mc->full, s);
  } else {
    s->where = WHERE_CENTRAL_PARTIAL;
    span_list_push(&mc->partial, s);
    atomic_fetch_add_explicit(&mc->npartial, 1, memory_order_relaxed);
  }
  unlock(&mc->lock);
}

void gort__mcentral_notify(mspan_t *s) {
  // s may be a stale notice's (mcache.c): what it is now decides, under
  // the lock of the class it names (a span on that class's lists keeps
  // the class while it is there).
  int cls = __atomic_load_n(&s->sizeclass, __ATOMIC_RELAXED);
  if (cls <= 0 || cls >= GORT_NUM_CLASSES) return;
  mcentral_t *mc = get_central(cls);
  lock(&mc->lock);
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) == NULL && s->where == WHERE_CENTRAL_FULL &&
      __atomic_load_n(&s->sizeclass, __ATOMIC_RELAXED) == cls && span_state(s) == SPAN_SMALL &&
      s->kind == KIND_MANUAL) {
    span_list_remove(s);
    s->where = WHERE_CENTRAL_PARTIAL;
    span_list_push(&mc->partial, s);
    atomic_fetch_add_explicit(&mc->npartial, 1, memory_order_relaxed);
  }
  unlock(&mc->lock);
}

bool gort__mcentral_free(mspan_t *s, block_t *b) {
  mcentral_t *mc = get_central(s->sizeclass);
  lock(&mc->lock);
  if (atomic_load_explicit(&s->owner, memory_order_relaxed) != NULL ||
      (s->where != WHERE_CENTRAL_PARTIAL && s->where != WHERE_CENTRAL_FULL)) {
    unlock(&mc->lock);  // adopted meanwhile: the caller frees remotely
    return false;
  }
  collect_xfree(s);  // also clears NOTIFY: the span is about to have a free block
  b->tag = 0;
  live_clear((uintptr_t)b);
  block_set_next(b, s->free);
  s->free = b;
  s->used--;
  if (s->where == WHERE_CENTRAL_FULL) {
    span_list_remove(s);
    s->where = WHERE_CENTRAL_PARTIAL;
    span_list_push(&mc->partial, s);
    atomic_fetch_add_explicit(&mc->npartial, 1, memory_order_relaxed);
  }
  if (s->used == 0) {
    span_list_remove(s);
    atomic_fetch_sub_explicit(&mc->npartial, 1, memory_order_relaxed);
    mc->nspans--;
    s->where = WHERE_NONE;
    unlock(&mc->lock);
    gort__mheap_free(s);
    return true;
  }
  unlock(&mc->lock);
  return true;
}

uint64_t gort__mcentral_span_count(void) {
  uint64_t n = 0;
  for (int i = 1; i < GORT_NUM_CLASSES; i++) n += __atomic_load_n(&central[i].nspans, __ATOMIC_RELAXED);
  return n;
}

void gort__mcentral_lock_for_fork(void) {
  get_central(1);
  for (int i = 0; i < GORT_NUM_CLASSES; i++) lock(&central[i].lock);
}

void gort__mcentral_unlock_after_fork(int child) {
  for (int i = 0; i < GORT_NUM_CLASSES; i++) {
    if (child)
      lock_reinit(&central[i].lock);
    else
      unlock(&central[i].lock);
  }
}
