/* GCBench, the shape of Boehm's (after John Ellis and Pete Kovac), written
 * anew for gort: a stretch tree of depth D+2 dropped at once; a long-lived
 * tree of depth D and an array of D-independent 500000 doubles kept to the
 * end; then, for each depth d = 4, 6, ..., D, as many trees as make twice
 * the stretch tree's nodes, first built top-down (a node, then its
 * children filled in) and then bottom-up (children first), each dropped
 * at once.
 *
 * Usage: gcbench-IMPL [D]   (default 16, as issue 9 says)
 * Checksum: nodes allocated + nodes found in the long-lived tree at the end
 * (the same for every implementation). The malloc build frees each tree
 * when it is dropped.
 */
#include "gcb.h"

typedef struct node {
  struct node *left, *right;
  int i, j;
} node;

enum { MIN_DEPTH = 4, ARRAY_SIZE = 500000 };

static uint64_t nodes_made;

static node *new_node(node *l, node *r) {
  node *n = gcb_alloc(sizeof *n);
  gcb_store(n->left, l);
  gcb_store(n->right, r);
  n->i = 0;
  n->j = 0;
  nodes_made++;
  return n;
}

static long tree_size(int depth) { return (1L << (depth + 1)) - 1; }

/* Top-down: give n children down to depth levels below it. */
static void populate(int depth, node *n) {
  if (depth <= 0) return;
  depth--;
  gcb_store(n->left, new_node(NULL, NULL));
  gcb_store(n->right, new_node(NULL, NULL));
  populate(depth, n->left);
  populate(depth, n->right);
}

/* Bottom-up: the children exist before their parent. */
static node *make_tree(int depth) {
  if (depth <= 0) return new_node(NULL, NULL);
  node *l = make_tree(depth - 1);
  node *r = make_tree(depth - 1);
  return new_node(l, r);
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

static long count_nodes(const node *n) {
  if (n == NULL) return 0;
  gcb_tick();
  return 1 + count_nodes(n->left) + count_nodes(n->right);
}

int main(int argc, char **argv) {
  int max_depth = argc > 1 ? atoi(argv[1]) : 16;
  if (max_depth < MIN_DEPTH || max_depth > 24) gcb_die("depth must be 4..24");
  int long_lived_depth = max_depth, stretch_depth = max_depth + 2;
  gcb_init();

  fprintf(stderr, "stretch tree of depth %d\n", stretch_depth);
  drop_tree(make_tree(stretch_depth));

  node *long_lived = new_node(NULL, NULL);
  populate(long_lived_depth, long_lived);
  double *array = gcb_alloc_noscan(ARRAY_SIZE * sizeof(double));
  for (int i = 0; i < ARRAY_SIZE; i++) {
    gcb_tick();
    array[i] = i == 0 ? 0.0 : 1.0 / i;
  }

  for (int d = MIN_DEPTH; d <= max_depth; d += 2) {
    long iters = 2 * tree_size(stretch_depth) / tree_size(d);
    uint64_t t0 = gcb_now_ns();
    for (long k = 0; k < iters; k++) {
      node *t = new_node(NULL, NULL);
      populate(d, t);
      drop_tree(t);
    }
    uint64_t t1 = gcb_now_ns();
    for (long k = 0; k < iters; k++) drop_tree(make_tree(d));
    uint64_t t2 = gcb_now_ns();
    fprintf(stderr, "%ld trees of depth %d: top-down %.1f ms, bottom-up %.1f ms\n", iters, d,
            (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
  }

  long ll = count_nodes(long_lived);
  if (ll != tree_size(long_lived_depth) || array[1000] != 1.0 / 1000)
    gcb_die("the long-lived tree or the array did not survive");
  uint64_t checksum = nodes_made + (uint64_t)ll;
  gcb_finish("gcbench", checksum);
  drop_tree(long_lived);
  gcb_free(array);
  return 0;
}
