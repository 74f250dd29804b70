/*
 * relay.c -- see relay.h.
 */
#include "relay.h"

#include <errno.h>
#include <event2/event.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "migrd/util/sched_attr.h"
#include "mbox.h"
#include "office.h"
#include "postal.h"

#define RELAY_SHORT_SLICE_NS 100000

int relay_parse_sched(const char *name, enum relay_sched *out)
{
    static const char *const names[] = {[RELAY_SCHED_NORMAL] = "normal", [RELAY_SCHED_LATENCY] = "latency",
                                        [RELAY_SCHED_REALTIME] = "realtime"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i])) {
            *out = (enum relay_sched)i;
            return 0;
        }
    return -1;
}

/* Asleep: the --sched mode, so that a wake-up preempts a busy rank (EEVDF
 * lets a task with a short slice, Linux >= 6.12, or a real-time one run at
 * once).  Polling: the normal policy and slice, so that yields alternate. */
static int apply_sched(const struct postal *d, bool polling)
{
    struct migrd_sched_attr a = {.size = sizeof a, .sched_policy = SCHED_OTHER, .sched_nice = d->nice};
    if (!polling && d->sched == RELAY_SCHED_LATENCY)
        a.sched_runtime = RELAY_SHORT_SLICE_NS;
    if (!polling && d->sched == RELAY_SCHED_REALTIME) {
        a.sched_policy = SCHED_FIFO;
        a.sched_priority = 1;
        a.sched_flags = MIGRD_SCHED_RESET_ON_FORK;
        a.sched_nice = 0;
    }
    return syscall(SYS_sched_setattr, 0, &a, 0) < 0 ? -errno : 0;
}

void relay_init(struct postal *d, enum relay_sched mode, uint32_t poll_us)
{
    d->poll_us = poll_us;
    d->sched = mode;
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    d->nice = errno ? 0 : nice;
    if (mode == RELAY_SCHED_NORMAL)
        return;
    int rc = apply_sched(d, false);
    if (rc < 0) {
        if (mode == RELAY_SCHED_LATENCY)
            log_warn("cannot shorten the time slice (sched_setattr: %s): relaying may wait for busy "
                     "ranks' time slices",
                     strerror(-rc));
        else
            log_warn("cannot run at real-time priority (%s): relaying may wait for busy ranks' time "
                     "slices",
                     strerror(-rc));
        d->sched = RELAY_SCHED_NORMAL; /* do not try again at every poll */
        return;
    }
    log_info(mode == RELAY_SCHED_LATENCY ? "relaying with a 0.1 ms time slice (wakes ahead of busy ranks)"
                                         : "relaying at real-time priority SCHED_FIFO 1");
}

static int drain_one(struct mbox *m, void *arg)
{
    (void)arg;
    if (!m->tx_busy)
        postal_drain(m); /* arms the outbox when empty, unless polling */
    return 0;
}

/* Relay what every outbox holds; outside polling this also arms them. */
static void drain_all(struct postal *d) { mbox_foreach(d, drain_one, NULL); }

static void set_polling(struct postal *d, bool on)
{
    d->polling = on;
    atomic_store_explicit(&d->node_sh->relay_busy, on, memory_order_relaxed);
    if (d->sched != RELAY_SCHED_NORMAL) {
        int rc = apply_sched(d, on);
        if (rc < 0)
            log_debug("sched_setattr (%s polling): %s", on ? "start" : "stop", strerror(-rc));
    }
    if (!on)
        drain_all(d); /* arms the outboxes, relaying what came in meanwhile */
}

void relay_run(struct postal *d, const bool *stop)
{
    uint64_t seen = d->relay_work, last_us = 0;
    while (!*stop) {
        if (!d->polling)
            atomic_store_explicit(&d->node_sh->relay_busy, 0, memory_order_relaxed);
        if (event_base_loop(d->base, d->polling ? EVLOOP_ONCE | EVLOOP_NONBLOCK : EVLOOP_ONCE) < 0) {
            log_error("event loop failed");
            return;
        }
        if (d->polling)
            drain_all(d);
        if (d->poll_us == 0)
            continue;
        uint64_t now = migrd_now_us();
        if (d->relay_work != seen) {
            seen = d->relay_work;
            last_us = now;
            if (!d->polling)
                set_polling(d, true);
        } else if (d->polling && now - last_us >= d->poll_us) {
            set_polling(d, false); /* quiet for poll_us: sleep again */
            continue;
        }
        if (d->polling)
            sched_yield(); /* a rank on this core may wait for what we relayed */
    }
}
