/*
 * migrate_recv.h -- the stream of an incoming move, read off the event loop.
 *
 * Owns: the reception thread of one incoming move.  It makes the page
 * buffer ready (faulting in memory for a big process takes long), accepts
 * the offer, keeps the frames that come before the image as they came,
 * reads the image into the buffer, checks the image's MAC, and then wakes
 * the event loop.  It touches nothing of the daemon's but its own socket
 * and buffers: what the frames mean (channels, mailbox rings) is applied
 * on the loop by migrate.c, which also restores and acknowledges.  So a
 * slow or silent source holds one thread, never the daemon: relaying,
 * `status` and other moves go on while a big image arrives.
 *
 * Threads: the move workers (workers.h) take the receptions in turn.
 * Between mrecv_start and the call of done, the worker alone uses the
 * struct's results and its fd; done runs on the loop after it is through.
 */
#ifndef MIGRD_MIGRATE_RECV_H
#define MIGRD_MIGRATE_RECV_H

#include <stdbool.h>
#include <stdint.h>

#include "migrd/engine/engine.h"
#include "migrate_proto.h"
#include "workers.h"

struct event_base;

/* a frame that came before the image, as it came */
struct mrecv_frame {
    struct mrecv_frame *next;
    struct mig_hdr h;
    uint8_t body[];
};

enum mrecv_result {
    MRECV_IMAGE = 0, /* the image arrived whole, its MAC right */
    MRECV_FAILED,    /* after the accept: why says what (send MIG_FAILED) */
    MRECV_REFUSED,   /* no page buffer: MIG_REFUSE already sent, why says why */
};

struct mrecv {
    struct mrecv *next;        /* migrate.c's list of moves arriving */
    struct mig_offer offer;
    int fd;                    /* the migration connection (stays the caller's) */
    uint64_t want;             /* bytes of page buffer to prepare */
    uint64_t max_frames;       /* most bytes of frames kept before the image */
    const char *node;          /* this node's name, for messages */
    char peer[64];             /* the source, for messages */
    /* results, for done */
    enum mrecv_result result;
    char why[MIG_REASON_MAX];
    struct engine_pagebuf pb;
    struct mrecv_frame *frames;
    struct engine_image *img;
    uint64_t bytes;            /* image bytes read */
    uint64_t prep_us, read_us; /* page buffer ready; image read */
    uint64_t end_us;           /* when the worker was done (migrd_now_us) */
    struct worker_job job;
    void (*done)(struct mrecv *r, void *arg);
    void *arg;
};

/* Have a thread read r->fd (offer, fd, want, max_frames, node set);
 * done(r, arg) is called on base's loop when it is through.  0, or -1 with
 * r->why (nothing started). */
int mrecv_start(struct event_base *base, struct mrecv *r, void (*done)(struct mrecv *r, void *arg),
                void *arg);
/* Take r from the queue, or make its thread be through with it soon (its
 * socket shut down) and wait; done is not called.  For a daemon going down. */
void mrecv_stop(struct mrecv *r);
/* The worker's first step (exposed for test/fuzz): the frames from r->fd
 * up to MIG_IMAGE, kept in order in r->frames, at most r->max_frames bytes
 * of them, only the types a source sends before its image: 0 (MIG_IMAGE
 * read), or -1 with r->why. */
int mrecv_read_frames(struct mrecv *r);
/* The frames, image, buffer and plumbing (not fd); no thread may have r. */
void mrecv_free(struct mrecv *r);

#endif
