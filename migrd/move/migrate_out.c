/*
 * migrate_out.c -- the source side of a move (see migrate.h).
 *
 * A move out runs in four steps, so that the daemon's event loop never
 * waits on another node: the offer (connect, authenticate, offer, the
 * destination's answer, which comes once its page buffer is ready) is made
 * by a move worker (workers.h); then, on the loop, the frozen window's work
 * -- freeze, capture and stream, which the destination reads in a worker of
 * its own; then the acknowledgement is awaited as an event; then the end:
 * the source copy ended and the home's forwarding set up, or the process
 * thawed where it was on any failure before the acknowledgement.  Two
 * nodes moving processes to each other at once therefore never wait for
 * each other's loop.
 */
#include "migrate_int.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "migrd/cluster/cluster.h"
#include "migrd/engine/engine_int.h"
#include "migrd/pager/pager.h"
#include "migrd/util/boost.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "forward.h"
#include "mig_auth.h"
#include "migrate_lazy.h"
#include "migrate_postal.h"
#include "migrate_proc.h"
#include "move.h"
#include "move_log.h"
#include "workers.h"

static uint64_t resident_bytes(pid_t pid)
{
    char path[64];
    unsigned long size = 0, rss = 0;
    snprintf(path, sizeof path, "/proc/%d/statm", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* The real uid of pid (the "Uid:" line of /proc/PID/status): 0, or -1
 * with errno. */
static int real_uid(pid_t pid, uint32_t *uid)
{
    char path[64], line[256];
    int rc = -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    errno = ENOENT;
    while (rc < 0 && fgets(line, sizeof line, f))
        if (!strncmp(line, "Uid:", 4) && sscanf(line + 4, "%u", uid) == 1)
            rc = 0;
    fclose(f);
    return rc;
}

struct outchans {
    uint32_t n;
    struct mig_chan map[MIG_MAX_CHAN];
    int orig[MIG_MAX_CHAN];   /* first move from home: the originals */
    uint32_t nfiles;          /* the files shared with the home      */
    struct mig_file files[MIG_MAX_FILES];
    int forig[MIG_MAX_FILES]; /* first move from home: the originals */
    int pidfd;                /* of the process, to take the originals */
};

static void close_all(int *fds, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void outchans_close(struct outchans *oc)
{
    close_all(oc->orig, oc->n);
    close_all(oc->forig, oc->nfiles);
    oc->n = oc->nfiles = 0;
    if (oc->pidfd >= 0)
        close(oc->pidfd);
    oc->pidfd = -1;
}

/* The original of fd of the frozen process, for the home to keep: the fd,
 * or -1 with res set. */
static int take_original(struct mproc *p, struct outchans *oc, int fd, struct migrate_result *res)
{
    if (oc->pidfd < 0 && (oc->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0)) < 0)
        return mig_failf(res, "pidfd_open(pid %d): %s", p->pid, strerror(errno));
    int orig = (int)syscall(SYS_pidfd_getfd, oc->pidfd, fd, 0);
    if (orig < 0)
        return mig_failf(res, "pid %d: taking fd %d to forward it: %s", p->pid, fd, strerror(errno));
    fcntl(orig, F_SETFD, FD_CLOEXEC);
    return orig;
}

/* Which channel each outside descriptor of the image goes to. */
static int map_channels(struct mproc *p, const struct engine_image *img, const struct mig_postal *mp,
                        struct outchans *oc, struct migrate_result *res)
{
    for (uint32_t i = 0; i < img->nfds; i++) {
        const struct eng_fd *f = &img->fds[i];
        uint32_t chan, dir;
        if (f->kind != FD_EXTERNAL || f->same_as >= 0 || mpostal_owns_fd(mp, f->fd))
            continue;
        if (oc->n >= MIG_MAX_CHAN)
            return mig_failf(res, "pid %d has more than %d descriptors leading outside", p->pid, MIG_MAX_CHAN);
        oc->orig[oc->n] = -1;
        if (p->ep) {
            if (fwd_ep_chan_of(p->ep, f->ino, &chan, &dir) < 0)
                return mig_failf(res, "pid %d: fd %d (%s) leads to an object of this node that is not "
                                  "forwarded from its home", p->pid, f->fd, f->desc ? f->desc : f->path);
        } else {
            int acc = (int)f->flags & O_ACCMODE;
            dir = acc == O_WRONLY ? MIG_DIR_OUT : acc == O_RDONLY ? MIG_DIR_IN : MIG_DIR_IN | MIG_DIR_OUT;
            chan = i + 1;
            if ((oc->orig[oc->n] = take_original(p, oc, f->fd, res)) < 0)
                return -1;
        }
        oc->map[oc->n++] = (struct mig_chan){.fd = f->fd, .chan = chan, .dir = dir};
    }
    return 0;
}

/* Which regular files of the image are shared with the home: those it
 * already shared (the endpoint here knows them), or at the first move from
 * home those its stub holds too (a shell redirect both inherited), whose
 * originals the home then keeps.  A file the process opened itself is
 * reopened by path where it goes, with its own offset. */
static int map_files(struct mproc *p, const struct engine_image *img, struct outchans *oc,
                     struct migrate_result *res)
{
    for (uint32_t i = 0; i < img->nfds; i++) {
        const struct eng_fd *f = &img->fds[i];
        uint32_t id = 0;
        if (f->kind != FD_FILE || f->same_as >= 0 || !S_ISREG(f->mode) || (f->flags & O_PATH))
            continue;
        if (p->ep) {
            id = fwd_ep_file_of(p->ep, f->fd);
        } else if (p->is_home && p->stub_pid > 0 && !p->anchor) {
            int r = fwd_file_shared(p->pid, f->fd, p->stub_pid);
            if (r < 0)
                return mig_failf(res, "pid %d: fd %d (%s): cannot tell whether its stub shares it", p->pid,
                                 f->fd, f->path);
            id = r ? oc->nfiles + 1 : 0;
        }
        if (!id)
            continue;
        if (oc->nfiles >= MIG_MAX_FILES)
            return mig_failf(res, "pid %d shares more than %d files with its home", p->pid, MIG_MAX_FILES);
        oc->forig[oc->nfiles] = -1;
        if (!p->ep && (oc->forig[oc->nfiles] = take_original(p, oc, f->fd, res)) < 0)
            return -1;
        oc->files[oc->nfiles++] = (struct mig_file){.fd = f->fd, .id = id};
    }
    return 0;
}

/* Unread input of the channels (a previous move's endpoint) to the stream. */
static int send_unread_input(int fd, struct mproc *p, const struct outchans *oc)
{
    for (uint32_t i = 0; p->ep && i < oc->n; i++) {
        struct evbuffer *b = evbuffer_new();
        bool eof = false;
        int rc = b ? fwd_ep_unread_input(p->ep, oc->map[i].chan, b, &eof) : -1;
        while (rc == 0 && evbuffer_get_length(b)) {
            size_t n = evbuffer_get_length(b);
            if (n > MIG_MAX_BODY)
                n = MIG_MAX_BODY;
            rc = mig_send(fd, MIG_INPUT, oc->map[i].chan, evbuffer_pullup(b, (ssize_t)n), (uint32_t)n);
            evbuffer_drain(b, n);
        }
        if (rc == 0 && eof)
            rc = mig_send(fd, MIG_INPUT_EOF, oc->map[i].chan, NULL, 0);
        if (b)
            evbuffer_free(b);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* The image, raw; tests may corrupt it or stall half-way. */
static int write_image(int fd, const struct engine_image *img, uint32_t inject, uint64_t *bytes)
{
    if (inject == CTL_INJECT_NONE)
        return engine_image_write(img, fd, bytes);
    int mfd = memfd_create("migr-image", MFD_CLOEXEC);
    if (mfd < 0 || engine_image_write(img, mfd, bytes) < 0) {
        if (mfd >= 0)
            close(mfd);
        return -1;
    }
    uint8_t *m = mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    close(mfd);
    if (m == MAP_FAILED)
        return -1;
    size_t half = *bytes / 2;
    int rc;
    if (inject == CTL_INJECT_CORRUPT) {
        m[half] ^= 0x5a;
        rc = mig_write_all(fd, m, *bytes);
    } else {
        rc = mig_write_all(fd, m, half);
        if (rc == 0) {
            log_info("test: stalling the stream half-way for 3 s");
            sleep(3);
            rc = mig_write_all(fd, m + half, *bytes - half);
        }
    }
    munmap(m, *bytes);
    return rc;
}

/* The image and, in a cluster with a key, its MAC. */
static int send_image(int fd, const struct engine_image *img, uint32_t inject, uint64_t *bytes)
{
    struct mig_image_auth ia;
    mig_image_auth_begin(fd, true, &ia);
    int rc = write_image(fd, img, inject, bytes);
    return mig_image_auth_end(fd, true, &ia, rc == 0);
}

/* One move out, from the request to its end. */
struct mout {
    struct mout *next;         /* the moves out of here in progress */
    bool offering;             /* its offer is with a worker */
    struct move *d;
    struct mproc *p;           /* NULL once its record is gone (mproc_free) */
    pid_t pid;
    int dest;
    uint32_t inject;
    uint32_t mode;             /* enum ctl_move_mode */
    struct mlazy_dir lazy;     /* a lazy move: the pages left here */
    uid_t by;
    migrate_done_fn done;
    void *arg;
    struct migrate_result res;
    struct worker_job job;     /* the offer, then the image's stream */
    struct mig_offer offer;
    int fd;
    int offered;               /* 0: accepted; -1: res.message says why not */
    bool streaming;            /* its image is with a worker */
    int stream_rc;             /* the worker's: 0, or -1 (res.message) */
    struct boost boost;
    struct engine_frozen *fz;
    struct engine_image *img;
    bool postal;               /* it has a mailbox */
    struct outchans oc;
    struct event *ack_ev;
    uint64_t t0, t_freeze, t_frozen, t_captured, t_streamed, t_acked;
    struct ctl_log_move rec;   /* its entry in the move log, once it ends */
};

static struct mout *outgoing;

#define PID_FREE_TRIES   15   /* offers while the pid is taken by a store there */
#define PID_FREE_WAIT_MS 200

static bool mode_lazy(uint32_t mode)
{
    return (mode & CTL_MOVE_MODE_MASK) == CTL_MOVE_LAZY || (mode & CTL_MOVE_MODE_MASK) == CTL_MOVE_LAZY_NO_PUSH;
}

static const char *dest_name(const struct mout *m) { return m->d->cl->map.nodes[m->dest].name; }

/* One offer: 0 accepted, -1 failed or refused (res says why), 1 refused
 * because the pid is still taken there. */
static int offer_once(struct mout *m)
{
    const struct cfg_node *dn = &m->d->cl->map.nodes[m->dest];
    char reason[MIG_REASON_MAX + 1] = "";
    struct mig_hdr h;
    m->fd = mig_connect(dn, migrate_port(m->d, m->dest), 3000, OFFER_TIMEOUT_MS);
    if (m->fd < 0) {
        mig_failf(&m->res, "cannot reach %s (%s:%u): %s", dn->name, dn->addr, migrate_port(m->d, m->dest),
                  strerror(-m->fd));
        m->fd = -1;
        return -1;
    }
    if (mig_auth_connect(m->fd, m->d->cl, m->dest, AUTH_MOVE, reason, sizeof reason) < 0)
        return mig_failf(&m->res, "%s", reason);
    /* the answer comes once the destination's page buffer is faulted in:
     * the wait grows with the size (a first touch of memory can be slow) */
    if (mig_set_timeouts(m->fd, OFFER_TIMEOUT_MS + (int)((m->offer.mem_bytes >> 20) * OFFER_MS_PER_MIB)) < 0 ||
        mig_send(m->fd, MIG_OFFER, 0, &m->offer, sizeof m->offer) < 0 ||
        mig_recv(m->fd, &h, reason, MIG_REASON_MAX) < 0)
        return mig_failf(&m->res, "%s did not answer the offer: %s", dn->name,
                         errno == EAGAIN ? "timed out" : strerror(errno));
    if (h.type != MIG_ACCEPT) {
        mig_failf(&m->res, "%s refuses: %s", dn->name, h.type == MIG_REFUSE ? reason : "unexpected answer");
        return h.type == MIG_REFUSE && strstr(reason, " is taken on ") ? 1 : -1;
    }
    return 0;
}

/* In a worker: reach the destination, prove ourselves, offer, wait for the
 * answer.  Touches only m's socket and result.  Pages of the process still
 * away (an earlier lazy move to here) are fetched first; if they were on
 * the destination, its store holds the pid until it has ended its frozen
 * copy there (a moment after the last page came): the offer is repeated
 * meanwhile. */
static void offer_work(struct worker_job *j)
{
    struct mout *m = (struct mout *)((char *)j - offsetof(struct mout, job));
    char reason[MIG_REASON_MAX + 1] = "";
    bool had_away = pager_away(m->pid, NULL, 0) > 0;
    m->offered = -1;
    /* its owner, named as this node's user database names it (lookups may
     * block on a directory service: here, not on the loop) */
    if (real_uid(m->pid, &m->offer.uid) < 0 || creds_user_name(m->offer.uid, m->offer.user) < 0) {
        mig_failf(&m->res, "cannot tell the owner of pid %d on %s: %s", m->pid, cluster_self_name(m->d->cl),
                  strerror(errno));
        return;
    }
    if (pager_drain(m->pid, OFFER_TIMEOUT_MS, reason, sizeof reason) < 0) {
        mig_failf(&m->res, "%s", reason);
        return;
    }
    for (int tries = 0;; tries++) {
        int rc = offer_once(m);
        if (rc <= 0 || !had_away || tries >= PID_FREE_TRIES) {
            m->offered = rc == 0 ? 0 : -1;
            return;
        }
        mig_close(m->fd);
        m->fd = -1;
        usleep(PID_FREE_WAIT_MS * 1000);
    }
}

static void finish(struct mout *m, int rc);

/* The source copy of a process that moved, killed and waited for by a
 * worker: its exit tears down its whole address space, which takes a
 * while for a big one, and the loop relays meanwhile.  (Any thread of the
 * tracer's process may wait for a tracee.) */
struct reaper {
    struct reaper *next;
    struct worker_job job;
    struct engine_frozen *fz;
    pid_t pid;
    bool reaped;
    int rc;
    char why[256];
};
static struct reaper *reapers;

/* Kill and reap it here (in the worker, or on the loop if none took it). */
static void reap_now(struct reaper *r)
{
    r->rc = engine_release(r->fz, ENGINE_KILL);
    if (r->rc < 0)
        snprintf(r->why, sizeof r->why, "%s", engine_strerror());
    r->reaped = true;
}

static void reap_work(struct worker_job *j)
{
    reap_now((struct reaper *)((char *)j - offsetof(struct reaper, job)));
}

static void reaper_free(struct reaper *r)
{
    if (!r->reaped)
        reap_now(r);
    if (r->rc < 0)
        log_warn("pid %d: ending the source copy: %s", r->pid, r->why);
    for (struct reaper **pp = &reapers; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    worker_job_fini(&r->job);
    free(r);
}

static void reaped(struct worker_job *j)
{
    reaper_free((struct reaper *)((char *)j - offsetof(struct reaper, job)));
}

/* Kill and reap fz's process off the loop (on the loop if no worker can). */
static void reap_later(struct move *d, struct engine_frozen *fz, pid_t pid)
{
    char why[128];
    struct reaper *r = calloc(1, sizeof *r);
    if (!r) {
        if (engine_release(fz, ENGINE_KILL) < 0)
            log_warn("pid %d: ending the source copy: %s", pid, engine_strerror());
        return;
    }
    *r = (struct reaper){.next = reapers, .job = {.work = reap_work, .done = reaped, .shut_fd = -1},
                         .fz = fz, .pid = pid};
    reapers = r;
    if (worker_submit(d->base, &r->job, why, sizeof why) < 0)
        reaper_free(r); /* not reaped: done here */
}

/* The process ends at its source: the destination has it. */
static void hand_over(struct mout *m)
{
    struct mproc *p = m->p;
    struct move *d = m->d;
    if (p && !p->anchor) {
        p->anchor = fwd_anchor_new(d, p);
        for (uint32_t i = 0; p->anchor && i < m->oc.n; i++) {
            fwd_anchor_add(p->anchor, m->oc.map[i].chan, m->oc.orig[i], m->oc.map[i].dir); /* taken */
            m->oc.orig[i] = -1;
        }
        for (uint32_t i = 0; p->anchor && i < m->oc.nfiles; i++) {
            if (m->oc.forig[i] >= 0)
                fwd_anchor_add_file(p->anchor, m->oc.files[i].id, m->oc.forig[i]);
            m->oc.forig[i] = -1;
        }
        if (!p->anchor || fwd_anchor_start(p->anchor) < 0)
            log_error("pid %d: cannot set up forwarding at home", m->pid);
    }
    if (p) {
        p->moves++;
        p->at = m->dest;
        p->last_frozen_us = m->res.frozen_us;
        mproc_notify_stub(p, CTL_PEV_MOVED, 0, dest_name(m));
    }
    struct mbox *pm = m->postal ? mpostal_mailbox(d, m->pid) : NULL;
    if (pm)
        mpostal_exile(d, pm, m->dest); /* before the old copy's control connection closes */
    else if (m->postal)
        log_warn("pid %d: its mailbox here closed during the move: nothing to forward from it", m->pid);
    char why[200];
    if (m->lazy.pages) {
        /* the source copy is the store of its pages away */
        uint64_t pages = m->lazy.pages;
        bool push = (m->mode & CTL_MOVE_MODE_MASK) == CTL_MOVE_LAZY;
        if (mlazy_keep(d, m->fz, m->fd, dest_name(m), &m->lazy, push, why, sizeof why) == 0) {
            m->fz = NULL;
            m->fd = -1;
            return;
        }
        log_error("pid %d: cannot keep its %llu pages away for %s: %s", m->pid, (unsigned long long)pages,
                  dest_name(m), why);
    }
    reap_later(d, m->fz, m->pid);
    m->fz = NULL;
}

/* The acknowledgement (or its timeout). */
static void on_ack(evutil_socket_t fd, short what, void *arg)
{
    struct mout *m = arg;
    char reason[MIG_REASON_MAX + 1] = "";
    struct mig_hdr h;
    (void)fd;
    if (!(what & EV_READ)) {
        mig_failf(&m->res, "no acknowledgement from %s: timed out", dest_name(m));
        finish(m, -1);
        return;
    }
    if (mig_recv(m->fd, &h, reason, MIG_REASON_MAX) < 0) {
        mig_failf(&m->res, "no acknowledgement from %s: %s", dest_name(m),
                  errno == EAGAIN ? "timed out" : strerror(errno));
        finish(m, -1);
        return;
    }
    if (h.type != MIG_RESTORED) {
        mig_failf(&m->res, "%s could not restore it: %s", dest_name(m),
                  h.type == MIG_FAILED ? reason : "unexpected answer");
        finish(m, -1);
        return;
    }
    /* acknowledged: from here on the copy at the destination is the process */
    m->t_acked = migrd_now_us();
    m->res.frozen_us = m->t_acked - m->t_freeze;
    hand_over(m);
    finish(m, 0);
}

/* A write to the destination failed: its reason (a destination that
 * refused the image said why before it closed), -1. */
static int stream_failed(struct mout *m)
{
    char reason[MIG_REASON_MAX + 1] = "";
    struct mig_hdr h;
    int e = errno;
    if ((e == ECONNRESET || e == EPIPE) && mig_recv(m->fd, &h, reason, MIG_REASON_MAX) == 0 &&
        h.type == MIG_FAILED)
        return mig_failf(&m->res, "%s could not restore it: %s", dest_name(m), reason);
    return mig_failf(&m->res, "streaming to %s: %s", dest_name(m), e ? strerror(e) : engine_strerror());
}

/* In a worker: the image (its pages read from the frozen process) and its
 * MAC.  Still the frozen window, but a long one: boosted softly, so that
 * the node's other jobs keep running (util/boost.h). */
static void stream_work(struct worker_job *j)
{
    struct mout *m = (struct mout *)((char *)j - offsetof(struct mout, job));
    struct boost boost;
    boost_begin_soft(&boost);
    errno = 0;
    m->stream_rc = mig_send(m->fd, MIG_IMAGE, 0, NULL, 0) < 0 ||
                           send_image(m->fd, m->img, m->inject, &m->res.bytes) < 0
                       ? stream_failed(m)
                       : 0;
    m->t_streamed = migrd_now_us();
    boost_end(&boost);
}

/* On the loop, the image sent (or not): await the acknowledgement. */
static void streamed(struct worker_job *j)
{
    struct mout *m = (struct mout *)((char *)j - offsetof(struct mout, job));
    worker_job_fini(&m->job);
    m->streaming = false;
    if (m->stream_rc < 0) {
        finish(m, -1);
        return;
    }
    /* the acknowledgement is awaited on the loop: the destination's restore
     * may need this node (its loop, a move of its own to here) meanwhile */
    const struct timeval tv = {STREAM_TIMEOUT_MS / 1000, 0};
    if (!(m->ack_ev = event_new(m->d->base, m->fd, EV_READ, on_ack, m)) || event_add(m->ack_ev, &tv) < 0) {
        mig_failf(&m->res, "waiting for %s's acknowledgement: out of memory", dest_name(m));
        finish(m, -1);
    }
}

/* On the loop, the offer accepted: the frozen window's work. */
static int freeze_and_stream(struct mout *m)
{
    struct move *d = m->d;
    struct mproc *p = m->p;
    struct mbox *pm = NULL;
    struct mig_postal mp;
    int fd = m->fd;
    mig_stream_timeouts(fd);
    p->state = MP_MOVING;
    boost_begin(&m->boost); /* the process is frozen from here: ahead of busy ranks */
    if (engine_freeze(m->pid, 5000, &m->fz) < 0) {
        m->fz = NULL;
        return mig_failf(&m->res, "freezing: %s", engine_strerror());
    }
    m->t_freeze = m->fz->t_freeze0 / 1000;
    if ((pm = mpostal_mailbox(d, m->pid)) &&
        mpostal_safe_point(d, m->pid, &m->fz, m->res.message, sizeof m->res.message) < 0)
        return -1;
    m->postal = pm != NULL;
    m->t_frozen = migrd_now_us();
    /* the pages are read from the frozen process while the image streams:
     * reading and sending overlap, and no buffer of its size is needed */
    if (engine_capture_lazy(m->fz, &m->img) < 0) {
        m->img = NULL;
        return mig_failf(&m->res, "capturing: %s", engine_strerror());
    }
    m->t_captured = migrd_now_us();
    if (mpostal_check_connections(d, pm, m->img, m->res.message, sizeof m->res.message) < 0)
        return -1;
    if (pm && (!(pm = mpostal_mailbox(d, m->pid)) ||
               mpostal_describe(d, pm, m->img, &mp, m->res.message, sizeof m->res.message) < 0)) {
        if (!m->res.message[0])
            mig_failf(&m->res, "the mailbox of pid %d closed during the move", m->pid);
        return -1;
    }
    if (map_channels(p, m->img, pm ? &mp : NULL, &m->oc, &m->res) < 0 || map_files(p, m->img, &m->oc, &m->res) < 0)
        return -1;
    if (p->ep)
        fwd_ep_drain_output(p->ep);
    if (mig_send(fd, MIG_CHANMAP, 0, m->oc.map, m->oc.n * (uint32_t)sizeof m->oc.map[0]) < 0 ||
        send_unread_input(fd, p, &m->oc) < 0 ||
        (m->oc.nfiles &&
         mig_send(fd, MIG_FILEMAP, 0, m->oc.files, m->oc.nfiles * (uint32_t)sizeof m->oc.files[0]) < 0) ||
        (pm && (mig_send(fd, MIG_POSTAL, 0, &mp, sizeof mp) < 0 || mpostal_send_rings(fd, pm) < 0)) ||
        (mode_lazy(m->mode) && mlazy_send_dir(fd, m->img, &m->lazy, m->res.message, sizeof m->res.message) < 0))
        return stream_failed(m);
    /* the image, the bulk of the move, streams from a worker: relaying and
     * the other moves of this node go on meanwhile */
    m->job = (struct worker_job){.work = stream_work, .done = streamed, .shut_fd = fd};
    if (worker_submit(d->base, &m->job, m->res.message, sizeof m->res.message) < 0) {
        worker_job_fini(&m->job);
        return -1;
    }
    m->streaming = true;
    return 0;
}

/* The offer's answer is in (on the loop). */
static void offered(struct worker_job *j)
{
    struct mout *m = (struct mout *)((char *)j - offsetof(struct mout, job));
    worker_job_fini(&m->job);
    m->offering = false;
    if (m->offered < 0) {
        finish(m, -1);
        return;
    }
    if (!m->p) {
        mig_failf(&m->res, "pid %d ended before it could move", m->pid);
        finish(m, -1);
        return;
    }
    if (freeze_and_stream(m) < 0)
        finish(m, -1);
}

/* The end, either way: the log line, the requester's answer, the record. */
static void finish(struct mout *m, int rc)
{
    struct move *d = m->d;
    struct mproc *p = m->p;
    /* the endpoint's connection to the home stays open past its detach */
    struct fconn *home = p && p->ep ? fwd_ep_home_conn(p->ep) : NULL;
    m->res.total_us = migrd_now_us() - m->t0;
    if (m->fz) {
        if (engine_release(m->fz, ENGINE_LEAVE_RUNNING) < 0)
            log_error("pid %d: THAW FAILED: %s", m->pid, engine_strerror());
        m->fz = NULL;
    }
    boost_end(&m->boost);
    if (p && rc == 0) {
        if (p->ep) {
            fwd_ep_detach(p->ep, m->res.frozen_us);
            p->ep = NULL;
        }
        p->here = p->child = false;
        p->state = MP_AWAY;
        mproc_early_attach(p); /* its new location called already (it may have ended there since) */
    } else if (p) {
        mproc_early_drop(p);
        if (p->ep)
            fwd_ep_move_failed(p->ep);
        p->state = MP_RUNNING;
    }
    if (m->ack_ev)
        event_free(m->ack_ev);
    if (m->img)
        engine_image_free(m->img);
    free(m->lazy.away);
    outchans_close(&m->oc);
    if (m->fd >= 0)
        mig_close(m->fd);
    double secs = m->res.frozen_us ? (double)m->res.frozen_us / 1e6 : 0;
    char who[80];
    if (p)
        mproc_name(p, who, sizeof who);
    else
        snprintf(who, sizeof who, "pid %d", m->pid);
    if (rc == 0)
        log_info("move %s %s -> %s for uid %u: ok%s, %llu bytes, frozen %.1f ms, %.0f MB/s, total %.1f ms "
                 "(prepare %.1f, freeze %.1f, capture %.1f, stream %.1f, restore+ack %.1f ms)",
                 who, cluster_self_name(d->cl), dest_name(m), (unsigned)m->by,
                 m->lazy.pages ? " (lazy)" : "", (unsigned long long)m->res.bytes,
                 (double)m->res.frozen_us / 1000, secs > 0 ? (double)m->res.bytes / secs / 1e6 : 0,
                 (double)m->res.total_us / 1000, (double)(m->t_freeze - m->t0) / 1000,
                 (double)(m->t_frozen - m->t_freeze) / 1000, (double)(m->t_captured - m->t_frozen) / 1000,
                 (double)(m->t_streamed - m->t_captured) / 1000, (double)(m->t_acked - m->t_streamed) / 1000);
    else
        log_info("move %s %s -> %s for uid %u: failed (%s), %s", who, cluster_self_name(d->cl), dest_name(m),
                 (unsigned)m->by, m->res.message, m->t_freeze ? "thawed where it was" : "never frozen");
    if (rc == 0) /* the answer through the home names the node */
        snprintf(m->res.message, sizeof m->res.message, "%s", dest_name(m));
    m->rec.ok = rc == 0;
    m->rec.frozen_us = m->res.frozen_us;
    m->rec.total_us = m->res.total_us;
    m->rec.bytes = m->res.bytes;
    if (rc != 0)
        snprintf(m->rec.reason, sizeof m->rec.reason, "%s", m->res.message);
    move_log_add(&m->rec);
    if (p)
        p->out = NULL;
    m->done(d, rc, &m->res, home, m->arg);
    if (p && rc == 0 && !p->is_home)
        mproc_free(d, p);
    for (struct mout **pp = &outgoing; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    free(m);
}

/* The move log's record of a move of p to node asked by `by`, now. */
static void log_rec_init(struct ctl_log_move *r, const struct move *d, const struct mproc *p, const char *node,
                         uid_t by)
{
    *r = (struct ctl_log_move){.start_unix_ms = move_log_now_unix_ms(), .pid = p->pid, .uid = p->uid,
                               .by_uid = by, .flags = p->flags, .job = p->job, .rank = p->rank};
    snprintf(r->from, sizeof r->from, "%s", cluster_self_name(d->cl));
    snprintf(r->to, sizeof r->to, "%.63s", node);
    snprintf(r->cmd, sizeof r->cmd, "%s", p->cmd);
}

static int start_move(struct move *d, struct mproc *p, const char *node, uint32_t inject, uint32_t mode, uid_t by,
                      migrate_done_fn done, void *arg, struct migrate_result *res)
{
    int dest = migrate_node_by_addr(d, node);
    if (dest < 0)
        return mig_failf(res, "no node %s in the cluster map", node);
    if (dest == d->cl->self)
        return mig_failf(res, "pid %d already runs on %s", p->pid, node);
    if (p->flags & CTL_PROC_NO_MIGRATE)
        return mig_failf(res, "pid %d was started with --no-migrate", p->pid);
    if (p->out)
        return mig_failf(res, "pid %d is moving right now; try again", p->pid);
    if (!p->here || p->state != MP_RUNNING)
        return mig_failf(res, "pid %d does not run on %s now", p->pid, cluster_self_name(d->cl));
    struct mout *m = calloc(1, sizeof *m);
    if (!m)
        return mig_failf(res, "out of memory on %s", cluster_self_name(d->cl));
    *m = (struct mout){.d = d, .p = p, .pid = p->pid, .dest = dest, .inject = inject, .mode = mode, .by = by,
                       .done = done, .arg = arg, .fd = -1, .t0 = migrd_now_us(), .oc.pidfd = -1};
    m->offer = (struct mig_offer){.pid = p->pid, .home = (uint32_t)p->home, .gen = p->moves, .flags = p->flags,
                                  .job = p->job, .rank = p->rank, .mem_bytes = resident_bytes(p->pid),
                                  .mode = mode};
    snprintf(m->offer.kernel, sizeof m->offer.kernel, "%s", d->cl->kernel);
    snprintf(m->offer.cmd, sizeof m->offer.cmd, "%s", p->cmd);
    m->offer.cpu = d->cl->cpu;
    log_rec_init(&m->rec, d, p, node, by);
    m->job.work = offer_work;
    m->job.done = offered;
    m->job.shut_fd = -1;
    if (worker_submit(d->base, &m->job, res->message, sizeof res->message) < 0) {
        worker_job_fini(&m->job);
        free(m);
        return -1;
    }
    p->out = m;
    m->offering = true;
    m->next = outgoing;
    outgoing = m;
    return 0;
}

int migrate_out_start(struct move *d, struct mproc *p, const char *node, uint32_t inject, uint32_t mode, uid_t by,
                      migrate_done_fn done, void *arg, struct migrate_result *res)
{
    memset(res, 0, sizeof *res);
    if (start_move(d, p, node, inject, mode, by, done, arg, res) == 0)
        return 0;
    struct ctl_log_move r; /* refused before it began: in the log too */
    log_rec_init(&r, d, p, node, by);
    snprintf(r.reason, sizeof r.reason, "%s", res->message);
    move_log_add(&r);
    return -1;
}

void migrate_out_fini(void)
{
    while (outgoing) {
        struct mout *m = outgoing;
        if (m->offering) {
            /* never frozen: the offer ends (its timeouts bound the wait) */
            worker_cancel(&m->job);
            worker_job_fini(&m->job);
            m->offering = false;
            mig_failf(&m->res, "migrd on %s is stopping", cluster_self_name(m->d->cl));
            finish(m, -1);
        } else if (m->streaming) {
            /* frozen, its image half-way: the destination cannot have it;
             * the socket shut down ends the stream, the process thaws */
            worker_cancel(&m->job);
            worker_job_fini(&m->job);
            m->streaming = false;
            mig_failf(&m->res, "migrd on %s is stopping", cluster_self_name(m->d->cl));
            finish(m, -1);
        } else if (m->ack_ev) {
            /* frozen, its image sent: the answer decides whether it lives
             * there or thaws here (the connection's timeout bounds the wait) */
            event_del(m->ack_ev);
            on_ack(m->fd, EV_READ, m);
        } else {
            mig_failf(&m->res, "migrd on %s is stopping", cluster_self_name(m->d->cl));
            finish(m, -1);
        }
    }
    /* the source copies of the moves that ended, last */
    while (reapers) {
        worker_cancel(&reapers->job); /* waits for it, or takes it off the queue */
        reaper_free(reapers);
    }
}

void migrate_out_forget(struct mproc *p)
{
    if (p->out)
        p->out->p = NULL;
    p->out = NULL;
}
