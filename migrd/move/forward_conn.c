/*
 * forward_conn.c -- see forward_conn.h.
 */
#include "forward_conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrd/cluster/cluster.h"
#include "migrd/cluster/node_addr.h"
#include "migrd/util/admit.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "mig_auth.h"
#include "move.h"

/* The handshake of either side (cluster/auth.h); frames sent before it
 * is done wait in `pending` (their MACs need the session). */
struct fconn_auth {
    struct auth_hs hs;
    int expect;                  /* connecting: the node we called; -1 */
    bool proof_sent;
    struct evbuffer *pending;
};

static void fconn_auth_free(struct fconn_auth *a)
{
    if (!a)
        return;
    if (a->pending)
        evbuffer_free(a->pending);
    sodium_memzero(a, sizeof *a);
    free(a);
}

static int send_tagged(struct fconn *c, const struct mig_hdr *h, const void *body);

static void conn_closed(struct fconn *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = 1;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->hold_close) {
        c->close_held = 1; /* told at fconn_resume */
        return;
    }
    c->on_close(c, why);
}

/* The peer's hello: the node it is (checked against the address it came
 * from, or the node we called); our proof goes back.  Node, or -1. */
static int auth_hello(struct fconn *c, const struct auth_hello *h, char *why, size_t wl)
{
    struct fconn_auth *a = c->auth;
    const struct cluster *cl = c->d->cl;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    struct auth_proof pr;
    /* the home forwards to itself when a process is back home */
    int node = auth_hs_peer(&a->hs, h, why, wl) < 0 ? -1 : auth_peer_node(&a->hs, &cl->map, -1, why, wl);
    if (node < 0)
        return -1;
    if (a->hs.purpose != AUTH_MOVE && a->hs.purpose != AUTH_FORWARD) {
        snprintf(why, wl, "purpose %u is not the migration port's", a->hs.purpose);
        return -1;
    }
    if (a->expect >= 0 && node != a->expect) {
        snprintf(why, wl, "connected to %s, but it says it is %.63s", cl->map.nodes[a->expect].name, h->name);
        return -1;
    }
    if (a->expect < 0 && (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0 ||
                          !node_addr_is(&cl->map.nodes[node], &ss))) {
        snprintf(why, wl, "says it is %s, whose address in the map is %s", cl->map.nodes[node].name,
                 cl->map.nodes[node].addr);
        return -1;
    }
    auth_hs_proof(&a->hs, &pr);
    if (bufferevent_write(c->bev, &pr, sizeof pr) < 0) {
        snprintf(why, wl, "out of memory");
        return -1;
    }
    a->proof_sent = true;
    return node;
}

/* The peer's hello, then its proof; 1 when it has proved itself, 0 when
 * more is needed, -1 when the connection was closed. */
static int auth_step(struct fconn *c, struct evbuffer *in)
{
    struct fconn_auth *a = c->auth;
    char why[200] = "";
    if (!a->proof_sent) {
        struct auth_hello h;
        if (evbuffer_get_length(in) < sizeof h)
            return 0;
        evbuffer_remove(in, &h, sizeof h);
        if ((c->peer_node = auth_hello(c, &h, why, sizeof why)) < 0)
            goto refuse;
    }
    struct auth_proof theirs;
    if (evbuffer_get_length(in) < sizeof theirs)
        return 0;
    evbuffer_remove(in, &theirs, sizeof theirs);
    if (!(c->sess = calloc(1, sizeof *c->sess))) {
        conn_closed(c, "out of memory");
        return -1;
    }
    if (auth_hs_check(&a->hs, &theirs, c->sess) < 0) {
        snprintf(why, sizeof why, "%.63s failed to prove it holds the cluster key", a->hs.peer.name);
        c->peer_node = -1;
        goto refuse;
    }
    c->purpose = a->hs.purpose;
    c->auth = NULL;
    /* what was sent meanwhile, with its MACs now */
    struct mig_hdr h;
    while (evbuffer_remove(a->pending, &h, sizeof h) == (int)sizeof h) {
        const uint8_t *body = h.len ? evbuffer_pullup(a->pending, h.len) : NULL;
        if ((h.len && !body) || send_tagged(c, &h, body) < 0) {
            fconn_auth_free(a);
            conn_closed(c, "out of memory");
            return -1;
        }
        evbuffer_drain(a->pending, h.len);
    }
    fconn_auth_free(a);
    return 1;
refuse:
    log_warn("migration port: connection %s %s (fd %d): %s: refused", a->expect < 0 ? "from" : "to", c->peer,
             c->fd, why);
    conn_closed(c, why);
    return -1;
}

/* admit: an accepted connection sent no handshake and request in time. */
static void handshake_expired(void *arg)
{
    struct fconn *c = arg;
    c->ticket = NULL;
    conn_closed(c, "no handshake in time");
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct fconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->auth && (c->closed || auth_step(c, in) <= 0))
        return;
    if (c->close_after_auth) {
        /* asked to close while it was proving itself: its frames are out */
        c->close_after_auth = 0;
        fconn_close_when_flushed(c);
        return;
    }
    size_t tl = c->sess ? AUTH_TAG : 0;
    while (!c->closed && !c->stop) {
        struct mig_hdr h;
        const char *why;
        if (evbuffer_copyout(in, &h, sizeof h) < (ssize_t)sizeof h)
            return;
        if (mig_hdr_check(&h, &why) < 0) {
            log_error("migration port: connection from %s (fd %d): %s: dropping it", c->peer, c->fd,
                      why);
            conn_closed(c, why);
            return;
        }
        if (evbuffer_get_length(in) < sizeof h + h.len + tl)
            return;
        const uint8_t *frame = evbuffer_pullup(in, (ssize_t)(sizeof h + h.len + tl));
        if (!frame) {
            conn_closed(c, "out of memory");
            return;
        }
        if (c->sess) {
            struct auth_mac m;
            auth_mac_begin(c->sess, false, &m);
            auth_mac_update(&m, frame, sizeof h + h.len);
            if (!auth_mac_verify(&m, frame + sizeof h + h.len)) {
                log_error("migration port: connection from %s (fd %d): %s frame with a wrong MAC (forged, "
                          "replayed or corrupted): dropping it", c->peer, c->fd, mig_type_name(h.type));
                conn_closed(c, "wrong MAC");
                return;
            }
        }
        admit_done(c->ticket); /* a first frame: it no longer waits */
        c->ticket = NULL;
        c->on_frame(c, &h, h.len ? frame + sizeof h : NULL);
        if (c->closed)
            return;
        evbuffer_drain(in, sizeof h + h.len + tl);
    }
}

void fconn_park(struct fconn *c)
{
    c->stop = 1;
    c->hold_close = 1;
}

void fconn_resume(struct fconn *c)
{
    bool held = c->close_held;
    c->hold_close = c->close_held = 0;
    c->stop = 0;
    c->closed = 0; /* what it sent before it closed is read first */
    on_read(c->bev, c);
    if (held)
        conn_closed(c, "closed by the peer");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct fconn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_EOF)
        conn_closed(c, "closed by the peer");
    else if (what & BEV_EVENT_ERROR)
        conn_closed(c, strerror(EVUTIL_SOCKET_ERROR()));
}

static void on_flushed(struct bufferevent *bev, void *arg)
{
    struct fconn *c = arg;
    (void)bev;
    conn_closed(c, "done");
}

struct fconn *fconn_new(struct move *d, int fd, const char *peer, fconn_frame_fn on_frame,
                        fconn_close_fn on_close, void *owner)
{
    struct fconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
        log_error("migration port: fd %d (%s): O_NONBLOCK: %s", fd, peer, strerror(errno));
        free(c);
        return NULL;
    }
    c->bev = bufferevent_socket_new(d->base, fd, 0);
    if (!c->bev) {
        free(c);
        return NULL;
    }
    c->d = d;
    c->fd = fd;
    c->peer_node = -1;
    c->sess = mig_auth_take(fd);
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->on_frame = on_frame;
    c->on_close = on_close;
    c->owner = owner;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return c;
}

/* Start the handshake: expect = the node we called, or -1 (accepted). */
static struct fconn *with_auth(struct fconn *c, int expect, enum auth_purpose purpose)
{
    const struct cluster *cl = c->d->cl;
    if (!cl->secure)
        return c;
    c->auth = calloc(1, sizeof *c->auth);
    if (c->auth && (c->auth->pending = evbuffer_new())) {
        c->auth->expect = expect;
        auth_hs_begin(&c->auth->hs, cl->key, purpose, expect >= 0, (uint32_t)cl->self, cluster_self_name(cl));
        if (bufferevent_write(c->bev, &c->auth->hs.mine, sizeof c->auth->hs.mine) == 0)
            return c;
    }
    c->fd = -1; /* the caller closes it */
    fconn_free(c);
    return NULL;
}

struct fconn *fconn_accept(struct move *d, int fd, const char *peer, struct admit *admit,
                           fconn_frame_fn on_frame, fconn_close_fn on_close, void *owner)
{
    struct fconn *c = fconn_new(d, fd, peer, on_frame, on_close, owner);
    if (c && !(c->ticket = admit_take(admit, peer, fd, handshake_expired, c))) {
        c->fd = -1; /* the caller closes it */
        fconn_free(c);
        return NULL;
    }
    return c ? with_auth(c, -1, 0) : NULL;
}

struct fconn *fconn_connect(struct move *d, int fd, int node, enum auth_purpose purpose, const char *peer,
                            fconn_frame_fn on_frame, fconn_close_fn on_close, void *owner)
{
    struct fconn *c = fconn_new(d, fd, peer, on_frame, on_close, owner);
    return c ? with_auth(c, node, purpose) : NULL;
}

static int send_tagged(struct fconn *c, const struct mig_hdr *h, const void *body)
{
    uint8_t tag[AUTH_TAG];
    if (c->sess && mig_frame_tag(c->sess, h, body, tag) < 0)
        return -1;
    if (bufferevent_write(c->bev, h, sizeof *h) < 0 || (h->len && bufferevent_write(c->bev, body, h->len) < 0) ||
        (c->sess && bufferevent_write(c->bev, tag, sizeof tag) < 0))
        return -1;
    return 0;
}

int fconn_send(struct fconn *c, uint16_t type, uint32_t chan, const void *body, uint32_t len)
{
    struct mig_hdr h = {.magic = MIG_MAGIC, .version = MIG_VERSION, .type = type, .len = len,
                        .chan = chan};
    if (c->closed)
        return -1;
    int rc = c->auth ? (evbuffer_add(c->auth->pending, &h, sizeof h) < 0 ||
                        (len && evbuffer_add(c->auth->pending, body, len) < 0))
                     : send_tagged(c, &h, body);
    if (rc) {
        log_error("migration port: queueing %s for %s: out of memory", mig_type_name(type), c->peer);
        return -1;
    }
    return 0;
}

void fconn_send_buffer(struct fconn *c, uint16_t type, uint32_t chan, struct evbuffer *b)
{
    while (evbuffer_get_length(b)) {
        size_t n = evbuffer_get_length(b);
        if (n > 65536)
            n = 65536;
        fconn_send(c, type, chan, evbuffer_pullup(b, (ssize_t)n), (uint32_t)n);
        evbuffer_drain(b, n);
    }
}

void fconn_close_when_flushed(struct fconn *c)
{
    if (c->closed)
        return;
    c->stop = 1;
    if (c->auth) {
        /* its frames wait for the handshake (auth_step): closed after */
        c->close_after_auth = 1;
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_closed(c, "done");
        return;
    }
    bufferevent_setcb(c->bev, NULL, on_flushed, on_event, c);
}

int fconn_flush_now(struct fconn *c, int timeout_ms)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint64_t until = migrd_now_ms() + (uint64_t)timeout_ms;
    int rc = 0;
    if (c->closed || c->auth)
        return -1; /* nothing can be written (yet) */
    /* a socket bufferevent keeps its output's front frozen between its
     * own writes: thawed for ours */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out)) {
        errno = 0;
        int n = evbuffer_write(out, c->fd);
        if (n > 0)
            continue;
        uint64_t now = migrd_now_ms();
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || now >= until) {
            log_warn("migration port: %zu bytes for %s (fd %d) not written before the stop: %s",
                     evbuffer_get_length(out), c->peer, c->fd, n < 0 ? strerror(errno) : "timed out");
            rc = -1;
            break;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)(until - now)) < 0 && errno != EINTR) {
            log_warn("migration port: poll on fd %d (%s): %s", c->fd, c->peer, strerror(errno));
            rc = -1;
            break;
        }
    }
    evbuffer_freeze(out, 1);
    return rc;
}

int fconn_take_fd(struct fconn *c)
{
    int fd = c->fd;
    c->fd = -1;
    if (c->sess && mig_auth_give(fd, c->sess) < 0) {
        log_error("migration port: fd %d: too many authenticated connections at once", fd);
        auth_session_clear(c->sess);
        free(c->sess);
        c->sess = NULL;
        fconn_free(c);
        close(fd);
        return -1;
    }
    c->sess = NULL;
    bufferevent_free(c->bev);
    fconn_auth_free(c->auth);
    free(c);
    if (fcntl(fd, F_SETFL, 0) < 0) {
        log_error("migration port: fd %d: clearing O_NONBLOCK: %s", fd, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void fconn_free(struct fconn *c)
{
    if (!c)
        return;
    if (c->sess)
        auth_session_clear(c->sess);
    free(c->sess);
    fconn_auth_free(c->auth);
    admit_done(c->ticket);
    bufferevent_free(c->bev);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void free_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fconn_free(arg);
}

void fconn_free_later(struct fconn *c)
{
    static const struct timeval zero = {0, 0};
    c->stop = 1;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (event_base_once(c->d->base, -1, EV_TIMEOUT, free_cb, c, &zero) < 0)
        log_error("migration port: cannot schedule freeing the connection from %s", c->peer);
}
