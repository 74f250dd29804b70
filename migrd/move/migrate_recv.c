/*
 * migrate_recv.c -- see migrate_recv.h.
 */
#include "migrate_recv.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "migrd/util/boost.h"
#include "migrd/util/log.h"
#include "mig_auth.h"

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool kept_before_image(uint16_t type)
{
    return type == MIG_CHANMAP || type == MIG_INPUT || type == MIG_INPUT_EOF || type == MIG_POSTAL ||
           type == MIG_POSTAL_RING;
}

/* the frames up to MIG_IMAGE, kept in order: 0, or -1 with why */
static int read_frames(struct mrecv *r)
{
    struct mrecv_frame **tail = &r->frames;
    uint64_t kept = 0;
    uint8_t *buf = malloc(MIG_MAX_BODY);
    int rc = -1;
    if (!buf) {
        snprintf(r->why, sizeof r->why, "out of memory on %s", r->node);
        return -1;
    }
    for (;;) {
        struct mig_hdr h;
        if (mig_recv(r->fd, &h, buf, MIG_MAX_BODY) < 0) {
            snprintf(r->why, sizeof r->why, "reading the stream: %s",
                     errno == EAGAIN ? "timed out" : strerror(errno));
            break;
        }
        if (h.type == MIG_IMAGE) {
            rc = 0;
            break;
        }
        if (!kept_before_image(h.type)) {
            snprintf(r->why, sizeof r->why, "unexpected %s frame in the stream", mig_type_name(h.type));
            break;
        }
        kept += sizeof(struct mrecv_frame) + h.len;
        struct mrecv_frame *f = kept <= r->max_frames ? malloc(sizeof *f + h.len) : NULL;
        if (!f) {
            snprintf(r->why, sizeof r->why, "%s before the image: more than %llu MiB, or out of memory on %s",
                     mig_type_name(h.type), (unsigned long long)(r->max_frames >> 20), r->node);
            break;
        }
        f->next = NULL;
        f->h = h;
        memcpy(f->body, buf, h.len);
        *tail = f;
        tail = &f->next;
    }
    free(buf);
    return rc;
}

/* the image, after MIG_IMAGE, with its MAC: 0, or -1 with why */
static int read_image(struct mrecv *r)
{
    uint64_t t1 = now_us();
    struct mig_image_auth ia;
    mig_image_auth_begin(r->fd, false, &ia);
    int irc = engine_image_read_into(r->fd, &r->pb, &r->img, &r->bytes);
    if (mig_image_auth_end(r->fd, false, &ia, irc == 0) < 0) {
        snprintf(r->why, sizeof r->why, "image refused: %s", irc < 0 ? engine_strerror()
                 : errno == EBADMSG ? "its MAC is wrong (not the image the source sent)" : strerror(errno));
        if (r->img)
            engine_image_free(r->img);
        r->img = NULL;
        return -1;
    }
    r->read_us = now_us() - t1;
    r->end_us = now_us();
    return 0;
}

static void receive(struct mrecv *r)
{
    uint64_t t0 = now_us();
    if (engine_pagebuf_prepare(r->want, &r->pb) < 0) {
        snprintf(r->why, sizeof r->why, "cannot make room for the %llu MiB of pid %d on %s: %s",
                 (unsigned long long)(r->want >> 20), r->offer.pid, r->node, engine_strerror());
        mig_send(r->fd, MIG_REFUSE, 0, r->why, (uint32_t)strlen(r->why) + 1);
        r->result = MRECV_REFUSED;
        return;
    }
    r->prep_us = now_us() - t0;
    r->result = MRECV_FAILED;
    if (mig_send(r->fd, MIG_ACCEPT, 0, NULL, 0) < 0) {
        snprintf(r->why, sizeof r->why, "accepting the offer: %s", strerror(errno));
        return;
    }
    /* the source freezes the process once it has the accept */
    struct boost boost;
    boost_begin(&boost);
    int rc = read_frames(r);
    if (rc == 0)
        rc = read_image(r);
    boost_end(&boost);
    if (rc == 0)
        r->result = MRECV_IMAGE;
}

/* The reception threads are started with the daemon, not for each move:
 * a thread made for a move would take the next free thread id of this
 * node, which may be the id of a thread of the very process arriving (its
 * restore needs every one of its ids). */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    struct mrecv *head, **tail;  /* waiting for a thread */
    bool stopping;
    unsigned n;
    pthread_t th[MRECV_THREADS];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER, .tail = &pool.head};

static void *thread_main(void *unused)
{
    char one = 1;
    (void)unused;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head && !pool.stopping)
            pthread_cond_wait(&pool.work, &pool.lock);
        if (!pool.head)
            break;
        struct mrecv *r = pool.head;
        if (!(pool.head = r->qnext))
            pool.tail = &pool.head;
        r->state = MRECV_RUNNING;
        pthread_mutex_unlock(&pool.lock);
        receive(r);
        pthread_mutex_lock(&pool.lock);
        r->state = MRECV_DONE;
        pthread_cond_broadcast(&pool.done);
        /* the loop wakes up; a full pipe cannot be (one byte, once) */
        while (write(r->wake[1], &one, 1) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

int mrecv_pool_start(unsigned n)
{
    sigset_t all, old;
    int e = 0;
    if (n > MRECV_THREADS)
        n = MRECV_THREADS;
    /* signals stay with the event loop's thread */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool.n < n && (e = pthread_create(&pool.th[pool.n], NULL, thread_main, NULL)) == 0)
        pool.n++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        log_error("starting the threads that read incoming moves: pthread_create: %s", strerror(e));
        return -1;
    }
    return 0;
}

void mrecv_pool_stop(void)
{
    pthread_mutex_lock(&pool.lock);
    pool.stopping = true;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    for (unsigned i = 0; i < pool.n; i++)
        pthread_join(pool.th[i], NULL);
    pool.n = 0;
    pool.stopping = false;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct mrecv *r = arg;
    char c;
    (void)fd, (void)what;
    if (read(r->wake[0], &c, 1) < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    r->state = MRECV_IDLE;
    r->done(r, r->arg);
}

int mrecv_start(struct event_base *base, struct mrecv *r, void (*done)(struct mrecv *r, void *arg), void *arg)
{
    r->done = done;
    r->arg = arg;
    r->wake[0] = r->wake[1] = -1;
    if (!pool.n) {
        snprintf(r->why, sizeof r->why, "no thread reads incoming moves on %s", r->node);
        return -1;
    }
    if (pipe2(r->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(r->why, sizeof r->why, "pipe for the reception of pid %d: %s", r->offer.pid, strerror(errno));
        return -1;
    }
    r->ev = event_new(base, r->wake[0], EV_READ | EV_PERSIST, on_wake, r);
    if (!r->ev || event_add(r->ev, NULL) < 0) {
        snprintf(r->why, sizeof r->why, "event for the reception of pid %d: out of memory", r->offer.pid);
        return -1;
    }
    pthread_mutex_lock(&pool.lock);
    r->qnext = NULL;
    r->state = MRECV_QUEUED;
    *pool.tail = r;
    pool.tail = &r->qnext;
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    return 0;
}

void mrecv_stop(struct mrecv *r)
{
    pthread_mutex_lock(&pool.lock);
    if (r->state == MRECV_QUEUED) {
        struct mrecv **pp = &pool.head;
        while (*pp != r)
            pp = &(*pp)->qnext;
        if (!(*pp = r->qnext))
            pool.tail = pp;
        r->state = MRECV_IDLE;
    } else if (r->state == MRECV_RUNNING) {
        if (shutdown(r->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
            log_warn("reception of pid %d: shutdown of fd %d: %s", r->offer.pid, r->fd, strerror(errno));
        while (r->state == MRECV_RUNNING)
            pthread_cond_wait(&pool.done, &pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
}

void mrecv_free(struct mrecv *r)
{
    while (r->frames) {
        struct mrecv_frame *f = r->frames;
        r->frames = f->next;
        free(f);
    }
    if (r->img)
        engine_image_free(r->img);
    r->img = NULL;
    engine_pagebuf_release(&r->pb);
    if (r->ev)
        event_free(r->ev);
    r->ev = NULL;
    for (int i = 0; i < 2; i++)
        if (r->wake[i] >= 0)
            close(r->wake[i]);
    r->wake[0] = r->wake[1] = -1;
}
