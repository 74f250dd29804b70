/*
 * sched_attr.h -- the kernel's struct sched_attr, for sched_setattr(2) and
 * sched_getattr(2), which glibc (before 2.41) does not wrap.  Used by the
 * relay's sleeping policy (postal/relay.c) and a move's boost (boost.c).
 */
#ifndef MIGRD_SCHED_ATTR_H
#define MIGRD_SCHED_ATTR_H

#include <stdint.h>

struct migrd_sched_attr {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
};
#define MIGRD_SCHED_RESET_ON_FORK 0x01 /* SCHED_FLAG_RESET_ON_FORK */

#endif
