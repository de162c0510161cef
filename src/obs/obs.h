// The observability layer's start-up (registered by the shim, which every
// program using gort's malloc links).

#ifndef GORT_OBS_OBS_H
#define GORT_OBS_OBS_H

void gort__obs_init(void);

#endif  // GORT_OBS_OBS_H
