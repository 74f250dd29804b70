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
#define BOOST_SOFT_NICE (-5)

static void boost_to(struct boost *b, int nice)
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
    a.sched_nice = nice;
    a.sched_flags = MIGRD_SCHED_RESET_ON_FORK;
    a.sched_runtime = 0;
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) {
        if (!warned)
            log_warn("moves run at the daemon's priority: sched_setattr(nice %d): %s", nice, strerror(errno));
        warned = true;
        return;
    }
    old.size = sizeof old;
    b->saved = old;
    b->on = true;
    b->nice = nice;
}

void boost_begin(struct boost *b)
{
    boost_to(b, BOOST_NICE);
}

void boost_begin_soft(struct boost *b)
{
    boost_to(b, BOOST_SOFT_NICE);
}

void boost_end(struct boost *b)
{
    if (!b->on)
        return;
    b->on = false;
    if (syscall(SYS_sched_setattr, 0, &b->saved, 0) < 0)
        log_warn("a move's thread keeps nice %d: sched_setattr: %s", b->nice, strerror(errno));
}
