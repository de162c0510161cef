// The libc allocation surface (src/shim/): one probe per name and per
// documented semantic. Linked with libgort.a, so these names are gort's.

#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gort/alloc.h"
#include "gort/metrics.h"
#include "test.h"

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

void *__libc_malloc(size_t);
void __libc_free(void *);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);
void *__libc_valloc(size_t);
void *__libc_pvalloc(size_t);
int __posix_memalign(void **, size_t, size_t);
void cfree(void *);

TEST(malloc_is_gorts) {
  void *p = malloc(100);
  EXPECT(gort_usable_size(p) >= 100, "gort knows the block");
  free(p);
}

TEST(malloc_zero_is_unique_and_realloc_zero_frees) {
  void *a = malloc(0), *b = malloc(0);
  EXPECT(a && b && a != b);
  free(b);
  EXPECT(realloc(a, 0) == NULL);
}

TEST(every_null_comes_with_enomem) {
  errno = 0;
  EXPECT(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  EXPECT(calloc(SIZE_MAX, 2) == NULL && errno == ENOMEM);
  errno = 0;
  EXPECT(realloc(NULL, SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  EXPECT(reallocarray(NULL, SIZE_MAX, 3) == NULL && errno == ENOMEM);
  errno = 0;
  EXPECT(memalign(64, SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  EXPECT(valloc(SIZE_MAX) == NULL && errno == ENOMEM);
  errno = 0;
  EXPECT(pvalloc(SIZE_MAX) == NULL && errno == ENOMEM);
}

TEST(bad_alignments) {
  errno = 0;
  EXPECT(aligned_alloc(24, 48) == NULL && errno == EINVAL);
  void *p = (void *)1;
  errno = 0;
  EXPECT_EQ_U64(posix_memalign(&p, 24, 48), EINVAL);  // p is left as it was
  EXPECT_EQ_U64(posix_memalign(&p, 4, 48), EINVAL, "below sizeof(void*)");
  EXPECT(p == (void *)1 && errno == 0, "posix_memalign leaves *out and errno alone");
  EXPECT_EQ_U64(posix_memalign(&p, 64, SIZE_MAX), ENOMEM);
  void *q = memalign(24, 100);  // rounded up to 32, as glibc
  EXPECT(q != NULL && (uintptr_t)q % 32 == 0);
  free(q);
}

typedef void *(*aligner_t)(size_t align, size_t size);
static void *via_aligned_alloc(size_t a, size_t n) { return aligned_alloc(a, n); }
static void *via_memalign(size_t a, size_t n) { return memalign(a, n); }
static void *via_libc_memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
static void *via_posix_memalign(size_t a, size_t n) {
  void *p = NULL;
  return posix_memalign(&p, a, n) == 0 ? p : NULL;
}
static void *via___posix_memalign(size_t a, size_t n) {
  void *p = NULL;
  return __posix_memalign(&p, a, n) == 0 ? p : NULL;
}

TEST(alignment_matrix_through_every_entry_point) {
  aligner_t fns[] = {via_aligned_alloc, via_memalign, via_libc_memalign, via_posix_memalign,
                     via___posix_memalign};
  size_t sizes[] = {1, 24, 100, 512, 4096, 40000, 300000};
  for (int f = 0; f < 5; f++)
    for (size_t a = 8; a <= (1 << 20); a *= 2)
      for (int k = -1; k < 7; k++) {
        size_t n = k < 0 ? a : sizes[k];
        char *p = fns[f](a, n);
        ASSERT_NOT_NULL(p, "fn %d align %zu size %zu", f, a, n);
        EXPECT_EQ_U64((uintptr_t)p % a, 0, "fn %d align %zu size %zu", f, a, n);
        memset(p, 7, n);
        EXPECT(malloc_usable_size(p) >= n);
        free(p);
      }
  char *v = valloc(10), *pv = pvalloc(5000), *lv = __libc_valloc(1), *lpv = __libc_pvalloc(0);
  EXPECT((uintptr_t)v % 4096 == 0 && (uintptr_t)pv % 4096 == 0);
  EXPECT((uintptr_t)lv % 4096 == 0 && (uintptr_t)lpv % 4096 == 0);
  EXPECT(malloc_usable_size(pv) >= 8192, "pvalloc rounds the size up to pages");
  free(v), free(pv), free(lv), free(lpv);
}

TEST(libc_aliases_share_the_heap) {
  char *p = __libc_malloc(10);
  strcpy(p, "abc");
  p = __libc_realloc(p, 5000);
  EXPECT(strcmp(p, "abc") == 0);
  free(p);  // freed by the public name: one heap
  int *z = __libc_calloc(100, sizeof(int));
  for (int i = 0; i < 100; i++) EXPECT(z[i] == 0);
  cfree(z);
  __libc_free(malloc(1));
  EXPECT(malloc_usable_size(NULL) == 0);
}

TEST(introspection_answers_with_gorts_numbers) {
  void *keep[1000];
  for (int i = 0; i < 1000; i++) keep[i] = malloc(1000);
  struct mallinfo2 mi = mallinfo2();
  EXPECT(mi.uordblks >= 1000 * 1000, "uordblks %zu", mi.uordblks);
  EXPECT(mi.arena >= mi.uordblks);
  struct mallinfo m1 = mallinfo();
  EXPECT(m1.uordblks >= 1000 * 1000);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  EXPECT(malloc_info(0, f) == 0);
  fclose(f);
  EXPECT(strstr(buf, "<malloc version=\"gort-1\">") != NULL, "%s", buf);
  free(buf);
  EXPECT(mallopt(M_ARENA_MAX, 2) == 1, "accepted as a no-op");
  for (int i = 0; i < 1000; i++) free(keep[i]);
  void *big = malloc(64 << 20);
  memset(big, 1, 64 << 20);
  free(big);
  EXPECT(malloc_trim(0) == 1, "free pages were returned");
}

static void *churn_thread(void *arg) {
  volatile int *stop = arg;
  while (!*stop) {
    void *p = malloc(64 + (size_t)(rand() % 4000));
    free(p);
  }
  return NULL;
}

TEST(fork_while_threads_allocate_leaves_a_working_heap) {
  volatile int stop = 0;
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn_thread, (void *)&stop);
  for (int round = 0; round < 50; round++) {
    void *held = malloc(100);
    pid_t pid = fork();
    if (pid == 0) {
      // The child allocates, frees, frees a parent block, and forks again.
      for (int i = 0; i < 10000; i++) free(malloc((size_t)i % 5000));
      free(held);
      pid_t g = fork();
      if (g == 0) _exit(malloc(10) ? 0 : 1);
      int st;
      waitpid(g, &st, 0);
      _exit(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", round);
    free(held);
  }
  stop = 1;
  for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
}

// A fork's child pays a copy-on-write fault for each page the fork
// handlers write: with a process that never used the collector or the
// scheduler, only the allocator's locks should be among them. (Measured
// here, in this static binary: 57 faults in the child when it cleared a
// 64 KiB table and the collector's 365 central locks were taken across
// every fork, 31 after; a dynamic program's child takes 19 with glibc.)
TEST(a_forked_child_copies_few_pages) {
#ifdef __SANITIZE_THREAD__
  SKIP_IF(true, "ThreadSanitizer's own fork handlers write much more");
#endif
  free(malloc(100));
  long most = 0;
  for (int round = 0; round < 5; round++) {
    int fds[2];
    EXPECT(pipe(fds) == 0);
    pid_t pid = fork();
    if (pid == 0) {
      struct rusage ru;
      getrusage(RUSAGE_SELF, &ru);
      long n = ru.ru_minflt;
      (void)!write(fds[1], &n, sizeof n);
      _exit(0);
    }
    long n = -1;
    EXPECT(read(fds[0], &n, sizeof n) == (ssize_t)sizeof n);
    waitpid(pid, NULL, 0);
    close(fds[0]);
    close(fds[1]);
    if (n > most) most = n;
  }
  EXPECT(most <= 44, "a child took %ld page faults in the fork handlers", most);
}

static void *leave_blocks(void *arg) {
  void **out = arg;
  for (int i = 0; i < 10000; i++) out[i] = malloc(100);
  for (int i = 0; i < 5000; i++) free(out[i]);  // half freed here, half by main
  return NULL;
}

TEST(threads_that_exit_hand_their_caches_back) {
  gort_memstats_t before, during, after;
  // This thread's own cache first: pthread_create (gort's, for the
  // collector) allocates the new thread's start record here, and a cache
  // made then is not one an exited thread left behind.
  void *volatile mine = malloc(16);  // volatile: GCC deletes a bare malloc/free pair
  free(mine);
  gort_read_memstats(&before);
  static void *blocks[64][10000];
  for (int round = 0; round < 64; round++) {
    pthread_t t;
    pthread_create(&t, NULL, leave_blocks, blocks[round]);
    pthread_join(t, NULL);
  }
  gort_read_memstats(&during);
  EXPECT_EQ_U64(during.threads, before.threads, "exited threads' caches were retired");
  for (int round = 0; round < 64; round++)
    for (int i = 5000; i < 10000; i++) free(blocks[round][i]);
  gort_read_memstats(&after);
  // This thread adopted the orphaned spans to free into them, and keeps up
  // to 1 MiB of the empty ones for reuse (mcache.c, "Empty spans").
  EXPECT(after.heap_inuse <= before.heap_inuse + (2 << 20), "orphaned spans went back: inuse %llu -> %llu",
         (unsigned long long)before.heap_inuse, (unsigned long long)after.heap_inuse);
  // glibc keeps a few blocks per cached thread descriptor (its TLS vector).
  EXPECT(after.heap_objects <= before.heap_objects + 16, "objects %llu -> %llu",
         (unsigned long long)before.heap_objects, (unsigned long long)after.heap_objects);
}
