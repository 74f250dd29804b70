/*
 * move.h -- the move subsystem: what its files share.
 *
 * The move folder moves a running process to another node and keeps what
 * it left at home working (doc/ARCHITECTURE.md, "A move"):
 *   migrate.c        the migration port and both sides of a move
 *   migrate_proto.c  the frames of the migration port
 *   migrate_proc.c   the record of each migratable process
 *   migrate_ctl.c    the control requests of `migrctl run/migrate/ps`
 *   forward_home.c   the anchor at the home: original descriptors relayed
 *   forward_ep.c     the endpoint where the process runs now
 *   forward_conn.c   one framed connection of the migration port
 *   mig_auth.c       authentication of the migration port (cluster/auth.h)
 *   deputy.c         the home stub (`migrctl run`), built into migrctl
 * A move: migrctl migrate -> ctl.c (core) -> migrate_ctl_migrate ->
 * migrate_out (freeze, capture and stream with engine/) -> the
 * destination's migrate.c (restore with engine/, forward_ep) -> ack ->
 * the source ends its copy; the home's anchor (forward_home.c) now relays
 * the process's stdio and pipes to the new node.
 *
 * It may call engine/, cluster/, util/ and common/; never the core.
 */
#ifndef MIGRD_MOVE_H
#define MIGRD_MOVE_H

struct event_base;
struct cluster;
struct migrate;

struct move {
    struct event_base *base;
    const struct cluster *cl;
    struct migrate *migrate;   /* migrate.c: moves, forwarding, migratable processes */
};

#endif
