/* binary-trees, the Computer Language Benchmarks Game's shape, written
 * anew for gort (one mutator thread in every version): a stretch tree of
 * depth N+1, checked and dropped; a long-lived tree of depth N; for each
 * depth d = 4, 6, ..., N, 2^(N - d + 4) trees of depth d built bottom-up,
 * checked (a node counts 1 plus its children's checks) and dropped; the
 * long-lived tree checked last.
 *
 * Usage: bintree-IMPL [N]   (default 18)
 * Prints the Benchmarks Game lines on stderr; the checksum is the sum of
 * every check printed (the same for every implementation). The malloc
 * build frees each tree once checked.
 */
#include "gcb.h"

typedef struct node {
  struct node *left, *right;
} node;

enum { MIN_DEPTH = 4 };

static node *bottom_up(int depth) {
  node *l = NULL, *r = NULL;
  if (depth > 0) {
    l = bottom_up(depth - 1);
    r = bottom_up(depth - 1);
  }
  node *n = gcb_alloc(sizeof *n);
  gcb_store(n->left, l);
  gcb_store(n->right, r);
  return n;
}

static long check(const node *n) {
  gcb_tick();
  return n->left == NULL ? 1 : 1 + check(n->left) + check(n->right);
}

static void drop_tree(node *n) {
#if GCB_MANUAL
  if (n == NULL) return;
  gcb_tick();  /* a free walk is the program's own work, not a stall */
  drop_tree(n->left);
  drop_tree(n->right);
  gcb_free(n);
#else
  (void)n;
#endif
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 18;
  if (n < 0 || n > 26) gcb_die("depth must be 0..26");
  int max_depth = n < MIN_DEPTH + 2 ? MIN_DEPTH + 2 : n;
  uint64_t checksum = 0;
  gcb_init();

  node *stretch = bottom_up(max_depth + 1);
  long c = check(stretch);
  drop_tree(stretch);
  stretch = NULL;
  fprintf(stderr, "stretch tree of depth %d\t check: %ld\n", max_depth + 1, c);
  checksum += (uint64_t)c;

  node *long_lived = bottom_up(max_depth);

  for (int d = MIN_DEPTH; d <= max_depth; d += 2) {
    long iters = 1L << (max_depth - d + MIN_DEPTH);
    long sum = 0;
    for (long i = 0; i < iters; i++) {
      node *t = bottom_up(d);
      sum += check(t);
      drop_tree(t);
    }
    fprintf(stderr, "%ld\t trees of depth %d\t check: %ld\n", iters, d, sum);
    checksum += (uint64_t)sum;
  }

  c = check(long_lived);
  fprintf(stderr, "long lived tree of depth %d\t check: %ld\n", max_depth, c);
  checksum += (uint64_t)c;
  gcb_finish("bintree", checksum);
  drop_tree(long_lived);
  return 0;
}
