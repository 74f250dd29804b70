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

/* The kernel's struct sched_attr (glibc has no wrapper before 2.41). */
struct boost_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};
#define BOOST_RESET_ON_FORK 0x01 /* SCHED_FLAG_RESET_ON_FORK */
#define BOOST_NICE (-20)

_Static_assert(sizeof(struct boost_attr) <= sizeof(((struct boost *)0)->saved), "room for the saved attributes");

void boost_begin(struct boost *b)
{
    static bool warned;
    struct boost_attr old = {0}, a;
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
    a.sched_flags = BOOST_RESET_ON_FORK;
    a.sched_runtime = 0;
    if (syscall(SYS_sched_setattr, 0, &a, 0) < 0) {
        if (!warned)
            log_warn("moves run at the daemon's priority: sched_setattr(nice %d): %s", BOOST_NICE,
                     strerror(errno));
        warned = true;
        return;
    }
    old.size = sizeof old;
    memcpy(b->saved, &old, sizeof old);
    b->on = true;
}

void boost_end(struct boost *b)
{
    struct boost_attr old;
    if (!b->on)
        return;
    b->on = false;
    memcpy(&old, b->saved, sizeof old);
    if (syscall(SYS_sched_setattr, 0, &old, 0) < 0)
        log_warn("a move's thread keeps nice %d: sched_setattr: %s", BOOST_NICE, strerror(errno));
}
