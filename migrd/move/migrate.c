/*
 * migrate.c -- see migrate.h.  A move, as the code runs it:
 *   migrctl migrate -> ctl.c -> migrate_ctl_migrate (here, or FWD_MOVE via the
 *   home's anchor to where the process runs) -> migrate_out.c -> [destination]
 *   accept_frame(OFFER) -> incoming() -> a worker (migrate_recv.c) reads the
 *   stream -> arrived() -> restore_arrived() (engine restore) ->
 *   RESTORED -> [source] engine_release(KILL), fwd_ep_detach / anchor.
 */
#include "migrate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "migrd/cluster/cluster.h"
#include "migrd/cluster/node_addr.h"
#include "migrd/engine/engine_int.h"
#include "migrd/pager/pager.h"
#include "migrd/util/admit.h"
#include "migrd/util/boost.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "creds_check.h"
#include "forward.h"
#include "forward_conn.h"
#include "mig_auth.h"
#include "migrate_postal.h"
#include "node_mem.h"
#include "migrate_proc.h"
#include "migrate_int.h"
#include "migrate_lazy.h"
#include "migrate_recv.h"
#include "move.h"

#define MEM_HEADROOM       (64ull << 20)
#define MIGRATE_MAX_PENDING 32    /* accepted, not yet proved: at once */
#define MIGRATE_MAX_ARRIVING 4    /* streams being read at once */

#define SETTLE_STEP        (32ull << 20)
#define LAZY_BUFFER        (64ull << 20)  /* page buffer of a lazy move */
#define LAZY_MAX_DIR       (64ull << 20)  /* its list of pages away */

struct settle_job;

struct migrate {
    int lfd;
    struct event *lev, *chld;
    struct admit admit;       /* connections waiting for their handshake */
    struct mproc *procs;
    struct settle_job *settles;
    struct mrecv *arriving;   /* moves whose stream is being read (migrate_recv.c) */
};

unsigned migrate_port(const struct move *d, int node) { return d->cl->map.nodes[node].port + 1u; }

int migrate_node_by_addr(const struct move *d, const char *s)
{
    for (int i = 0; i < d->cl->map.nnodes; i++)
        if (!strcmp(d->cl->map.nodes[i].name, s) || !strcmp(d->cl->map.nodes[i].addr, s))
            return i;
    return -1;
}

struct mproc *migrate_procs(struct move *d) { return d->migrate->procs; }

void migrate_link_proc(struct move *d, struct mproc *p)
{
    p->next = d->migrate->procs;
    d->migrate->procs = p;
}

void migrate_unlink_proc(struct move *d, struct mproc *p)
{
    for (struct mproc **pp = &d->migrate->procs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            return;
        }
}

int mig_failf(struct migrate_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Timeouts and options of a move's connection (both sides): a failure only
 * makes a dead link slower to notice. */
void mig_stream_timeouts(int fd)
{
    if (mig_set_timeouts(fd, STREAM_TIMEOUT_MS) < 0 || mig_stream_opts(fd) < 0)
        log_warn("migration connection fd %d: setting its timeouts: %s", fd, strerror(errno));
}

/* ------------------------------------------------------------ settling */

/* The pages a restored process took over from the receive buffer are
 * settled (engine.h) a step per turn of the event loop, after the
 * acknowledgement: the relay and the forwarding go on in between. */
struct settle_job {
    struct settle_job *next;
    struct move *d;
    struct event *ev;
    struct engine_settle *s;
};

static void settle_job_free(struct move *d, struct settle_job *j)
{
    for (struct settle_job **pp = &d->migrate->settles; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            break;
        }
    event_free(j->ev);
    engine_settle_free(j->s);
    free(j);
}

static void settle_step(evutil_socket_t unused, short what, void *arg)
{
    static const struct timeval zero = {0, 0};
    struct settle_job *j = arg;
    (void)unused;
    (void)what;
    if (engine_settle_step(j->s, SETTLE_STEP) == 1 && event_add(j->ev, &zero) == 0)
        return;
    settle_job_free(j->d, j);
}

/* The receive buffer goes now; the settling is scheduled (skipped if it
 * cannot be: it only saves time at the next capture). */
static void settle_later(struct move *d, struct engine_image *img, pid_t pid)
{
    static const struct timeval zero = {0, 0};
    struct engine_settle *s = engine_settle_begin(img, pid);
    struct settle_job *j;
    if (!s)
        return;
    j = calloc(1, sizeof *j);
    if (j)
        j->ev = evtimer_new(d->base, settle_step, j);
    if (!j || !j->ev || event_add(j->ev, &zero) < 0) {
        log_warn("pid %d: cannot schedule settling its pages: out of memory", pid);
        if (j && j->ev)
            event_free(j->ev);
        free(j);
        engine_settle_free(s);
        return;
    }
    j->d = d;
    j->s = s;
    j->next = d->migrate->settles;
    d->migrate->settles = j;
}

/* ------------------------------------------------------------ destination */

/* The page buffers of the moves arriving now: memory promised already. */
static uint64_t arriving_bytes(const struct move *d)
{
    uint64_t sum = 0;
    for (const struct mrecv *r = d->migrate->arriving; r; r = r->next)
        sum += r->want;
    return sum;
}

static uint64_t page_buffer_bytes(const struct mig_offer *o)
{
    return o->mem_bytes + o->mem_bytes / 16 + (2u << 20);
}

/* The offer of a process from node src: 0, or -1 with why. */
static int check_offer(struct move *d, const struct mig_offer *o, const char *src, char *why, size_t len)
{
    char bound[128];
    uint64_t avail = node_mem_available(bound, sizeof bound), promised = arriving_bytes(d);
    const char *lacks = cpuf_missing(&o->cpu, &d->cl->cpu);
    avail = avail > promised ? avail - promised : 0;
    if (d->stopping)
        snprintf(why, len, "migrd on %s is stopping", cluster_self_name(d->cl));
    else if (o->home >= (uint32_t)d->cl->map.nnodes)
        snprintf(why, len, "home node %u is not in the cluster map of %s", o->home, cluster_self_name(d->cl));
    else if (strncmp(o->kernel, d->cl->kernel, sizeof o->kernel))
        snprintf(why, len, "%s runs kernel %s, the process was frozen under %.64s", cluster_self_name(d->cl),
                 d->cl->kernel, o->kernel);
    else if (lacks)
        snprintf(why, len, "the CPU of %s lacks %s, which the CPU of the source has (the process may "
                 "use it)", cluster_self_name(d->cl), lacks);
    else if (o->pid <= 1 || kill(o->pid, 0) == 0 || errno != ESRCH)
        snprintf(why, len, "pid %d is taken on %s", o->pid, cluster_self_name(d->cl));
    else if (!memchr(o->user, 0, sizeof o->user))
        snprintf(why, len, "the offer's user name is not terminated");
    else if (creds_check_user(o->uid, o->user, src, cluster_self_name(d->cl), why, len) < 0)
        return -1; /* why says whose account is wrong */
    else if (o->mem_bytes > UINT64_MAX / 2 || avail < page_buffer_bytes(o) + MEM_HEADROOM)
        snprintf(why, len, "only %llu MiB free on %s (%.60s%s); the process needs %llu MiB + %llu kept free",
                 (unsigned long long)(avail >> 20), cluster_self_name(d->cl), bound,
                 promised ? ", less what the moves arriving now take" : "",
                 (unsigned long long)(o->mem_bytes >> 20), MEM_HEADROOM >> 20);
    else
        return 0;
    return -1;
}

struct incoming {
    struct move *d;
    struct fconn *c;
    struct mig_offer offer;
    char src[64];              /* the source node, for messages */
};

static void refuse_offer(int fd, const struct mig_offer *o, const char *why)
{
    log_info("refusing pid %d from its source: %s", o->pid, why);
    mig_send(fd, MIG_REFUSE, 0, why, (uint32_t)strlen(why) + 1);
    mig_close(fd);
}

/* Whether the process may arrive here now: 0, or -1 with why. */
static int arrival_check(struct move *d, const struct mig_offer *o, char *why, size_t len)
{
    struct mproc *p = mproc_find(d, (int)o->home, o->pid);
    unsigned n = 0;
    bool again = false;
    for (struct mrecv *r = d->migrate->arriving; r; r = r->next, n++)
        again |= r->offer.pid == o->pid && r->offer.home == o->home;
    if (p && (p->here || !p->is_home))
        snprintf(why, len, "pid %d of %s is already known on %s", o->pid, d->cl->map.nodes[o->home].name,
                 cluster_self_name(d->cl));
    else if (!p && (int)o->home == d->cl->self)
        snprintf(why, len, "pid %d does not belong to %s", o->pid, cluster_self_name(d->cl));
    else if (again)
        snprintf(why, len, "pid %d of %s is arriving on %s already", o->pid, d->cl->map.nodes[o->home].name,
                 cluster_self_name(d->cl));
    else if (n >= MIGRATE_MAX_ARRIVING)
        snprintf(why, len, "%u moves are arriving on %s at once: try again", n, cluster_self_name(d->cl));
    else
        return 0;
    return -1;
}

/* The process's record here: its home's own (a process coming back), or
 * a new one (*made); NULL if out of memory. */
static struct mproc *arrival_record(struct move *d, const struct mig_offer *o, bool *made)
{
    struct mproc *p = mproc_find(d, (int)o->home, o->pid);
    *made = false;
    if (p)
        return p;
    if (!(p = mproc_new(d, o->pid, (int)o->home)))
        return NULL;
    *made = true;
    p->flags = o->flags;
    p->job = o->job;
    p->rank = o->rank;
    snprintf(p->cmd, sizeof p->cmd, "%.63s", o->cmd);
    return p;
}

/* The frames that came before the image, applied in order: the relay
 * channels, the unread input, the mailbox and its rings. */
struct arrival {
    struct mig_chan map[MIG_MAX_CHAN];
    int proc_end[MIG_MAX_CHAN];
    uint32_t nmap;
    struct mig_file files[MIG_MAX_FILES];
    uint32_t nfiles;
    struct mig_postal mp;
    bool have_postal;
    struct mpostal_in pin;
};

static int apply_frames(struct move *d, struct mproc *p, const struct mrecv_frame *f, struct arrival *a,
                        char *why, size_t wl)
{
    for (; f; f = f->next) {
        const struct mig_hdr *h = &f->h;
        if (h->type == MIG_CHANMAP && h->len % sizeof a->map[0] == 0 &&
            h->len / sizeof a->map[0] <= MIG_MAX_CHAN && !a->nmap) {
            memcpy(a->map, f->body, h->len);
            for (uint32_t i = 0; i < h->len / sizeof a->map[0]; i++) {
                if (fwd_ep_add(p->ep, a->map[i].chan, a->map[i].dir, &a->proc_end[i]) < 0) {
                    snprintf(why, wl, "cannot make relay channel %u", a->map[i].chan);
                    return -1;
                }
                a->nmap++;
            }
        } else if (h->type == MIG_FILEMAP && h->len % sizeof a->files[0] == 0 &&
                   h->len / sizeof a->files[0] <= MIG_MAX_FILES && !a->nfiles) {
            memcpy(a->files, f->body, h->len);
            a->nfiles = h->len / sizeof a->files[0];
        } else if (h->type == MIG_INPUT) {
            if (fwd_ep_prefill(p->ep, h->chan, f->body, h->len) < 0) {
                snprintf(why, wl, "input for unknown channel %u", h->chan);
                return -1;
            }
        } else if (h->type == MIG_INPUT_EOF) {
            fwd_ep_prefill_eof(p->ep, h->chan);
        } else if (h->type == MIG_POSTAL && h->len == sizeof a->mp && !a->have_postal) {
            memcpy(&a->mp, f->body, sizeof a->mp);
            a->have_postal = true;
            if (mpostal_begin(d, &a->mp, p->pid, &a->pin, why, wl) < 0)
                return -1;
        } else if (h->type == MIG_POSTAL_RING) {
            if (mpostal_ring(&a->pin, f->body, h->len, why, wl) < 0)
                return -1;
        } else if (h->type != MIG_LAZY_DIR) { /* LAZY_DIR: mlazy_service */
            snprintf(why, wl, "unexpected %s frame in the stream", mig_type_name(h->type));
            return -1;
        }
    }
    return 0;
}

/* Each descriptor of the image that leads outside gets its relay channel. */
static int give_channels(struct engine_image *img, struct arrival *a, char *why, size_t wl)
{
    for (uint32_t i = 0; i < img->nfds; i++) {
        struct eng_fd *f = &img->fds[i];
        uint32_t k;
        if (f->kind != FD_EXTERNAL || f->same_as >= 0 || (a->have_postal && mpostal_owns_fd(&a->mp, f->fd)))
            continue;
        for (k = 0; k < a->nmap && a->map[k].fd != f->fd; k++)
            ;
        if (k == a->nmap) {
            snprintf(why, wl, "fd %d (%s) leads outside and has no forwarding channel", f->fd,
                     f->desc ? f->desc : "?");
            return -1;
        }
        f->src = fcntl(a->proc_end[k], F_DUPFD_CLOEXEC, 3);
        if (f->src < 0) {
            snprintf(why, wl, "dup of relay fd %d: %s", a->proc_end[k], strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Each shared file: at home the original again, at its offset in the
 * image; elsewhere reopened now (as the restore would) so that this node
 * keeps a copy of the description the process gets (forward_file.c). */
static int give_files(struct mproc *p, struct engine_image *img, const struct arrival *a, char *why, size_t wl)
{
    for (uint32_t k = 0; k < a->nfiles; k++) {
        const struct mig_file *mf = &a->files[k];
        struct eng_fd *f = NULL;
        for (uint32_t i = 0; i < img->nfds && !f; i++)
            if (img->fds[i].fd == mf->fd && img->fds[i].same_as < 0 && img->fds[i].kind == FD_FILE)
                f = &img->fds[i];
        if (!f) {
            snprintf(why, wl, "fd %d of the file map is no file in the image", mf->fd);
            return -1;
        }
        int orig = p->is_home && p->anchor ? fwd_anchor_file(p->anchor, mf->id) : -1, mine;
        if (orig >= 0) {
            if (lseek(orig, (off_t)f->pos, SEEK_SET) < 0) {
                snprintf(why, wl, "fd %d: setting the offset of the original of %s to %llu: %s", f->fd, f->path,
                         (unsigned long long)f->pos, strerror(errno));
                return -1;
            }
            if (engine_image_set_fd(img, f->fd, orig) < 0) {
                snprintf(why, wl, "%s", engine_strerror());
                return -1;
            }
            mine = fcntl(orig, F_DUPFD_CLOEXEC, 3);
        } else {
            mine = engine_image_open_fd(img, f->fd);
        }
        if (mine < 0) {
            snprintf(why, wl, "fd %d: %s", f->fd, orig >= 0 ? strerror(errno) : engine_strerror());
            return -1;
        }
        if (fwd_ep_add_file(p->ep, mf->id, mine) < 0) {
            snprintf(why, wl, "fd %d: cannot keep shared file %u", f->fd, mf->id);
            return -1;
        }
    }
    return 0;
}

static void arrival_end(struct arrival *a)
{
    mpostal_in_free(&a->pin);
    for (uint32_t i = 0; i < a->nmap; i++)
        close(a->proc_end[i]);
    a->nmap = 0;
}

/* The image has arrived (migrate_recv.c): restore the process, give it its
 * mailbox and channels, acknowledge.  Any failure before the
 * acknowledgement leaves it running at its source. */
static void restore_arrived(struct move *d, struct mrecv *r)
{
    const struct mig_offer *o = &r->offer;
    char why[MIG_REASON_MAX] = "";
    struct engine_image *img = r->img;
    struct arrival a = {.nmap = 0};
    struct pager_svc *svc = NULL; /* a lazy move: its pages away */
    bool new_rec = false;
    pid_t restored;
    uint64_t t_in = migrd_now_us(), t_rest0, t_rest1, t_open;
    struct boost boost;
    mpostal_in_init(&a.pin);
    boost_begin(&boost); /* its source holds it frozen until the acknowledgement */
    struct mproc *p = arrival_record(d, o, &new_rec);
    if (p && p->here) {
        p = NULL; /* not ours to touch */
        snprintf(why, sizeof why, "pid %d runs on %s already", o->pid, cluster_self_name(d->cl));
        goto fail;
    }
    if (!p || !(p->ep = fwd_ep_new(d, p))) {
        snprintf(why, sizeof why, "out of memory on %s", cluster_self_name(d->cl));
        goto fail;
    }
    if (apply_frames(d, p, r->frames, &a, why, sizeof why) < 0 ||
        creds_check_local(img, o->uid, cluster_self_name(d->cl), why, sizeof why) < 0 ||
        (a.have_postal && mpostal_prepare(d, &a.mp, img, &a.pin, why, sizeof why) < 0) ||
        give_channels(img, &a, why, sizeof why) < 0 || give_files(p, img, &a, why, sizeof why) < 0 ||
        mlazy_service(img, r->frames, r->peer, !(o->mode & CTL_MOVE_NO_PREFETCH), &svc, why, sizeof why) < 0)
        goto fail;
    t_rest0 = migrd_now_us();
    struct engine_restore_opts ro = {.wait_pid_ms = 3000, .userfault = svc ? pager_svc_userfault : NULL,
                                     .userfault_arg = svc};
    if (engine_image_restore(img, &ro, &restored) < 0) {
        snprintf(why, sizeof why, "restore: %s", engine_strerror());
        goto fail;
    }
    t_rest1 = migrd_now_us();
    if (a.have_postal && mpostal_open(d, &a.pin, restored) < 0) {
        /* not acknowledged: the source thaws its copy */
        kill(restored, SIGKILL);
        waitpid(restored, NULL, 0);
        snprintf(why, sizeof why, "the mailbox of pid %d cannot be opened on %s", o->pid,
                 cluster_self_name(d->cl));
        goto fail;
    }
    t_open = migrd_now_us();
    arrival_end(&a);
    p->here = p->child = true;
    p->uid = engine_image_uid(img); /* the credentials it was restored with */
    p->at = d->cl->self;
    p->moves = o->gen + 1;
    p->state = MP_RUNNING;
    /* acknowledged first: the source's frozen time ends here */
    if (mig_send(r->fd, MIG_RESTORED, 0, NULL, 0) < 0)
        log_warn("pid %d: acknowledging the restore to the source: %s", p->pid, strerror(errno));
    boost_end(&boost);
    if (svc) { /* its faults are served on the move's connection from now */
        mlazy_serve(d, svc, r->fd, p->pid);
        r->fd = -1;
    }
    fwd_ep_start(p->ep, p->moves);
    engine_pagebuf_release(&r->pb);
    r->img = NULL;
    settle_later(d, img, restored);
    engine_image_free(img);
    log_info("pid %d restored here (%llu image bytes, move %u, home %s; buffer %.1f ms, read %.1f ms, "
             "wake %.1f ms, checks %.1f ms, restore %.1f ms, mailbox %.1f ms, free %.1f ms)", p->pid,
             (unsigned long long)r->bytes, p->moves, d->cl->map.nodes[p->home].name, (double)r->prep_us / 1000,
             (double)r->read_us / 1000, (double)(t_in - r->end_us) / 1000, (double)(t_rest0 - t_in) / 1000,
             (double)(t_rest1 - t_rest0) / 1000, (double)(t_open - t_rest1) / 1000,
             (double)(migrd_now_us() - t_open) / 1000);
    return;
fail:
    boost_end(&boost);
    pager_svc_free(svc);
    log_warn("pid %d: incoming move failed: %s", o->pid, why);
    mig_send(r->fd, MIG_FAILED, 0, why, (uint32_t)strlen(why) + 1);
    arrival_end(&a);
    if (p && p->ep) {
        fwd_ep_free(p->ep);
        p->ep = NULL;
    }
    if (p && new_rec)
        mproc_free(d, p);
}

static void arrival_unlink(struct move *d, struct mrecv *r)
{
    for (struct mrecv **pp = &d->migrate->arriving; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            return;
        }
}

/* migrate_recv.c's thread has ended (on the loop) */
static void arrived(struct mrecv *r, void *arg)
{
    struct move *d = arg;
    arrival_unlink(d, r);
    if (r->result == MRECV_REFUSED) {
        log_info("refusing pid %d from its source: %s", r->offer.pid, r->why);
    } else if (r->result == MRECV_FAILED) {
        log_warn("pid %d: incoming move failed: %s", r->offer.pid, r->why);
        mig_send(r->fd, MIG_FAILED, 0, r->why, (uint32_t)strlen(r->why) + 1);
    } else {
        log_debug("pid %d: %llu MiB page buffer ready in %.1f ms", r->offer.pid,
                  (unsigned long long)(r->want >> 20), (double)r->prep_us / 1000);
        restore_arrived(d, r);
    }
    if (r->fd >= 0)
        mig_close(r->fd);
    mrecv_free(r);
    free(r);
}

/* An offer: checked here, then its stream is read off the loop
 * (migrate_recv.c).  The page buffer is made ready before the offer is
 * accepted (the source freezes only then): allocating and faulting in
 * memory for a big process is the slowest part of a restore, and the
 * restore takes whole regions over from it instead of copying them.  Its
 * size is the process's resident memory (which counts every page that
 * travels but swapped ones) with some slack; an image whose pages do not
 * fit gets a buffer while the source is frozen (slower, still correct). */
static void incoming(evutil_socket_t unused, short what, void *arg)
{
    struct incoming *in = arg;
    struct move *d = in->d;
    struct mig_offer offer = in->offer;
    char why[MIG_REASON_MAX] = "", src[sizeof in->src];
    struct mrecv *r;
    (void)unused;
    (void)what;
    memcpy(src, in->src, sizeof src);
    int fd = fconn_take_fd(in->c);
    free(in);
    if (fd < 0)
        return;
    mig_stream_timeouts(fd);
    if (check_offer(d, &offer, src, why, sizeof why) < 0 || arrival_check(d, &offer, why, sizeof why) < 0) {
        refuse_offer(fd, &offer, why);
        return;
    }
    if (!(r = calloc(1, sizeof *r))) {
        snprintf(why, sizeof why, "out of memory on %s", cluster_self_name(d->cl));
        refuse_offer(fd, &offer, why);
        return;
    }
    r->offer = offer;
    r->fd = fd;
    /* a lazy move: most pages stay at the source (the check above still
     * counts them all: they come) */
    uint32_t how = offer.mode & CTL_MOVE_MODE_MASK;
    bool lazy = how == CTL_MOVE_LAZY_NO_PUSH || how == CTL_MOVE_LAZY;
    r->want = page_buffer_bytes(&offer);
    if (lazy && r->want > LAZY_BUFFER)
        r->want = LAZY_BUFFER;
    snprintf(r->peer, sizeof r->peer, "%s", src);
    r->max_frames = mpostal_max_rings_bytes(d) + MIG_MAX_CHAN * (uint64_t)MIG_MAX_BODY + (1u << 20) +
                    (lazy ? LAZY_MAX_DIR : 0);
    r->node = cluster_self_name(d->cl);
    if (mrecv_start(d->base, r, arrived, d) < 0) {
        refuse_offer(fd, &offer, r->why);
        mrecv_free(r);
        free(r);
        return;
    }
    r->next = d->migrate->arriving;
    d->migrate->arriving = r;
}

/* ------------------------------------------------------------ the port */

static void accept_close(struct fconn *c, const char *why)
{
    log_debug("migration port: %s: %s", c->peer, why);
    fconn_free_later(c);
}

static void accept_frame(struct fconn *c, const struct mig_hdr *h, const uint8_t *body)
{
    struct move *d = c->d;
    /* in a cluster with a key: only what the peer proved it came for,
     * and a forwarding HELLO only for the node the peer proved to be */
    bool may_fwd = !d->cl->secure || c->purpose == AUTH_FORWARD;
    bool may_move = !d->cl->secure || c->purpose == AUTH_MOVE;
    if (h->type == FWD_HELLO && h->len == sizeof(struct mig_hello) && may_fwd) {
        const struct mig_hello *hi = (const void *)body;
        struct mproc *p = mproc_find(d, (int)hi->home, hi->pid);
        int at = hi->node < (uint32_t)d->cl->map.nnodes ? (int)hi->node : -1;
        if (d->cl->secure && at != c->peer_node) {
            log_warn("migration port: %s (authenticated as %s) sent a forwarding HELLO for pid %d as node %u: "
                     "refused", c->peer, d->cl->map.nodes[c->peer_node].name, hi->pid, hi->node);
            c->stop = 1;
            fconn_free_later(c);
            return;
        }
        if (p && p->is_home && !p->anchor && p->out && !p->early && at >= 0) {
            snprintf(c->peer, sizeof c->peer, "%s", d->cl->map.nodes[at].name);
            mproc_early_park(p, c, hi->gen);
            return;
        }
        if (!p || !p->is_home || !p->anchor || at < 0 || !fwd_anchor_ready(p->anchor) ||
            (p->taken_back && p->uid != 0 && hi->uid != p->uid)) {
            log_warn("migration port: %s says HELLO for pid %d, which has no forwarding here", c->peer,
                     hi->pid);
            c->stop = 1;
            fconn_free_later(c);
            return;
        }
        snprintf(c->peer, sizeof c->peer, "%s", d->cl->map.nodes[at].name);
        fwd_anchor_attach(p->anchor, c, hi->gen);
        return;
    }
    if (h->type == MIG_OFFER && h->len == sizeof(struct mig_offer) && may_move) {
        static const struct timeval zero = {0, 0};
        struct incoming *in = calloc(1, sizeof *in);
        c->stop = 1;
        if (!in) {
            fconn_free_later(c);
            return;
        }
        in->d = d;
        in->c = c;
        memcpy(&in->offer, body, sizeof in->offer);
        snprintf(in->src, sizeof in->src, "%s", c->peer_node >= 0 ? d->cl->map.nodes[c->peer_node].name : c->peer);
        if (event_base_once(d->base, -1, EV_TIMEOUT, incoming, in, &zero) < 0) {
            free(in);
            fconn_free_later(c);
        }
        return;
    }
    log_warn("migration port: %s opened with %s (%u bytes): dropping it", c->peer, mig_type_name(h->type),
             h->len);
    c->stop = 1;
    fconn_free_later(c);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct move *d = arg;
    (void)what;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        char addr[64];
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (fd < 0) {
            if (admit_accept_failed(&d->migrate->admit, errno))
                return;
            continue;
        }
        if (getnameinfo((struct sockaddr *)&ss, sl, addr, sizeof addr, NULL, 0, NI_NUMERICHOST))
            snprintf(addr, sizeof addr, "?");
        if (!node_addr_known(&d->cl->map, &ss)) {
            log_warn("migration port: connection from %s, which is no node's address in the cluster map: "
                     "refused", addr);
            close(fd);
            continue;
        }
        if (!fconn_accept(d, fd, addr, &d->migrate->admit, accept_frame, accept_close, NULL))
            close(fd);
    }
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    struct move *d = arg;
    (void)sig;
    (void)what;
    for (struct mproc *p = migrate_procs(d), *next; p; p = next) {
        int st;
        next = p->next;
        /* a process being moved out is the engine's to wait for */
        if (!p->child || p->out || waitpid(p->pid, &st, WNOHANG) != p->pid)
            continue;
        p->here = p->child = false;
        log_info("pid %d ended here with status %#x", p->pid, st);
        if (p->ep) {
            fwd_ep_exited(p->ep, st);
            p->ep = NULL;
        }
        if (!p->is_home)
            mproc_free(d, p);
    }
}

/* the engine's lines go to migrd's log (same levels) */
static void engine_line(int level, const char *line)
{
    mlog(level >= LOG_ERROR && level <= LOG_DEBUG ? (enum log_level)level : LOG_WARN, "engine: %s", line);
}

int migrate_init(struct move *d)
{
    struct migrate *m = calloc(1, sizeof *m);
    const struct cfg_node *self = &d->cl->map.nodes[d->cl->self];
    if (!m)
        return -ENOMEM;
    d->migrate = m;
    m->lfd = node_listen(self, migrate_port(d, d->cl->self));
    if (m->lfd < 0) {
        int rc = m->lfd;
        m->lfd = -1;
        if (d->cl->map.nnodes > 1) {
            log_error("cannot listen on the migration port %s:%u (node %s): %s", self->addr,
                      migrate_port(d, d->cl->self), self->name, strerror(-rc));
            return rc;
        }
        /* a node alone has nowhere to move to; a second one-node daemon on
         * this host (tests) runs without the port */
        log_warn("migration port %s:%u: %s: processes cannot move to or from this node",
                 self->addr, migrate_port(d, d->cl->self), strerror(-rc));
    }
    if (m->lfd >= 0) {
        m->lev = event_new(d->base, m->lfd, EV_READ | EV_PERSIST, on_accept, d);
        if (!m->lev || event_add(m->lev, NULL) < 0 ||
            admit_init(&m->admit, d->base, "migration port", MIGRATE_MAX_PENDING, m->lev) < 0)
            return -ENOMEM;
    }
    if (workers_start(WORKERS_MAX) < 0)
        return -ENOMEM;
    m->chld = evsignal_new(d->base, SIGCHLD, on_sigchld, d);
    if (!m->chld || event_add(m->chld, NULL) < 0)
        return -ENOMEM;
    engine_set_log(log_enabled(LOG_DEBUG) ? ENGINE_LOG_DEBUG : ENGINE_LOG_WARN, engine_line);
    log_info("migration port %s:%u", self->addr, migrate_port(d, d->cl->self));
    return 0;
}

void migrate_fini(struct move *d)
{
    struct migrate *m = d->migrate;
    if (!m)
        return;
    migrate_out_fini();
    for (struct mrecv *r = m->arriving, *next; r; r = next) {
        next = r->next;
        mrecv_stop(r);
        mig_close(r->fd);
        mrecv_free(r);
        free(r);
    }
    workers_stop();
    migrate_hold_all(d);
    /* restored here and not moved away (migrate_evacuate): its relays end
     * with this migrd, nobody would see its output or its end */
    for (struct mproc *p = m->procs; p; p = p->next)
        if (p->here && p->child) {
            log_error("pid %d could not move away before the stop: killing it", p->pid);
            if (kill(p->pid, SIGKILL) < 0)
                log_warn("pid %d: kill: %s", p->pid, strerror(errno));
        }
    while (m->procs)
        mproc_free(d, m->procs);
    while (m->settles)
        settle_job_free(d, m->settles);
    admit_fini(&m->admit);
    if (m->lev)
        event_free(m->lev);
    if (m->chld)
        event_free(m->chld);
    if (m->lfd >= 0)
        close(m->lfd);
    free(m);
    d->migrate = NULL;
}
