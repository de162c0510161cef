// A thread runs leak checks back to back while the main thread forks
// children that exit normally: each child checks its own heap at exit,
// and none waits for the check the parent's thread was running when it
// forked (the child forgets it). The parent gives up after a minute.
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "leaktest.h"

static atomic_int stop;

static void *checker(void *arg) {
  (void)arg;
  FILE *devnull = fopen("/dev/null", "w");
  while (!atomic_load(&stop)) gort_leak_check(fileno(devnull));
  fclose(devnull);
  return NULL;
}

int main(void) {
  alarm(60);
  pthread_t t;
  pthread_create(&t, NULL, checker, NULL);
  int exited = 0;
  for (int i = 0; i < 20; i++) {
    pid_t pid = fork();
    if (pid == 0) exit(0);
    int st;
    if (waitpid(pid, &st, 0) == pid && WIFEXITED(st)) exited++;
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  printf("forkcheck: %d children exited\n", exited);
  return 0;
}
