/*
 * move.h -- the move subsystem: what its files share.
 *
 * The move folder moves a running process to another node and keeps what
 * it left at home working (doc/ARCHITECTURE.md, "A move"):
 *   migrate.c        the migration port and the destination of a move
 *   migrate_out.c    the source of a move
 *   workers.c        the threads that do a move's waiting off the loop
 *   evacuate.c       at a stop, the guests move away first
 *   migrate_proto.c  the frames of the migration port
 *   migrate_recv.c   an incoming move's stream, read by a worker
 *   migrate_proc.c   the record of each migratable process
 *   migrate_ctl.c    the control requests of `migrctl run/migrate/ps/log`
 *   move_log.c       the last moves out of this node (`migrctl log`)
 *   forward_home.c   the anchor at the home: original descriptors relayed
 *   forward_ep.c     the endpoint where the process runs now
 *   forward_file.c   regular files shared with the home: one offset
 *   forward_conn.c   one framed connection of the migration port
 *   mig_auth.c       authentication of the migration port (cluster/auth.h)
 *   deputy.c         the home stub (`migrctl run`), built into migrctl
 * A move: migrctl migrate -> ctl.c (core) -> migrate_ctl_migrate ->
 * migrate_out_start (offer from a worker; freeze, capture and stream with
 * engine/) -> the
 * destination's migrate.c (restore with engine/, forward_ep) -> ack ->
 * the source ends its copy; the home's anchor (forward_home.c) now relays
 * the process's stdio and pipes to the new node.
 *
 *   migrate_postal.c the DiCOM mailbox of a moving process (hand-over)
 * It may call engine/, postal/ (the mailbox hand-over), cluster/, util/ and
 * common/; never the core: what it asks of the core goes through struct
 * move_ops, which the core registers at start-up.
 */
#ifndef MIGRD_MOVE_H
#define MIGRD_MOVE_H

#include <stdbool.h>
#include <sys/types.h>

struct event_base;
struct cluster;
struct migrate;
struct mbox;
struct postal;

/* What the move subsystem asks of the core (registered by ctl_init). */
struct move_ops {
    void *core;
    /* fd: migrd's end of the control connection of a process restored
     * here; m: its mailbox, made from its snapshot.  The core takes fd and
     * registers m for that connection (0), or leaves both (-errno). */
    int (*adopt_client)(void *core, int fd, pid_t pid, uid_t uid, struct mbox *m);
    /* migrd's ends of the control connections (those still waiting to be
     * accepted first taken in) other than the one of `owner`: up to max in
     * fds; their number, which may exceed max. */
    int (*control_fds)(void *core, const void *owner, int *fds, int max);
};

struct move {
    struct event_base *base;
    const struct cluster *cl;
    struct postal *postal;     /* mailboxes travel with their processes  */
    struct move_ops ops;
    struct migrate *migrate;   /* migrate.c: moves, forwarding, migratable processes */
    bool test_hooks;           /* migrd --test-hooks / MIGR_TEST_HOOKS=1: root may ask
                                  for test faults (migrctl migrate --inject)  */
    bool stopping;             /* migrd stops: no process may arrive        */
};

#endif
