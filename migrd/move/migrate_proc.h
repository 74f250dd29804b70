/*
 * migrate_proc.h -- the migratable processes a node knows.
 *
 * Owns: one record per process that is either at home here (started by
 * `migrctl run` on this node) or runs here as a guest (restored here by a
 * move), keyed by (home node, pid).  A process at home that never moved is
 * the child of its stub and has its original descriptors; once it moved,
 * its home record holds the forwarding anchor (forward_home.c), and wherever
 * it runs -- home included -- it is migrd's child with relay endpoints
 * (forward_ep.c).
 */
#ifndef MIGRD_MIGRATE_PROC_H
#define MIGRD_MIGRATE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct move;
struct fwd_anchor;
struct fwd_ep;

enum mproc_state { MP_RUNNING = 1, MP_AWAY, MP_MOVING, MP_EXITED };

struct mproc {
    struct mproc *next;
    pid_t pid;
    int home;                /* node index                                  */
    int at;                  /* node index where it runs (home's view)      */
    uint32_t flags;          /* CTL_PROC_*                                  */
    uint32_t job, rank;      /* with CTL_PROC_RANK (an MPI rank, odls migr) */
    uint32_t moves;
    uint64_t last_frozen_us;
    char cmd[64];
    uid_t uid;               /* its owner: the registering deputy's uid (home),
                                the image's real uid (guest); who may act on
                                it is checked on the live process where it
                                runs here (migrate_ctl.c)                    */
    int pidfd;               /* home, never moved: the stub's child, opened
                                at registration (signals reach it, never a
                                process that reused its pid); or -1          */
    bool job_held;           /* holds a reference of its job (postal/jobs.h) */
    enum mproc_state state;
    /* home side */
    bool is_home;            /* this node is its home                       */
    int stub_fd;             /* dup of the stub's control connection, or -1 */
    pid_t stub_pid;          /* the stub (its control client)               */
    bool stub_gone;          /* the stub ended before the process: killed,
                                the record goes when its end is reported   */
    bool taken_back;         /* given back by its stub after a restart of
                                this migrd: only a location that names the
                                stub's uid (unless root's) is believed     */
    struct fwd_anchor *anchor;
    /* location side */
    bool here;               /* runs on this node                           */
    bool child;              /* restored here: migrd is its parent          */
    struct fwd_ep *ep;
    struct mout *out;        /* its move out of here, while one runs        */
    struct fconn *early;     /* its first location's HELLO, come before the
                                move's end here made the anchor: parked   */
    uint32_t early_gen;
};

/* A location's HELLO for p that came while p's first move out of its home
 * had not ended here (the destination restored it and called before its
 * acknowledgement was read): parked until mproc_early_attach (the move
 * ended, p->anchor made) or mproc_early_drop (it failed). */
void mproc_early_park(struct mproc *p, struct fconn *c, uint32_t gen);
void mproc_early_attach(struct mproc *p);
void mproc_early_drop(struct mproc *p);

/* Answer a `migrctl migrate` on fd (request reqid): moved to `node` with
 * these figures, or (ok false) refused because of `why`, in one message. */
void mproc_answer_move(int fd, uint32_t reqid, bool ok, const char *node_or_why, uint64_t bytes,
                       uint64_t frozen_us, uint64_t total_us);

struct mproc *mproc_new(struct move *d, pid_t pid, int home);
void mproc_free(struct move *d, struct mproc *p);
/* Free it on the next turn of the event loop (from inside its callbacks). */
void mproc_free_later(struct move *d, struct mproc *p);
struct mproc *mproc_find(struct move *d, int home, pid_t pid);
/* A process running here with this pid (whatever its home), else any. */
struct mproc *mproc_find_pid(struct move *d, pid_t pid);
struct mproc *mproc_first(struct move *d);
/* The home record of (job, rank), or NULL. */
struct mproc *mproc_find_rank(struct move *d, uint32_t job, uint32_t rank);
/* "pid P" or "pid P (job [f,l] rank R)" for log lines and errors. */
const char *mproc_name(const struct mproc *p, char *buf, size_t len);
/* Tell the stub (if any); drops the stub when it is gone. */
void mproc_notify_stub(struct mproc *p, uint32_t type, int status, const char *node);

#endif
