/*
 * migrd.h -- the daemon's core: its context and the parts it starts.
 *
 * The core (this folder's main.c and ctl.c) starts the daemon, owns the
 * control socket and runs the event loop (through postal/relay.c).  It may
 * call every subsystem; no subsystem calls it:
 *   postal/   the postal office: mailboxes, routing, location, links, relay
 *   move/     moving processes: the migration port, process records,
 *             forwarding through the home, the deputy
 *   engine/   freeze, capture, image, restore (also migr-ckpt)
 *   cluster/  the cluster map, node addresses, CPU features
 *   util/     log and clock, for every part of the daemon
 * and common/ is what daemon, library and tools share.  Calls go one way:
 * core -> move -> engine; core -> postal; move, postal -> cluster -> util
 * (move may call postal, never the reverse).  What a
 * lower part must tell a higher one goes through a callback table that the
 * higher part registers at start-up (struct postal_ops).  doc/ARCHITECTURE.md
 * has the whole map.
 */
#ifndef MIGRD_H
#define MIGRD_H

#include <stdbool.h>
#include <stdint.h>

#include "migrd/cluster/cluster.h"
#include "migrd/move/move.h"
#include "migrd/postal/office.h"

struct event_base;
struct ctl_server;

struct migrd {
    struct event_base *base;
    struct cluster cl;         /* this node in its cluster          */
    struct postal postal;      /* the postal office                 */
    struct move move;          /* moves and migratable processes    */
    struct ctl_server *ctl;
    uint64_t start_ms;
    bool stopping;             /* SIGTERM/SIGINT seen               */
    bool evacuating;           /* ... the guests are moving away    */
};

#endif
