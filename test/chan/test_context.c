// gort/context.h: cancellation trees, deadlines, reasons, the done channel
// in a select.

#define _GNU_SOURCE
#include <unistd.h>

#include "chantest.h"
#include "gort/context.h"

static bool is_done(gort_ctx_t *c) {
  return gort_chan_try_recv(gort_ctx_done(c), NULL) || gort_ctx_err(c) != 0;
}

TEST(the_background_is_never_done_and_has_no_deadline) {
  gort_ctx_t *bg = gort_ctx_background();
  EXPECT(gort_ctx_done(bg) == NULL);
  EXPECT(gort_ctx_err(bg) == 0);
  EXPECT(!gort_ctx_deadline(bg, NULL));
  gort_ctx_cancel(bg);
  EXPECT(gort_ctx_err(bg) == 0, "the background ignores cancel");
  EXPECT(gort_ctx_err_string(0) == NULL);
}

TEST(cancelling_a_node_cancels_its_subtree_and_not_its_parent_or_siblings) {
  gort_ctx_t *root = gort_ctx_with_cancel(gort_ctx_background());
  gort_ctx_t *a = gort_ctx_with_cancel(root), *b = gort_ctx_with_cancel(root);
  gort_ctx_t *a1 = gort_ctx_with_cancel(a), *a2 = gort_ctx_with_timeout(a, 3600LL * 1000000000);
  gort_ctx_t *a11 = gort_ctx_with_cancel(a1);
  gort_ctx_cancel(a);
  EXPECT(gort_ctx_err(a) == GORT_CTX_CANCELED);
  EXPECT(gort_ctx_err(a1) == GORT_CTX_CANCELED && gort_ctx_err(a2) == GORT_CTX_CANCELED);
  EXPECT(gort_ctx_err(a11) == GORT_CTX_CANCELED);
  int v;
  EXPECT(!gort_chan_recv(gort_ctx_done(a11), &v), "done is closed");
  EXPECT(gort_ctx_err(root) == 0 && gort_ctx_err(b) == 0);
  EXPECT(!is_done(root) && !is_done(b));
  gort_ctx_cancel(root);
  EXPECT(gort_ctx_err(b) == GORT_CTX_CANCELED);
  EXPECT(strcmp(gort_ctx_err_string(gort_ctx_err(b)), "context canceled") == 0);
  gort_ctx_cancel(root);  // twice: nothing more
}

TEST(a_child_of_a_cancelled_parent_is_born_cancelled) {
  gort_ctx_t *p = gort_ctx_with_cancel(NULL);
  gort_ctx_cancel(p);
  gort_ctx_t *c = gort_ctx_with_cancel(p);
  EXPECT(gort_ctx_err(c) == GORT_CTX_CANCELED);
}

TEST(a_deadline_cancels_with_deadline_exceeded_and_its_children_too) {
  int64_t t0 = now_ns();
  gort_ctx_t *c = gort_ctx_with_timeout(NULL, 20 * 1000000);
  gort_ctx_t *child = gort_ctx_with_cancel(c);
  int64_t d;
  EXPECT(gort_ctx_deadline(c, &d) && d >= t0 + 20 * 1000000);
  EXPECT(gort_ctx_deadline(child, &d), "a child inherits the deadline");
  EXPECT(gort_ctx_err(c) == 0);
  EXPECT(!gort_chan_recv(gort_ctx_done(child), NULL));
  int64_t took = now_ns() - t0;
  EXPECT(took >= 20 * 1000000, "done after %lld ns", (long long)took);
  EXPECT(gort_ctx_err(c) == GORT_CTX_DEADLINE_EXCEEDED);
  EXPECT(gort_ctx_err(child) == GORT_CTX_DEADLINE_EXCEEDED);
  EXPECT(strcmp(gort_ctx_err_string(gort_ctx_err(c)), "context deadline exceeded") == 0);
}

TEST(a_deadline_in_the_past_is_exceeded_at_once_and_a_later_one_keeps_the_parents) {
  gort_ctx_t *c = gort_ctx_with_deadline(NULL, now_ns() - 1);
  EXPECT(gort_ctx_err(c) == GORT_CTX_DEADLINE_EXCEEDED);
  gort_ctx_t *p = gort_ctx_with_timeout(NULL, 3600LL * 1000000000);
  int64_t pd, cd;
  gort_ctx_deadline(p, &pd);
  gort_ctx_t *k = gort_ctx_with_timeout(p, 7200LL * 1000000000);
  gort_ctx_deadline(k, &cd);
  EXPECT(cd == pd, "the sooner deadline wins");
  gort_ctx_cancel(p);
  EXPECT(gort_ctx_err(k) == GORT_CTX_CANCELED);
}

// A worker stops when its context is cancelled, seen through select.
typedef struct {
  gort_ctx_t *ctx;
  gort_chan_t *work;
  _Atomic int64_t handled;
  gort_waitgroup_t done;
} worker_t;

static void worker(void *arg) {
  worker_t *w = arg;
  for (;;) {
    int v;
    gort_select_case_t cs[2] = {{.chan = w->work, .dir = GORT_SELECT_RECV, .elem = &v},
                                {.chan = gort_ctx_done(w->ctx), .dir = GORT_SELECT_RECV}};
    if (gort_select(cs, 2, -1) == 1) break;
    atomic_fetch_add(&w->handled, 1);
  }
  gort_waitgroup_done(&w->done);
}

TEST(workers_stop_when_the_tree_above_them_is_cancelled) {
  gort_maxprocs(2);
  gort_ctx_t *root = gort_ctx_with_cancel(NULL);
  static worker_t ws[6];
  gort_chan_t *work = gort_chan_make(sizeof(int), 0);
  for (int i = 0; i < 6; i++) {
    ws[i].ctx = gort_ctx_with_cancel(i < 3 ? root : gort_ctx_with_cancel(root));
    ws[i].work = work;
    gort_waitgroup_add(&ws[i].done, 1);
    EXPECT(gort_go(worker, &ws[i]) == 0);
  }
  for (int i = 0; i < 1000; i++) gort_chan_send(work, &i);
  gort_ctx_cancel(root);
  int64_t total = 0;
  for (int i = 0; i < 6; i++) {
    gort_waitgroup_wait(&ws[i].done);
    total += atomic_load(&ws[i].handled);
  }
  EXPECT_EQ_U64(total, 1000);
}
