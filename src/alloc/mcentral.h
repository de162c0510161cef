// Central lists (Go's mcentral). See mcentral.c.

#ifndef GORT_ALLOC_MCENTRAL_H
#define GORT_ALLOC_MCENTRAL_H

#include "mcache.h"

// Adopts an unowned span of class cls with free blocks for cache c (owner
// set, remote frees collected into s->free). NULL if there is none.
mspan_t *gort__mcentral_adopt(int cls, mcache_t *c);
// Adopts unowned span s for cache c if it is still listed here (owner set,
// remote frees collected, off the lists); false if it was taken meanwhile.
bool gort__mcentral_adopt_span(mspan_t *s, mcache_t *c);
// Takes over a span from an exiting cache: owner cleared, listed partial
// or full. Spans with no block in use go back to the page heap instead.
void gort__mcentral_give(mspan_t *s);
// A free into a span no thread owns (its owner exited): applied under the
// mcentral lock as an owner would, so that orphan spans empty and go back
// to the page heap. Returns false if the span was adopted meanwhile.
bool gort__mcentral_free(mspan_t *s, block_t *b);
// The first remote free into an unowned full span: relist it as partial.
void gort__mcentral_notify(mspan_t *s);

void gort__mcentral_lock_for_fork(void);
void gort__mcentral_unlock_after_fork(int child);
uint64_t gort__mcentral_span_count(void);

#endif  // GORT_ALLOC_MCENTRAL_H
