/*
 * relay.h -- how migrd waits for relay work: asleep in the event loop, or
 * polling for a bounded time while packets flow; and its CPU scheduling.
 *
 * Owns: the daemon's main loop, its scheduling policy (--sched) and the
 * node page's `relay_busy` word.  A packet that arrives on a link while
 * migrd sleeps costs a wake-up of the daemon, which on another CPU is the
 * most expensive step of a cross-node packet.  So after relay work migrd
 * keeps polling its links and outboxes (outboxes stay unarmed: senders ring
 * no doorbell) for up to `poll_us`, yielding the CPU after every round;
 * busy-polling ranks on the same core see `relay_busy` and yield to it in
 * turn, so each hands the CPU to the other instead of waiting for a time
 * slice to end.  While polling, migrd runs with the normal policy and time
 * slice (a short slice or a real-time policy would make it win every
 * yield); asleep, the --sched mode applies, for the wake-up.  When nothing
 * has moved for `poll_us`, the outboxes are armed again and migrd sleeps:
 * an idle node has no busy daemon.  A CPU budget (`poll_cpu`) bounds how
 * much of one CPU the polling may take per 10 ms: once spent, migrd sleeps
 * until the next period, so that a busy node keeps its CPU for the ranks.
 */
#ifndef MIGRD_RELAY_H
#define MIGRD_RELAY_H

#include <stdbool.h>
#include <stdint.h>

struct postal;

enum relay_sched {
    RELAY_SCHED_NORMAL,   /* leave the policy alone                      */
    RELAY_SCHED_LATENCY,  /* SCHED_OTHER with a 0.1 ms slice while asleep */
    RELAY_SCHED_REALTIME, /* SCHED_FIFO 1 while asleep                   */
};

/* Default of migrd --poll-us. */
#define RELAY_POLL_US_DEFAULT 2000u
/* Default of migrd --poll-cpu: the most of one CPU, in per cent, that the
 * relay's thread may use in a period of 10 ms and still poll; beyond it,
 * it sleeps until the next period (woken by doorbells and sockets, as with
 * --poll-us 0).  100: no budget. */
#define RELAY_POLL_CPU_DEFAULT 100u

/* "latency", "realtime" or "normal"; -1 otherwise. */
int relay_parse_sched(const char *name, enum relay_sched *out);

/* Apply the scheduling mode (logged) and remember the poll window and the
 * CPU budget of polling (1-100 %). */
void relay_init(struct postal *d, enum relay_sched mode, uint32_t poll_us, uint32_t poll_cpu);

/* Run the daemon's event loop until *stop (set by a signal handler). */
void relay_run(struct postal *d, const bool *stop);

#endif
