/* gort: cancellation (Go: package context).
 *
 * A context carries a cancellation signal down a tree of work: cancelling
 * one cancels every context derived from it, never its parent. Its done
 * channel (gort_ctx_done) is closed on cancellation, so a goroutine can wait
 * for it in gort_select beside its real work; gort_ctx_err tells why.
 *
 *   gort_ctx_t *root = gort_ctx_background();
 *   gort_ctx_t *ctx = gort_ctx_with_timeout(root, 50 * 1000000);
 *   gort_select_case_t cs[2] = {{.chan = work, .dir = GORT_SELECT_RECV, .elem = &v},
 *                               {.chan = gort_ctx_done(ctx), .dir = GORT_SELECT_RECV}};
 *   if (gort_select(cs, 2, -1) == 1) ... gort_ctx_err(ctx) == GORT_CTX_DEADLINE_EXCEEDED ...
 *   gort_ctx_cancel(ctx);  // always, once done with it, as Go's cancel func
 *
 * Memory: contexts are collected objects when the collector is on (an
 * unreachable context that is cancelled, or whose parent is unreachable,
 * is reclaimed). With the collector off they are never freed.
 * A context with a deadline has a goroutine waiting for it until the
 * deadline passes or the context is cancelled.
 */
#ifndef GORT_CONTEXT_H
#define GORT_CONTEXT_H

#include <stdint.h>

#include "api.h"
#include "chan.h"

GORT_BEGIN_DECLS

typedef struct gort_ctx gort_ctx_t;

/* Why a context is done; 0 while it is not. */
enum { GORT_CTX_CANCELED = 1, GORT_CTX_DEADLINE_EXCEEDED = 2 };

/* The root: never cancelled, no deadline, a NULL done channel (never
 * ready in a select, as Go's nil channel). */
GORT_API gort_ctx_t *gort_ctx_background(void);
/* A child of parent that gort_ctx_cancel cancels. NULL with errno ENOMEM. */
GORT_API gort_ctx_t *gort_ctx_with_cancel(gort_ctx_t *parent);
/* A child cancelled with GORT_CTX_DEADLINE_EXCEEDED at deadline_ns (on the
 * monotonic clock, as gort_after's times), or earlier as its parent is. */
GORT_API gort_ctx_t *gort_ctx_with_deadline(gort_ctx_t *parent, int64_t deadline_ns);
/* gort_ctx_with_deadline at now + timeout_ns. */
GORT_API gort_ctx_t *gort_ctx_with_timeout(gort_ctx_t *parent, int64_t timeout_ns);
/* Cancels ctx and its descendants with GORT_CTX_CANCELED (if not done
 * yet), and detaches ctx from its parent. The background ignores it. */
GORT_API void gort_ctx_cancel(gort_ctx_t *ctx);
/* The channel closed once ctx is done (NULL for the background). */
GORT_API gort_chan_t *gort_ctx_done(gort_ctx_t *ctx);
/* 0, GORT_CTX_CANCELED or GORT_CTX_DEADLINE_EXCEEDED. */
GORT_API int gort_ctx_err(gort_ctx_t *ctx);
/* Go's error texts: "context canceled", "context deadline exceeded", or
 * NULL for 0. */
GORT_API const char *gort_ctx_err_string(int err);
/* The deadline in *deadline_ns and true, or false if ctx has none. */
GORT_API bool gort_ctx_deadline(gort_ctx_t *ctx, int64_t *deadline_ns);

GORT_END_DECLS

#endif /* GORT_CONTEXT_H */
