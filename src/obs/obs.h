// The observability layer's start-up (registered by the shim, which every
// program using gort's malloc links).

#ifndef GORT_OBS_OBS_H
#define GORT_OBS_OBS_H

void gort__obs_init(void);
// The exit's writers (GORT_STATS, GORT_HEAPPROFILE), once: an atexit
// handler, and the leak check's exit, which must not end the process
// before them (an atexit handler registered during libc's start-up runs
// after the destructors, the leak check's among them).
void gort__obs_write_at_exit(void);

#endif  // GORT_OBS_OBS_H
