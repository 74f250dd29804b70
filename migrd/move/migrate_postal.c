/*
 * migrate_postal.c -- see migrate_postal.h.
 */
#include "migrate_postal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/mbox.h"
#include "migrd/engine/engine.h"
#include "migrd/postal/adopt.h"
#include "migrd/postal/exile.h"
#include "migrd/postal/mbox.h"
#include "migrd/postal/office.h"
#include "migrd/util/log.h"
#include "move.h"

/* The safe point: how often, and how far apart, the process is frozen
 * again while it is inside a DiCOM send. */
#define SAFE_POINT_TRIES 400
#define SAFE_POINT_GAP_US 500

/* ------------------------------------------------------------ source */

struct find_ctx {
    pid_t pid;
    struct mbox *m;
    int n;
};

static int find_one(struct mbox *m, void *arg)
{
    struct find_ctx *f = arg;
    if (m->pid == f->pid && m->owner && !m->closing) {
        f->m = m;
        f->n++;
    }
    return 0;
}

struct mbox *mpostal_mailbox(struct move *d, pid_t pid)
{
    struct find_ctx f = {pid, NULL, 0};
    mbox_foreach(d->postal, find_one, &f);
    return f.m;
}

static void serve_owner(struct move *d, pid_t pid)
{
    struct mbox *m = mpostal_mailbox(d, pid);
    if (m)
        d->postal->ops.serve(m->owner);
}

int mpostal_safe_point(struct move *d, pid_t pid, struct engine_frozen **fz, char *why, size_t wl)
{
    for (int i = 0;; i++) {
        struct mbox *m = mpostal_mailbox(d, pid);
        if (!m) {
            snprintf(why, wl, "the mailbox of pid %d closed during the move", pid);
            break;
        }
        if (atomic_load(&m->sh->critical) == 0)
            return 0;
        if (i == SAFE_POINT_TRIES) {
            snprintf(why, wl, "pid %d stayed inside a DiCOM send for %d ms", pid,
                     SAFE_POINT_TRIES * SAFE_POINT_GAP_US / 1000);
            break;
        }
        /* let it finish the send; it may wait for an answer of ours */
        if (engine_release(*fz, ENGINE_LEAVE_RUNNING) < 0) {
            *fz = NULL;
            snprintf(why, wl, "thawing pid %d for its safe point: %s", pid, engine_strerror());
            return -1;
        }
        *fz = NULL;
        serve_owner(d, pid);
        struct timespec ts = {0, SAFE_POINT_GAP_US * 1000};
        nanosleep(&ts, NULL);
        serve_owner(d, pid);
        if (engine_freeze(pid, 5000, fz) < 0) {
            *fz = NULL;
            snprintf(why, wl, "freezing pid %d again at its safe point: %s", pid, engine_strerror());
            return -1;
        }
    }
    return -1; /* still frozen: the caller thaws it */
}

static int same_object(int fd, const struct engine_region *r)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_ino == r->ino && major(st.st_dev) == r->dev_major &&
           minor(st.st_dev) == r->dev_minor;
}

/* The fd number of our object `mine` in the process, or -1. */
static int fd_in_process(struct engine_image *img, int mine)
{
    return mine < 0 ? -1 : engine_image_fd_same(img, engine_image_pid(img), mine);
}

int mpostal_describe(struct move *d, struct mbox *m, struct engine_image *img, struct mig_postal *out,
                     char *why, size_t wl)
{
    static const char peer_prefix[] = "/memfd:migr-mbox-";
    pid_t pid = engine_image_pid(img);
    memset(out, 0, sizeof *out);
    out->job = m->job;
    out->rank = m->rank;
    out->ctl_fd = engine_image_fd_peer(img, d->postal->ops.fd(m->owner));
    out->bell_fd = fd_in_process(img, m->proc_bell);
    out->dbell_fd = fd_in_process(img, m->daemon_bell);
    if (out->ctl_fd < 0) {
        snprintf(why, wl, "pid %d: its control connection to migrd is not found among its descriptors", pid);
        return -1;
    }
    for (uint32_t i = 0; i < engine_image_nregions(img); i++) {
        struct engine_region r;
        engine_image_region(img, i, &r);
        if (!r.shared)
            continue;
        if (same_object(m->memfd, &r)) {
            if (out->mbox_start || r.pgoff != 0 || r.end - r.start != m->map_len) {
                snprintf(why, wl, "pid %d maps its mailbox in a way the hand-over does not know "
                         "(%#llx-%#llx at offset %llu)", pid, (unsigned long long)r.start,
                         (unsigned long long)r.end, (unsigned long long)r.pgoff);
                return -1;
            }
            out->mbox_start = r.start;
            out->mbox_len = r.end - r.start;
        } else if (same_object(d->postal->node_fd, &r)) {
            out->node_start = r.start;
        } else if (!strncmp(r.path, peer_prefix, sizeof peer_prefix - 1)) {
            if (out->npeers == MIG_MAX_PEERS) {
                snprintf(why, wl, "pid %d maps more than %d inboxes of other processes", pid, MIG_MAX_PEERS);
                return -1;
            }
            out->peers[out->npeers++] = r.start;
            if (engine_image_region_to_anon(img, r.start, MBOX_PAGE) < 0) {
                snprintf(why, wl, "%s", engine_strerror());
                return -1;
            }
        }
    }
    if (!out->mbox_start) {
        snprintf(why, wl, "pid %d does not map its mailbox %u:%u", pid, m->job, m->rank);
        return -1;
    }
    return 0;
}

bool mpostal_owns_fd(const struct mig_postal *mp, int fd)
{
    return mp && (fd == mp->ctl_fd || fd == mp->bell_fd || fd == mp->dbell_fd);
}

void mpostal_exile(struct move *d, struct mbox *m, int dest)
{
    (void)d;
    exile_begin(m, dest);
}

/* ------------------------------------------------------------ destination */

void mpostal_in_init(struct mpostal_in *in)
{
    *in = (struct mpostal_in){.sv = {-1, -1}, .node_ro = -1};
}

void mpostal_in_free(struct mpostal_in *in)
{
    if (in->m)
        mbox_discard(in->m);
    for (int i = 0; i < 2; i++)
        if (in->sv[i] >= 0)
            close(in->sv[i]);
    if (in->node_ro >= 0)
        close(in->node_ro);
    mpostal_in_init(in);
}

/* The snapshot of the mailbox into m, page by page (pages never written
 * are not in the image: they stay as this node made them). */
static void copy_snapshot(struct engine_image *img, uint64_t start, struct mbox *m)
{
    for (uint64_t off = 0; off < m->map_len; off += MBOX_PAGE)
        engine_image_peek(img, start + off, (char *)m->map + off, MBOX_PAGE);
}

static int give_fd(struct engine_image *img, int fdnum, int src, char *why, size_t wl)
{
    if (fdnum < 0)
        return 0;
    if (engine_image_set_fd(img, fdnum, src) < 0) {
        snprintf(why, wl, "hand-over of fd %d: %s", fdnum, engine_strerror());
        return -1;
    }
    return 0;
}

static int control_pair(struct mpostal_in *in, char *why, size_t wl)
{
    struct timeval tv = {5, 0};
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, in->sv) < 0 ||
        setsockopt(in->sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        fcntl(in->sv[1], F_SETFL, O_NONBLOCK) < 0) {
        snprintf(why, wl, "control connection for the moved process: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int mpostal_prepare(struct move *d, const struct mig_postal *mp, struct engine_image *img,
                    struct mpostal_in *in, char *why, size_t wl)
{
    pid_t pid = engine_image_pid(img);
    struct mbox_shared snap;
    char path[64];
    if (mp->npeers > MIG_MAX_PEERS || !mp->mbox_start || mp->mbox_len > (1ull << 32)) {
        snprintf(why, wl, "malformed POSTAL frame (%u peers, mailbox %llu bytes)", mp->npeers,
                 (unsigned long long)mp->mbox_len);
        return -1;
    }
    if (engine_image_peek(img, mp->mbox_start, &snap, sizeof snap) < 0) {
        snprintf(why, wl, "the image of pid %d lacks the first page of its mailbox", pid);
        return -1;
    }
    in->uid = engine_image_uid(img);
    if (mbox_adopt_new(d->postal, &snap, mp->mbox_len, pid, in->uid, &in->m, why, wl) < 0)
        return -1;
    if (in->m->job != mp->job || in->m->rank != mp->rank) {
        snprintf(why, wl, "pid %d: its mailbox says %u:%u, its source %u:%u", pid, in->m->job, in->m->rank,
                 mp->job, mp->rank);
        return -1;
    }
    copy_snapshot(img, mp->mbox_start, in->m);
    if (mbox_adopt_check(in->m, why, wl) < 0)
        return -1;
    snprintf(path, sizeof path, "/proc/self/fd/%d", d->postal->node_fd);
    if (control_pair(in, why, wl) < 0)
        return -1;
    if ((in->node_ro = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(why, wl, "reopening the node page read-only: %s", strerror(errno));
        return -1;
    }
    if (give_fd(img, mp->ctl_fd, in->sv[0], why, wl) < 0 ||
        give_fd(img, mp->bell_fd, in->m->proc_bell, why, wl) < 0 ||
        give_fd(img, mp->dbell_fd, in->m->daemon_bell, why, wl) < 0)
        return -1;
    if (engine_image_set_region_object(img, mp->mbox_start, in->m->memfd) < 0 ||
        (mp->node_start && engine_image_set_region_object(img, mp->node_start, in->node_ro) < 0)) {
        snprintf(why, wl, "hand-over of the mailbox mappings: %s", engine_strerror());
        return -1;
    }
    /* Routes into the inboxes of the node it left: closed (a page not in
     * the image is zero, which is not MBOX_OPEN either). */
    uint32_t closed = MBOX_CLOSED;
    for (uint32_t i = 0; i < mp->npeers; i++)
        engine_image_poke(img, mp->peers[i] + offsetof(struct mbox_shared, state), &closed, sizeof closed);
    return 0;
}

int mpostal_open(struct move *d, struct mpostal_in *in, pid_t pid)
{
    struct mbox *m = in->m;
    int rc = d->ops.adopt_client(d->ops.core, in->sv[1], pid, in->uid, m);
    if (rc < 0) {
        log_error("pid %d runs here, but its mailbox %u:%u cannot be opened: %s", pid, m->job, m->rank,
                  strerror(-rc));
        return -1;
    }
    in->m = NULL;      /* registered: the postal office has it */
    in->sv[1] = -1;    /* the core's connection now */
    return 0;
}
