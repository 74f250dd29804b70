/*
 * thread.c -- see thread.h.
 */
#include "thread.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "migrd/util/log.h"

void pthr_init(struct pager_thread *t)
{
    memset(t, 0, sizeof *t);
    t->stop[0] = t->stop[1] = t->done[0] = t->done[1] = -1;
}

static void *run(void *arg)
{
    struct pager_thread *t = arg;
    char one = 1;
    t->body(t->arg);
    while (write(t->done[1], &one, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct pager_thread *t = arg;
    char c;
    (void)what;
    if (read(fd, &c, 1) < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    event_del(t->ev);
    t->ended(t->arg);
}

int pthr_start(struct pager_thread *t, struct event_base *base, void (*body)(void *), void (*ended)(void *),
               void *arg, char *why, size_t wl)
{
    t->body = body;
    t->ended = ended;
    t->arg = arg;
    if (pipe2(t->stop, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(t->done, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(why, wl, "pipe for a pager thread: %s", strerror(errno));
        return -1;
    }
    if (!(t->ev = event_new(base, t->done[0], EV_READ | EV_PERSIST, on_done, t)) || event_add(t->ev, NULL) < 0) {
        snprintf(why, wl, "event for a pager thread: out of memory");
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop */
    int e = pthread_create(&t->th, NULL, run, t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        snprintf(why, wl, "starting a pager thread: pthread_create: %s", strerror(e));
        return -1;
    }
    t->running = true;
    return 0;
}

void pthr_ask_stop(struct pager_thread *t)
{
    char one = 1;
    if (t->stop[1] >= 0 && write(t->stop[1], &one, 1) < 0 && errno != EAGAIN)
        log_warn("pager thread: asking it to stop (fd %d): %s", t->stop[1], strerror(errno));
}

void pthr_join(struct pager_thread *t)
{
    if (t->running) {
        pthr_ask_stop(t);
        pthread_join(t->th, NULL);
        t->running = false;
    }
    if (t->ev)
        event_free(t->ev);
    t->ev = NULL;
    for (int i = 0; i < 2; i++) {
        if (t->stop[i] >= 0)
            close(t->stop[i]);
        if (t->done[i] >= 0)
            close(t->done[i]);
        t->stop[i] = t->done[i] = -1;
    }
}
