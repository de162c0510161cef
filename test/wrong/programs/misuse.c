// One misuse per invocation, by name: run under LD_PRELOAD=libgort.so by
// test/preload/misuse.sh, which expects an abort and gort's message.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <malloc.h>

static int global;

int main(int argc, char **argv) {
  const char *c = argc > 1 ? argv[1] : "";
  char local[64];
  volatile char *vp;
  if (!strcmp(c, "double_free_small")) { void *p = malloc(32); free(p); free(p); }
  else if (!strcmp(c, "double_free_large")) { void *p = malloc(1 << 20); free(p); free(p); }
  else if (!strcmp(c, "double_free_delayed")) { void *p = malloc(32), *q = malloc(32); free(p); free(q); free(p); }
  else if (!strcmp(c, "free_stack")) free(local);
  else if (!strcmp(c, "free_global")) free(&global);
  else if (!strcmp(c, "free_mmap")) free(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  else if (!strcmp(c, "free_unmapped")) free((void *)0x1234560);
  else if (!strcmp(c, "free_interior")) { char *p = malloc(64); free(p + 16); }
  else if (!strcmp(c, "free_interior_large")) { char *p = malloc(200000); free(p + 4096); }
  else if (!strcmp(c, "realloc_freed")) { void *p = malloc(32); free(p); p = realloc(p, 64); }
  else if (!strcmp(c, "realloc_interior")) { char *p = malloc(64); p = realloc(p + 16, 200); }
  else if (!strcmp(c, "realloc_stack")) { void *p = realloc(local, 100); (void)p; }
  else if (!strcmp(c, "usable_size_freed")) { void *p = malloc(32); free(p); printf("%zu\n", malloc_usable_size(p)); }
  /* The overflow flips the byte rather than storing a constant: a canary
     is random, and one byte in 256 already equals any constant, which made
     a fixed 'x' pass unnoticed once in 256 runs. */
  else if (!strcmp(c, "overflow_small")) { vp = malloc(24); vp[24] ^= 0x5a; free((void *)vp); }
  else if (!strcmp(c, "overflow_large")) { vp = malloc(100000); vp[100003] ^= 0x5a; free((void *)vp); }
  else if (!strcmp(c, "write_after_free")) {
    vp = malloc(100); free((void *)vp); vp[40] = 'x';
    for (int i = 0; i < 10000; i++) free(malloc(100));  // reuse the block
  }
  else if (!strcmp(c, "write_after_free_link")) {
    /* Forge the freed block's free-list link, as an exploit would. */
    void **b = malloc(100); free(b); b[0] = (void *)&global;
    for (int i = 0; i < 10000; i++) malloc(100);
  }
  else { fprintf(stderr, "unknown case %s\n", c); return 2; }
  printf("returned\n");
  return 0;
}
