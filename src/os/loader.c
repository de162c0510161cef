// How the program was loaded: by ld.so (a dynamically linked program) or
// by the kernel alone (static, static-pie).
//
// AT_BASE, the interpreter's load address, answers for a program the
// kernel started through its PT_INTERP; but a program started as
// `ld.so ./prog` has AT_BASE 0 (the kernel ran ld.so itself), and taking
// it for a static one cost the profiler and the leak check every module
// dlopened later (no _dl_find_object) and the pthread descriptor size (no
// dlsym). ld.so then rewrites AT_PHDR to the program's headers, whose
// PT_INTERP says it is dynamically linked; a static program has none.

#define _GNU_SOURCE
#include <link.h>
#include <stdatomic.h>
#include <sys/auxv.h>

#include "os.h"

bool gort__os_loaded_by_ld_so(void) {
  static _Atomic int known;  // 0 unknown, 1 yes, -1 no
  int k = atomic_load_explicit(&known, memory_order_relaxed);
  if (k == 0) {
    bool yes = getauxval(AT_BASE) != 0;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)getauxval(AT_PHDR);
    for (unsigned long i = 0, n = getauxval(AT_PHNUM); !yes && ph != NULL && i < n; i++)
      yes = ph[i].p_type == PT_INTERP;
    k = yes ? 1 : -1;
    atomic_store_explicit(&known, k, memory_order_relaxed);
  }
  return k > 0;
}
