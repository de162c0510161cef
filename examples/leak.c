// The leak check (GORT_LEAKCHECK=1) on a small program with two bugs of the
// kinds C programs have: a cache that drops a whole entry when a key is
// updated (the old entry and its value string are lost together: one
// direct leak and one indirect), and an error path that forgets a buffer.
// Nothing here calls gort: the check needs only the environment variable.
//
//   cc -g -O0 examples/leak.c -o leak    (at -O1 and above, inlined functions
//                                         are frames of their own, at one address)
//   GORT_LEAKCHECK=1 LD_PRELOAD=build/libgort.so ./leak
//
// (README.md, "Finding leaks", shows the report.) A program linked with
// libgort.a runs the same check with the same variable.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
  char *key;
  char *value;
  struct entry *next;
} entry_t;

#define NBUCKETS 64
static entry_t *buckets[NBUCKETS];

static unsigned hash(const char *s) {
  unsigned h = 5381;
  while (*s) h = h * 33 + (unsigned char)*s++;
  return h % NBUCKETS;
}

static entry_t *new_entry(const char *key, const char *value) {
  entry_t *e = malloc(sizeof *e);
  e->key = strdup(key);
  e->value = strdup(value);
  e->next = NULL;
  return e;
}

// The bug: an update replaces the entry in its chain but never frees the
// one it replaced.
static void cache_put(const char *key, const char *value) {
  entry_t **p = &buckets[hash(key)];
  for (; *p != NULL; p = &(*p)->next)
    if (strcmp((*p)->key, key) == 0) {
      entry_t *e = new_entry(key, value);
      e->next = (*p)->next;
      *p = e;  // the old entry, with its key and value, is lost
      return;
    }
  *p = new_entry(key, value);
}

// The other bug: a request that fails to parse leaks its buffer.
static int handle_request(const char *line) {
  char *buf = malloc(256);
  snprintf(buf, 256, "%s", line);
  char *eq = strchr(buf, '=');
  if (eq == NULL) return -1;  // buf is never freed on this path
  *eq = '\0';
  cache_put(buf, eq + 1);
  free(buf);
  return 0;
}

int main(void) {
  static const char *requests[] = {"user=ada", "lang=c", "user=grace", "garbage", "lang=go", "bad"};
  int failed = 0;
  for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) failed += handle_request(requests[i]) != 0;
  printf("leak: %d requests failed to parse\n", failed);
  return 0;
}
