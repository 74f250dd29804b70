/*
 * boost.c -- see boost.h.
 */
#include "boost.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "sched_attr.h"

#define BOOST_NICE (-20)

void boost_begin(struct boost *b)
{
    static bool warned;
    struct migrd_sched_attr old = {0}, a;
    b->on = false;
    if (syscall(SYS_sched_getattr, 0, &old, sizeof old, 0) < 0) {
        if (!warned)
            log_warn("moves run at the daemon's priority: sched_getattr: %s", strerror(errno));
        warned = true;
        return;
    }
    if (old.sched_policy != SCHED_OTHER && old.sched_policy != SCHED_BATCH)
        return; /* real-time already: nothing to gain */
    a = old;
    a.size = sizeof a;
    a.sched_policy = SCHED_OTHER;
    a.sched_nice = BOOST_NICE;
    a.sched_flags = MIGRD_SCHED_RESET_ON_FORK;
    a.sched_runtime = 0;
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) {
        if (!warned)
            log_warn("moves run at the daemon's priority: sched_setattr(nice %d): %s", BOOST_NICE,
                     strerror(errno));
        warned = true;
        return;
    }
    old.size = sizeof old;
    b->saved = old;
    b->on = true;
}

void boost_end(struct boost *b)
{
    if (!b->on)
        return;
    b->on = false;
    if (syscall(SYS_sched_setattr, 0, &b->saved, 0) < 0)
        log_warn("a move's thread keeps nice %d: sched_setattr: %s", BOOST_NICE, strerror(errno));
}
