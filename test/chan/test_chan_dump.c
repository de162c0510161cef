// The goroutine dump shows a goroutine leaked on a channel: its wait
// reason and the channel's address.

#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>

#include "chantest.h"

void leaked_receiver(void *arg);  // not static: dladdr names it (-rdynamic)
void leaked_receiver(void *arg) {
  int v;
  gort_chan_recv(arg, &v);
}

void leaked_sender(void *arg);
void leaked_sender(void *arg) {
  int v = 1;
  gort_chan_send(arg, &v);
}

void leaked_selector(void *arg);
void leaked_selector(void *arg) {
  int v;
  gort_select_case_t cs[1] = {{.chan = arg, .dir = GORT_SELECT_RECV, .elem = &v}};
  gort_select(cs, 1, -1);
}

TEST(the_dump_shows_goroutines_blocked_on_a_channel_with_its_address) {
  gort_chan_t *r = gort_chan_make(sizeof(int), 0), *s = gort_chan_make(sizeof(int), 0);
  EXPECT(gort_go(leaked_receiver, r) == 0);
  EXPECT(gort_go(leaked_sender, s) == 0);
  EXPECT(gort_go(leaked_selector, r) == 0);
  // A loaded machine may not have run them yet: wait until all three
  // are parked (a dump of a runnable goroutine shows no wait reason).
  static char buf[8192];
  for (int i = 0; i < 500; i++) {
    dump_to(buf, sizeof buf);
    if (dump_has_entry(buf, "[chan receive, ", r, "leaked_receiver") &&
        dump_has_entry(buf, "[chan send, ", s, "leaked_sender") && strstr(buf, "[select, ") != NULL)
      break;
    usleep(10000);
  }
  EXPECT(dump_has_entry(buf, "[chan receive, ", r, "leaked_receiver"), "%s", buf);
  EXPECT(dump_has_entry(buf, "[chan send, ", s, "leaked_sender"), "%s", buf);
  EXPECT(strstr(buf, "[select, ") != NULL && strstr(buf, "leaked_selector") != NULL, "%s", buf);
}
