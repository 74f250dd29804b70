/*
 * office.h -- the postal office of this node: what its files share.
 *
 * The postal folder carries DiCOM packets between processes (doc/ARCHITECTURE.md, "A packet"):
 *   mbox.c      the mailboxes of the processes registered here
 *   postal.c    routing and delivering packets
 *   location.c  where the mailboxes of other nodes are
 *   link.c      the connections to the other nodes' migrd
 *   relay.c     how the daemon waits for relay work (asleep or polling)
 *   node_page.c the node page every registered process maps read-only
 *   exile.c     the mailboxes of processes that moved away (forwarded)
 *   jobs.c      the owner (uid) of each job: who may open or reach its mailboxes
 * A packet's way: a process writes into its outbox -> mbox.c rings the
 * event (or relay.c, polling, finds it) -> postal.c drains the outbox and
 * routes each packet (location.c) -> link.c writes it to the node where the
 * receiver is -> that node's link.c reads it straight into the receiver's
 * inbox (postal.c).
 *
 * It may call cluster/ (node addresses), util/ (log, clock) and common/.
 * It never calls the core or the move subsystem: what it must tell the
 * owner of a mailbox (the control socket) goes through struct postal_ops,
 * which the core registers at start-up.
 */
#ifndef MIGRD_POSTAL_OFFICE_H
#define MIGRD_POSTAL_OFFICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/mbox.h"

struct event_base;
struct cluster;
struct mbox_table;
struct link_set;
struct location;
struct exile_set;
struct job_table;

/* What the postal office tells the owner of a mailbox (an opaque pointer
 * given to mbox_create(): the core's control connection of the process). */
struct postal_ops {
    /* A packet the owner sent to (job, rank) cannot be delivered. */
    void (*unreachable)(void *owner, uint32_t job, uint32_t rank, const char *why);
    /* The owner broke the protocol: end its registration. */
    void (*drop_owner)(void *owner, const char *why);
    /* The mailbox is no longer the owner's (its process moved away). */
    void (*release)(void *owner);
    /* Answer what the owner has asked and not been answered yet (a move
     * waits for the owner's safe point). */
    void (*serve)(void *owner);
    /* The owner's control connection (to find it in the process). */
    int (*fd)(void *owner);
};

struct postal {
    struct event_base *base;
    const struct cluster *cl;
    struct postal_ops ops;
    uint32_t max_ring;             /* largest ring a process may ask for */
    struct mbox_table *mboxes;
    struct link_set *links;
    struct location *loc;
    struct exile_set *exiles;      /* exile.c: mailboxes whose owner moved */
    struct job_table *jobs;        /* jobs.c: the owner of each job      */
    int node_fd;                   /* the node page (memfd), see mbox.h */
    struct node_shared *node_sh;
    /* relay.c: scheduling, polling instead of sleeping (see relay.h) */
    int sched;                     /* enum relay_sched                   */
    int nice;                      /* kept across policy changes         */
    uint32_t poll_us;              /* --poll-us; 0: never poll           */
    uint32_t poll_cpu;             /* --poll-cpu: % of a CPU; 100: no cap */
    bool polling;                  /* outboxes unarmed, links polled     */
    uint64_t relay_work;           /* bumped by every piece of relay work */
};

/* Mark the relay busy: called at the start of every piece of relay work;
 * relay.c clears it before the loop sleeps, and counts the work to decide
 * whether to poll. */
static inline void postal_busy(struct postal *d)
{
    atomic_store_explicit(&d->node_sh->relay_busy, 1, memory_order_relaxed);
    d->relay_work++;
}

/* node_page.c: create and map the node page (0, or -1 logged); free it. */
int node_page_create(struct postal *d);
void node_page_free(struct postal *d);

#endif
