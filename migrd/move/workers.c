/*
 * workers.c -- see workers.h.
 */
#include "workers.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrd/util/log.h"

enum { JOB_IDLE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    struct worker_job *head, **tail;
    bool stopping;
    unsigned n;
    pthread_t th[WORKERS_MAX];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER, .tail = &pool.head};

static void *worker_main(void *unused)
{
    char one = 1;
    (void)unused;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (!pool.head && !pool.stopping)
            pthread_cond_wait(&pool.work, &pool.lock);
        if (!pool.head)
            break;
        struct worker_job *j = pool.head;
        if (!(pool.head = j->qnext))
            pool.tail = &pool.head;
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&pool.lock);
        j->work(j);
        pthread_mutex_lock(&pool.lock);
        j->state = JOB_DONE;
        pthread_cond_broadcast(&pool.done);
        /* one byte, once: the pipe cannot be full */
        while (write(j->wake[1], &one, 1) < 0 && errno == EINTR)
            ;
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

int workers_start(unsigned n)
{
    sigset_t all, old;
    int e = 0;
    if (n > WORKERS_MAX)
        n = WORKERS_MAX;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop */
    while (pool.n < n && (e = pthread_create(&pool.th[pool.n], NULL, worker_main, NULL)) == 0)
        pool.n++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e) {
        log_error("starting the move workers: pthread_create: %s", strerror(e));
        return -1;
    }
    return 0;
}

void workers_stop(void)
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
    struct worker_job *j = arg;
    char c;
    (void)fd, (void)what;
    if (read(j->wake[0], &c, 1) < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    j->state = JOB_IDLE;
    j->done(j);
}

int worker_submit(struct event_base *base, struct worker_job *j, char *why, size_t wl)
{
    j->wake[0] = j->wake[1] = -1;
    j->ev = NULL;
    j->state = JOB_IDLE;
    if (!pool.n) {
        snprintf(why, wl, "no move workers");
        return -1;
    }
    if (pipe2(j->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(why, wl, "pipe for a move worker: %s", strerror(errno));
        return -1;
    }
    j->ev = event_new(base, j->wake[0], EV_READ | EV_PERSIST, on_wake, j);
    if (!j->ev || event_add(j->ev, NULL) < 0) {
        snprintf(why, wl, "event for a move worker: out of memory");
        return -1;
    }
    pthread_mutex_lock(&pool.lock);
    j->qnext = NULL;
    j->state = JOB_QUEUED;
    *pool.tail = j;
    pool.tail = &j->qnext;
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.lock);
    return 0;
}

void worker_cancel(struct worker_job *j)
{
    pthread_mutex_lock(&pool.lock);
    if (j->state == JOB_QUEUED) {
        struct worker_job **pp = &pool.head;
        while (*pp != j)
            pp = &(*pp)->qnext;
        if (!(*pp = j->qnext))
            pool.tail = pp;
        j->state = JOB_IDLE;
    } else if (j->state == JOB_RUNNING) {
        if (j->shut_fd >= 0 && shutdown(j->shut_fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
            log_warn("move worker: shutdown of fd %d: %s", j->shut_fd, strerror(errno));
        while (j->state == JOB_RUNNING)
            pthread_cond_wait(&pool.done, &pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
}

void worker_job_fini(struct worker_job *j)
{
    if (j->ev)
        event_free(j->ev);
    j->ev = NULL;
    for (int i = 0; i < 2; i++)
        if (j->wake[i] >= 0)
            close(j->wake[i]);
    j->wake[0] = j->wake[1] = -1;
}
