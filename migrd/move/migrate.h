/*
 * migrate.h -- moving a running process to another node (doc/ARCHITECTURE.md, "A move").
 *
 * Owns: the migration port (listening on the node's link port + 1), the
 * table of migratable processes (migrate_proc.h), both sides of a move
 * (migrate_out.c: negotiate, freeze, capture, stream the image with the pages
 * read from the frozen process as they are sent, wait for the destination's
 * acknowledgement, then end the source -- or thaw it on any failure; the
 * incoming side: check room, kernel and pid, make the page buffer ready,
 * accept, read the image into it, restore it as migrd's child with relay
 * endpoints taking the pages over, acknowledge, settle the pages in steps),
 * reaping processes restored here, the move log, and the control requests
 * of `migrctl run`, `migrate`, `ps` and `log`.
 */
#ifndef MIGRD_MIGRATE_H
#define MIGRD_MIGRATE_H

#include <stdint.h>
#include <sys/types.h>

#include "common/wire.h"

struct move;
struct mproc;

struct migrate_result {
    uint64_t bytes, frozen_us, total_us;
    char message[200];
};

int migrate_init(struct move *d);   /* 0 or -errno (logged) */
void migrate_fini(struct move *d);
unsigned migrate_port(const struct move *d, int node);
int migrate_node_by_addr(const struct move *d, const char *name_or_addr);

/* The process table lives here; migrate_proc.c manipulates it. */
struct mproc *migrate_procs(struct move *d);
void migrate_link_proc(struct move *d, struct mproc *p);
void migrate_unlink_proc(struct move *d, struct mproc *p);

/* The end of a move out: rc 0 (moved) or -1 (res->message says why; the
 * process runs on here); home: the connection to the process's home that
 * its endpoint here had (a move asked through the home is answered on it),
 * or NULL. */
struct fconn;
typedef void (*migrate_done_fn)(struct move *d, int rc, const struct migrate_result *res, struct fconn *home,
                                void *arg);
/* Start moving p (running here) to node for uid `by` (who asked: checked
 * by the caller; in the log line).  0: done(arg) is called when the move
 * ends, on the loop, never from here; -1: it could not start (res->message;
 * done is not called).  The loop goes on meanwhile (migrate_out.c). */
int migrate_out_start(struct move *d, struct mproc *p, const char *node, uint32_t inject, uint32_t mode, uid_t by,
                      migrate_done_fn done, void *arg, struct migrate_result *res);
/* p's record goes away: a move of it in progress forgets it. */
void migrate_out_forget(struct mproc *p);
/* The daemon stops: every move out of here ends now (an offer is given
 * up; a frozen process whose image was sent waits for the destination's
 * answer and ends there or thaws here), its requester answered. */
void migrate_out_fini(void);

/* The daemon is asked to stop: every process running here whose home is
 * elsewhere moves away first (to its home, else to any other node), and
 * no process may arrive any more.  The number of moves started (or 1 when
 * only a process of this home is between two locations, its input read
 * here not yet sent); when it is not 0, done(arg) is called on the loop
 * once they have all ended and every process of this home is in service
 * where it runs, or after a few seconds. */
int migrate_evacuate(struct move *d, void (*done)(void *arg), void *arg);

/* Who sent a control request: its connection and its credentials
 * (SO_PEERCRED, ctl.c).  Only root or the owner of a process acts on it. */
struct ctl_caller {
    int fd;
    pid_t pid;
    uid_t uid;
};

/* Control requests (ctl.c). */
void migrate_ctl_register(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                          const struct ctl_proc_register *r);
void migrate_ctl_signal(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                        const struct ctl_proc_signal *s);
/* The control connection of stub pid STUB_PID closed: a process it was
 * the deputy of and that has not ended is killed wherever it runs. */
void migrate_ctl_stub_gone(struct move *d, pid_t stub_pid);
void migrate_ctl_done(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                      const struct ctl_proc_done *s);
/* A restart of the home: at the stop, every process that runs elsewhere
 * is handed to its stub (what the home holds of it, CTL_PROC_HOLD); the
 * stub gives it back to the next migrd, part by part (fds taken). */
void migrate_hold_all(struct move *d);
struct ctl_proc_hold;
void migrate_ctl_take_back(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                           const struct ctl_proc_hold *h, int *fds, int nfds);
void migrate_ctl_migrate(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                         const struct ctl_migrate *m);
/* Another user's processes show only what ps(1) shows: pid, user, command,
 * state and node; their job, rank, moves and freeze times are hidden. */
void migrate_ctl_ps(struct move *d, const struct ctl_caller *who, uint32_t reqid);
/* The move log (move_log.h): the moves out of here of the caller's
 * processes (root: all), oldest first. */
void migrate_ctl_log(struct move *d, const struct ctl_caller *who, uint32_t reqid);

#endif
