// gort demo: an allocation-heavy program on gort, printing what it measured.
//
// 1. Builds a word-frequency table of 2 million random words (a hash table
//    of small malloc'd nodes and strings) on 2 threads, timing the malloc/
//    free throughput.
// 2. Drops 9 of its 10 tables (90% of the words) and shows RSS following
//    the live heap: by itself (the background scavenger) and at once with
//    gort_free_os_memory(). Then frees every other word of the last table:
//    survivors scattered through every span keep their pages resident, as
//    with any allocator that does not move objects (fragmentation).
// 3. Prints gort's MemStats, as a Go program would read runtime.MemStats.

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gort.h"
#include "gort/metrics.h"

typedef struct node {
  struct node *next;
  char *word;
  long count;
} node_t;

enum { BUCKETS = 1 << 17, WORDS = 2000000, THREADS = 2, TABLES = 10 };

typedef struct {
  node_t **table[TABLES / THREADS];  // each thread builds its tables in turn
  unsigned seed;
  long nodes;
} shard_t;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_mib(void) {
  gort_memstats_t m;
  gort_read_memstats(&m);
  return (double)m.rss / (1 << 20);
}

static void *build(void *arg) {
  shard_t *s = arg;
  for (long i = 0; i < WORDS / THREADS; i++) {
    int tab = (int)(i / (WORDS / TABLES));
    if (s->table[tab] == NULL) s->table[tab] = calloc(BUCKETS, sizeof(node_t *));
    char word[48];
    int len = 3 + (int)(rand_r(&s->seed) % 40);
    for (int k = 0; k < len; k++) word[k] = (char)('a' + rand_r(&s->seed) % 26);
    word[len] = '\0';
    unsigned h = 2166136261u;
    for (int k = 0; k < len; k++) h = (h ^ (unsigned char)word[k]) * 16777619u;
    node_t **b = &s->table[tab][h & (BUCKETS - 1)];
    node_t *n;
    for (n = *b; n != NULL && strcmp(n->word, word) != 0; n = n->next) {
    }
    if (n == NULL) {
      n = malloc(sizeof *n);
      n->word = strdup(word);
      n->count = 0;
      n->next = *b;
      *b = n;
      s->nodes++;
    }
    n->count++;
  }
  return NULL;
}

// Frees all but one in keep_one_in of a table's words; 0 frees the table.
static long prune(node_t ***tablep, int keep_one_in) {
  node_t **table = *tablep;
  long freed = 0, i = 0;
  if (table == NULL) return 0;
  for (long b = 0; b < BUCKETS; b++) {
    node_t **pp = &table[b];
    while (*pp != NULL) {
      node_t *n = *pp;
      if (keep_one_in == 0 || i++ % keep_one_in != 0) {
        *pp = n->next;
        free(n->word);
        free(n);
        freed++;
      } else {
        pp = &n->next;
      }
    }
  }
  if (keep_one_in == 0) {
    free(table);
    *tablep = NULL;
  }
  return freed;
}

int main(void) {
  printf("gort demo: %d words into hash tables on %d threads\n\n", WORDS, THREADS);
  shard_t shards[THREADS];
  pthread_t t[THREADS];
  double t0 = now();
  for (int i = 0; i < THREADS; i++) {
    shards[i] = (shard_t){{NULL}, 1234u + (unsigned)i, 0};
    pthread_create(&t[i], NULL, build, &shards[i]);
  }
  long nodes = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    nodes += shards[i].nodes;
  }
  double t1 = now();
  gort_memstats_t m;
  gort_read_memstats(&m);
  printf("built:    %ld distinct words, %llu objects live, %.1f MiB live, RSS %.1f MiB\n", nodes,
         (unsigned long long)m.heap_objects, (double)m.heap_alloc / (1 << 20), rss_mib());
  printf("          %.0f ms, %.1f M mallocs/s\n", (t1 - t0) * 1e3, (double)m.mallocs / (t1 - t0) / 1e6);

  long freed = 0;
  double t2 = now();
  for (int i = 0; i < THREADS; i++)
    for (int k = 0; k < TABLES / THREADS; k++)
      if (i != 0 || k != 0) freed += prune(&shards[i].table[k], 0);
  double t3 = now();
  gort_read_memstats(&m);
  printf("\ndropped:  9 of 10 tables, %ld words, in %.0f ms: %.1f MiB live, RSS %.1f MiB\n", freed,
         (t3 - t2) * 1e3, (double)m.heap_alloc / (1 << 20), rss_mib());
  for (int s = 1; s <= 2; s++) {
    sleep(1);
    printf("          after %d s (background scavenger): RSS %.1f MiB\n", s, rss_mib());
  }
  gort_free_os_memory();
  printf("          after gort_free_os_memory():       RSS %.1f MiB\n", rss_mib());

  freed = prune(&shards[0].table[0], 2);
  gort_free_os_memory();
  gort_read_memstats(&m);
  printf("\nthinned:  freed every other word of the last table (%ld): %.1f MiB live, RSS %.1f MiB\n",
         freed, (double)m.heap_alloc / (1 << 20), rss_mib());
  printf("          (the survivors sit in every span: those pages stay, as with any\n"
         "          allocator that does not move objects)\n");

  gort_read_memstats(&m);
  printf("\nMemStats: HeapAlloc %.1f MiB, HeapInuse %.1f MiB, HeapIdle %.1f MiB, HeapReleased %.1f MiB\n",
         (double)m.heap_alloc / (1 << 20), (double)m.heap_inuse / (1 << 20),
         (double)m.heap_idle / (1 << 20), (double)m.heap_released / (1 << 20));
  printf("          HeapSys %.1f MiB, Sys %.1f MiB, Mallocs %llu, Frees %llu, scavenger cycles %llu\n",
         (double)m.heap_sys / (1 << 20), (double)m.sys / (1 << 20), (unsigned long long)m.mallocs,
         (unsigned long long)m.frees, (unsigned long long)m.scavenge_cycles);
  prune(&shards[0].table[0], 0);
  return 0;
}
