// Larson with sized delete: the larson server shape through C++ new and delete.
//
// Larson and Krishnan's benchmark (ISMM 1998) models a server: each worker
// thread replaces random slots of its own array of blocks, and workers are
// retired and replaced, the successor taking over its predecessor's array.
// mimalloc-bench's larson-sized runs it with sized deallocation. Here the
// blocks are C++ objects of 16..1000 bytes (every multiple of 8, uniformly)
// deleted through a pointer to their polymorphic base, so the compiler calls
// operator delete(void*, size_t) with the object's size, as real C++ code
// does (build with -fsized-deallocation). An allocator that trusts the size
// can skip the lookup of the block's size class on free.
//
// Shape, for T = the number of online CPUs (at least 2) lineages:
//   1. The main thread allocates every lineage's 5000 objects.
//   2. Each lineage starts one worker thread. A worker replaces 100000
//      random slots (delete, then new of a random size), then starts its
//      successor on the same array and exits. So every worker frees blocks
//      that a dead thread allocated, and starts with an empty thread cache.
//   3. The timer stops when the last generation of every lineage is done.
// The work is fixed rather than timed, so the figure is a time. Prints
// "larson-sized <seconds> <peak RSS KiB>", as classic.c does.

#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include <array>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "bench.h"

namespace {

struct Obj {
  virtual ~Obj() = default;
};

// An object of exactly N bytes. Deleting it through Obj* runs Blob<N>'s
// deleting destructor, which calls operator delete(this, N).
template <std::size_t N>
struct Blob final : Obj {
  char payload[N - sizeof(Obj)];
  Blob() {
    // Touch both ends, as larson writes into its blocks.
    payload[0] = 1;
    payload[sizeof payload - 1] = 1;
  }
};

constexpr std::size_t kMinSize = 16, kMaxSize = 1000, kStep = 8;
constexpr std::size_t kNumSizes = (kMaxSize - kMinSize) / kStep + 1;  // 16, 24, ..., 1000

using Factory = Obj *(*)();

template <std::size_t... I>
constexpr std::array<Factory, sizeof...(I)> make_factories(std::index_sequence<I...>) {
  static_assert(((sizeof(Blob<kMinSize + kStep * I>) == kMinSize + kStep * I) && ...));
  return {{[]() -> Obj * { return new Blob<kMinSize + kStep * I>; }...}};
}
constexpr auto kNew = make_factories(std::make_index_sequence<kNumSizes>{});

constexpr int kSlots = 5000;
constexpr long kOpsPerGeneration = 100000;

struct Lineage {
  Obj *slot[kSlots];
  uint64_t rng;
  long generations_left;  // touched only by the lineage's one live worker
};

sem_t lineage_done;  // posted by the last worker of each lineage

Obj *new_random(uint64_t *rng) { return kNew[bench_rand(rng) % kNumSizes](); }

void *worker(void *arg);

void start_worker(Lineage *l) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  if (pthread_create(&t, &attr, worker, l) != 0) {
    perror("classic_cxx: pthread_create");
    std::exit(1);
  }
  pthread_attr_destroy(&attr);
}

void *worker(void *arg) {
  auto *l = static_cast<Lineage *>(arg);
  for (long i = 0; i < kOpsPerGeneration; i++) {
    std::size_t j = bench_rand(&l->rng) % kSlots;
    delete l->slot[j];
    l->slot[j] = new_random(&l->rng);
  }
  // The successor is started by the retiring thread, as in larson.
  if (--l->generations_left > 0)
    start_worker(l);
  else
    sem_post(&lineage_done);
  return nullptr;
}

void larson_sized(long ops) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  int lineages = n < 2 ? 2 : static_cast<int>(n);
  long generations = ops / kOpsPerGeneration / lineages;
  if (generations < 1) generations = 1;
  sem_init(&lineage_done, 0, 0);
  auto *ls = new Lineage[lineages];
  for (int t = 0; t < lineages; t++) {
    ls[t].rng = static_cast<uint64_t>(t) * 7919 + 4141;
    ls[t].generations_left = generations;
    for (Obj *&o : ls[t].slot) o = new_random(&ls[t].rng);
  }
  double t0 = bench_now();
  for (int t = 0; t < lineages; t++) start_worker(&ls[t]);
  for (int t = 0; t < lineages; t++) sem_wait(&lineage_done);
  double t1 = bench_now();
  for (int t = 0; t < lineages; t++)
    for (Obj *o : ls[t].slot) delete o;
  delete[] ls;
  std::printf("larson-sized %.4f %ld\n", t1 - t0, bench_peak_rss_kib());
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 2 || std::strcmp(argv[1], "larson-sized") != 0) {
    std::fprintf(stderr, "usage: classic_cxx larson-sized [scale]\n");
    return 2;
  }
  double scale = argc > 2 ? std::atof(argv[2]) : 1.0;
  larson_sized(static_cast<long>(20000000 * scale));
  return 0;
}
