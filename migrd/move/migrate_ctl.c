/*
 * migrate_ctl.c -- the control requests of `migrctl run`, `migrate` and
 * `ps` (see migrate.h): registration of a process by its home stub, signals
 * from the stub, moves, the process list.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "common/jobid.h"
#include "migrd/cluster/cluster.h"
#include "migrd/util/log.h"
#include "forward.h"
#include "migrate.h"
#include "migrate_proc.h"
#include "move.h"

static void refuse(int fd, uint32_t reqid, int err, const char *msg)
{
    struct ctl_error e = {.err = err};
    snprintf(e.message, sizeof e.message, "%s", msg);
    log_info("refused: %s", msg);
    ctl_send(fd, CTL_ERROR, reqid, &e, sizeof e, NULL, 0);
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

void migrate_ctl_register(struct move *d, int client_fd, pid_t client_pid, uint32_t reqid,
                          const struct ctl_proc_register *r)
{
    char msg[200];
    if (parent_of(r->pid) != client_pid) {
        snprintf(msg, sizeof msg, "pid %d is not a child of the registering pid %d", r->pid, client_pid);
        refuse(client_fd, reqid, EPERM, msg);
        return;
    }
    if (mproc_find(d, d->cl->self, r->pid)) {
        snprintf(msg, sizeof msg, "pid %d is already registered on %s", r->pid, cluster_self_name(d->cl));
        refuse(client_fd, reqid, EEXIST, msg);
        return;
    }
    struct mproc *q = r->flags & CTL_PROC_RANK ? mproc_find_rank(d, r->job, r->rank) : NULL;
    if (q && q->state != MP_EXITED) {
        char job[JOBID_STRLEN];
        snprintf(msg, sizeof msg, "job %s rank %u is already registered on %s (pid %d)",
                 jobid_format(r->job, job, sizeof job), r->rank, cluster_self_name(d->cl), q->pid);
        refuse(client_fd, reqid, EEXIST, msg);
        return;
    }
    struct mproc *p = mproc_new(d, r->pid, d->cl->self);
    if (!p || (p->stub_fd = fcntl(client_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
        if (p)
            mproc_free(d, p);
        refuse(client_fd, reqid, ENOMEM, "cannot register the process");
        return;
    }
    p->is_home = p->here = true;
    p->flags = r->flags & (CTL_PROC_NO_MIGRATE | CTL_PROC_RANK);
    p->job = r->job;
    p->rank = r->rank;
    p->stub_pid = client_pid;
    snprintf(p->cmd, sizeof p->cmd, "%.63s", r->cmd);
    log_info("%s (%s) started here by its stub pid %d%s", mproc_name(p, msg, sizeof msg), p->cmd,
             client_pid, p->flags & CTL_PROC_NO_MIGRATE ? ", not migratable" : "");
    ok(client_fd, reqid);
}

/* A signal to a process with its home here, wherever it runs. */
static void signal_proc(struct mproc *p, int sig)
{
    if (p->here && p->state != MP_MOVING) {
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

void migrate_ctl_signal(struct move *d, int client_fd, uint32_t reqid, const struct ctl_proc_signal *s)
{
    struct mproc *p = mproc_find(d, d->cl->self, s->pid);
    char msg[200];
    if (!p || !p->is_home) {
        snprintf(msg, sizeof msg, "pid %d has no home on %s", s->pid, cluster_self_name(d->cl));
        refuse(client_fd, reqid, ESRCH, msg);
        return;
    }
    signal_proc(p, s->sig);
    ok(client_fd, reqid);
}

void migrate_ctl_done(struct move *d, int client_fd, uint32_t reqid, const struct ctl_proc_done *s)
{
    struct mproc *p = mproc_find(d, d->cl->self, s->pid);
    if (p && p->is_home) {
        log_debug("pid %d: its stub is done (status %#x)", p->pid, s->status);
        mproc_free(d, p);
    }
    ok(client_fd, reqid);
}

/* The record a move request names: by pid, or by (job, rank) at its home. */
static struct mproc *migrate_target(struct move *d, int client_fd, uint32_t reqid, const struct ctl_migrate *m)
{
    struct mproc *p;
    char msg[200], job[JOBID_STRLEN];
    if (m->pid) {
        if (!(p = mproc_find_pid(d, m->pid))) {
            snprintf(msg, sizeof msg, "pid %d is not a migratable process known on %s (start it with "
                                      "migrctl run)", m->pid, cluster_self_name(d->cl));
            refuse(client_fd, reqid, ESRCH, msg);
        }
        return p;
    }
    if (!(p = mproc_find_rank(d, m->job, m->rank))) {
        snprintf(msg, sizeof msg, "job %s rank %u has no home on %s (ask the node that launched it)",
                 jobid_format(m->job, job, sizeof job), m->rank, cluster_self_name(d->cl));
        refuse(client_fd, reqid, ESRCH, msg);
    }
    return p;
}

void migrate_ctl_migrate(struct move *d, int client_fd, uint32_t reqid, const struct ctl_migrate *m)
{
    struct mproc *p = migrate_target(d, client_fd, reqid, m);
    struct migrate_result res;
    char msg[200];
    if (!p)
        return;
    if (p->here) {
        if (migrate_out(d, p, m->node, m->inject, &res) < 0) {
            refuse(client_fd, reqid, EAGAIN, res.message);
            return;
        }
        struct ctl_migrate_done done = {.bytes = res.bytes, .frozen_us = res.frozen_us,
                                        .total_us = res.total_us};
        snprintf(done.node, sizeof done.node, "%s", m->node);
        ctl_send(client_fd, CTL_MIGRATE_DONE, reqid, &done, sizeof done, NULL, 0);
        return;
    }
    if (p->is_home && p->anchor) {
        int rfd = fcntl(client_fd, F_DUPFD_CLOEXEC, 3);
        if (rfd >= 0 && fwd_anchor_move(p->anchor, rfd, reqid, m->inject, m->node) == 0)
            return; /* answered when the node where it runs replies */
        if (rfd >= 0)
            close(rfd);
        snprintf(msg, sizeof msg, "pid %d is moving right now; try again", p->pid);
        refuse(client_fd, reqid, EBUSY, msg);
        return;
    }
    snprintf(msg, sizeof msg, "pid %d does not run on %s; ask its home %s", p->pid, cluster_self_name(d->cl),
             d->cl->map.nodes[p->home].name);
    refuse(client_fd, reqid, ESRCH, msg);
}

void migrate_ctl_ps(struct move *d, int client_fd, uint32_t reqid)
{
    for (struct mproc *p = migrate_procs(d); p; p = p->next) {
        struct ctl_ps_proc r = {.pid = p->pid, .moves = p->moves, .flags = p->flags,
                                .job = p->job, .rank = p->rank,
                                .last_frozen_us = p->last_frozen_us};
        r.state = p->state == MP_MOVING ? CTL_PS_MOVING : p->state == MP_EXITED ? CTL_PS_EXITED
                  : p->here ? CTL_PS_RUNNING : CTL_PS_AWAY;
        snprintf(r.home, sizeof r.home, "%s", d->cl->map.nodes[p->home].name);
        snprintf(r.node, sizeof r.node, "%s", d->cl->map.nodes[p->here ? d->cl->self : p->at].name);
        snprintf(r.cmd, sizeof r.cmd, "%s", p->cmd);
        if (ctl_send(client_fd, CTL_PS_PROC, reqid, &r, sizeof r, NULL, 0) < 0)
            return;
    }
    ctl_send(client_fd, CTL_END, reqid, NULL, 0, NULL, 0);
}
