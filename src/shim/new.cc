// C++ operator new and delete, all twenty variants, on gort's heap.
//
// In C++ so that a failed new calls the new-handler and then throws
// std::bad_alloc, and nothrow new returns nullptr, exactly as the standard
// library's own operators do.

#include <new>

#include "gort/alloc.h"

#define SHIM __attribute__((visibility("default")))

namespace {

void *alloc_or_throw(std::size_t n) {
  for (;;) {
    void *p = gort_malloc(n);
    if (p != nullptr) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}

void *alloc_aligned_or_throw(std::size_t n, std::align_val_t al) {
  for (;;) {
    void *p = gort_aligned_alloc(static_cast<std::size_t>(al), n);
    if (p != nullptr) return p;
    std::new_handler h = std::get_new_handler();
    if (h == nullptr) throw std::bad_alloc();
    h();
  }
}

void *alloc_nothrow(std::size_t n) noexcept {
  try {
    return alloc_or_throw(n);
  } catch (...) {
    return nullptr;
  }
}

void *alloc_aligned_nothrow(std::size_t n, std::align_val_t al) noexcept {
  try {
    return alloc_aligned_or_throw(n, al);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

SHIM void *operator new(std::size_t n) { return alloc_or_throw(n); }
SHIM void *operator new[](std::size_t n) { return alloc_or_throw(n); }
SHIM void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return alloc_nothrow(n); }
SHIM void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return alloc_nothrow(n); }
SHIM void *operator new(std::size_t n, std::align_val_t al) { return alloc_aligned_or_throw(n, al); }
SHIM void *operator new[](std::size_t n, std::align_val_t al) { return alloc_aligned_or_throw(n, al); }
SHIM void *operator new(std::size_t n, std::align_val_t al, const std::nothrow_t &) noexcept {
  return alloc_aligned_nothrow(n, al);
}
SHIM void *operator new[](std::size_t n, std::align_val_t al, const std::nothrow_t &) noexcept {
  return alloc_aligned_nothrow(n, al);
}

SHIM void operator delete(void *p) noexcept { gort_free(p); }
SHIM void operator delete[](void *p) noexcept { gort_free(p); }
SHIM void operator delete(void *p, const std::nothrow_t &) noexcept { gort_free(p); }
SHIM void operator delete[](void *p, const std::nothrow_t &) noexcept { gort_free(p); }
SHIM void operator delete(void *p, std::size_t) noexcept { gort_free(p); }
SHIM void operator delete[](void *p, std::size_t) noexcept { gort_free(p); }
SHIM void operator delete(void *p, std::align_val_t) noexcept { gort_free(p); }
SHIM void operator delete[](void *p, std::align_val_t) noexcept { gort_free(p); }
SHIM void operator delete(void *p, std::align_val_t, const std::nothrow_t &) noexcept { gort_free(p); }
SHIM void operator delete[](void *p, std::align_val_t, const std::nothrow_t &) noexcept { gort_free(p); }
SHIM void operator delete(void *p, std::size_t, std::align_val_t) noexcept { gort_free(p); }
SHIM void operator delete[](void *p, std::size_t, std::align_val_t) noexcept { gort_free(p); }
