/*
 * forward_ep.c -- the endpoint: where a moved process runs, the near ends
 * of its relay pipes, relayed over one connection to its home (forward.h).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrd/cluster/cluster.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "forward.h"
#include "forward_conn.h"
#include "migrate.h"
#include "migrate_proc.h"
#include "move.h"

#define RELAY_PIPE_SIZE (1 << 20)

struct echan {
    uint32_t id, dir;
    int near;                /* migrd's end                              */
    int peek;                /* input pipes: the process's end, for tee  */
    uint64_t ino;            /* inode of the process's end               */
    struct event *ev_rd, *ev_wr;
    struct evbuffer *wq;     /* input not yet in the pipe                */
    bool eof_pending;        /* the home's input ended                   */
    bool done_rd;            /* output reached end of file               */
    bool taken;              /* its unread input went with a move: what
                                comes now waits in wq after taken_len     */
    size_t taken_len;        /* of wq, sent with the move                */
};

struct fwd_ep {
    struct move *d;
    struct mproc *p;
    pid_t pid;
    uint32_t n;
    struct echan ch[MIG_MAX_CHAN];
    struct fwd_files files;  /* the shared files as the process has them here */
    struct fconn *c;
    bool detached;
    bool lingers;            /* detached, its connection home still open */
    int home;                /* node index of its home                   */
    uint32_t gen, uid;       /* of its HELLO                             */
    struct event *retry_ev;  /* the home's migrd is gone: trying again   */
    uint64_t retry_until_ms;
    bool await_welcome;      /* reconnected: output and the exit wait
                                until the home takes the HELLO           */
    bool exited;             /* ended while the home was gone: status    */
    int status;
};

#define FWD_RETRY_MS 200
#define FWD_RECONNECT_MS 30000

static unsigned lingering; /* detached, waiting for the home's END_ACK */

unsigned fwd_ep_lingering(void) { return lingering; }

static void ep_frame(struct fconn *c, const struct mig_hdr *h, const uint8_t *body);
/* A move asked through the home: its answer goes back on that connection. */
static void fwd_move_done(struct move *d, int rc, const struct migrate_result *res, struct fconn *home, void *arg)
{
    struct mig_move_result r = {.reqid = (uint32_t)(uintptr_t)arg, .ok = rc == 0};
    (void)d;
    if (rc == 0) {
        r.bytes = res->bytes;
        r.frozen_us = res->frozen_us;
        r.total_us = res->total_us;
    }
    snprintf(r.message, sizeof r.message, "%s", res->message);
    if (home)
        fconn_send(home, FWD_MOVE_RESULT, 0, &r, sizeof r);
}

struct fconn *fwd_ep_home_conn(const struct fwd_ep *ep) { return ep->c; }

static void ep_close(struct fconn *c, const char *why);
static void fwd_move_done(struct move *d, int rc, const struct migrate_result *res, struct fconn *home,
                          void *arg);

struct fwd_ep *fwd_ep_new(struct move *d, struct mproc *p)
{
    struct fwd_ep *ep = calloc(1, sizeof *ep);
    if (!ep)
        return NULL;
    ep->d = d;
    ep->p = p;
    ep->pid = p->pid;
    fwd_files_init(&ep->files);
    return ep;
}

int fwd_ep_add_file(struct fwd_ep *ep, uint32_t id, int fd)
{
    if (fwd_files_add(&ep->files, id, fd) == 0)
        return 0;
    log_error("pid %d: keeping its shared file %u: %s", ep->pid, id, strerror(errno));
    return -1;
}

uint32_t fwd_ep_file_of(const struct fwd_ep *ep, int fd) { return fwd_files_id_of(&ep->files, ep->pid, fd); }

static struct echan *chan_get(struct fwd_ep *ep, uint32_t id)
{
    for (uint32_t i = 0; i < ep->n; i++)
        if (ep->ch[i].id == id)
            return &ep->ch[i];
    return NULL;
}

int fwd_ep_add(struct fwd_ep *ep, uint32_t chan, uint32_t dir, int *proc_end)
{
    int fds[2];
    struct stat st;
    if (ep->n >= MIG_MAX_CHAN || chan_get(ep, chan)) {
        log_error("pid %d: channel %u: too many or duplicate forwarded descriptors", ep->pid, chan);
        return -1;
    }
    struct echan *ch = &ep->ch[ep->n];
    memset(ch, 0, sizeof *ch);
    ch->id = chan;
    ch->dir = dir;
    ch->peek = -1;
    if (dir == (MIG_DIR_IN | MIG_DIR_OUT)) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) {
            log_error("pid %d: channel %u: socketpair: %s", ep->pid, chan, strerror(errno));
            return -1;
        }
        ch->near = fds[0];
        *proc_end = fds[1];
    } else {
        if (pipe2(fds, O_CLOEXEC) < 0) {
            log_error("pid %d: channel %u: pipe2: %s", ep->pid, chan, strerror(errno));
            return -1;
        }
        if (fcntl(fds[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE) < 0)
            log_debug("pid %d: channel %u: default pipe size kept: %s", ep->pid, chan, strerror(errno));
        if (dir & MIG_DIR_OUT) {
            ch->near = fds[0];
            *proc_end = fds[1];
        } else {
            ch->near = fds[1];
            *proc_end = fds[0];
            ch->peek = fcntl(fds[0], F_DUPFD_CLOEXEC, 3);
            if (ch->peek < 0) {
                log_error("pid %d: channel %u: dup: %s", ep->pid, chan, strerror(errno));
                close(fds[0]);
                close(fds[1]);
                return -1;
            }
        }
    }
    if (fcntl(ch->near, F_SETFL, O_NONBLOCK) < 0 || fstat(*proc_end, &st) < 0 ||
        !(ch->wq = evbuffer_new())) {
        log_error("pid %d: channel %u: setting up fd %d: %s", ep->pid, chan, ch->near, strerror(errno));
        close(ch->near);
        close(*proc_end);
        if (ch->peek >= 0)
            close(ch->peek);
        return -1;
    }
    ch->ino = st.st_ino;
    ep->n++;
    return 0;
}

int fwd_ep_chan_of(const struct fwd_ep *ep, uint64_t ino, uint32_t *chan, uint32_t *dir)
{
    for (uint32_t i = 0; i < ep->n; i++)
        if (ep->ch[i].ino == ino) { /* also once its input ended (near end closed) */
            *chan = ep->ch[i].id;
            *dir = ep->ch[i].dir;
            return 0;
        }
    return -1;
}

uint32_t fwd_ep_channels(const struct fwd_ep *ep, struct mig_chan *out, uint32_t cap)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < ep->n && k < cap; i++)
        out[k++] = (struct mig_chan){.chan = ep->ch[i].id, .dir = ep->ch[i].dir, .fd = -1};
    return k;
}

/* ---- input (home -> process) ---- */

static void close_near(struct echan *ch)
{
    if (ch->ev_rd)
        event_free(ch->ev_rd);
    if (ch->ev_wr)
        event_free(ch->ev_wr);
    ch->ev_rd = ch->ev_wr = NULL;
    if (ch->near >= 0)
        close(ch->near);
    ch->near = -1;
}

static void push_input(struct fwd_ep *ep, struct echan *ch)
{
    if (ch->taken)
        return; /* the move decides whose it is (detach, move_failed) */
    while (evbuffer_get_length(ch->wq) && ch->near >= 0) {
        int n = evbuffer_write(ch->wq, ch->near);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (ch->ev_wr)
                event_add(ch->ev_wr, NULL);
            return;
        }
        if (n <= 0) {
            log_warn("pid %d: channel %u: writing input to fd %d: %s: the process closed it", ep->pid,
                     ch->id, ch->near, strerror(errno));
            evbuffer_drain(ch->wq, evbuffer_get_length(ch->wq));
            return;
        }
    }
    if (ch->eof_pending && ch->near >= 0 && !ep->detached) {
        if (ch->dir & MIG_DIR_OUT)
            shutdown(ch->near, SHUT_WR);
        else
            close_near(ch);
    }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    struct fwd_ep *ep = arg;
    (void)what;
    for (uint32_t i = 0; i < ep->n; i++)
        if (ep->ch[i].near == fd)
            push_input(ep, &ep->ch[i]);
}

int fwd_ep_prefill(struct fwd_ep *ep, uint32_t chan, const void *data, uint32_t len)
{
    struct echan *ch = chan_get(ep, chan);
    if (!ch || !(ch->dir & MIG_DIR_IN))
        return -1;
    evbuffer_add(ch->wq, data, len);
    push_input(ep, ch);
    return 0;
}

int fwd_ep_prefill_eof(struct fwd_ep *ep, uint32_t chan)
{
    struct echan *ch = chan_get(ep, chan);
    if (!ch)
        return -1;
    ch->eof_pending = true;
    push_input(ep, ch);
    return 0;
}

int fwd_ep_unread_input(struct fwd_ep *ep, uint32_t chan, struct evbuffer *out, bool *eof)
{
    struct echan *ch = chan_get(ep, chan);
    int t[2];
    *eof = false;
    if (!ch || !(ch->dir & MIG_DIR_IN))
        return 0;
    *eof = ch->eof_pending;
    if (ch->peek >= 0) {
        /* copy, not consume: if the move fails the process reads them */
        if (pipe2(t, O_CLOEXEC | O_NONBLOCK) < 0) {
            log_error("pid %d: channel %u: pipe2: %s", ep->pid, chan, strerror(errno));
            return -1;
        }
        fcntl(t[1], F_SETPIPE_SZ, RELAY_PIPE_SIZE);
        ssize_t n = tee(ch->peek, t[1], INT_MAX, SPLICE_F_NONBLOCK);
        if (n < 0 && errno != EAGAIN) {
            log_error("pid %d: channel %u: tee of unread input (fd %d): %s", ep->pid, chan, ch->peek,
                      strerror(errno));
            close(t[0]);
            close(t[1]);
            return -1;
        }
        while (n > 0 && evbuffer_read(out, t[0], (int)n) > 0)
            ;
        close(t[0]);
        close(t[1]);
    }
    evbuffer_add_buffer_reference(out, ch->wq);
    ch->taken = true;
    ch->taken_len = evbuffer_get_length(ch->wq);
    return 0;
}

void fwd_ep_move_failed(struct fwd_ep *ep)
{
    for (uint32_t i = 0; i < ep->n; i++)
        if (ep->ch[i].taken) {
            ep->ch[i].taken = false;
            push_input(ep, &ep->ch[i]);
        }
}

/* The move succeeded: what came after the unread input was taken goes
 * back home, ahead of what the home reads next (FWD_RETURN, in order). */
static void return_late_input(struct fwd_ep *ep)
{
    for (uint32_t i = 0; i < ep->n; i++) {
        struct echan *ch = &ep->ch[i];
        if (!ch->taken)
            continue;
        evbuffer_drain(ch->wq, ch->taken_len);
        if (ep->c)
            fconn_send_buffer(ep->c, FWD_RETURN, ch->id, ch->wq);
    }
}

/* ---- output (process -> home) ---- */

static void read_output(struct fwd_ep *ep, struct echan *ch)
{
    char buf[65536];
    while (ch->near >= 0 && !ch->done_rd) {
        ssize_t n = read(ch->near, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            ch->done_rd = true;
            if (ep->c)
                fconn_send(ep->c, FWD_EOF, ch->id, NULL, 0);
            if (ch->ev_rd)
                event_del(ch->ev_rd);
            if (!(ch->dir & MIG_DIR_IN))
                close_near(ch);
            return;
        }
        if (ep->c)
            fconn_send(ep->c, FWD_DATA, ch->id, buf, (uint32_t)n);
    }
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct fwd_ep *ep = arg;
    (void)what;
    for (uint32_t i = 0; i < ep->n; i++)
        if (ep->ch[i].near == fd && (ep->ch[i].dir & MIG_DIR_OUT))
            read_output(ep, &ep->ch[i]);
}

int fwd_ep_drain_output(struct fwd_ep *ep)
{
    for (uint32_t i = 0; i < ep->n; i++)
        if (ep->ch[i].dir & MIG_DIR_OUT)
            read_output(ep, &ep->ch[i]);
    return 0;
}

static void ep_lost_home(struct fwd_ep *ep, const char *why);

/* Connect to the home and say HELLO (not a blocking handshake: the home
 * may be this node): 0 or -1. */
static int ep_connect(struct fwd_ep *ep)
{
    struct move *d = ep->d;
    const struct cfg_node *home = &d->cl->map.nodes[ep->home];
    int fd = mig_connect(home, migrate_port(d, ep->home), 3000, 10000);
    if (fd < 0) {
        if (!ep->retry_ev)
            log_error("pid %d: cannot reach its home %s (%s:%u): %s: its descriptors are not forwarded",
                      ep->pid, home->name, home->addr, migrate_port(d, ep->home), strerror(-fd));
        return -1;
    }
    struct mig_hello hello = {.pid = ep->pid, .gen = ep->gen, .home = (uint32_t)ep->home,
                              .node = (uint32_t)d->cl->self, .uid = ep->uid};
    ep->c = fconn_connect(d, fd, ep->home, AUTH_FORWARD, home->name, ep_frame, ep_close, ep);
    if (!ep->c) {
        close(fd);
        return -1;
    }
    fconn_send(ep->c, FWD_HELLO, 0, &hello, sizeof hello);
    return 0;
}

/* Relay the channels (again): output read as it comes, input pushed. */
static int ep_watch(struct fwd_ep *ep)
{
    for (uint32_t i = 0; i < ep->n; i++) {
        struct echan *ch = &ep->ch[i];
        if (ch->near < 0)
            continue;
        if ((ch->dir & MIG_DIR_OUT) && !ch->done_rd) {
            if (!ch->ev_rd)
                ch->ev_rd = event_new(ep->d->base, ch->near, EV_READ | EV_PERSIST, on_readable, ep);
            if (!ch->ev_rd || event_add(ch->ev_rd, NULL) < 0)
                return -1;
        }
        if (ch->dir & MIG_DIR_IN) {
            if (!ch->ev_wr && !(ch->ev_wr = event_new(ep->d->base, ch->near, EV_WRITE, on_writable, ep)))
                return -1;
            push_input(ep, ch);
        }
    }
    return 0;
}

int fwd_ep_start(struct fwd_ep *ep, uint32_t gen)
{
    ep->gen = gen;
    ep->home = ep->p->home;
    ep->uid = (uint32_t)ep->p->uid;
    if (ep_connect(ep) < 0) {
        ep_lost_home(ep, "cannot connect");
        return -1;
    }
    return ep_watch(ep);
}

/* ---- the home's migrd restarted: reach the next one ---- */

static void ep_retry(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval again = {0, FWD_RETRY_MS * 1000};
    struct fwd_ep *ep = arg;
    (void)fd;
    (void)what;
    if (ep_connect(ep) == 0) {
        /* a home just restarted may not know the process yet (its stub
         * has not given it back): it refuses the HELLO and closes, and
         * what was sent meanwhile would be lost; the rest waits for its
         * WELCOME (a close before it: tried again) */
        log_info("pid %d: reconnected to its home %s", ep->pid, ep->d->cl->map.nodes[ep->home].name);
        ep->await_welcome = true;
        return;
    }
    if (migrd_now_ms() < ep->retry_until_ms && event_add(ep->retry_ev, &again) == 0)
        return;
    if (ep->exited) {
        log_error("pid %d: its home did not come back within %d s: its exit status %#x is lost", ep->pid,
                  FWD_RECONNECT_MS / 1000, ep->status);
        fwd_ep_free(ep);
        return;
    }
    /* never an orphan: nobody could see its output or its end */
    log_error("pid %d: its home did not come back within %d s: killing it", ep->pid, FWD_RECONNECT_MS / 1000);
    if (kill(ep->pid, SIGKILL) < 0)
        log_warn("pid %d: kill: %s", ep->pid, strerror(errno));
}

/* The connection home closed while the process runs here: its output
 * waits in the relay pipes, and the endpoint tries again for a while. */
static void ep_lost_home(struct fwd_ep *ep, const char *why)
{
    static const struct timeval again = {0, FWD_RETRY_MS * 1000};
    for (uint32_t i = 0; i < ep->n; i++)
        if (ep->ch[i].ev_rd)
            event_del(ep->ch[i].ev_rd);
    if (!ep->retry_ev) {
        log_warn("pid %d: connection to its home closed (%s): trying again for %d s", ep->pid, why,
                 FWD_RECONNECT_MS / 1000);
        ep->retry_until_ms = migrd_now_ms() + FWD_RECONNECT_MS;
        ep->retry_ev = evtimer_new(ep->d->base, ep_retry, ep);
    }
    if (!ep->retry_ev || event_add(ep->retry_ev, &again) < 0)
        log_error("pid %d: cannot try to reach its home again: out of memory", ep->pid);
}

static void ep_frame(struct fconn *c, const struct mig_hdr *h, const uint8_t *body)
{
    struct fwd_ep *ep = c->owner;
    struct echan *ch = chan_get(ep, h->chan);
    switch (h->type) {
    case FWD_DATA:
        if (ep->detached) /* too late for this node: back home, in order */
            fconn_send(c, FWD_RETURN, h->chan, body, h->len);
        else if (ch && (ch->dir & MIG_DIR_IN)) {
            evbuffer_add(ch->wq, body, h->len);
            push_input(ep, ch);
        }
        break;
    case FWD_EOF:
        if (ch) {
            ch->eof_pending = true;
            push_input(ep, ch);
        }
        break;
    case FWD_SIGNAL:
        if (h->len == sizeof(struct mig_signal) && !ep->detached &&
            kill(ep->pid, ((const struct mig_signal *)body)->sig) < 0)
            log_warn("pid %d: forwarding signal %d: %s", ep->pid, ((const struct mig_signal *)body)->sig,
                     strerror(errno));
        break;
    case FWD_MOVE:
        if (h->len == sizeof(struct mig_move)) {
            const struct mig_move *m = (const void *)body;
            struct mig_move_result r = {.reqid = m->reqid};
            struct migrate_result res;
            if (ep->detached || !ep->p) {
                snprintf(r.message, sizeof r.message, "pid %d is already leaving this node", ep->pid);
            } else if (m->inject && !ep->d->test_hooks) {
                snprintf(r.message, sizeof r.message, "test hooks are off on %s (migrd --test-hooks)",
                         cluster_self_name(ep->d->cl));
            } else if (migrate_out_start(ep->d, ep->p, m->node, m->inject, m->mode, m->by_uid, fwd_move_done,
                                         (void *)(uintptr_t)m->reqid, &res) == 0) {
                break; /* answered when the move ends */
            } else {
                snprintf(r.message, sizeof r.message, "%s", res.message);
            }
            fconn_send(c, FWD_MOVE_RESULT, 0, &r, sizeof r);
        }
        break;
    case FWD_END_ACK:
        fconn_close_when_flushed(c);
        break;
    case FWD_WELCOME:
        if (!ep->await_welcome)
            break; /* a first connection relays at once */
        ep->await_welcome = false;
        if (ep->exited)
            fwd_ep_exited(ep, ep->status);
        else if (ep_watch(ep) < 0)
            log_error("pid %d: cannot relay its descriptors again: out of memory", ep->pid);
        break;
    default:
        log_warn("pid %d: unexpected %s frame from home ignored", ep->pid, mig_type_name(h->type));
    }
}

static void ep_close(struct fconn *c, const char *why)
{
    struct fwd_ep *ep = c->owner;
    ep->c = NULL;
    ep->await_welcome = false;
    fconn_free_later(c);
    if (ep->detached) {
        fwd_ep_free(ep);
        return;
    }
    ep_lost_home(ep, why);
}

/* The process left this endpoint: close its near ends; false if the
 * endpoint had no connection home and is freed. */
static bool ep_let_go(struct fwd_ep *ep)
{
    ep->detached = true;
    ep->p = NULL;
    for (uint32_t i = 0; i < ep->n; i++)
        close_near(&ep->ch[i]);
    if (ep->c) {
        ep->lingers = true;
        lingering++;
        return true;
    }
    fwd_ep_free(ep);
    return false;
}

void fwd_ep_detach(struct fwd_ep *ep, uint64_t frozen_us)
{
    struct mig_end end = {.frozen_us = frozen_us};
    if (ep->c)
        fwd_files_send_pos(&ep->files, ep->c, ep->pid);
    return_late_input(ep);
    if (ep_let_go(ep))
        fconn_send(ep->c, FWD_END, 0, &end, sizeof end);
}

void fwd_ep_exited(struct fwd_ep *ep, int status)
{
    struct mig_exit ex = {.status = status};
    if (((!ep->c && ep->retry_ev) || ep->await_welcome) && !ep->exited) {
        /* told once the home is back: the output waits in the pipes */
        ep->exited = true;
        ep->status = status;
        ep->p = NULL;
        return;
    }
    fwd_ep_drain_output(ep);
    if (ep->c)
        fwd_files_send_pos(&ep->files, ep->c, ep->pid);
    if (!ep_let_go(ep))
        return;
    fconn_send(ep->c, FWD_EXIT, 0, &ex, sizeof ex);
    fconn_close_when_flushed(ep->c);
}

void fwd_ep_free(struct fwd_ep *ep)
{
    if (ep->retry_ev)
        event_free(ep->retry_ev);
    if (ep->lingers)
        lingering--;
    for (uint32_t i = 0; i < ep->n; i++) {
        close_near(&ep->ch[i]);
        if (ep->ch[i].peek >= 0)
            close(ep->ch[i].peek);
        if (ep->ch[i].wq)
            evbuffer_free(ep->ch[i].wq);
    }
    fwd_files_close(&ep->files);
    if (ep->c) {
        ep->c->owner = NULL;
        fconn_free_later(ep->c);
    }
    free(ep);
}
