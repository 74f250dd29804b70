/*
 * migrate_proc.c -- see migrate_proc.h.
 */
#include "migrate_proc.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "common/jobid.h"
#include "migrd/cluster/cluster.h"
#include "migrd/postal/jobs.h"
#include "migrd/util/log.h"
#include "forward.h"
#include "forward_conn.h"
#include "migrate.h"
#include "move.h"

void mproc_answer_move(int fd, uint32_t reqid, bool ok, const char *node_or_why, uint64_t bytes,
                       uint64_t frozen_us, uint64_t total_us)
{
    if (ok) {
        struct ctl_migrate_done done = {.bytes = bytes, .frozen_us = frozen_us, .total_us = total_us};
        snprintf(done.node, sizeof done.node, "%.63s", node_or_why);
        ctl_send(fd, CTL_MIGRATE_DONE, reqid, &done, sizeof done, NULL, 0);
    } else {
        struct ctl_error e = {.err = EAGAIN};
        snprintf(e.message, sizeof e.message, "%.199s", node_or_why);
        ctl_send(fd, CTL_ERROR, reqid, &e, sizeof e, NULL, 0);
    }
}

struct mproc *mproc_first(struct move *d)
{
    return d->migrate ? migrate_procs(d) : NULL;
}

struct mproc *mproc_new(struct move *d, pid_t pid, int home)
{
    struct mproc *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->pid = pid;
    p->home = home;
    p->at = d->cl->self;
    p->stub_fd = -1;
    p->pidfd = -1;
    p->state = MP_RUNNING;
    migrate_link_proc(d, p);
    return p;
}

void mproc_early_park(struct mproc *p, struct fconn *c, uint32_t gen)
{
    fconn_park(c); /* its next frames, and its end, wait */
    c->owner = p;
    p->early = c;
    p->early_gen = gen;
    log_debug("pid %d: %s called before its move ended here: parked", p->pid, c->peer);
}

void mproc_early_attach(struct mproc *p)
{
    struct fconn *c = p->early;
    if (!c || !p->anchor)
        return;
    p->early = NULL;
    fwd_anchor_attach(p->anchor, c, p->early_gen);
    fconn_resume(c);
}

void mproc_early_drop(struct mproc *p)
{
    struct fconn *c = p->early;
    if (!c)
        return;
    p->early = NULL;
    c->owner = NULL;
    fconn_free_later(c);
}

void mproc_free(struct move *d, struct mproc *p)
{
    mproc_early_drop(p);
    migrate_unlink_proc(d, p);
    migrate_out_forget(p);
    if (p->anchor)
        fwd_anchor_free(p->anchor);
    if (p->ep)
        fwd_ep_free(p->ep);
    if (p->stub_fd >= 0)
        close(p->stub_fd);
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->job_held)
        jobs_release(d->postal, p->job);
    free(p);
}

struct free_later {
    struct move *d;
    struct mproc *p;
};

static void free_now(evutil_socket_t fd, short what, void *arg)
{
    struct free_later *f = arg;
    (void)fd, (void)what;
    mproc_free(f->d, f->p);
    free(f);
}

void mproc_free_later(struct move *d, struct mproc *p)
{
    struct free_later *f = malloc(sizeof *f);
    const struct timeval now = {0, 0};
    if (!f || (*f = (struct free_later){d, p}, event_base_once(d->base, -1, EV_TIMEOUT, free_now, f, &now) < 0)) {
        log_warn("pid %d: cannot schedule freeing its record: it stays listed", p->pid);
        free(f);
    }
}

struct mproc *mproc_find(struct move *d, int home, pid_t pid)
{
    for (struct mproc *p = mproc_first(d); p; p = p->next)
        if (p->home == home && p->pid == pid)
            return p;
    return NULL;
}

struct mproc *mproc_find_pid(struct move *d, pid_t pid)
{
    struct mproc *any = NULL;
    for (struct mproc *p = mproc_first(d); p; p = p->next) {
        if (p->pid != pid)
            continue;
        if (p->here)
            return p;
        if (!any)
            any = p;
    }
    return any;
}

struct mproc *mproc_find_rank(struct move *d, uint32_t job, uint32_t rank)
{
    for (struct mproc *p = mproc_first(d); p; p = p->next)
        if (p->is_home && (p->flags & CTL_PROC_RANK) && p->job == job && p->rank == rank)
            return p;
    return NULL;
}

const char *mproc_name(const struct mproc *p, char *buf, size_t len)
{
    char job[JOBID_STRLEN];
    if (p->flags & CTL_PROC_RANK)
        snprintf(buf, len, "pid %d (job %s rank %u)", p->pid, jobid_format(p->job, job, sizeof job), p->rank);
    else
        snprintf(buf, len, "pid %d", p->pid);
    return buf;
}

void mproc_notify_stub(struct mproc *p, uint32_t type, int status, const char *node)
{
    struct ctl_proc_event ev = {.type = type, .status = status};
    if (p->stub_fd < 0)
        return;
    snprintf(ev.node, sizeof ev.node, "%s", node ? node : "");
    int rc = ctl_send(p->stub_fd, CTL_PROC_EVENT, 0, &ev, sizeof ev, NULL, 0);
    if (rc < 0) {
        log_warn("pid %d: telling its stub (fd %d): %s; forgetting the stub", p->pid, p->stub_fd,
                 strerror(-rc));
        close(p->stub_fd);
        p->stub_fd = -1;
    }
}
