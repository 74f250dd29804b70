/*
 * migrate_postal.c -- see migrate_postal.h.
 */
#include "migrate_postal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
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
#include "migrd/postal/jobs.h"
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

int mpostal_check_connections(struct move *d, const struct mbox *pm, struct engine_image *img, char *why,
                              size_t wl)
{
    pid_t pid = engine_image_pid(img);
    const void *owner = pm ? pm->owner : NULL;
    int n = d->ops.control_fds(d->ops.core, owner, NULL, 0);
    int *fds = n > 0 ? calloc((size_t)n, sizeof *fds) : NULL;
    if (n > 0 && !fds) {
        snprintf(why, wl, "pid %d: out of memory listing %d control connections", pid, n);
        return -1;
    }
    if (n > 0)
        n = d->ops.control_fds(d->ops.core, owner, fds, n);
    int held = -1;
    for (int i = 0; i < n && held < 0; i++)
        held = engine_image_fd_peer(img, fds[i]);
    free(fds);
    if (held >= 0) {
        snprintf(why, wl, "pid %d is opening a DiCOM mailbox (its fd %d is a control connection to migrd "
                 "with no mailbox yet); try again", pid, held);
        return -1;
    }
    return 0;
}

int mpostal_describe(struct move *d, struct mbox *m, struct engine_image *img, struct mig_postal *out,
                     char *why, size_t wl)
{
    static const char peer_prefix[] = "/memfd:migr-mbox-";
    pid_t pid = engine_image_pid(img);
    memset(out, 0, sizeof *out);
    out->job = m->job;
    out->rank = m->rank;
    out->inbox_size = (uint32_t)m->inbox.size;
    out->outbox_size = (uint32_t)m->outbox.size;
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
    /* Of the mailbox only its first page travels in the image; the records
     * of its rings follow as POSTAL_RING frames (mpostal_send_rings). */
    struct engine_span first = {0, MBOX_PAGE};
    if (engine_image_region_select(img, out->mbox_start, &first, 1) < 0) {
        snprintf(why, wl, "%s", engine_strerror());
        return -1;
    }
    return 0;
}

static int send_ring(int fd, const struct ring *r, uint32_t which, char *buf)
{
    struct mig_ring h = {.which = which,
                         .consumer_waiting = atomic_load(&r->ctl->consumer_waiting) != 0};
    mbox_ring_complete(r, which == MIG_RING_OUTBOX, &h.head, &h.total);
    do {
        uint64_t n = h.total - h.off < MIG_RING_CHUNK ? h.total - h.off : MIG_RING_CHUNK;
        memcpy(buf, &h, sizeof h);
        mbox_ring_read(r, h.head + h.off, buf + sizeof h, n);
        if (mig_send(fd, MIG_POSTAL_RING, 0, buf, (uint32_t)(sizeof h + n)) < 0)
            return -1;
        h.off += n;
    } while (h.off < h.total);
    return 0;
}

int mpostal_send_rings(int fd, struct mbox *m)
{
    char *buf = malloc(MIG_MAX_BODY);
    int rc = buf && send_ring(fd, &m->inbox, MIG_RING_INBOX, buf) == 0 &&
                     send_ring(fd, &m->outbox, MIG_RING_OUTBOX, buf) == 0
                 ? 0
                 : -1;
    free(buf);
    return rc;
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

uint64_t mpostal_max_rings_bytes(const struct move *d)
{
    return 2 * (uint64_t)d->postal->max_ring;
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

int mpostal_begin(struct move *d, const struct mig_postal *mp, pid_t pid, struct mpostal_in *in, char *why,
                  size_t wl)
{
    if (mp->npeers > MIG_MAX_PEERS || !mp->mbox_start ||
        mp->mbox_len != mbox_map_size(mp->inbox_size, mp->outbox_size)) {
        snprintf(why, wl, "malformed POSTAL frame (%u peers, rings %u/%u, mapping %llu bytes)", mp->npeers,
                 mp->inbox_size, mp->outbox_size, (unsigned long long)mp->mbox_len);
        return -1;
    }
    if (mbox_find(d->postal, mp->job, mp->rank)) {
        snprintf(why, wl, "job %u rank %u already has a mailbox here", mp->job, mp->rank);
        return -1;
    }
    int rc = mbox_new(d->postal, mp->job, mp->rank, pid, 0, mp->inbox_size, mp->outbox_size, &in->m);
    if (rc < 0) {
        snprintf(why, wl, "cannot make the mailbox %u:%u of pid %d: %s", mp->job, mp->rank, pid,
                 rc == -EINVAL ? "ring sizes this node does not allow" : strerror(-rc));
        return -1;
    }
    return 0;
}

int mpostal_ring(struct mpostal_in *in, const void *body, uint32_t len, char *why, size_t wl)
{
    struct mig_ring h;
    if (!in->m || len < sizeof h) {
        snprintf(why, wl, "POSTAL_RING frame out of place");
        return -1;
    }
    memcpy(&h, body, sizeof h);
    struct ring *r = h.which == MIG_RING_INBOX ? &in->m->inbox : h.which == MIG_RING_OUTBOX ? &in->m->outbox : NULL;
    uint64_t n = len - sizeof h;
    bool *seen = h.which == MIG_RING_INBOX ? &in->inbox_seen : &in->outbox_seen;
    if (!r || h.total > r->size || h.head % RING_ALIGN || h.off > h.total || n > h.total - h.off ||
        (*seen ? h.off != in->ring_off[h.which] || h.head != in->ring_head[h.which] : h.off != 0)) {
        snprintf(why, wl, "malformed POSTAL_RING frame (ring %u, head %llu, %llu+%llu of %llu bytes)", h.which,
                 (unsigned long long)h.head, (unsigned long long)h.off, (unsigned long long)n,
                 (unsigned long long)h.total);
        return -1;
    }
    if (!*seen) {
        *seen = true;
        in->ring_head[h.which] = h.head;
        mbox_ring_place(r, h.head, h.head + h.total);
        atomic_store(&r->ctl->consumer_waiting, h.which == MIG_RING_INBOX ? h.consumer_waiting : 0);
    }
    mbox_ring_write(r, h.head + h.off, (const char *)body + sizeof h, n);
    in->ring_off[h.which] = h.off + n;
    return 0;
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
    char path[64];
    if (!in->m || !in->inbox_seen || !in->outbox_seen || in->ring_off[0] != in->m->inbox.ctl->tail - in->ring_head[0] ||
        in->ring_off[1] != in->m->outbox.ctl->tail - in->ring_head[1]) {
        snprintf(why, wl, "the rings of pid %d's mailbox did not arrive whole", pid);
        return -1;
    }
    if (in->m->pid != pid) {
        snprintf(why, wl, "the mailbox is of pid %d, the image of pid %d", in->m->pid, pid);
        return -1;
    }
    in->uid = in->m->uid = engine_image_uid(img);
    /* Its owner travelled with it (the image's credentials, which the
     * source vouches for): the job must be that uid's here too. */
    uid_t owner;
    if (jobs_claim(d->postal, in->m->job, in->uid, &owner) < 0) {
        snprintf(why, wl, "mailbox %u:%u of pid %d (uid %u): job %u belongs to uid %u on this node", in->m->job,
                 in->m->rank, pid, (unsigned)in->uid, in->m->job, (unsigned)owner);
        return -1;
    }
    in->m->job_held = true; /* released when the mailbox ends, or is discarded */
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
