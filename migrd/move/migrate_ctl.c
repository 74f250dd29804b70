/*
 * migrate_ctl.c -- the control requests of `migrctl run`, `migrate` and
 * `ps` (see migrate.h): registration of a process by its home stub, signals
 * from the stub, moves, the process list.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "common/jobid.h"
#include "migrd/cluster/cluster.h"
#include "migrd/pager/pager.h"
#include "migrd/postal/jobs.h"
#include "migrd/util/log.h"
#include "forward.h"
#include "migrate.h"
#include "migrate_proc.h"
#include "move.h"
#include "move_log.h"

static void refuse(const struct ctl_caller *who, uint32_t reqid, int err, const char *msg)
{
    struct ctl_error e = {.err = err};
    snprintf(e.message, sizeof e.message, "%s", msg);
    log_info("refused uid %u (pid %d): %s", (unsigned)who->uid, who->pid, msg);
    ctl_send(who->fd, CTL_ERROR, reqid, &e, sizeof e, NULL, 0);
}

static void ok(int fd, uint32_t reqid) { ctl_send(fd, CTL_OK, reqid, NULL, 0, NULL, 0); }

static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *r = strrchr(buf, ')');
    int ppid = -1;
    char state;
    if (!r || sscanf(r + 1, " %c %d", &state, &ppid) != 2)
        return -1;
    return ppid;
}

/* The real, effective and saved uid of pid; with pidfd >= 0, of the
 * process of that pidfd (what was read is not of a process that took the
 * pid since).  0, -ESRCH (it ended) or -errno. */
static int live_uids(pid_t pid, int pidfd, uid_t u[3])
{
    char path[64], buf[4096];
    unsigned r, e, s;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e0 = errno;
    close(fd);
    if (n < 0)
        return e0 == ESRCH ? -ESRCH : -e0;
    buf[n] = 0;
    const char *l = strstr(buf, "\nUid:");
    if (!l || sscanf(l + 5, "%u %u %u", &r, &e, &s) != 3)
        return n == 0 ? -ESRCH : -EIO;
    if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
        return -ESRCH;
    u[0] = r, u[1] = e, u[2] = s;
    return 0;
}

enum may_rule {
    MAY_OWN = 0,      /* real, effective and saved uid are the caller's (as ptrace(2)) */
    MAY_KILL = 1,     /* the caller's uid is its real or saved uid (as kill(2))       */
    MAY_ENDED = 2,    /* an ended process: judged by its recorded owner              */
};

/* May `who` do `what` to p ("if you can kill it, you may migrate it")?
 * Where p runs here its live credentials are read (on its pidfd when it is
 * not migrd's child); elsewhere its recorded owner counts.  0; -ESRCH (it
 * has ended, not refused yet); -1 (refused: one line). */
static int may_act(struct move *d, const struct ctl_caller *who, uint32_t reqid, const struct mproc *p,
                   const char *what, int rule)
{
    uid_t u[3] = {p->uid, p->uid, p->uid};
    char msg[200];
    (void)d;
    if (p->here && p->state != MP_EXITED && (p->pidfd >= 0 || p->child)) {
        int rc = live_uids(p->pid, p->child ? -1 : p->pidfd, u);
        if (rc == -ESRCH && !(rule & MAY_ENDED))
            return -ESRCH;
        if (rc < 0 && rc != -ESRCH) {
            snprintf(msg, sizeof msg, "cannot read the credentials of pid %d: %s", p->pid, strerror(-rc));
            refuse(who, reqid, -rc, msg);
            return -1;
        }
    } else if (p->here && !p->child && p->pidfd < 0 && !(rule & MAY_ENDED)) {
        return -ESRCH; /* nothing holds it: its pid may be another process's now */
    }
    if (who->uid == 0)
        return 0;
    bool mine = (rule & MAY_KILL) ? (who->uid == u[0] || who->uid == u[2])
                                  : (who->uid == u[0] && who->uid == u[1] && who->uid == u[2]);
    if (mine)
        return 0;
    snprintf(msg, sizeof msg, "uid %u may not %s pid %d: it is a process of uid %u", (unsigned)who->uid, what,
             p->pid, (unsigned)u[0]);
    refuse(who, reqid, EPERM, msg);
    return -1;
}

/* A pidfd of the stub's child pid, checked to be that child still; the
 * child's uids in u.  >= 0, or -1 with msg. */
static int child_pidfd(const struct ctl_caller *who, pid_t pid, uid_t u[3], char *msg, size_t ml)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0) {
        snprintf(msg, ml, "pid %d: pidfd_open: %s", pid, strerror(errno));
        return -1;
    }
    /* Checked after the pidfd is open: it is of the stub's child. */
    if (parent_of(pid) != who->pid || live_uids(pid, fd, u) < 0) {
        snprintf(msg, ml, "pid %d is not a child of the registering pid %d", pid, who->pid);
        close(fd);
        return -1;
    }
    return fd;
}

/* Rank `rank` of job `job` for pid (registered, or taken back: `verb`),
 * by who: not registered here yet, and the job is who's (the first to
 * claim it: postal/jobs.h).  0, or -EEXIST / -EPERM with msg. */
static int claim_rank(struct move *d, const struct ctl_caller *who, uint32_t job, uint32_t rank, pid_t pid,
                      const char *verb, char *msg, size_t ml)
{
    char jid[JOBID_STRLEN];
    uid_t owner = 0;
    struct mproc *q = mproc_find_rank(d, job, rank);
    if (q && q->state != MP_EXITED) {
        snprintf(msg, ml, "job %s rank %u is already registered on %s (pid %d)", jobid_format(job, jid, sizeof jid),
                 rank, cluster_self_name(d->cl), q->pid);
        return -EEXIST;
    }
    if (jobs_claim(d->postal, job, who->uid, &owner) < 0) {
        snprintf(msg, ml, "uid %u may not %s pid %d as rank %u of job %s: %s", (unsigned)who->uid, verb, pid, rank,
                 jobid_format(job, jid, sizeof jid),
                 owner != who->uid ? "the job belongs to another user" : "out of memory");
        return -EPERM;
    }
    return 0;
}

void migrate_ctl_register(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                          const struct ctl_proc_register *r)
{
    char msg[200];
    uid_t u[3];
    if (parent_of(r->pid) != who->pid) {
        snprintf(msg, sizeof msg, "pid %d is not a child of the registering pid %d", r->pid, who->pid);
        refuse(who, reqid, EPERM, msg);
        return;
    }
    if (mproc_find(d, d->cl->self, r->pid)) {
        snprintf(msg, sizeof msg, "pid %d is already registered on %s", r->pid, cluster_self_name(d->cl));
        refuse(who, reqid, EEXIST, msg);
        return;
    }
    int pidfd = child_pidfd(who, r->pid, u, msg, sizeof msg);
    if (pidfd < 0) {
        refuse(who, reqid, EPERM, msg);
        return;
    }
    if (who->uid != 0 && (u[0] != who->uid || u[1] != who->uid || u[2] != who->uid)) {
        snprintf(msg, sizeof msg, "uid %u may not register pid %d: it runs as uid %u/%u/%u", (unsigned)who->uid,
                 r->pid, (unsigned)u[0], (unsigned)u[1], (unsigned)u[2]);
        close(pidfd);
        refuse(who, reqid, EPERM, msg);
        return;
    }
    int rc = r->flags & CTL_PROC_RANK ? claim_rank(d, who, r->job, r->rank, r->pid, "register", msg, sizeof msg)
                                        : 0;
    if (rc < 0) {
        close(pidfd);
        refuse(who, reqid, -rc, msg);
        return;
    }
    struct mproc *p = mproc_new(d, r->pid, d->cl->self);
    if (!p || (p->stub_fd = fcntl(who->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        if (p)
            mproc_free(d, p);
        if (r->flags & CTL_PROC_RANK)
            jobs_release(d->postal, r->job);
        close(pidfd);
        refuse(who, reqid, ENOMEM, "cannot register the process");
        return;
    }
    p->is_home = p->here = true;
    p->flags = r->flags & (CTL_PROC_NO_MIGRATE | CTL_PROC_RANK);
    p->job = r->job;
    p->rank = r->rank;
    p->job_held = (r->flags & CTL_PROC_RANK) != 0;
    p->uid = u[0];
    p->pidfd = pidfd;
    p->stub_pid = who->pid;
    snprintf(p->cmd, sizeof p->cmd, "%.63s", r->cmd);
    log_info("%s (%s, uid %u) started here by its stub pid %d%s", mproc_name(p, msg, sizeof msg), p->cmd,
             (unsigned)p->uid, who->pid, p->flags & CTL_PROC_NO_MIGRATE ? ", not migratable" : "");
    ok(who->fd, reqid);
}

/* A signal to a process with its home here, wherever it runs. */
static void signal_proc(struct mproc *p, int sig)
{
    if (p->here && !p->child && p->pidfd >= 0) {
        /* the stub's child: through its pidfd, never a process that took its pid */
        if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0 && errno != ESRCH)
            log_warn("signal %d to pid %d (pidfd %d): %s", sig, p->pid, p->pidfd, strerror(errno));
    } else if (p->here && !p->child) {
        log_debug("signal %d to pid %d: nothing holds it any more", sig, p->pid);
    } else if (p->here && p->state != MP_MOVING) {
        if (kill(p->pid, sig) < 0)
            log_warn("signal %d to pid %d: %s", sig, p->pid, strerror(errno));
    } else if (p->anchor) {
        fwd_anchor_signal(p->anchor, sig);
    } else if (kill(p->pid, sig) < 0) {
        log_warn("signal %d to pid %d: %s", sig, p->pid, strerror(errno));
    }
}

void migrate_ctl_stub_gone(struct move *d, pid_t stub_pid)
{
    char who[80];
    for (struct mproc *p = mproc_first(d), *next; p; p = next) {
        next = p->next;
        if (!p->is_home || p->stub_pid != stub_pid || p->stub_gone)
            continue;
        if (p->state == MP_EXITED) {
            mproc_free(d, p);
            continue;
        }
        log_warn("%s: its stub pid %d ended first: killing it on %s", mproc_name(p, who, sizeof who),
                 stub_pid, d->cl->map.nodes[p->here ? d->cl->self : p->at].name);
        signal_proc(p, SIGKILL);
        if (p->stub_fd >= 0)
            close(p->stub_fd);
        p->stub_fd = -1;
        p->stub_gone = true;
        /* Never moved: the stub's orphan, nobody here will report its end. */
        if (p->here && !p->child && !p->anchor)
            mproc_free(d, p);
    }
}

void migrate_ctl_signal(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                        const struct ctl_proc_signal *s)
{
    struct mproc *p = mproc_find(d, d->cl->self, s->pid);
    char msg[200], what[32];
    if (!p || !p->is_home) {
        snprintf(msg, sizeof msg, "pid %d has no home on %s", s->pid, cluster_self_name(d->cl));
        refuse(who, reqid, ESRCH, msg);
        return;
    }
    snprintf(what, sizeof what, "send signal %d to", s->sig);
    int rc = may_act(d, who, reqid, p, what, MAY_KILL);
    if (rc == -ESRCH) {
        log_debug("signal %d of uid %u to pid %d: it has ended", s->sig, (unsigned)who->uid, p->pid);
        ok(who->fd, reqid); /* as a signal to a process that just ended */
        return;
    }
    if (rc < 0)
        return;
    signal_proc(p, s->sig);
    ok(who->fd, reqid);
}

void migrate_ctl_done(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                      const struct ctl_proc_done *s)
{
    struct mproc *p = mproc_find(d, d->cl->self, s->pid);
    if (p && p->is_home) {
        if (p->stub_pid != who->pid && may_act(d, who, reqid, p, "deregister", MAY_OWN | MAY_ENDED) < 0)
            return;
        log_debug("pid %d: its stub is done (status %#x)", p->pid, s->status);
        mproc_free(d, p);
    }
    ok(who->fd, reqid);
}

/* The record a move request names: by pid, or by (job, rank) at its home. */
static struct mproc *migrate_target(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                                    const struct ctl_migrate *m)
{
    struct mproc *p;
    char msg[200], job[JOBID_STRLEN];
    if (m->pid) {
        if (!(p = mproc_find_pid(d, m->pid))) {
            snprintf(msg, sizeof msg, "pid %d is not a migratable process known on %s (start it with "
                                      "migrctl run)", m->pid, cluster_self_name(d->cl));
            refuse(who, reqid, ESRCH, msg);
        }
        return p;
    }
    if (!(p = mproc_find_rank(d, m->job, m->rank))) {
        snprintf(msg, sizeof msg, "job %s rank %u has no home on %s (ask the node that launched it)",
                 jobid_format(m->job, job, sizeof job), m->rank, cluster_self_name(d->cl));
        refuse(who, reqid, ESRCH, msg);
    }
    return p;
}

/* Test faults (--inject): root only, and only on a migrd started with
 * --test-hooks (or MIGR_TEST_HOOKS=1).  0, or -1 after refusing. */
static int may_inject(struct move *d, const struct ctl_caller *who, uint32_t reqid, const struct ctl_migrate *m)
{
    char msg[200];
    if (m->inject == CTL_INJECT_NONE)
        return 0;
    if (who->uid != 0)
        snprintf(msg, sizeof msg, "uid %u may not use test hooks (--inject): root only", (unsigned)who->uid);
    else if (!d->test_hooks)
        snprintf(msg, sizeof msg, "test hooks (--inject) are off on %s: start migrd with --test-hooks",
                 cluster_self_name(d->cl));
    else if (m->inject != CTL_INJECT_CORRUPT && m->inject != CTL_INJECT_STALL)
        snprintf(msg, sizeof msg, "unknown test hook %u", m->inject);
    else
        return 0;
    refuse(who, reqid, EPERM, msg);
    return -1;
}

/* A move asked here of a process running here: answered when it ends. */
struct ctl_move {
    int fd; /* a dup of the requester's connection */
    uint32_t reqid;
    char node[64];
};

static void ctl_move_done(struct move *d, int rc, const struct migrate_result *res, struct fconn *home, void *arg)
{
    struct ctl_move *cm = arg;
    (void)d, (void)home;
    mproc_answer_move(cm->fd, cm->reqid, rc == 0, rc == 0 ? cm->node : res->message, res->bytes, res->frozen_us,
                      res->total_us);
    close(cm->fd);
    free(cm);
}

void migrate_ctl_migrate(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                         const struct ctl_migrate *m)
{
    struct mproc *p = migrate_target(d, who, reqid, m);
    struct migrate_result res;
    char msg[200];
    if (!p || may_inject(d, who, reqid, m) < 0)
        return;
    int rc = may_act(d, who, reqid, p, "move", MAY_OWN);
    if (rc == -ESRCH) {
        snprintf(msg, sizeof msg, "pid %d has ended", p->pid);
        refuse(who, reqid, ESRCH, msg);
    }
    if (rc < 0)
        return;
    log_info("uid %u (pid %d) moves pid %d to %s", (unsigned)who->uid, who->pid, p->pid, m->node);
    if (p->here) {
        struct ctl_move *cm = calloc(1, sizeof *cm);
        if (!cm || (cm->fd = fcntl(who->fd, F_DUPFD_CLOEXEC, 3)) < 0) {
            free(cm);
            snprintf(msg, sizeof msg, "cannot move pid %d: %s", p->pid, strerror(cm ? errno : ENOMEM));
            refuse(who, reqid, ENOMEM, msg);
            return;
        }
        cm->reqid = reqid;
        snprintf(cm->node, sizeof cm->node, "%s", m->node);
        if (migrate_out_start(d, p, m->node, m->inject, m->mode, who->uid, ctl_move_done, cm, &res) < 0) {
            close(cm->fd);
            free(cm);
            refuse(who, reqid, EAGAIN, res.message);
        }
        return; /* answered when the move ends */
    }
    if (p->is_home && p->anchor) {
        int rfd = fcntl(who->fd, F_DUPFD_CLOEXEC, 3);
        if (rfd >= 0 && fwd_anchor_move(p->anchor, rfd, reqid, m->inject, m->mode, m->node, who->uid) == 0)
            return; /* answered when the node where it runs replies */
        if (rfd >= 0)
            close(rfd);
        snprintf(msg, sizeof msg, "pid %d is moving right now; try again", p->pid);
        refuse(who, reqid, EBUSY, msg);
        return;
    }
    snprintf(msg, sizeof msg, "pid %d does not run on %s; ask its home %s", p->pid, cluster_self_name(d->cl),
             d->cl->map.nodes[p->home].name);
    refuse(who, reqid, ESRCH, msg);
}

void migrate_ctl_ps(struct move *d, const struct ctl_caller *who, uint32_t reqid)
{
    static struct ctl_batch b;
    ctl_batch_init(&b, who->fd, CTL_PS_PROC, reqid, sizeof(struct ctl_ps_proc));
    for (struct mproc *p = migrate_procs(d); p; p = p->next) {
        bool mine = who->uid == 0 || who->uid == p->uid;
        struct ctl_ps_proc r = {.pid = p->pid, .uid = p->uid, .hidden = !mine,
                                .flags = p->flags & (mine ? ~0u : (uint32_t)CTL_PROC_NO_MIGRATE)};
        if (mine) {
            r.moves = p->moves;
            r.job = p->job;
            r.rank = p->rank;
            r.last_frozen_us = p->last_frozen_us;
        }
        r.state = p->state == MP_MOVING ? CTL_PS_MOVING : p->state == MP_EXITED ? CTL_PS_EXITED
                  : p->here ? CTL_PS_RUNNING : CTL_PS_AWAY;
        snprintf(r.home, sizeof r.home, "%s", d->cl->map.nodes[p->home].name);
        snprintf(r.node, sizeof r.node, "%s", d->cl->map.nodes[p->here ? d->cl->self : p->at].name);
        snprintf(r.cmd, sizeof r.cmd, "%s", p->cmd);
        if (p->here)
            r.pages_away = pager_away(p->pid, r.away_on, sizeof r.away_on);
        if (ctl_batch_add(&b, &r) < 0)
            return;
    }
    ctl_batch_end(&b);
}

void migrate_ctl_log(struct move *d, const struct ctl_caller *who, uint32_t reqid)
{
    (void)d;
    int rc = move_log_send(who->fd, reqid, who->uid);
    if (rc < 0)
        log_debug("sending the move log to pid %d: %s", who->pid, strerror(-rc));
}

/* ---- across a restart of this node's migrd (the home) ---- */

void migrate_hold_all(struct move *d)
{
    for (struct mproc *p = mproc_first(d); p; p = p->next) {
        if (!p->is_home || p->here || !p->anchor || p->stub_fd < 0 || p->state == MP_EXITED)
            continue;
        struct ctl_proc_hold h = {.reg = {.pid = p->pid, .flags = p->flags, .job = p->job, .rank = p->rank},
                                  .at = (uint32_t)p->at, .gen = p->moves};
        snprintf(h.reg.cmd, sizeof h.reg.cmd, "%s", p->cmd);
        if (fwd_anchor_hold(p->anchor, p->stub_fd, &h) == 0)
            log_info("stopping: pid %d runs on %s: its stub holds what the home held until migrd is back",
                     p->pid, d->cl->map.nodes[p->at].name);
        /* the stub learns nothing else from this migrd: the end of its
         * connection is the restart, not the end of the process */
        close(p->stub_fd);
        p->stub_fd = -1;
    }
}

/* The record of a process given back: new at the first part; 0, or -1
 * with msg. */
static struct mproc *take_back_record(struct move *d, const struct ctl_caller *who, const struct ctl_proc_hold *h,
                                      char *msg, size_t ml)
{
    struct mproc *p = mproc_find(d, d->cl->self, h->reg.pid);
    if (h->part > 0) {
        if (!p || p->stub_pid != who->pid || !p->anchor || fwd_anchor_ready(p->anchor)) {
            snprintf(msg, ml, "part %u of pid %d without its first part", h->part, h->reg.pid);
            return NULL;
        }
        return p;
    }
    if (p) {
        snprintf(msg, ml, "pid %d is already registered on %s", h->reg.pid, cluster_self_name(d->cl));
        return NULL;
    }
    if (h->reg.pid <= 1 || h->at >= (uint32_t)d->cl->map.nnodes || (int)h->at == d->cl->self) {
        snprintf(msg, ml, "pid %d cannot be taken back: bad node or pid", h->reg.pid);
        return NULL;
    }
    bool rank = (h->reg.flags & CTL_PROC_RANK) != 0;
    if (rank && claim_rank(d, who, h->reg.job, h->reg.rank, h->reg.pid, "take back", msg, ml) < 0)
        return NULL;
    if (!(p = mproc_new(d, h->reg.pid, d->cl->self)) || (p->stub_fd = fcntl(who->fd, F_DUPFD_CLOEXEC, 3)) < 0 ||
        !(p->anchor = fwd_anchor_new(d, p))) {
        if (p)
            mproc_free(d, p);
        if (rank)
            jobs_release(d->postal, h->reg.job);
        snprintf(msg, ml, "out of memory on %s", cluster_self_name(d->cl));
        return NULL;
    }
    p->job = h->reg.job;
    p->rank = h->reg.rank;
    p->job_held = rank;
    /* it runs elsewhere: its location's HELLO must name the same uid */
    p->is_home = p->taken_back = true;
    p->here = false;
    p->state = MP_AWAY;
    p->at = (int)h->at;
    p->moves = h->gen;
    p->flags = h->reg.flags & (CTL_PROC_NO_MIGRATE | CTL_PROC_RANK);
    p->uid = who->uid;
    p->stub_pid = who->pid;
    snprintf(p->cmd, sizeof p->cmd, "%.63s", h->reg.cmd);
    return p;
}

void migrate_ctl_take_back(struct move *d, const struct ctl_caller *who, uint32_t reqid,
                           const struct ctl_proc_hold *h, int *fds, int nfds)
{
    char msg[200];
    struct mproc *p;
    bool ok_kinds = h->n <= CTL_MAX_FDS && (int)h->n == nfds;
    for (uint32_t i = 0; ok_kinds && i < h->n; i++)
        ok_kinds = (h->e[i].kind == CTL_HOLD_CHAN || h->e[i].kind == CTL_HOLD_FILE) && h->e[i].id;
    if (!ok_kinds) {
        snprintf(msg, sizeof msg, "pid %d: %u entries with %d descriptors, or of no known kind", h->reg.pid, h->n,
                 nfds);
        refuse(who, reqid, EINVAL, msg);
        return;
    }
    if (!(p = take_back_record(d, who, h, msg, sizeof msg))) {
        refuse(who, reqid, EPERM, msg);
        return;
    }
    if (fwd_anchor_take_back(p->anchor, h, fds) < 0) {
        mproc_free(d, p);
        snprintf(msg, sizeof msg, "pid %d: cannot take back what its home held", h->reg.pid);
        refuse(who, reqid, ENOMEM, msg);
        return;
    }
    if (!h->last)
        return;
    log_info("pid %d (%s, uid %u) taken back from its stub pid %d: runs on %s (move %u)", p->pid, p->cmd,
             (unsigned)p->uid, who->pid, d->cl->map.nodes[p->at].name, p->moves);
    ok(who->fd, reqid);
}
