// Request buffers from a pool (issue 13): what Go servers do with
// sync.Pool, in C with gort_pool.
//
// Four worker threads each handle requests: take a 16 KiB buffer, read a
// request into it, build the response in it, hand it back. Without a pool
// each request would allocate and free 16 KiB; with one, the buffers of the
// last requests are reused, and the pool's figures show how few were ever
// made. After the burst the program goes idle: two collections later the
// pooled buffers are gone (drops), and the memory goes back to the OS.
//
//   cc -O2 examples/pool.c -Iinclude build/libgort.a -lpthread && ./a.out

#include <gort.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { BUF = 16 << 10, WORKERS = 4, REQUESTS = 200000 };

typedef struct {
  size_t len;
  char data[BUF - sizeof(size_t)];
} buffer_t;

static void *new_buffer(void) { return gort_malloc(sizeof(buffer_t)); }
// Only the header needs resetting: the handler overwrites what it reads.
static void reset_buffer(void *b) { ((buffer_t *)b)->len = 0; }
static gort_pool_t buffers = GORT_POOL_INIT(new_buffer, reset_buffer, NULL);

// Stands for a socket read: a request of a few KiB.
static void read_request(buffer_t *b, unsigned id) {
  size_t n = 512 + id % 4096;
  memset(b->data, 'a' + (int)(id % 26), n);
  b->len = n;
}

static unsigned long handle(buffer_t *b) {
  unsigned long sum = 0;
  for (size_t i = 0; i < b->len; i += 64) sum += (unsigned char)b->data[i];
  b->len = (size_t)snprintf(b->data, sizeof b->data, "HTTP/1.1 200 OK\r\nX-Sum: %lu\r\n\r\n", sum);
  return sum;
}

static void *worker(void *arg) {
  unsigned base = (unsigned)(uintptr_t)arg;
  unsigned long total = 0;
  for (unsigned i = 0; i < REQUESTS / WORKERS; i++) {
    buffer_t *b = gort_pool_get(&buffers);
    read_request(b, base + i);
    total += handle(b);
    gort_pool_put(&buffers, b);  // the response was "written": reuse the buffer
  }
  return (void *)(uintptr_t)total;
}

static void report(const char *when) {
  gort_pool_stats_t s;
  gort_pool_stats(&buffers, &s);
  gort_memstats_t m;
  gort_read_memstats(&m);
  printf("%-28s gets %7llu  buffers made %4llu  dropped %4llu  heap %6llu KiB\n", when,
         (unsigned long long)s.gets, (unsigned long long)s.misses, (unsigned long long)s.drops,
         (unsigned long long)(m.heap_alloc >> 10));
}

int main(void) {
  pthread_t t[WORKERS];
  for (int i = 0; i < WORKERS; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i * 1000000));
  for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
  report("after 200000 requests:");
  gort_gc_collect();  // the buffers move to the victim cache
  report("one idle cycle later:");
  gort_gc_collect();  // and are dropped (given to gort_free on gort's pool thread)
  for (int i = 0; i < 100; i++) {  // the pool thread frees them just after the cycle
    gort_memstats_t m;
    gort_read_memstats(&m);
    if (m.heap_alloc < BUF) break;  // less than one buffer left
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  gort_free_os_memory();
  report("two idle cycles later:");
  return 0;
}
