// What gort_free does to a collected object's finalizer and weak pointers
// (finalizer.c): the finalizer is dropped and the weak pointers cleared at
// the free, so the next object at the address inherits neither; a weak
// handle freed by hand leaves no trace that a cycle could write through;
// realloc that moves an object takes its finalizer along. Before, a
// finalizer outlived its object, ran on whatever object took the address
// next, and kept that object alive a cycle too long.
//
// Each size names a different path: tiny objects (several in a 16-byte
// block), small blocks, a handle-sized block, large spans.

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gctest.h"
#include "gort/alloc.h"

static const size_t sizes[] = {4, 10, 16, 80, 5000, 300 * 1024};
enum { NSIZES = sizeof sizes / sizeof sizes[0], N = 64 };

static _Atomic int ran;
static _Atomic int ran_on_live;
static void *live[N];

static void finalizer(void *obj, void *arg) {
  (void)arg;
  for (int i = 0; i < N; i++)
    if (obj == live[i]) atomic_fetch_add(&ran_on_live, 1);
  atomic_fetch_add(&ran, 1);
}

// Objects with finalizers (and weak pointers) freed by hand, then their
// addresses reused by objects that stay live.
static GCTEST_NOINLINE void free_finalizable_then_reuse(size_t size, gort_weak_t **weak) {
  for (int i = 0; i < N; i++) {
    void *p = gort_gc_alloc_noscan(size);
    if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc_noscan(%zu) failed", size);
    gort_gc_set_finalizer(p, finalizer, NULL);
    weak[i] = gort_gc_weak_make(p);
    gort_free(p);
  }
  for (int i = 0; i < N; i++) {
    live[i] = gort_gc_alloc_noscan(size);
    if (live[i] == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc_noscan(%zu) failed", size);
    gctest_fill(live[i], size, (uint64_t)i);
  }
}

TEST(a_freed_objects_finalizer_never_runs_on_the_next_object_at_its_address) {
  for (int k = 0; k < NSIZES; k++) {
    size_t size = sizes[k];
    gort_weak_t *weak[N];
    atomic_store(&ran, 0);
    atomic_store(&ran_on_live, 0);
    free_finalizable_then_reuse(size, weak);
    EXPECT_EQ_U64(gctest_count_cleared(weak, N), N, "size %zu: weak pointers to freed objects read non-NULL", size);
    for (int c = 0; c < 3; c++) gctest_collect();
    gctest_sleep_ms(50);
    EXPECT_EQ_U64(atomic_load(&ran), 0, "size %zu: finalizers of objects freed by hand ran", size);
    EXPECT_EQ_U64(atomic_load(&ran_on_live), 0, "size %zu: finalizers ran on live objects", size);
    int intact = 0;
    for (int i = 0; i < N; i++) intact += gctest_check(live[i], size, (uint64_t)i);
    EXPECT_EQ_U64(intact, N, "size %zu: live objects overwritten", size);
    for (int i = 0; i < N; i++) {
      gort_free(live[i]);
      live[i] = NULL;
    }
  }
}

// A weak handle freed by hand: its block is reused by a 16-byte object
// while its target dies. The cycle that finds the target unreachable must
// not clear a "handle" that is now someone else's object. Freed blocks
// come back to the allocator when their span is next cached or swept, so
// it allocates until it has objects at the handles' addresses.
enum { FILLER = 20000 };

static GCTEST_NOINLINE int free_handles_then_reuse(void **targets, void **reused) {
  uintptr_t handle_at[N];
  for (int i = 0; i < N; i++) {
    targets[i] = gort_gc_alloc(64);
    gort_weak_t *w = gort_gc_weak_make(targets[i]);
    if (targets[i] == NULL || w == NULL) harness_fail(__FILE__, __LINE__, "allocation failed");
    handle_at[i] = (uintptr_t)w;
    gort_free(w);
  }
  int n = 0;
  static void *filler[FILLER];
  for (int f = 0; f < FILLER && n < N; f++) {
    void *p = gort_gc_alloc_noscan(16);
    if (p == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc_noscan failed");
    filler[f] = p;
    for (int i = 0; i < N; i++)
      if ((uintptr_t)p == handle_at[i]) {
        gctest_fill(p, 16, 7 + (uint64_t)n);
        reused[n++] = p;
        filler[f] = NULL;
        break;  // a cycle may have given two handles one address
      }
  }
  for (int f = 0; f < FILLER; f++) gort_free(filler[f]);
  memset(filler, 0, sizeof filler);
  return n;
}

TEST(a_weak_handle_freed_by_hand_is_forgotten) {
  static void *targets[N], *reused[N];
  int n = free_handles_then_reuse(targets, reused);
  EXPECT(n > 0, "no 16-byte object took a freed handle's address: the case proves nothing");
  memset(targets, 0, sizeof targets);  // the targets die
  for (int c = 0; c < 3; c++) gctest_collect();
  int intact = 0;
  for (int i = 0; i < n; i++) intact += gctest_check(reused[i], 16, 7 + (uint64_t)i);
  EXPECT_EQ_U64(intact, n, "objects at freed handles' addresses overwritten by a cycle");
}

TEST(a_cleared_finalizer_then_a_free_leaves_nothing_behind) {
  atomic_store(&ran, 0);
  for (int i = 0; i < N; i++) {
    void *p = gort_gc_alloc(48);
    gort_gc_set_finalizer(p, finalizer, NULL);
    gort_gc_set_finalizer(p, NULL, NULL);
    gort_gc_set_finalizer(p, finalizer, NULL);
    gort_free(p);
  }
  for (int c = 0; c < 2; c++) gctest_collect();
  gctest_sleep_ms(50);
  EXPECT_EQ_U64(atomic_load(&ran), 0, "finalizers of freed objects ran");
}

// K objects, as in the other collector tests: a stale copy of an address
// on the stack may keep one alive (gctest.h).
enum { K = 16, SLACK = 4 };
static _Atomic uintptr_t finalized_at[K];
static _Atomic int finalized;

static void record_address(void *obj, void *arg) {
  atomic_store(&finalized_at[(uintptr_t)arg], (uintptr_t)obj);
  atomic_fetch_add(&finalized, 1);
}

#define HIDE(p) ((uintptr_t)(p) ^ 0x5A5A5A5A5A5A5A5AULL)

static GCTEST_NOINLINE void realloc_finalizable(uintptr_t *moved, gort_weak_t **weak_old, gort_weak_t **weak_new) {
  for (uintptr_t i = 0; i < K; i++) {
    void *p = gort_gc_alloc(32);
    gort_gc_set_finalizer(p, record_address, (void *)i);
    weak_old[i] = gort_gc_weak_make(p);
    void *q = gort_realloc(p, 4096);  // another class: it moves
    if (q == NULL || q == p) harness_fail(__FILE__, __LINE__, "realloc did not move the object");
    weak_new[i] = gort_gc_weak_make(q);
    moved[i] = HIDE(q);
  }
}

TEST(realloc_moves_a_finalizer_with_its_object) {
  uintptr_t moved[K];
  gort_weak_t *weak_old[K], *weak_new[K];
  realloc_finalizable(moved, weak_old, weak_new);
  for (int i = 0; i < K; i++) {
    EXPECT(gort_gc_weak_get(weak_old[i]) == NULL, "a weak pointer to an old address reads non-NULL");
    void *now = gort_gc_weak_get(weak_new[i]);  // NULL if a cycle (gcstress) already found it
    EXPECT(now == NULL || HIDE(now) == moved[i], "a moved object's weak pointer is wrong");
  }
  gctest_clobber_stack();
  gctest_collect();
  EXPECT(gctest_wait_count(&finalized, K - SLACK), "only %d of %d finalizers ran", atomic_load(&finalized), K);
  for (int i = 0; i < K; i++) {
    uintptr_t at = atomic_load(&finalized_at[i]);
    EXPECT(at == 0 || HIDE(at) == moved[i], "finalizer %d ran on %#lx, not on its moved object", i,
           (unsigned long)at);
  }
}

TEST(realloc_of_a_weak_handle_gives_a_cleared_handle) {
  void *target = gort_gc_alloc(32);
  gort_weak_t *w = gort_gc_weak_make(target);
  gort_weak_t *moved = gort_realloc(w, 64);  // another class: it moves
  EXPECT(moved != NULL && moved != w, "realloc did not move the handle");
  EXPECT(gort_gc_weak_get(moved) == NULL, "the moved copy still reads its target, which nothing clears");
  gort_free(moved);
  gort_free(target);
}

// A finalizer queued (its object found unreachable: the program hid its
// pointer in an integer) whose object the program then frees must not
// run. The finalizer thread is kept busy by another object's finalizer
// meanwhile, so that the first one is still waiting in the queue.
static _Atomic int blocker_state;  // 1: running, 2: may return
static _Atomic int hidden_ran;

static void blocking_finalizer(void *obj, void *arg) {
  (void)obj, (void)arg;
  int idle = 0;
  atomic_compare_exchange_strong(&blocker_state, &idle, 1);  // a later one must not undo the 2
  while (atomic_load(&blocker_state) != 2) gctest_sleep_ms(1);
}

static void hidden_finalizer(void *obj, void *arg) {
  (void)obj, (void)arg;
  atomic_fetch_add(&hidden_ran, 1);
}

static GCTEST_NOINLINE void make_blocker(void) {
  for (int i = 0; i < 4; i++) gort_gc_set_finalizer(gort_gc_alloc(64), blocking_finalizer, NULL);
}

// Makes blockers and collects until the finalizer thread is inside one;
// whether it is.
static bool hold_the_finalizer_thread(void) {
  atomic_store(&blocker_state, 0);
  make_blocker();
  gctest_clobber_stack();
  for (int tries = 0; tries < 50 && atomic_load(&blocker_state) != 1; tries++) {
    gctest_collect();
    gctest_sleep_ms(10);
  }
  return atomic_load(&blocker_state) == 1;
}

static GCTEST_NOINLINE void make_hidden(int n, uintptr_t *hidden, gort_weak_t **weak) {
  for (int i = 0; i < n; i++) {
    void *p = gort_gc_alloc(96);
    gort_gc_set_finalizer(p, hidden_finalizer, NULL);
    weak[i] = gort_gc_weak_make(p);  // cleared when a cycle finds p unreachable
    hidden[i] = HIDE(p);
  }
}

TEST(a_queued_finalizer_of_an_object_freed_by_hand_never_runs) {
  atomic_store(&hidden_ran, 0);
  EXPECT(hold_the_finalizer_thread(), "the blocking finalizer never ran");
  enum { H = 16 };
  uintptr_t hidden[H];
  gort_weak_t *weak[H];
  make_hidden(H, hidden, weak);
  gctest_clobber_stack();
  gctest_collect();  // finds them unreachable: their finalizers queue
  int queued = gctest_count_cleared(weak, H);
  EXPECT(queued >= H - SLACK, "only %d of %d objects found unreachable", queued, H);
  for (int i = 0; i < H; i++) gort_free((void *)HIDE(hidden[i]));
  atomic_store(&blocker_state, 2);
  gctest_collect();
  gctest_sleep_ms(100);
  EXPECT_EQ_U64(atomic_load(&hidden_ran), 0, "finalizers of objects freed while queued ran");
}

// A free finds its object's queue entry through an index (finalizer.c,
// qnode_t) that counts positions from the first entry ever queued, while
// the queue array grows and compacts under it. Two rounds, each with the
// finalizer thread held by a blocker while B objects queue behind it: the
// first makes the array grow with an entry already taken (its position
// base moves), the second fills it when most of it has been run (it
// compacts). Every other object is then freed: exactly those finalizers
// never run, and every other queued one does.
enum { B = 300 };
static _Atomic int ran_index[2 * B];

static void indexed_finalizer(void *obj, void *arg) {
  (void)obj;
  atomic_fetch_add(&ran_index[(intptr_t)arg], 1);
}

static GCTEST_NOINLINE void make_indexed(int first, uintptr_t *hidden, gort_weak_t **weak) {
  for (int i = first; i < first + B; i++) {
    void *p = gort_gc_alloc(48);
    gort_gc_set_finalizer(p, indexed_finalizer, (void *)(intptr_t)i);
    weak[i] = gort_gc_weak_make(p);
    hidden[i] = HIDE(p);
  }
}

TEST(frees_cancel_their_own_queued_finalizers_while_the_queue_grows_and_compacts) {
  static uintptr_t hidden[2 * B];
  static gort_weak_t *weak[2 * B];
  for (int round = 0; round < 2; round++) {
    EXPECT(hold_the_finalizer_thread(), "round %d: the blocking finalizer never ran", round);
    make_indexed(round * B, hidden, weak);
    gctest_clobber_stack();
    gctest_collect();  // they queue behind the blocker
    int queued = gctest_count_cleared(weak + round * B, B);
    EXPECT(queued >= B - SLACK, "round %d: only %d of %d objects found unreachable", round, queued, B);
    for (int i = round * B; i < (round + 1) * B; i += 2) gort_free((void *)HIDE(hidden[i]));
    atomic_store(&blocker_state, 2);
    // Every queued odd one runs (the blocker's three siblings first), an
    // earlier round's too: one that a stale stack word kept alive may
    // have queued only now.
    for (int waited = 0; waited < 5000; waited += 10) {
      int pending = 0;
      for (int i = 1; i < (round + 1) * B; i += 2)
        pending += gort_gc_weak_get(weak[i]) == NULL && atomic_load(&ran_index[i]) == 0;
      if (pending == 0) break;
      gctest_sleep_ms(10);
    }
  }
  for (int i = 0; i < 2 * B; i++) {
    if (i % 2 == 0)
      EXPECT(atomic_load(&ran_index[i]) == 0, "object %d's finalizer ran after a free while it was queued", i);
    else if (gort_gc_weak_get(weak[i]) == NULL)
      EXPECT(atomic_load(&ran_index[i]) == 1, "object %d's queued finalizer ran %d times", i,
             atomic_load(&ran_index[i]));
  }
}

// fork with the queue's index in use: the finalizer thread held by a
// blocker, F objects queue behind it, each with a live neighbour in its
// span. The child (its finalizer thread gone, the queue and index copied)
// frees the neighbours (each free looks in the index: the span has had
// records), frees a third of the queued objects, sets and clears
// finalizers, collects and allocates, then lets a finalizer thread of
// its own run the queue: exactly the queued objects it did not free are
// finalized, once. It reports by exit status (no stdio in the child).
// The parent, whose queue the child's work must not touch, then runs its
// own queue: every queued finalizer runs exactly once there.
enum { F = 2000 };
static _Atomic int ran_fork[F];
static void *neighbour[F];  // a root (bss): live in the parent
static _Atomic int child_new_ran;

static void fork_indexed_finalizer(void *obj, void *arg) {
  (void)obj;
  atomic_fetch_add(&ran_fork[(intptr_t)arg], 1);
}

static void child_new_finalizer(void *obj, void *arg) {
  (void)obj, (void)arg;
  atomic_fetch_add(&child_new_ran, 1);
}

static GCTEST_NOINLINE void make_fork_indexed(uintptr_t *hidden, gort_weak_t **weak) {
  for (int i = 0; i < F; i++) {
    void *p = gort_gc_alloc(48);
    void *n = gort_gc_alloc(48);  // the next block of the same span, mostly
    if (p == NULL || n == NULL) harness_fail(__FILE__, __LINE__, "gort_gc_alloc(48) failed");
    gctest_fill(n, 48, (uint64_t)i);
    neighbour[i] = n;
    gort_gc_set_finalizer(p, fork_indexed_finalizer, (void *)(intptr_t)i);
    weak[i] = gort_gc_weak_make(p);
    hidden[i] = HIDE(p);
  }
}

// The child's new finalizable objects, dropped; and set-then-cleared ones
// on live objects (the neighbours, before they are freed).
static GCTEST_NOINLINE void child_make_finalizable(int n) {
  for (int i = 0; i < n; i++) {
    void *p = gort_gc_alloc(48 + (size_t)(i % 4) * 16);
    if (p == NULL) _exit(30);
    gort_gc_set_finalizer(p, child_new_finalizer, NULL);
    gort_gc_set_finalizer(p, NULL, NULL);
    gort_gc_set_finalizer(p, child_new_finalizer, NULL);
  }
}

static GCTEST_NOINLINE int child_allocates(void) {
  static void *keep[512];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 512; i++) {
      size_t size = 16 + (size_t)((i * 37 + round * 11) % 2000);
      keep[i] = (i % 2) ? gort_gc_alloc(size) : gort_malloc(size);
      if (keep[i] == NULL) return 40;
      gctest_fill(keep[i], size, (uint64_t)(i + round * 1000));
    }
    gctest_collect();
    for (int i = 0; i < 512; i++) {
      size_t size = 16 + (size_t)((i * 37 + round * 11) % 2000);
      if (!gctest_check(keep[i], size, (uint64_t)(i + round * 1000))) return 41;
      if (i % 2 == 0) gort_free(keep[i]);
      keep[i] = NULL;
    }
  }
  return 0;
}

// What the child checks; its exit status (0: all well).
static int fork_child_work(const uintptr_t *hidden, gort_weak_t *const *weak) {
  static bool queued[F], freed[F];
  for (int i = 0; i < F; i++) {
    queued[i] = gort_gc_weak_get(weak[i]) == NULL;
    if (atomic_load(&ran_fork[i]) != 0) return 10;  // the parent's thread was held
  }
  for (int i = 0; i < F; i++) {
    if (!gctest_check(neighbour[i], 48, (uint64_t)i)) return 11;
    if (i % 5 == 0) {  // a finalizer set and cleared on a live object of the span
      gort_gc_set_finalizer(neighbour[i], child_new_finalizer, NULL);
      gort_gc_set_finalizer(neighbour[i], NULL, NULL);
    }
    gort_free(neighbour[i]);
    neighbour[i] = NULL;
  }
  for (int i = 0; i < F; i += 3)
    if (queued[i]) {
      gort_free((void *)HIDE(hidden[i]));
      freed[i] = true;
    }
  child_make_finalizable(200);
  gctest_clobber_stack();
  for (int c = 0; c < 3; c++) gctest_collect();
  int r = child_allocates();
  if (r != 0) return r;
  // The child's finalizer thread (started by its first set_finalizer)
  // runs the copied queue once the blockers queued there may return.
  atomic_store(&blocker_state, 2);
  gctest_collect();
  double deadline = gctest_now() + gctest_wait_s();
  for (;;) {
    int pending = 0;
    for (int i = 0; i < F; i++) pending += queued[i] && !freed[i] && atomic_load(&ran_fork[i]) == 0;
    if (pending == 0 && atomic_load(&child_new_ran) >= 150) break;
    if (gctest_now() > deadline) return pending != 0 ? 20 : 21;
    gctest_sleep_ms(5);
  }
  gctest_collect();
  gctest_sleep_ms(50);
  for (int i = 0; i < F; i++) {
    int n = atomic_load(&ran_fork[i]);
    if (freed[i] && n != 0) return 22;  // freed while queued, yet it ran
    if (queued[i] && !freed[i] && n != 1) return 23;
    if (n > 1) return 24;
  }
  if (atomic_load(&child_new_ran) > 200) return 25;
  return 0;
}

TEST(fork_while_finalizers_are_queued_and_indexed) {
  SKIP_IF(GCTEST_TSAN, "ThreadSanitizer ends a multi-threaded fork's child that starts a thread (status 66)");
  static uintptr_t hidden[F];
  static gort_weak_t *weak[F];
  EXPECT(hold_the_finalizer_thread(), "the blocking finalizer never ran");
  make_fork_indexed(hidden, weak);
  gctest_clobber_stack();
  gctest_collect();  // they queue behind the blocker
  int queued = gctest_count_cleared(weak, F);
  EXPECT(queued >= F - SLACK, "only %d of %d objects found unreachable", queued, F);
  fflush(NULL);
  double t0 = gctest_now();
  pid_t pid = fork();
  EXPECT(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) _exit(fork_child_work(hidden, weak));
  int child_timeout_ms = (int)(gctest_wait_s() * 1000) + 10000;  // the child's own wait and more
  int st = harness_wait_child(pid, child_timeout_ms);
  EXPECT(st != -1, "the child hung (killed after %d s)", child_timeout_ms / 1000);
  EXPECT(st != -2, "waitpid: %s", strerror(errno));
  EXPECT(!WIFSIGNALED(st), "the child died of signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
  EXPECT(WEXITSTATUS(st) == 0, "the child exited %d (see fork_child_work)", WEXITSTATUS(st));
  printf("    (the child took %.0f ms)\n", (gctest_now() - t0) * 1e3);
  // The parent's queue: untouched by the child, run now, while the
  // parent frees the neighbours (frees that look in the index as the
  // finalizer thread takes entries off it).
  for (int i = 0; i < F; i++) EXPECT(atomic_load(&ran_fork[i]) == 0, "object %d's finalizer ran early", i);
  atomic_store(&blocker_state, 2);
  for (int i = 0; i < F; i++) {
    EXPECT(gctest_check(neighbour[i], 48, (uint64_t)i), "neighbour %d overwritten", i);
    gort_free(neighbour[i]);
    neighbour[i] = NULL;
  }
  for (int waited = 0; waited < (int)(gctest_wait_s() * 1000); waited += 10) {
    int pending = 0;
    for (int i = 0; i < F; i++) pending += gort_gc_weak_get(weak[i]) == NULL && atomic_load(&ran_fork[i]) == 0;
    if (pending == 0) break;
    gctest_sleep_ms(10);
  }
  gctest_collect();
  gctest_sleep_ms(50);
  for (int i = 0; i < F; i++) {
    int n = atomic_load(&ran_fork[i]);
    if (gort_gc_weak_get(weak[i]) == NULL)
      EXPECT(n == 1, "object %d's queued finalizer ran %d times in the parent", i, n);
    else
      EXPECT(n <= 1, "object %d's finalizer ran %d times in the parent", i, n);
  }
}
