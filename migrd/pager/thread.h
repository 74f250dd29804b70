/*
 * thread.h -- the pager's threads: one per page store or fault service,
 * off the event loop (a fault must be served while the loop does a move),
 * with a stop pipe the thread polls and its end reported on the loop.
 */
#ifndef MIGRD_PAGER_THREAD_H
#define MIGRD_PAGER_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct event;
struct event_base;

struct pager_thread {
    pthread_t th;
    bool running;
    int stop[2];               /* stop[0] readable: end now */
    int done[2];               /* the thread wrote a byte: it has ended */
    struct event *ev;
    void (*body)(void *arg);   /* in the thread */
    void (*ended)(void *arg);  /* on the loop, once body returned */
    void *arg;
};

/* 0, or -1 with why */
int  pthr_start(struct pager_thread *t, struct event_base *base, void (*body)(void *), void (*ended)(void *),
                void *arg, char *why, size_t wl);
/* Ask it to stop (any thread); it ends at its next poll. */
void pthr_ask_stop(struct pager_thread *t);
/* Stop it and wait for it; then release what start made (the loop). */
void pthr_join(struct pager_thread *t);
/* Zero-initialize before start so that join is harmless. */
void pthr_init(struct pager_thread *t);

#endif
