/*
 * forward_conn.c -- see forward_conn.h.
 */
#include "forward_conn.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrd/util/log.h"
#include "move.h"

static void conn_closed(struct fconn *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = 1;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->on_close(c, why);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct fconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
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
        if (evbuffer_get_length(in) < sizeof h + h.len)
            return;
        evbuffer_drain(in, sizeof h);
        const uint8_t *body = h.len ? evbuffer_pullup(in, h.len) : NULL;
        if (h.len && !body) {
            conn_closed(c, "out of memory");
            return;
        }
        c->on_frame(c, &h, body);
        if (c->closed)
            return;
        evbuffer_drain(in, h.len);
    }
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
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->on_frame = on_frame;
    c->on_close = on_close;
    c->owner = owner;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return c;
}

int fconn_send(struct fconn *c, uint16_t type, uint32_t chan, const void *body, uint32_t len)
{
    struct mig_hdr h = {.magic = MIG_MAGIC, .version = MIG_VERSION, .type = type, .len = len,
                        .chan = chan};
    if (c->closed)
        return -1;
    if (bufferevent_write(c->bev, &h, sizeof h) < 0 || (len && bufferevent_write(c->bev, body, len) < 0)) {
        log_error("migration port: queueing %s for %s: out of memory", mig_type_name(type), c->peer);
        return -1;
    }
    return 0;
}

void fconn_close_when_flushed(struct fconn *c)
{
    if (c->closed)
        return;
    c->stop = 1;
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_closed(c, "done");
        return;
    }
    bufferevent_setcb(c->bev, NULL, on_flushed, on_event, c);
}

int fconn_take_fd(struct fconn *c)
{
    int fd = c->fd;
    c->fd = -1;
    bufferevent_free(c->bev);
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
