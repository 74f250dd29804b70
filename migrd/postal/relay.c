/*
 * relay.c -- see relay.h.
 */
#include "relay.h"

#include <errno.h>
#include <event2/event.h>
#include <sched.h>
#include <string.h>
#include <time.h>
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
/* The CPU budget of polling (--poll-cpu) is counted over periods of this
 * length: short enough that a burst of traffic is not left without polling
 * for long, long enough that one period holds many packets. */
#define RELAY_BUDGET_PERIOD_US 10000u

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

/* CPU time of the loop's thread, in microseconds; 0 if it cannot be read
 * (relay_init then gives the budget up). */
static uint64_t thread_cpu_us(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void relay_init(struct postal *d, enum relay_sched mode, uint32_t poll_us, uint32_t poll_cpu)
{
    d->poll_us = poll_us;
    d->poll_cpu = poll_cpu;
    struct timespec ts;
    if (poll_cpu < 100 && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0) {
        log_warn("cannot read the relay's CPU time (clock_gettime CLOCK_THREAD_CPUTIME_ID: %s): "
                 "--poll-cpu %u%% not enforced",
                 strerror(errno), poll_cpu);
        d->poll_cpu = 100;
    }
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

/* The polling budget: polling stops for the rest of a period once the
 * loop's thread has used poll_cpu % of the period's wall-clock time (relay
 * work included: what it costs is the node's CPU too); relaying goes on,
 * woken by doorbells and sockets. */
struct budget {
    uint64_t period_us, cpu_us; /* start of the period: wall clock, CPU  */
    bool spent;
};

static void budget_check(struct postal *d, struct budget *b, uint64_t now)
{
    if (d->poll_cpu >= 100)
        return;
    uint64_t cpu = thread_cpu_us();
    if (now - b->period_us >= RELAY_BUDGET_PERIOD_US) {
        b->period_us = now;
        b->cpu_us = cpu;
        b->spent = false;
    } else if (!b->spent && cpu - b->cpu_us >= (uint64_t)RELAY_BUDGET_PERIOD_US * d->poll_cpu / 100) {
        b->spent = true;
    }
}

void relay_run(struct postal *d, const bool *stop)
{
    uint64_t seen = d->relay_work, last_us = 0;
    struct budget b = {0};
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
        budget_check(d, &b, now);
        if (d->relay_work != seen) {
            seen = d->relay_work;
            last_us = now;
            if (!d->polling && !b.spent)
                set_polling(d, true);
        }
        if (d->polling && (b.spent || now - last_us >= d->poll_us)) {
            set_polling(d, false); /* quiet for poll_us, or over budget: sleep again */
            continue;
        }
        if (d->polling)
            sched_yield(); /* a rank on this core may wait for what we relayed */
    }
}
