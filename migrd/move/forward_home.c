/*
 * forward_home.c -- the anchor: a moved process's outside descriptors, kept
 * open at its home and relayed to where it runs (see forward.h).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ctlmsg.h"
#include "migrd/cluster/cluster.h"
#include "migrd/util/log.h"
#include "forward.h"
#include "forward_conn.h"
#include "migrate.h"
#include "migrate_proc.h"
#include "move.h"

struct achan {
    uint32_t id, dir;
    int fd;                  /* the original, or -1 once closed       */
    struct event *ev;        /* readable (dir & MIG_DIR_IN)            */
    bool in_eof;             /* the original reached end of file       */
    struct fconn *eof_sent;  /* connection that got the EOF            */
    struct evbuffer *ret;    /* input returned by the previous location */
    struct evbuffer *pend;   /* input read while no location is current */
};

struct fwd_anchor {
    struct move *d;
    struct mproc *p;
    uint32_t n;
    struct achan ch[MIG_MAX_CHAN];
    struct fwd_files files;  /* originals of the shared files           */
    struct fconn *cur;       /* location in service                    */
    struct fconn *old;       /* previous location, ending (sent END)   */
    struct fconn *next;      /* new location waiting for old to close  */
    struct evbuffer *held;   /* frames of next, replayed in order      */
    int pend_sig;
    int move_fd;             /* migrctl waiting for a MOVE_RESULT      */
    uint32_t move_reqid;
    bool move_parked;        /* asked between two locations: sent to   */
    struct mig_move parked;  /* the next one once it is in service     */
    bool taking_back;        /* given back by its stub after a restart,
                                not all parts in yet: no location yet    */
};

static void anchor_frame(struct fconn *c, const struct mig_hdr *h, const uint8_t *body);
static void anchor_apply(struct fwd_anchor *a, struct fconn *c, const struct mig_hdr *h, const uint8_t *body);
static struct achan *chan_get(struct fwd_anchor *a, uint32_t id);

struct fwd_anchor *fwd_anchor_new(struct move *d, struct mproc *p)
{
    struct fwd_anchor *a = calloc(1, sizeof *a);
    if (!a || !(a->held = evbuffer_new())) {
        free(a);
        return NULL;
    }
    a->d = d;
    a->p = p;
    a->move_fd = -1;
    fwd_files_init(&a->files);
    return a;
}

uint32_t fwd_anchor_nchan(const struct fwd_anchor *a) { return a->n; }

int fwd_anchor_add(struct fwd_anchor *a, uint32_t chan, int orig_fd, uint32_t dir)
{
    if (a->n >= MIG_MAX_CHAN || chan_get(a, chan)) {
        log_error("pid %d: channel %u: more than %d forwarded descriptors, or twice", a->p->pid, chan,
                  MIG_MAX_CHAN);
        close(orig_fd);
        return -1;
    }
    struct achan *ch = &a->ch[a->n];
    ch->id = chan;
    ch->dir = dir;
    ch->fd = orig_fd;
    ch->ret = evbuffer_new();
    ch->pend = evbuffer_new();
    a->n++; /* freed with the anchor, also when half made */
    if (!ch->ret || !ch->pend) {
        log_error("pid %d: channel %u: out of memory", a->p->pid, chan);
        return -1;
    }
    return 0;
}

int fwd_anchor_add_file(struct fwd_anchor *a, uint32_t id, int orig_fd)
{
    if (fwd_files_add(&a->files, id, orig_fd) == 0)
        return 0;
    log_error("pid %d: keeping its shared file %u at home: %s", a->p->pid, id, strerror(errno));
    return -1;
}

int fwd_anchor_file(const struct fwd_anchor *a, uint32_t id) { return fwd_files_fd(&a->files, id); }

bool fwd_anchor_ready(const struct fwd_anchor *a) { return !a->taking_back; }

bool fwd_anchor_in_service(const struct fwd_anchor *a) { return a->cur != NULL; }

/* bound on writing a location's queued input before the stop */
#define HOLD_FLUSH_MS 1000

int fwd_anchor_hold(struct fwd_anchor *a, int stub_fd, const struct ctl_proc_hold *head)
{
    struct ctl_proc_hold h = *head;
    int fds[CTL_MAX_FDS];
    uint32_t total = a->n + a->files.n, k = 0;
    /* the originals are the stub's now: this daemon reads no more of
     * them, and what it read and sent, still queued here, would end with
     * it: out to where the process runs first */
    for (uint32_t i = 0; i < a->n; i++)
        if (a->ch[i].ev)
            event_del(a->ch[i].ev);
    if (a->cur)
        fconn_flush_now(a->cur, HOLD_FLUSH_MS);
    h.part = 0;
    do {
        h.n = 0;
        for (; k < total && h.n < CTL_MAX_FDS; k++) {
            if (k < a->n && a->ch[k].fd < 0)
                continue; /* an output that ended */
            if (k < a->n) {
                h.e[h.n].kind = CTL_HOLD_CHAN;
                h.e[h.n].id = a->ch[k].id;
                h.e[h.n].dir = a->ch[k].dir;
                fds[h.n++] = a->ch[k].fd;
            } else {
                h.e[h.n].kind = CTL_HOLD_FILE;
                h.e[h.n].id = a->files.f[k - a->n].id;
                h.e[h.n].dir = 0;
                fds[h.n++] = a->files.f[k - a->n].fd;
            }
        }
        h.last = k >= total;
        int rc = ctl_send(stub_fd, CTL_PROC_HOLD, 0, &h, sizeof h, fds, (int)h.n);
        if (rc < 0) {
            log_error("pid %d: handing what the home holds to its stub (fd %d): %s", a->p->pid, stub_fd,
                      strerror(-rc));
            return -1;
        }
        h.part++;
    } while (!h.last);
    return 0;
}

int fwd_anchor_take_back(struct fwd_anchor *a, const struct ctl_proc_hold *h, int *fds)
{
    a->taking_back = true;
    for (uint32_t i = 0; i < h->n; i++) {
        int fd = fds[i];
        fds[i] = -1;
        if (h->e[i].kind == CTL_HOLD_FILE ? fwd_anchor_add_file(a, h->e[i].id, fd) < 0
                                          : fwd_anchor_add(a, h->e[i].id, fd, h->e[i].dir) < 0)
            return -1;
    }
    if (!h->last)
        return 0;
    a->taking_back = false;
    return fwd_anchor_start(a);
}

static struct achan *chan_get(struct fwd_anchor *a, uint32_t id)
{
    for (uint32_t i = 0; i < a->n; i++)
        if (a->ch[i].id == id)
            return &a->ch[i];
    return NULL;
}

/* Send what is waiting for a new current location: returned input first. */
static void flush_input(struct fwd_anchor *a, struct achan *ch)
{
    struct evbuffer *bufs[2] = {ch->ret, ch->pend};
    if (!a->cur)
        return;
    for (int k = 0; k < 2; k++)
        fconn_send_buffer(a->cur, FWD_DATA, ch->id, bufs[k]);
    if (ch->in_eof && ch->eof_sent != a->cur) {
        fconn_send(a->cur, FWD_EOF, ch->id, NULL, 0);
        ch->eof_sent = a->cur;
    }
}

static void on_input(evutil_socket_t fd, short what, void *arg)
{
    struct fwd_anchor *a = arg;
    struct achan *ch = NULL;
    char buf[65536];
    (void)what;
    for (uint32_t i = 0; i < a->n; i++)
        if (a->ch[i].fd == fd)
            ch = &a->ch[i];
    if (!ch)
        return;
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        if (n < 0)
            log_warn("pid %d: reading forwarded fd %d (channel %u): %s: treating it as end of file",
                     a->p->pid, fd, ch->id, strerror(errno));
        event_del(ch->ev);
        ch->in_eof = true;
    } else {
        evbuffer_add(ch->pend, buf, (size_t)n);
    }
    flush_input(a, ch);
}

/* reads of 64 KiB: 256 MiB */
#define UNWATCHABLE_MAX_READS 4096

int fwd_anchor_start(struct fwd_anchor *a)
{
    for (uint32_t i = 0; i < a->n; i++) {
        struct achan *ch = &a->ch[i];
        if (!(ch->dir & MIG_DIR_IN))
            continue;
        ch->ev = event_new(a->d->base, ch->fd, EV_READ | EV_PERSIST, on_input, a);
        if (!ch->ev) {
            log_error("pid %d: cannot watch forwarded fd %d: out of memory", a->p->pid, ch->fd);
            return -1;
        }
        if (event_add(ch->ev, NULL) == 0)
            continue;
        if (errno != EPERM) {
            log_error("pid %d: cannot watch forwarded fd %d: %s", a->p->pid, ch->fd, strerror(errno));
            return -1;
        }
        /* epoll refuses what is always readable (/dev/null, the stdin of
         * every MPI rank but 0; a regular file): read it to its end now */
        for (int k = 0; k < UNWATCHABLE_MAX_READS && !ch->in_eof; k++)
            on_input(ch->fd, EV_READ, a);
        if (!ch->in_eof) {
            log_warn("pid %d: forwarded fd %d: more than %d MiB to read at once: the rest is dropped",
                     a->p->pid, ch->fd, UNWATCHABLE_MAX_READS / 16);
            ch->in_eof = true;
            flush_input(a, ch);
        }
    }
    return 0;
}

static void write_out(struct fwd_anchor *a, struct achan *ch, const uint8_t *body, uint32_t len)
{
    uint32_t off = 0;
    if (ch->fd < 0)
        return;
    while (off < len) {
        ssize_t n = write(ch->fd, body + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            usleep(1000); /* an original left non-blocking by its reader */
            continue;
        }
        if (n <= 0) {
            log_warn("pid %d: writing %u forwarded bytes to fd %d (channel %u): %s: dropped",
                     a->p->pid, len - off, ch->fd, ch->id, strerror(errno));
            return;
        }
        off += (uint32_t)n;
    }
}

static void close_chan(struct achan *ch)
{
    if (ch->ev) {
        event_free(ch->ev);
        ch->ev = NULL;
    }
    if (ch->fd >= 0)
        close(ch->fd);
    ch->fd = -1;
}

static void answer_move(struct fwd_anchor *a, const struct mig_move_result *r)
{
    if (a->move_fd < 0)
        return;
    mproc_answer_move(a->move_fd, a->move_reqid, r->ok, r->message, r->bytes, r->frozen_us, r->total_us);
    close(a->move_fd);
    a->move_fd = -1;
}

/* The process ended where it ran: output was written before this frame. */
static void process_exited(struct fwd_anchor *a, int status)
{
    struct mproc *p = a->p;
    for (uint32_t i = 0; i < a->n; i++)
        close_chan(&a->ch[i]);
    p->state = MP_EXITED;
    a->move_parked = false;
    answer_move(a, &(struct mig_move_result){.ok = 0, .message = "the process ended before it could move"});
    log_info("pid %d ended on %s with status %#x", p->pid, a->d->cl->map.nodes[p->at].name, status);
    mproc_notify_stub(p, CTL_PEV_EXITED, status, a->d->cl->map.nodes[p->at].name);
    if (p->stub_gone) /* nobody will send CTL_PROC_DONE */
        mproc_free_later(a->d, p);
}

/* The frames the new location sent while the old one was ending, in
 * order, as from a->cur (NULL: that location has closed since). */
static void replay_held(struct fwd_anchor *a)
{
    while (evbuffer_get_length(a->held) >= sizeof(struct mig_hdr)) {
        struct mig_hdr h;
        evbuffer_remove(a->held, &h, sizeof h);
        const uint8_t *body = h.len ? evbuffer_pullup(a->held, h.len) : NULL;
        anchor_apply(a, a->cur, &h, body);
        evbuffer_drain(a->held, h.len);
    }
}

static void promote_next(struct fwd_anchor *a)
{
    a->cur = a->next;
    a->next = NULL;
    if (!a->cur) {
        /* the new location closed while the old one was ending (the
         * process ended at once there): its last words still count */
        replay_held(a);
        return;
    }
    for (uint32_t i = 0; i < a->n; i++)
        flush_input(a, &a->ch[i]);
    if (a->move_parked) {
        a->move_parked = false;
        if (fconn_send(a->cur, FWD_MOVE, 0, &a->parked, sizeof a->parked) < 0)
            answer_move(a, &(struct mig_move_result){.ok = 0, .message = "the move request could not be sent to "
                                                                         "where the process runs; try again"});
    }
    if (a->pend_sig) {
        fconn_send(a->cur, FWD_SIGNAL, 0, &(struct mig_signal){a->pend_sig}, sizeof(struct mig_signal));
        a->pend_sig = 0;
    }
    replay_held(a);
}

static void anchor_close(struct fconn *c, const char *why)
{
    struct fwd_anchor *a = c->owner;
    struct mproc *p = a->p;
    if (c == a->old) {
        log_debug("pid %d: previous location's connection closed (%s)", p->pid, why);
        a->old = NULL;
        promote_next(a);
    } else if (c == a->cur) {
        a->cur = NULL;
        if (p->state != MP_EXITED) {
            log_error("pid %d: lost the connection to %s where it runs (%s): the process is lost",
                      p->pid, c->peer, why);
            process_exited(a, SIGKILL);
        }
    } else if (c == a->next) {
        a->next = NULL;
    }
    fconn_free_later(c);
}

static void anchor_frame(struct fconn *c, const struct mig_hdr *h, const uint8_t *body)
{
    struct fwd_anchor *a = c->owner;
    if (c == a->next) {
        /* keep it, in order, until the previous location is done */
        evbuffer_add(a->held, h, sizeof *h);
        evbuffer_add(a->held, body, h->len);
        return;
    }
    anchor_apply(a, c, h, body);
}

/* A frame of location c (NULL: a location that has closed since it sent
 * it, its frames held until now). */
static void anchor_apply(struct fwd_anchor *a, struct fconn *c, const struct mig_hdr *h, const uint8_t *body)
{
    struct mproc *p = a->p;
    struct achan *ch = chan_get(a, h->chan);
    switch (h->type) {
    case FWD_DATA:
        if (ch && (ch->dir & MIG_DIR_OUT))
            write_out(a, ch, body, h->len);
        else
            log_warn("pid %d: %u bytes for unknown output channel %u dropped", p->pid, h->len, h->chan);
        break;
    case FWD_EOF:
        if (ch && ch->fd >= 0) {
            if (ch->dir & MIG_DIR_IN)
                shutdown(ch->fd, SHUT_WR);
            else
                close_chan(ch);
        }
        break;
    case FWD_RETURN:
        if (ch)
            evbuffer_add(ch->ret, body, h->len);
        break;
    case FWD_FILEPOS:
        /* back home it has the original itself: an old location's word
         * on the offset is stale (its frames come before the new one's) */
        if (h->len == sizeof(struct mig_filepos) && !p->here)
            fwd_files_set_pos(&a->files, (const void *)body, p->pid);
        break;
    case FWD_EXIT:
        if (h->len == sizeof(struct mig_exit))
            process_exited(a, ((const struct mig_exit *)body)->status);
        if (c)
            fconn_close_when_flushed(c);
        break;
    case FWD_END:
        if (h->len == sizeof(struct mig_end))
            p->last_frozen_us = ((const struct mig_end *)body)->frozen_us;
        if (!c)
            break;
        fconn_send(c, FWD_END_ACK, 0, NULL, 0);
        if (c == a->cur) {
            a->old = c;
            a->cur = NULL;
        }
        break;
    case FWD_MOVE_RESULT:
        if (h->len == sizeof(struct mig_move_result))
            answer_move(a, (const void *)body);
        break;
    default:
        log_warn("pid %d: unexpected %s frame from %s ignored", p->pid, mig_type_name(h->type),
                 c ? c->peer : "a closed location");
    }
}

void fwd_anchor_attach(struct fwd_anchor *a, struct fconn *c, uint32_t gen)
{
    struct mproc *p = a->p;
    c->owner = a;
    c->gen = gen;
    c->on_frame = anchor_frame;
    c->on_close = anchor_close;
    if (a->next) {
        log_warn("pid %d: a newer location (%s) replaces the waiting one (%s)", p->pid, c->peer,
                 a->next->peer);
        fconn_free_later(a->next);
        evbuffer_drain(a->held, evbuffer_get_length(a->held));
    }
    a->next = c;
    p->moves = gen;
    /* back at home, it runs here (migrate.c's incoming() said so): only a
     * location elsewhere makes it away */
    if (!p->here)
        p->state = MP_AWAY;
    int at = migrate_node_by_addr(a->d, c->peer);
    if (at >= 0)
        p->at = at;
    fconn_send(c, FWD_WELCOME, 0, NULL, 0);
    if (!a->cur && !a->old)
        promote_next(a);
    log_info("pid %d: forwarding to %s (move %u)", p->pid, c->peer, gen);
}

int fwd_anchor_signal(struct fwd_anchor *a, int sig)
{
    if (!a->cur) {
        a->pend_sig = sig;
        return 0;
    }
    return fconn_send(a->cur, FWD_SIGNAL, 0, &(struct mig_signal){sig}, sizeof(struct mig_signal));
}

int fwd_anchor_move(struct fwd_anchor *a, int reply_fd, uint32_t reqid, uint32_t inject, uint32_t mode,
                    const char *node, uid_t by)
{
    struct mig_move m = {.reqid = reqid, .inject = inject, .by_uid = (uint32_t)by, .mode = mode};
    if (a->move_fd >= 0 || a->p->state == MP_EXITED)
        return -1;
    snprintf(m.node, sizeof m.node, "%s", node);
    if (!a->cur) {
        /* its last move is ending (the new location has not connected
         * yet, or waits for the old one's connection to close): ask the
         * new one as soon as it is in service */
        a->parked = m;
        a->move_parked = true;
    } else if (fconn_send(a->cur, FWD_MOVE, 0, &m, sizeof m) < 0) {
        return -1;
    }
    a->move_fd = reply_fd;
    a->move_reqid = reqid;
    return 0;
}

void fwd_anchor_free(struct fwd_anchor *a)
{
    struct fconn *cs[3] = {a->cur, a->old, a->next};
    for (int k = 0; k < 3; k++)
        if (cs[k])
            fconn_free_later(cs[k]);
    for (uint32_t i = 0; i < a->n; i++) {
        close_chan(&a->ch[i]);
        if (a->ch[i].ret)
            evbuffer_free(a->ch[i].ret);
        if (a->ch[i].pend)
            evbuffer_free(a->ch[i].pend);
    }
    fwd_files_close(&a->files);
    if (a->move_fd >= 0)
        close(a->move_fd);
    evbuffer_free(a->held);
    free(a);
}
