// Program counters to names: module, function, file and line. See symbolize.c.

#ifndef GORT_OBS_SYMBOLIZE_H
#define GORT_OBS_SYMBOLIZE_H

#include <elf.h>
#include <stddef.h>
#include <stdint.h>

// A frame of a function inlined at a PC: the function and its line.
typedef struct {
  const char *func, *file;  // either may be NULL
  uint32_t line;
} sym_frame_t;

typedef struct {
  uintptr_t pc;          // in: a return address (the call is the instruction before)
  const char *module;    // the loaded object's path, or NULL if pc is in none
  uintptr_t module_off;  // pc less the object's load address
  const char *func;      // the function, or NULL
  uintptr_t func_off;    // pc less the function's start
  const char *file;      // the source file, or NULL without line tables
  uint32_t line;
  // Code inlined at pc: func, file and line above are the innermost
  // inlined function's, and inl[0..ninl) the frames it was inlined into,
  // outward, each at its call site; the last one's func is the symbol's.
  const sym_frame_t *inl;
  uint32_t ninl;
} sym_t;

// Fills in syms[0..n) (pc set by the caller). Reads the loaded objects'
// files (and their separate debug files under /usr/lib/debug, if any);
// call from normal context: it takes the loader's lock (dladdr) and maps
// files. The strings stay valid until gort__sym_release. Never allocates
// from gort's heap.
void gort__sym_resolve(sym_t *syms, size_t n);
void gort__sym_release(void);

// The header of the section called name in the ELF file mapped at
// file[0, size), if it has contents there; else NULL.
const Elf64_Shdr *gort__elf_section(const void *file, size_t size, const char *name);

// Sorts n elements of size bytes in place (heapsort: no allocation, no
// recursion).
void gort__heapsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));

#endif  // GORT_OBS_SYMBOLIZE_H
