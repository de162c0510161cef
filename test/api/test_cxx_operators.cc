// Every C++ operator new/delete on gort's heap (src/shim/new.c), linked
// from a C++ program: bad_alloc, nothrow, alignment, new-handler.
#include <cstdint>
#include <new>

#include "gort/alloc.h"
#include "test.h"

// volatile: the compiler must not see the size and reject the program.
static volatile std::size_t huge = SIZE_MAX / 4;

struct alignas(512) Big {
  char c[700];
};

TEST(plain_and_array_new_use_gorts_heap) {
  int *p = new int(5);
  int *a = new int[1000];
  EXPECT(gort_usable_size(p) >= sizeof(int) && gort_usable_size(a) >= 4000);
  delete p;
  delete[] a;
  ::operator delete(::operator new(100), 100);  // sized delete
  ::operator delete[](::operator new[](100), 100);
}

TEST(failed_new_throws_bad_alloc_and_nothrow_returns_null) {
  bool caught = false;
  try {
    char *p = new char[huge];
    delete[] p;
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  EXPECT(caught);
  EXPECT(new (std::nothrow) char[huge] == nullptr);
  EXPECT(::operator new(huge, std::nothrow) == nullptr);
  EXPECT(::operator new[](huge, std::nothrow) == nullptr);
  EXPECT(::operator new(huge, std::align_val_t(64), std::nothrow) == nullptr);
  EXPECT(::operator new[](huge, std::align_val_t(64), std::nothrow) == nullptr);
  caught = false;
  try {
    void *p = ::operator new(huge, std::align_val_t(4096));
    ::operator delete(p);
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  EXPECT(caught, "aligned new throws too");
}

TEST(aligned_new_honours_alignment) {
  for (int i = 0; i < 100; i++) {
    Big *b = new Big;
    EXPECT((uintptr_t)b % 512 == 0);
    delete b;
    Big *arr = new Big[3];
    EXPECT((uintptr_t)arr % 512 == 0);
    delete[] arr;
  }
  void *p = ::operator new(10, std::align_val_t(1 << 16));
  EXPECT((uintptr_t)p % (1 << 16) == 0);
  ::operator delete(p, std::align_val_t(1 << 16));
  p = ::operator new[](10, std::align_val_t(256), std::nothrow);
  ::operator delete[](p, std::align_val_t(256), std::nothrow);
  p = ::operator new(10, std::align_val_t(256));
  ::operator delete(p, 10, std::align_val_t(256));
  p = ::operator new[](10, std::align_val_t(256));
  ::operator delete[](p, 10, std::align_val_t(256));
  p = ::operator new(10, std::nothrow);
  ::operator delete(p, std::nothrow);
  p = ::operator new[](10, std::nothrow);
  ::operator delete[](p, std::nothrow);
  p = ::operator new(10, std::align_val_t(64), std::nothrow);
  ::operator delete(p, std::align_val_t(64), std::nothrow);
  p = ::operator new[](10, std::align_val_t(64));
  ::operator delete[](p, std::align_val_t(64));
}

static int handler_calls;
static void handler() {
  if (++handler_calls >= 3) std::set_new_handler(nullptr);
}

TEST(new_handler_is_called_before_giving_up) {
  std::set_new_handler(handler);
  bool caught = false;
  try {
    void *p = ::operator new(huge);
    ::operator delete(p);
  } catch (const std::bad_alloc &) {
    caught = true;
  }
  EXPECT(caught && handler_calls == 3, "handler called %d times", handler_calls);
}
