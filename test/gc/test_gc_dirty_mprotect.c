// The mprotect dirty tracker (gc/dirty_mprotect.c) beside the program's
// own SIGSEGV handling: gort's fault handler takes the heap's write faults
// while cycles mark, and every other fault still reaches the program's
// handler, installed before gort's or after it (os/fault.c); with no
// handler a real segfault still kills with SIGSEGV. Last, the cost of a
// first write to a protected granule, printed (not asserted).
//
// Each case runs in a process of its own with GORT_DEBUG=gcdirty=mprotect
// (options are read at start-up) and first checks that the backend is in
// use. One more: with userfaultfd refused (a seccomp filter), the probe
// falls back from uffd to mprotect by itself.

#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include "gc/dirty.h"
#include "gctest.h"

#define ENV "GORT_DEBUG=gcdirty=mprotect"

// gc/gc.h's, the collector's own arming of the tracking.
uint32_t gort__dirty_arm(void);
void gort__dirty_disarm(uint32_t gen);

static void expect_mprotect(void) {
  gctest_collect();
  EXPECT(strcmp(gort__dirty_name(), "mprotect") == 0, "the backend is %s", gort__dirty_name());
}

// ---- a workload that writes the heap while cycles mark ------------------------------------

#define NHOLD 4096
static void **holder;  // old: its granules are protected in every mark
static _Atomic bool stop;
static _Atomic uint64_t cycles;

static void *collector(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    gort_gc_collect();
    atomic_fetch_add(&cycles, 1);
  }
  return NULL;
}

// The program's handler: counts real faults and jumps back over them.
static void *bad_page;  // PROT_NONE
static sigjmp_buf jump;
static volatile sig_atomic_t program_faults;
static void *volatile fault_addr;

static void program_siginfo_handler(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  program_faults++;
  fault_addr = si->si_addr;
  siglongjmp(jump, 1);
}

static void program_plain_handler(int sig) {
  (void)sig;
  program_faults++;
  fault_addr = bad_page;
  siglongjmp(jump, 1);
}

static GCTEST_NOINLINE bool real_fault(void) {
  int before = program_faults;
  if (sigsetjmp(jump, 1) == 0) {
    *(volatile int *)bad_page = 1;
    return false;
  }
  return program_faults == before + 1 && fault_addr == bad_page;
}

// Writes every slot of the old holder while cycles run, and makes a real
// fault every so often: each must reach the program's handler, none of
// the heap's may.
static void write_heap_with_real_faults(void) {
  bad_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT(bad_page != MAP_FAILED, "mmap");
  holder = gort_gc_alloc(NHOLD * sizeof(void *));
  ASSERT_NOT_NULL(holder);
  gctest_collect();  // holder is old
  uint64_t pages0 = gctest_memstats()->gc_dirty_pages;
  atomic_store(&stop, false);
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, collector, NULL) == 0);
  int real = 0, caught = 0;
  double deadline = gctest_now() + 10;
  for (uint64_t k = 0; (k < 200000 || atomic_load(&cycles) < 4) && gctest_now() < deadline; k++) {
    holder[k % NHOLD] = gort_gc_alloc(32);
    if (k % 5000 == 0) {
      real++;
      caught += real_fault();
    }
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  EXPECT_EQ_U64(caught, real, "real faults that reached the program's handler");
  EXPECT_EQ_U64(program_faults, real, "faults the program's handler saw (gort's own must not reach it)");
  uint64_t pages = gctest_memstats()->gc_dirty_pages - pages0;
  EXPECT(pages > 0, "no written page was rescanned in %llu cycles", (unsigned long long)atomic_load(&cycles));
  printf("  %d real faults to the program, %llu cycles, %llu written pages rescanned\n", real,
         (unsigned long long)atomic_load(&cycles), (unsigned long long)pages);
}

static void install_siginfo_handler(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = program_siginfo_handler;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  EXPECT(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction");
}

// Installed before gort's (the first cycle installs it).
INNER_TEST(inner_handler_installed_before) {
  install_siginfo_handler();
  expect_mprotect();
  struct sigaction now;
  EXPECT(sigaction(SIGSEGV, NULL, &now) == 0);
  EXPECT(now.sa_sigaction == program_siginfo_handler, "sigaction reports gort's handler, not the program's");
  write_heap_with_real_faults();
}

// Installed after gort's, with signal(2): gort's stays first.
INNER_TEST(inner_handler_installed_after) {
  expect_mprotect();
  EXPECT(signal(SIGSEGV, program_plain_handler) != SIG_ERR, "signal");
  EXPECT(signal(SIGSEGV, program_plain_handler) == program_plain_handler, "signal returns the last handler");
  write_heap_with_real_faults();
}

TEST(the_programs_sigsegv_handler_gets_real_faults_installed_before_gorts) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_handler_installed_before", ENV));
  EXPECT(harness_run_inner("inner_handler_installed_before", ENV ",gccheckmark=1"));
}

TEST(the_programs_sigsegv_handler_gets_real_faults_installed_after_gorts) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_handler_installed_after", ENV));
}

// The program's handler for its own guard page returns (rather than
// jumping out) after it unprotects the page and stores a pointer into the
// old holder, whose granule gort keeps protected while cycles mark. Run
// with SIGSEGV blocked, as the kernel would run it, that store's fault
// killed the process (a helper's hunt: 10 of 10 runs).
static char *guard_page;
static void **guard_spares;  // collected lists the handler links into holder
static volatile sig_atomic_t guard_faults;
static void *volatile guard_garbage;
static void *volatile holder_garbage;

static void on_guard_fault(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  if ((char *)si->si_addr < guard_page || (char *)si->si_addr >= guard_page + 4096) {
    signal(SIGSEGV, SIG_DFL);  // not ours: the fault comes again and kills
    return;
  }
  int n = guard_faults++;
  mprotect(guard_page, 4096, PROT_READ | PROT_WRITE);
  holder[n % NHOLD] = guard_spares[n % 64];  // a write into a protected granule
}

INNER_TEST(inner_guard_handler_writes) {
  expect_mprotect();
  guard_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT(guard_page != MAP_FAILED, "mmap");
  holder = gort_gc_alloc(NHOLD * sizeof(void *));
  guard_spares = gort_gc_alloc(64 * sizeof(void *));
  for (int i = 0; i < 64; i++) {
    uint64_t *x = gort_gc_alloc(64);
    x[0] = 0x600d0000u + (uint64_t)i;
    guard_spares[i] = x;
  }
  gctest_collect();  // holder is old
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_guard_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  EXPECT(sigaction(SIGSEGV, &sa, NULL) == 0);
  atomic_store(&stop, false);
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, collector, NULL) == 0);
  double deadline = gctest_now() + 10;
  for (uint64_t k = 0; (k < 20000 || atomic_load(&cycles) < 4) && gctest_now() < deadline; k++) {
    *(volatile char *)guard_page = 1;  // the handler opens it
    mprotect(guard_page, 4096, PROT_NONE);
    if (k % 64 == 0) guard_garbage = gort_gc_alloc(4096);  // garbage, so that cycles have work
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  gctest_collect();
  for (int i = 0; i < NHOLD && i < guard_faults; i++)
    EXPECT_EQ_U64(((uint64_t *)holder[i])[0] & ~(uint64_t)63, 0x600d0000u);
  EXPECT(guard_faults >= 20000, "%d faults reached the program's handler", (int)guard_faults);
  printf("  %d guard faults, %llu cycles\n", (int)guard_faults, (unsigned long long)atomic_load(&cycles));
}

TEST(the_programs_sigsegv_handler_writes_into_the_heap_and_returns) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_guard_handler_writes", ENV));
  EXPECT(harness_run_inner("inner_guard_handler_writes", ENV ",gccheckmark=1"));
}

// fread of a page or more reads straight into the caller's buffer with
// libc's internal read, which the read wrapper never sees: into an old
// scanned collected buffer, protected while cycles mark, it failed with
// EFAULT (fread short, the stream's error set) until fread was wrapped
// too. Half the reads go through fread_unlocked, which the checked forms
// share.
INNER_TEST(inner_fread_into_the_heap) {
  expect_mprotect();
  char path[] = "/tmp/gort-fread-XXXXXX";
  int fd = mkstemp(path);
  EXPECT(fd >= 0, "mkstemp");
  enum { FILE_BYTES = 4 << 20 };
  uint8_t *ref = malloc(FILE_BYTES);
  uint64_t rng = harness_seed() | 1;
  for (size_t i = 0; i < FILE_BYTES; i++) ref[i] = (uint8_t)test_rand(&rng);
  EXPECT(write(fd, ref, FILE_BYTES) == FILE_BYTES, "write");
  close(fd);
  // Old buffers: their granules are protected in every mark.
  enum { NBUF = 8 };
  uint8_t **bufs = gort_gc_alloc(NBUF * sizeof *bufs);
  for (int i = 0; i < NBUF; i++) bufs[i] = gort_gc_alloc(192 << 10);
  gctest_collect();
  atomic_store(&stop, false);
  pthread_t t;
  EXPECT(pthread_create(&t, NULL, collector, NULL) == 0);
  int rounds = 0, shorts = 0, wrong = 0;
  double deadline = gctest_now() + 10;
  while ((rounds < 20 || atomic_load(&cycles) < 4) && gctest_now() < deadline) {
    FILE *f = fopen(path, "rb");
    ASSERT_NOT_NULL(f);
    size_t chunk = (size_t)(64 << 10) * (1 + rounds % 3), off = 0;
    for (int k = 0; off < FILE_BYTES; k++) {
      uint8_t *buf = bufs[k % NBUF];
      buf[0] ^= 1;  // a store first: the granule is open to it, not to the read
      size_t want = FILE_BYTES - off < chunk ? FILE_BYTES - off : chunk;
      size_t got = k % 2 ? fread_unlocked(buf, 1, want, f) : fread(buf, 1, want, f);
      if (got != want) {
        shorts++;
        break;
      }
      wrong += memcmp(buf, ref + off, got) != 0;
      off += got;
      holder_garbage = gort_gc_alloc(4096);  // garbage, so that cycles have work
    }
    fclose(f);
    rounds++;
  }
  atomic_store(&stop, true);
  pthread_join(t, NULL);
  unlink(path);
  free(ref);
  EXPECT_EQ_U64(shorts, 0, "short freads");
  EXPECT_EQ_U64(wrong, 0, "freads with wrong bytes");
  printf("  %d rounds of 4 MiB, %llu cycles\n", rounds, (unsigned long long)atomic_load(&cycles));
}

TEST(fread_into_scanned_objects_during_cycles) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_fread_into_the_heap", ENV));
}

// Socket receives into collected objects while cycles run back to back
// (a reviewer's probe): each receiver has a 20 ms receive timeout and a
// fresh collected buffer per call; two take their address, its length, or
// the whole message header from the collected heap too. No call may fail
// with EFAULT (an arm that came before the last cycle's disarm left a
// pinned granule protected, taken for writable: 5-12 in 5 s) or EINTR,
// and no byte may be lost or reordered (a retry after an EFAULT in a
// written-back field had read past data the kernel already took: about 1%
// of those streams).
#define RECEIVERS 4
static int rx_fd[RECEIVERS][2];
static _Atomic bool rx_stop;
static _Atomic uint64_t rx_efault, rx_eintr, rx_bad, rx_sent[RECEIVERS], rx_got[RECEIVERS];

static void *rx_sender(void *arg) {
  int k = (int)(intptr_t)arg;
  uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(k + 1);
  uint8_t seq = 0, buf[300];
  while (!atomic_load(&rx_stop)) {
    size_t n = 1 + test_rand(&rng) % sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = seq++;
    for (size_t off = 0; off < n;) {
      ssize_t w = write(rx_fd[k][1], buf + off, n - off);
      if (w > 0) off += (size_t)w;
    }
    atomic_fetch_add(&rx_sent[k], n);
    usleep((useconds_t)(test_rand(&rng) % 2000));
  }
  close(rx_fd[k][1]);  // the receiver's last call reads 0
  return NULL;
}

static void *rx_receiver(void *arg) {
  int k = (int)(intptr_t)arg;
  struct timeval tv = {0, 20000};
  setsockopt(rx_fd[k][0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  uint8_t want = 0;
  for (;;) {
    uint8_t *buf = gort_gc_alloc(4096);
    ssize_t r;
    if (k == 0) {
      r = recv(rx_fd[k][0], buf, 4096, 0);
    } else if (k == 1) {
      struct iovec v = {buf, 4096};
      struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};
      r = recvmsg(rx_fd[k][0], &m, 0);
    } else if (k == 2) {
      struct sockaddr_storage *sa = gort_gc_alloc(sizeof *sa);
      socklen_t *alen = gort_gc_alloc(sizeof *alen);
      *alen = sizeof *sa;
      r = recvfrom(rx_fd[k][0], buf, 4096, 0, (struct sockaddr *)sa, alen);
    } else {
      struct iovec *v = gort_gc_alloc(sizeof *v);
      struct msghdr *m = gort_gc_alloc(sizeof *m);
      v->iov_base = buf, v->iov_len = 4096;
      m->msg_iov = v, m->msg_iovlen = 1;
      r = recvmsg(rx_fd[k][0], m, 0);
    }
    if (r == 0) break;
    if (r < 0) {
      if (errno == EFAULT) atomic_fetch_add(&rx_efault, 1);
      if (errno == EINTR) atomic_fetch_add(&rx_eintr, 1);
      continue;
    }
    for (ssize_t i = 0; i < r; i++) {
      if (buf[i] != want) atomic_fetch_add(&rx_bad, 1);
      want = (uint8_t)(buf[i] + 1);
    }
    atomic_fetch_add(&rx_got[k], (uint64_t)r);
  }
  return NULL;
}

INNER_TEST(inner_receives_into_the_heap) {
  expect_mprotect();
  pthread_t s[RECEIVERS], r[RECEIVERS];
  for (int k = 0; k < RECEIVERS; k++) {
    EXPECT(socketpair(AF_UNIX, SOCK_STREAM, 0, rx_fd[k]) == 0);
    pthread_create(&r[k], NULL, rx_receiver, (void *)(intptr_t)k);
    pthread_create(&s[k], NULL, rx_sender, (void *)(intptr_t)k);
  }
  int cycles = 0;
  for (double end = gctest_now() + 2; gctest_now() < end; cycles++) {
    for (int i = 0; i < 200; i++) holder_garbage = gort_gc_alloc(64);
    gort_gc_collect();
  }
  atomic_store(&rx_stop, true);
  for (int k = 0; k < RECEIVERS; k++) pthread_join(s[k], NULL), pthread_join(r[k], NULL);
  EXPECT_EQ_U64(atomic_load(&rx_efault), 0, "receives failed with EFAULT (%d cycles)", cycles);
  EXPECT_EQ_U64(atomic_load(&rx_eintr), 0, "receives ended with EINTR");
  EXPECT_EQ_U64(atomic_load(&rx_bad), 0, "bytes out of sequence");
  for (int k = 0; k < RECEIVERS; k++)
    EXPECT_EQ_U64(atomic_load(&rx_got[k]), atomic_load(&rx_sent[k]), "receiver %d's bytes", k);
  for (int k = 0; k < RECEIVERS; k++) close(rx_fd[k][0]);
}

TEST(socket_receives_into_scanned_objects_during_back_to_back_cycles) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_receives_into_the_heap", ENV));
}

// Near vm.max_map_count the backend's next split is refused: tracking
// falls back, and the next cycles mark with the world stopped, as its
// message says (they marked beside the program and then rescanned every
// marked object in the final stop, a line on stderr each: a helper's
// hunt). The program's lists stay intact throughout.
typedef struct mnode {
  struct mnode *next;
  uint64_t val;
} mnode_t;

static mnode_t *mlist(uint64_t n, uint64_t seed) {
  mnode_t *h = NULL;
  for (uint64_t i = 0; i < n; i++) {
    mnode_t *x = gort_gc_alloc(sizeof *x);
    x->val = seed + i;
    x->next = h;
    h = x;
  }
  return h;
}

static bool mlist_ok(const mnode_t *h, uint64_t n, uint64_t seed) {
  uint64_t i = n;
  for (; h != NULL && i > 0; h = h->next) {
    if (h->val != seed + --i) return false;
  }
  return h == NULL && i == 0;
}

INNER_TEST(inner_map_count_exhausted) {
  expect_mprotect();
  long max = 0, cur = 0;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  EXPECT(f != NULL && fscanf(f, "%ld", &max) == 1);
  if (f != NULL) fclose(f);
  f = fopen("/proc/self/maps", "r");
  for (int c; f != NULL && (c = fgetc(f)) != EOF;) cur += c == '\n';
  if (f != NULL) fclose(f);
  long target = max - cur - 20;  // every other page of one mapping its own
  EXPECT(target > 0 && target < (1L << 22), "%ld mappings to make", target);
  char *big = mmap(NULL, (size_t)(target + 2) * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  EXPECT(big != MAP_FAILED, "mmap");
  for (long i = 0; i < target; i += 2)
    if (mprotect(big + i * 4096, 4096, PROT_READ) != 0) break;
  enum { NL = 1024 };
  mnode_t **lists = gort_gc_alloc(NL * sizeof *lists);
  for (int i = 0; i < NL; i++) lists[i] = mlist(64, (uint64_t)i << 20);
  uint64_t rng = harness_seed() | 1;
  double deadline = gctest_now() + 20;
  while (strcmp(gort__dirty_name(), "none") != 0 && gctest_now() < deadline) {
    int k = (int)(test_rand(&rng) % NL);
    lists[k] = mlist(64, (uint64_t)k << 20);  // scattered writes into an old array
    if (test_rand(&rng) % 4096 == 0) gort_gc_collect();
  }
  EXPECT(strcmp(gort__dirty_name(), "none") == 0, "tracking never fell back");
  gctest_collect();
  gctest_collect();
  EXPECT(!gctest_memstats()->gc_concurrent, "cycles still mark beside the program after the fallback");
  for (int i = 0; i < NL; i++) EXPECT(mlist_ok(lists[i], 64, (uint64_t)i << 20), "list %d damaged", i);
  munmap(big, (size_t)(target + 2) * 4096);
}

TEST(near_the_map_count_limit_tracking_falls_back_to_stopped_marks) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_map_count_exhausted", ENV));
}

// ---- no handler: the process dies of the signal ----------------------------------------------

static GCTEST_NOINLINE void write_during_cycles_then_fault(bool by_kill) {
  expect_mprotect();
  bad_page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  holder = gort_gc_alloc(NHOLD * sizeof(void *));
  gctest_collect();
  pthread_t t;
  pthread_create(&t, NULL, collector, NULL);
  for (uint64_t k = 0; atomic_load(&cycles) < 3; k++) holder[k % NHOLD] = gort_gc_alloc(32);
  if (by_kill) kill(getpid(), SIGSEGV);
  else *(volatile int *)bad_page = 1;
  printf("still alive\n");
}

INNER_TEST(inner_real_segfault) { write_during_cycles_then_fault(false); }
INNER_TEST(inner_kill_sigsegv) { write_during_cycles_then_fault(true); }

// Runs this program's inner case with ENV; true if the harness saw it die
// of SIGSEGV (it runs each case in a process of its own, and names the
// signal that ended it).
static bool died_of_sigsegv(const char *inner) {
  char self[512], cmd[700], line[512];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  EXPECT(n > 0, "readlink");
  self[n > 0 ? n : 0] = '\0';
  struct rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  snprintf(cmd, sizeof cmd, "%s %s %s 2>&1", ENV, self, inner);
  FILE *f = popen(cmd, "r");
  EXPECT(f != NULL, "popen");
  bool died = false, alive = false;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    // (the inner run's own lines are its business)
    if (strstr(line, "FAIL") != NULL && strstr(line, "(Segmentation fault)") != NULL) died = true;
    if (strstr(line, "still alive") != NULL) alive = true;
  }
  if (f != NULL) pclose(f);
  return died && !alive;
}

TEST(an_uncaught_segfault_still_kills_with_sigsegv) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(died_of_sigsegv("inner_real_segfault"), "a real fault with no handler");
  EXPECT(died_of_sigsegv("inner_kill_sigsegv"), "kill(getpid(), SIGSEGV) with no handler");
}

// ---- the cost of a first write ----------------------------------------------------------------

// The backend itself, on the granules of one large object: protect them,
// time a write to each (a fault, the handler's unprotect) against a write
// to an unprotected granule, then a collect that protects every other
// granule again (a protect and a split mapping each). Printed, never
// asserted. Timing writes: a page cannot fault while the backend is used
// outside a cycle, so the last cycle's disarm must be over first.
INNER_TEST(inner_first_write_cost) {
  enum { GRANULES = 2048 };
  const uintptr_t G = (uintptr_t)1 << GORT_DIRTY_GRANULE_SHIFT;
  size_t bytes = (size_t)(GRANULES + 1) * G;
  char *obj = gort_gc_alloc(bytes);  // a scanned object: noscan ones lie outside the tracked heap
  ASSERT_NOT_NULL(obj);
  memset(obj, 1, bytes);  // resident
  expect_mprotect();      // registers the heap, obj's reservation included
  // The cycle's disarm runs on the collector's worker after
  // gort_gc_collect has returned, and would undo the protects below (and
  // clear arming) if it came late, as on a loaded machine it can. An arm
  // of our own waits for it if it runs, and makes it a no-op if it has
  // not started (it names an older arming); our disarm then leaves the
  // heap as a cycle's end does.
  gort__dirty_disarm(gort__dirty_arm());
  uintptr_t lo = ((uintptr_t)obj + G - 1) & ~(G - 1), hi = lo + GRANULES * G;
  const dirty_backend_t *be = &gort__dirty_mprotect;
  be->arming(true);
  double best_fault = 1e9, best_plain = 1e9, best_split = 1e9, best_collect = 1e9;
  for (int round = 0; round < 5; round++) {
    uintptr_t runs[64][2], walk = lo;
    EXPECT(be->protect(lo, hi) == 0, "protect");
    double t0 = gctest_now();
    for (uintptr_t a = lo; a < hi; a += G) *(volatile char *)a = 2;
    double t1 = gctest_now();
    for (uintptr_t a = lo; a < hi; a += G) *(volatile char *)(a + 64) = 3;
    double t2 = gctest_now();
    for (uintptr_t from = lo; from < hi; from = walk)  // all written: one run, one protect
      if (be->collect(from, hi, runs, 64, &walk, true) < 0 || walk <= from) break;
    double t3 = gctest_now();
    for (uintptr_t a = lo; a < hi; a += 2 * G) *(volatile char *)a = 4;
    double t4 = gctest_now();
    uint64_t reported = 0;
    for (uintptr_t from = lo; from < hi; from = walk) {
      int64_t r = be->collect(from, hi, runs, 64, &walk, true);
      EXPECT(r >= 0, "collect: %lld", (long long)r);
      for (int64_t i = 0; i < r; i++) reported += (runs[i][1] - runs[i][0]) / G;
      if (walk <= from) break;
    }
    double t5 = gctest_now();
    EXPECT_EQ_U64(reported, GRANULES / 2, "granules reported (every other one was written)");
    if ((t1 - t0) / GRANULES < best_fault) best_fault = (t1 - t0) / GRANULES;
    if ((t2 - t1) / GRANULES < best_plain) best_plain = (t2 - t1) / GRANULES;
    if ((t4 - t3) / (GRANULES / 2) < best_split) best_split = (t4 - t3) / (GRANULES / 2);
    if ((t5 - t4) / (GRANULES / 2) < best_collect) best_collect = (t5 - t4) / (GRANULES / 2);
    be->unprotect(lo, hi);
  }
  be->arming(false);
  printf("  first write to a protected %zu KiB granule: %.2f us (%.2f us where the mapping must split; "
         "an unprotected write: %.3f us); protecting it again in a collect: %.2f us\n",
         (size_t)(G >> 10), best_fault * 1e6, best_split * 1e6, best_plain * 1e6, best_collect * 1e6);
}

TEST(the_cost_of_a_first_write_is_printed) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  char self[512], cmd[700], line[512];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  EXPECT(n > 0, "readlink");
  self[n > 0 ? n : 0] = '\0';
  snprintf(cmd, sizeof cmd, "%s %s inner_first_write_cost 2>&1", ENV, self);
  FILE *f = popen(cmd, "r");
  EXPECT(f != NULL, "popen");
  bool passed = false;
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "  first write", 13) == 0) printf("%s", line);
    if (strncmp(line, "PASS ", 5) == 0) passed = true;
  }
  if (f != NULL) pclose(f);
  EXPECT(passed, "the inner run failed: run it with %s %s inner_first_write_cost", ENV, self);
}

// ---- the probe order --------------------------------------------------------------------------

// userfaultfd(2) fails with EPERM, as under a container's seccomp profile;
// or (pagemap_scan) only the PAGEMAP_SCAN ioctl does, after userfaultfd
// opened: the probe tries every step a cycle takes (dirty.c, uffd_open),
// and the arm of every cycle failed before it did (a helper's hunt).
#define PAGEMAP_SCAN_IOCTL _IOWR('f', 16, char[96])  // struct pm_scan_arg: 12 words
static void refuse(bool pagemap_scan) {
  struct sock_filter uffd[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_userfaultfd, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_filter scan[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_ioctl, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),  // the low word
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)PAGEMAP_SCAN_IOCTL, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {.len = pagemap_scan ? sizeof scan / sizeof scan[0] : sizeof uffd / sizeof uffd[0],
                            .filter = pagemap_scan ? scan : uffd};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
    _exit(3);
}

static void expect_concurrent_mprotect(void) {
  gctest_collect();
  EXPECT(strcmp(gort__dirty_name(), "mprotect") == 0, "the backend is %s", gort__dirty_name());
  EXPECT(gctest_memstats()->gc_concurrent, "cycles are not concurrent");
}

INNER_TEST(inner_probe_without_userfaultfd) {
  EXPECT(syscall(SYS_userfaultfd, 0) < 0 && errno == EPERM, "userfaultfd is not refused here");
  expect_concurrent_mprotect();
}

INNER_TEST(inner_probe_without_pagemap_scan) { expect_concurrent_mprotect(); }

// Runs the inner case under the filter, in a child of its own.
static void run_refused(bool pagemap_scan, const char *inner) {
  char self[512];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  EXPECT(n > 0, "readlink");
  self[n > 0 ? n : 0] = '\0';
  int p[2];
  EXPECT(pipe(p) == 0, "pipe");
  pid_t pid = fork();
  EXPECT(pid >= 0, "fork");
  if (pid == 0) {
    refuse(pagemap_scan);
    alarm(20);
    unsetenv("GORT_DEBUG");
    dup2(p[1], 1);
    dup2(p[1], 2);
    close(p[0]);
    execl(self, self, inner, (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  FILE *f = fdopen(p[0], "r");
  char line[512];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) printf("    inner: %s", line);  // never counted
  if (f != NULL) fclose(f);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the inner run (under seccomp) ended with status %#x", st);
}

TEST(without_userfaultfd_the_probe_falls_back_to_mprotect) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  run_refused(false, "inner_probe_without_userfaultfd");
}

TEST(without_pagemap_scan_the_probe_falls_back_to_mprotect) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  run_refused(true, "inner_probe_without_pagemap_scan");
}

// ---- the program's other signal handlers write into the heap ---------------------------

// A handler for SIGALRM that writes into scanned collected objects, its
// timer firing every 100 us while the program writes the heap and cycles
// run. Two ways it once met SIGSEGV blocked, and the kernel killed the
// process at the handler's first write to a protected granule (a helper's
// hunt): it ran inside gort's fault handler, whose mask held only the stop
// signal (9 of 9 runs); or its own sa_mask was full (6 of 6).
static void **alarm_box;
static _Atomic long alarm_writes;

static void on_alarm(int sig) {
  (void)sig;
  long n = atomic_fetch_add(&alarm_writes, 1);
  uint64_t *x = alarm_box[n % 64];
  x[1] += 1;  // a write into the heap
}

static void handler_writes_during_cycles(bool full_mask) {
  expect_mprotect();
  alarm_box = gort_gc_alloc(64 * sizeof(void *));
  for (int i = 0; i < 64; i++) alarm_box[i] = gort_gc_alloc(64);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  if (full_mask) sigfillset(&sa.sa_mask);
  EXPECT(sigaction(SIGALRM, &sa, NULL) == 0);
  struct itimerval it = {{0, 100}, {0, 100}};
  EXPECT(setitimer(ITIMER_REAL, &it, NULL) == 0);
  double end = gctest_now() + 1.0;
  uint64_t rng = harness_seed() | 1;
  void **ring = gort_gc_alloc(4096 * sizeof(void *));
  while (gctest_now() < end) {
    for (int k = 0; k < 4096; k++) ring[test_rand(&rng) % 4096] = gort_gc_alloc(48);
    ((uint64_t *)alarm_box[test_rand(&rng) % 64])[2]++;
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  EXPECT(atomic_load(&alarm_writes) > 100, "%ld handler runs", atomic_load(&alarm_writes));
}

INNER_TEST(inner_alarm_handler_writes) { handler_writes_during_cycles(false); }
INNER_TEST(inner_alarm_handler_with_a_full_mask_writes) { handler_writes_during_cycles(true); }

TEST(other_signal_handlers_write_into_the_heap_during_cycles) {
  SKIP_IF(GCTEST_TSAN, "the mprotect backend refuses under ThreadSanitizer, which owns SIGSEGV");
  EXPECT(harness_run_inner("inner_alarm_handler_writes", ENV));
  EXPECT(harness_run_inner("inner_alarm_handler_with_a_full_mask_writes", ENV));
}
