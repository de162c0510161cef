/* gort: a Go-style managed runtime for C. The umbrella header. */
#ifndef GORT_H
#define GORT_H

#include "gort/alloc.h"
#include "gort/chan.h"
#include "gort/context.h"
#include "gort/gc.h"
#include "gort/metrics.h"
#include "gort/pool.h"
#include "gort/prof.h"
#include "gort/sched.h"
#include "gort/sync.h"
#include "gort/version.h"

#endif /* GORT_H */
