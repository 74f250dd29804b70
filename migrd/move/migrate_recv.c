/*
 * migrate_recv.c -- see migrate_recv.h.
 */
#include "migrate_recv.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "migrd/util/boost.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "mig_auth.h"

static bool kept_before_image(uint16_t type)
{
    return type == MIG_CHANMAP || type == MIG_INPUT || type == MIG_INPUT_EOF || type == MIG_POSTAL ||
           type == MIG_POSTAL_RING || type == MIG_FILEMAP || type == MIG_LAZY_DIR;
}

int mrecv_read_frames(struct mrecv *r)
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
    uint64_t t1 = migrd_now_us();
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
    r->read_us = migrd_now_us() - t1;
    r->end_us = migrd_now_us();
    return 0;
}

static void receive(struct mrecv *r)
{
    uint64_t t0 = migrd_now_us();
    if (engine_pagebuf_prepare(r->want, &r->pb) < 0) {
        snprintf(r->why, sizeof r->why, "cannot make room for the %llu MiB of pid %d on %s: %s",
                 (unsigned long long)(r->want >> 20), r->offer.pid, r->node, engine_strerror());
        mig_send(r->fd, MIG_REFUSE, 0, r->why, (uint32_t)strlen(r->why) + 1);
        r->result = MRECV_REFUSED;
        return;
    }
    r->prep_us = migrd_now_us() - t0;
    r->result = MRECV_FAILED;
    if (mig_send(r->fd, MIG_ACCEPT, 0, NULL, 0) < 0) {
        snprintf(r->why, sizeof r->why, "accepting the offer: %s", strerror(errno));
        return;
    }
    /* the source freezes the process once it has the accept */
    struct boost boost;
    boost_begin_soft(&boost); /* the long read: softly (util/boost.h) */
    int rc = mrecv_read_frames(r);
    if (rc == 0)
        rc = read_image(r);
    boost_end(&boost);
    if (rc == 0)
        r->result = MRECV_IMAGE;
}

static void recv_work(struct worker_job *j)
{
    receive((struct mrecv *)((char *)j - offsetof(struct mrecv, job)));
}

static void recv_done(struct worker_job *j)
{
    struct mrecv *r = (struct mrecv *)((char *)j - offsetof(struct mrecv, job));
    r->done(r, r->arg);
}

int mrecv_start(struct event_base *base, struct mrecv *r, void (*done)(struct mrecv *r, void *arg), void *arg)
{
    r->done = done;
    r->arg = arg;
    r->job.work = recv_work;
    r->job.done = recv_done;
    r->job.shut_fd = r->fd;
    return worker_submit(base, &r->job, r->why, sizeof r->why);
}

void mrecv_stop(struct mrecv *r)
{
    worker_cancel(&r->job);
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
    worker_job_fini(&r->job);
}
