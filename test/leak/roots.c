// Blocks kept only in a global, a static variable, a callee-saved
// register or a thread-local variable are not leaks; the same blocks
// dropped are (so that the first checks pass because of those roots, not
// of a stale copy somewhere).
#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include "leaktest.h"

void *in_global;
static void *volatile in_static;
static __thread void *volatile in_tls;

// keep_in_r15(p, fn): calls fn with p held in r15 alone (a callee-saved
// register: the check finds it spilled by a callee, or by the check itself).
int keep_in_r15(void *p, int (*fn)(void));
__asm__(".text\n"
        ".globl keep_in_r15\n"
        ".type keep_in_r15, @function\n"
        "keep_in_r15:\n"
        "  push %r15\n"
        "  mov %rdi, %r15\n"
        "  xor %edi, %edi\n"
        "  call *%rsi\n"
        "  xor %r15d, %r15d\n"
        "  pop %r15\n"
        "  ret\n"
        ".size keep_in_r15, .-keep_in_r15\n");

__attribute__((noinline)) void *make_for_register(void) { return malloc(48); }
__attribute__((noinline)) void make_for_globals(void) {
  in_global = malloc(64);
  in_static = malloc(80);
  in_tls = malloc(96);
}

__attribute__((noinline)) static int check_quietly(void) {
  leaktest_clear_stack();
  return gort_leak_check(open("/dev/null", 1));
}

int main(void) {
  make_for_globals();
  int with_roots = keep_in_r15(make_for_register(), check_quietly);
  int reg_dropped = keep_in_r15((leaktest_sink = make_for_register(), leaktest_sink = NULL, NULL), check_quietly);
  in_global = in_static = in_tls = NULL;
  int all_dropped = check_quietly();
  printf("roots: %d %d %d\n", with_roots, reg_dropped, all_dropped);
  return 0;
}
