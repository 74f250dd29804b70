/*
 * boost.h -- the calling thread ahead of the node's busy processes while a
 * move has a process frozen.
 *
 * Owns: raising and restoring one thread's CPU share.  A frozen process
 * waits for capture, stream and restore, which are CPU work; on a node
 * whose cores are taken by busy-polling ranks the daemon would get its fair
 * share only, and the frozen time would grow with the load.  While boosted
 * the thread runs at nice -20 (normal policy: it still yields to real-time
 * tasks and never starves the node for longer than the move), and a process
 * it forks (the restored process) starts at its own nice value again
 * (SCHED_FLAG_RESET_ON_FORK).  The long part of a move, the image's
 * stream, gets a soft boost (nice -5): ahead of busy processes, but a
 * latency-bound job on the node still gets a quarter of a CPU and runs
 * every few milliseconds (at nice -20 it went without a CPU for 750 ms
 * during a 512 MiB stream; bench/move_impact.sh).
 */
#ifndef MIGRD_UTIL_BOOST_H
#define MIGRD_UTIL_BOOST_H

#include <stdbool.h>

#include "sched_attr.h"

struct boost {
    bool on;
    int nice;
    struct migrd_sched_attr saved; /* the thread's attributes before */
};

/* Boost the calling thread; a failure is logged once and leaves it as it was. */
void boost_begin(struct boost *b);
/* The same, for a long phase: nice -5. */
void boost_begin_soft(struct boost *b);
/* Give it back what it had (nothing if boost_begin did not boost). */
void boost_end(struct boost *b);

#endif
