/*
 * workers.h -- the threads that do a move's waiting off the event loop.
 *
 * Owns: a few threads started with the daemon, a queue of jobs, and the
 * wake-up of the event loop when a job is through.  A job's work runs in a
 * worker and touches only what the job owns (its socket, its buffers);
 * its done callback runs on the loop.  The threads are made once, at
 * start-up: a thread made for a move would take the next free thread id of
 * the node, which may be an id of the very process arriving (its restore
 * needs every one of its ids).  Every signal is blocked in them.
 */
#ifndef MIGRD_WORKERS_H
#define MIGRD_WORKERS_H

#include <stddef.h>

struct event;
struct event_base;

struct worker_job {
    void (*work)(struct worker_job *j); /* in a worker thread */
    void (*done)(struct worker_job *j); /* on the loop, once work is through */
    int shut_fd;                        /* shut down by worker_cancel, or -1 */
    /* the pool's */
    struct worker_job *qnext;
    int state;
    int wake[2];
    struct event *ev;
};

#define WORKERS_MAX 8
/* Start n workers: 0, or -1 (logged). */
int workers_start(unsigned n);
/* End them; no job may be queued or running. */
void workers_stop(void);

/* Queue j (work, done, shut_fd set): 0, or -1 with why (nothing queued). */
int worker_submit(struct event_base *base, struct worker_job *j, char *why, size_t wl);
/* Take j off the queue, or make its work end soon (shut_fd shut down) and
 * wait for it; done is not called.  For a daemon going down. */
void worker_cancel(struct worker_job *j);
/* What the pool made for j (its pipe and event); j must not be queued or running. */
void worker_job_fini(struct worker_job *j);

#endif
