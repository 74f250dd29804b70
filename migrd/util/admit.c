/*
 * admit.c -- bounds on a listening port (see admit.h).
 */
#include "admit.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

#define ADMIT_PAUSE_MS 1000

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    struct admit *a = arg;
    (void)fd;
    (void)what;
    if (event_add(a->listener, NULL) < 0)
        log_error("%s: cannot listen again after a pause", a->port);
}

int admit_init(struct admit *a, struct event_base *base, const char *port, unsigned max_pending,
               struct event *listener)
{
    memset(a, 0, sizeof *a);
    a->base = base;
    a->port = port;
    a->max_pending = max_pending;
    a->listener = listener;
    a->resume = evtimer_new(base, on_resume, a);
    return a->resume ? 0 : -ENOMEM;
}

void admit_fini(struct admit *a)
{
    if (a->resume)
        event_free(a->resume);
    a->resume = NULL;
}

/* See admit.h. */
bool admit_may_log(struct admit *a, unsigned *left_out)
{
    uint64_t now = migrd_now_ms();
    if (a->last_log_ms && now - a->last_log_ms < 1000) {
        a->unlogged++;
        return false;
    }
    a->last_log_ms = now;
    *left_out = a->unlogged;
    a->unlogged = 0;
    return true;
}

bool admit_accept_failed(struct admit *a, int err)
{
    unsigned n;
    if (err == EAGAIN || err == EWOULDBLOCK)
        return true;
    if (err == EINTR || err == ECONNABORTED)
        return false;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        struct timeval tv = {ADMIT_PAUSE_MS / 1000, (ADMIT_PAUSE_MS % 1000) * 1000};
        if (admit_may_log(a, &n))
            log_error("%s: accept: %s: not accepting for %d ms (%u such lines left out)", a->port,
                      strerror(err), ADMIT_PAUSE_MS, n);
        event_del(a->listener);
        evtimer_add(a->resume, &tv);
        return true;
    }
    if (admit_may_log(a, &n))
        log_warn("%s: accept: %s (%u such lines left out)", a->port, strerror(err), n);
    return true;
}

struct admit_ticket {
    struct admit *a;
    struct event *deadline;
    char peer[64];
    int fd;
    void (*expired)(void *arg);
    void *arg;
};

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct admit_ticket *t = arg;
    void (*expired)(void *) = t->expired;
    void *earg = t->arg;
    (void)fd;
    (void)what;
    log_warn("%s: connection from %s (fd %d): no handshake within %d ms: dropping it", t->a->port, t->peer,
             t->fd, ADMIT_HANDSHAKE_MS);
    admit_done(t);
    expired(earg);
}

struct admit_ticket *admit_take(struct admit *a, const char *peer, int fd, void (*expired)(void *arg),
                                void *arg)
{
    static const struct timeval wait = {ADMIT_HANDSHAKE_MS / 1000, (ADMIT_HANDSHAKE_MS % 1000) * 1000};
    unsigned n;
    if (a->pending >= a->max_pending) {
        if (admit_may_log(a, &n))
            log_warn("%s: connection from %s refused: %u connections already wait for their handshake (%u "
                     "such lines left out)", a->port, peer, a->pending, n);
        return NULL;
    }
    struct admit_ticket *t = calloc(1, sizeof *t);
    if (!t || !(t->deadline = evtimer_new(a->base, on_deadline, t)) || evtimer_add(t->deadline, &wait) < 0) {
        log_error("%s: connection from %s refused: out of memory", a->port, peer);
        if (t && t->deadline)
            event_free(t->deadline);
        free(t);
        return NULL;
    }
    t->a = a;
    t->fd = fd;
    snprintf(t->peer, sizeof t->peer, "%s", peer);
    t->expired = expired;
    t->arg = arg;
    a->pending++;
    return t;
}

void admit_done(struct admit_ticket *t)
{
    if (!t)
        return;
    t->a->pending--;
    event_free(t->deadline);
    free(t);
}
