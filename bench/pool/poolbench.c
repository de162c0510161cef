// get+put against the ways C programs get an object and give it back
// (issue 13): gort_pool, gort_malloc+gort_free, glibc's malloc+free, and a
// free list under a pthread mutex; single thread and 2 threads, each
// thread taking and returning its own objects. bench/pool/go is the same
// loop with Go 1.19's sync.Pool.
//
// Two more pool shapes reach past the private slot into the shared store
// (pool.c's essay): "4 held" takes four objects before giving them back,
// so three of every four go through the thread's own shared chain; and
// "handoff" has two threads each getting from one pool and putting into
// the other, so every get steals from the other thread's chain (or
// misses, calling new_fn, while the objects in flight build up); "relay"
// is the same with 256 objects put in at the start and no new_fn, a get
// that finds nothing yielding and trying again, so that what is timed is
// the steal and the push, not the growth of the objects in flight.
//
// Usage: poolbench [millions of get+put per thread, default 50]
// Prints one line per contender and thread count: ns per get+put pair.
//
// glibc's malloc is looked up in libc itself (dlsym on its handle), since
// in a program linked with gort the name malloc is gort's.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include "../bench.h"
#include "gort/alloc.h"
#include "gort/pool.h"

enum { SIZE = 256 };  // one object held at a time: the request-buffer shape

static void *(*libc_malloc)(size_t);
static void (*libc_free)(void *);

static void *new_obj(void) { return gort_malloc(SIZE); }
static gort_pool_t pool = GORT_POOL_INIT(new_obj, NULL, NULL);
static gort_pool_t held = GORT_POOL_INIT(new_obj, NULL, NULL);
static gort_pool_t ping = GORT_POOL_INIT(new_obj, NULL, NULL);
static gort_pool_t pong = GORT_POOL_INIT(new_obj, NULL, NULL);
static gort_pool_t relay_a = GORT_POOL_INIT(NULL, NULL, NULL);
static gort_pool_t relay_b = GORT_POOL_INIT(NULL, NULL, NULL);
enum { RELAY_OBJECTS = 256 };

// A free list under a mutex: what C programs hand-roll.
typedef struct node {
  struct node *next;
} node_t;
static struct {
  pthread_mutex_t mu;
  node_t *head;
} fl = {PTHREAD_MUTEX_INITIALIZER, NULL};

static void *fl_get(void) {
  pthread_mutex_lock(&fl.mu);
  node_t *n = fl.head;
  if (n != NULL) fl.head = n->next;
  pthread_mutex_unlock(&fl.mu);
  return n != NULL ? (void *)n : gort_malloc(SIZE);
}
static void fl_put(void *p) {
  node_t *n = p;
  pthread_mutex_lock(&fl.mu);
  n->next = fl.head;
  fl.head = n;
  pthread_mutex_unlock(&fl.mu);
}

typedef enum {
  POOL, GORT_MALLOC, GLIBC_MALLOC, MUTEX_LIST, POOL_HELD, POOL_HANDOFF, POOL_RELAY, NKINDS
} kind_t;
static const char *names[NKINDS] = {"gort_pool get+put", "gort_malloc+gort_free",
                                    "glibc malloc+free", "mutex free list",
                                    "gort_pool 4 held",  "gort_pool handoff",
                                    "gort_pool relay"};

typedef struct {
  kind_t kind;
  int index;  // the thread's: handoff's direction
  long iters;
  double ns;
} job_t;

// The object's first byte is written, as a user would, so that no
// contender is measured on memory it never touches.
static void *loop(void *arg) {
  job_t *j = arg;
  long n = j->iters;
  double t0 = bench_now();
  switch (j->kind) {
    case POOL:
      for (long i = 0; i < n; i++) {
        char *p = gort_pool_get(&pool);
        p[0] = (char)i;
        gort_pool_put(&pool, p);
      }
      break;
    case GORT_MALLOC:
      for (long i = 0; i < n; i++) {
        char *p = gort_malloc(SIZE);
        p[0] = (char)i;
        __asm__ volatile("" : : "r"(p) : "memory");
        gort_free(p);
      }
      break;
    case GLIBC_MALLOC:
      for (long i = 0; i < n; i++) {
        char *p = libc_malloc(SIZE);
        p[0] = (char)i;
        __asm__ volatile("" : : "r"(p) : "memory");
        libc_free(p);
      }
      break;
    case MUTEX_LIST:
      for (long i = 0; i < n; i++) {
        char *p = fl_get();
        p[0] = (char)i;
        fl_put(p);
      }
      break;
    case POOL_HELD:
      for (long i = 0; i < n; i += 4) {
        char *p[4];
        for (int k = 0; k < 4; k++) (p[k] = gort_pool_get(&held))[0] = (char)i;
        for (int k = 0; k < 4; k++) gort_pool_put(&held, p[k]);
      }
      break;
    case POOL_HANDOFF: {
      gort_pool_t *in = j->index == 0 ? &ping : &pong, *out = j->index == 0 ? &pong : &ping;
      for (long i = 0; i < n; i++) {
        char *p = gort_pool_get(in);
        p[0] = (char)i;
        gort_pool_put(out, p);
      }
      break;
    }
    case POOL_RELAY: {
      gort_pool_t *in = j->index == 0 ? &relay_a : &relay_b;
      gort_pool_t *out = j->index == 0 ? &relay_b : &relay_a;
      for (long i = 0; i < n; i++) {
        char *p = gort_pool_get(in);
        // Rotations may drop a few (those left in a private slot): after
        // a long wait, a new object keeps the relay going.
        for (int tries = 0; p == NULL; tries++) {
          if (tries == 10000) {
            p = new_obj();
            break;
          }
          sched_yield();
          p = gort_pool_get(in);
        }
        p[0] = (char)i;
        gort_pool_put(out, p);
      }
      break;
    }
    default:
      break;
  }
  j->ns = (bench_now() - t0) * 1e9 / (double)n;
  return NULL;
}

static void run(kind_t kind, int threads, long iters) {
  pthread_t t[2];
  job_t jobs[2];
  for (int i = 0; i < threads; i++) {
    jobs[i] = (job_t){kind, i, iters, 0};
    if (threads == 1)
      loop(&jobs[i]);
    else
      pthread_create(&t[i], NULL, loop, &jobs[i]);
  }
  double sum = 0;
  for (int i = 0; i < threads; i++) {
    if (threads > 1) pthread_join(t[i], NULL);
    sum += jobs[i].ns;
  }
  printf("%-24s %d thread%s %7.2f ns per pair\n", names[kind], threads, threads > 1 ? "s" : " ",
         sum / threads);
}

int main(int argc, char **argv) {
  long iters = (argc > 1 ? atol(argv[1]) : 50) * 1000000L;
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  libc_malloc = libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
  libc_free = libc ? (void (*)(void *))dlsym(libc, "free") : NULL;
  for (int threads = 1; threads <= 2; threads++)
    for (kind_t k = 0; k < NKINDS; k++) {
      if ((k == POOL_HANDOFF || k == POOL_RELAY) && threads == 1) continue;  // needs the other
      if (k == GLIBC_MALLOC && (libc_malloc == NULL || libc_free == NULL)) {
        printf("%-24s skipped: libc's malloc not found\n", names[k]);
        continue;
      }
      if (k == POOL_RELAY)
        for (int i = 0; i < RELAY_OBJECTS; i++)
          gort_pool_put(i % 2 ? &relay_a : &relay_b, new_obj());
      run(k, threads, iters);
    }
  gort_pool_t *pools[] = {&pool, &held, &ping, &pong, &relay_a, &relay_b};
  const char *pnames[] = {"pool", "4 held", "ping", "pong", "relay a", "relay b"};
  for (int i = 0; i < 6; i++) {
    gort_pool_stats_t s;
    gort_pool_stats(pools[i], &s);
    printf("%s: %llu gets, %llu puts, %llu misses, %llu drops\n", pnames[i],
           (unsigned long long)s.gets, (unsigned long long)s.puts, (unsigned long long)s.misses,
           (unsigned long long)s.drops);
  }
  return 0;
}
