/*
 * migrd.h -- the daemon's context, shared by its modules.
 *
 * Each module owns its part and is reached through its functions:
 *   cluster_map.c the cluster map           log.c      messages
 *   mbox.c     local mailboxes            ctl.c      the control socket
 *   postal.c   routing and delivery       link.c     inter-node connections
 *   location.c where remote mailboxes are main.c     start-up and shutdown
 *   relay.c    the main loop: sleeping or polling, scheduling policy
 * A packet's way: a process writes into its outbox -> mbox.c rings the
 * event (or relay.c, polling, finds it) -> postal.c drains the outbox and routes each packet (location.c) ->
 * link.c writes it to the node where the receiver is -> that node's link.c
 * reads it straight into the receiver's inbox (postal.c).
 */
#ifndef MIGRD_H
#define MIGRD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/mbox.h"
#include "cluster_map.h"
#include "cpu_features.h"

struct event_base;
struct mbox_table;
struct ctl_server;
struct link_set;
struct location;
struct migrate;

struct migrd {
    struct event_base *base;
    struct cluster_map map;
    int self;                  /* index of this node in map.nodes */
    char kernel[64];           /* uname -r                        */
    struct cpu_features cpu;   /* what a process moving in may need (cpu_features.h) */
    uint64_t start_ms;
    uint32_t max_ring;         /* largest ring a process may ask for */
    struct mbox_table *mboxes;
    struct ctl_server *ctl;
    struct link_set *links;
    struct location *loc;
    struct migrate *migrate;   /* migrate.c: moves, forwarding, migratable processes */
    int node_fd;                   /* the node page (memfd), see mbox.h */
    bool stopping;                 /* SIGTERM/SIGINT seen               */
    struct node_shared *node_sh;
    /* relay.c: scheduling, polling instead of sleeping (see relay.h) */
    int sched;                     /* enum relay_sched                   */
    int nice;                      /* kept across policy changes         */
    uint32_t poll_us;              /* --poll-us; 0: never poll           */
    bool polling;                  /* outboxes unarmed, links polled     */
    uint64_t relay_work;           /* bumped by every piece of relay work */
};

/* Mark the relay busy: called at the start of every piece of relay work;
 * relay.c clears it before the loop sleeps, and counts the work to decide
 * whether to poll. */
static inline void migrd_busy(struct migrd *d)
{
    atomic_store_explicit(&d->node_sh->relay_busy, 1, memory_order_relaxed);
    d->relay_work++;
}

static inline const char *migrd_node_name(const struct migrd *d) { return d->map.nodes[d->self].name; }
uint64_t migrd_now_ms(void);
uint64_t migrd_now_us(void);

#endif
