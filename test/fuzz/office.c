/*
 * office.c -- see office.h.
 */
#include "office.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrd/postal/exile.h"
#include "migrd/postal/jobs.h"
#include "migrd/postal/location.h"
#include "migrd/util/log.h"

static void no_unreachable(void *owner, uint32_t job, uint32_t rank, const char *why)
{
    (void)owner, (void)job, (void)rank, (void)why;
}

/* What ctl.c's client_free does for a dropped client. */
static void drop_owner(void *owner, const char *why)
{
    struct fuzz_owner *w = owner;
    struct mbox *m = w->m;
    (void)why;
    w->m = NULL;
    w->dropped = 1;
    if (m) {
        m->owner = NULL;
        mbox_owner_gone(m);
    }
}

static void release(void *owner) { ((struct fuzz_owner *)owner)->m = NULL; }
static void serve(void *owner) { (void)owner; }
static int owner_fd(void *owner)
{
    (void)owner;
    return -1;
}

void office_init(struct fuzz_office *o, int nnodes, int self, uint16_t port)
{
    memset(o, 0, sizeof *o);
    const char *lg = getenv("FUZZ_LOG");
    log_open(lg ? lg : "/dev/null", LOG_DEBUG, "fuzz");
    o->cl.map.nclusters = 1;
    o->cl.map.nnodes = nnodes;
    for (int i = 0; i < nnodes; i++) {
        snprintf(o->cl.map.nodes[i].name, sizeof o->cl.map.nodes[i].name, "n%d", i);
        snprintf(o->cl.map.nodes[i].addr, sizeof o->cl.map.nodes[i].addr, "127.0.0.1");
        o->cl.map.nodes[i].port = (uint16_t)(port + 2 * i);
    }
    o->cl.self = self;
    snprintf(o->cl.kernel, sizeof o->cl.kernel, "fuzz");
    o->base = event_base_new();
    o->p.base = o->base;
    o->p.cl = &o->cl;
    o->p.max_ring = RING_MAX_SIZE;
    o->p.ops = (struct postal_ops){.unreachable = no_unreachable, .drop_owner = drop_owner,
                                   .release = release, .serve = serve, .fd = owner_fd};
    o->p.mboxes = mbox_table_new(&o->p);
    if (!o->base || !o->p.mboxes || node_page_create(&o->p) < 0 || location_init(&o->p) < 0 ||
        exile_init(&o->p) < 0 || jobs_init(&o->p) < 0) {
        fprintf(stderr, "fuzz: cannot set up the postal office\n");
        exit(1);
    }
}

void office_run(struct fuzz_office *o)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(o->base, EVLOOP_NONBLOCK);
}

void office_reset(struct fuzz_office *o)
{
    exile_fini(&o->p);
    mbox_close_all(&o->p);
    location_fini(&o->p);
    jobs_fini(&o->p);
    o->p.mboxes = mbox_table_new(&o->p);
    if (!o->p.mboxes || location_init(&o->p) < 0 || exile_init(&o->p) < 0 || jobs_init(&o->p) < 0) {
        fprintf(stderr, "fuzz: cannot reset the postal office\n");
        exit(1);
    }
}

struct mbox *office_mbox(struct fuzz_office *o, uint32_t job, uint32_t rank, struct fuzz_owner *w)
{
    struct mbox *m;
    memset(w, 0, sizeof *w);
    if (mbox_create(&o->p, job, rank, 4242, 1000, RING_MIN_SIZE, RING_MIN_SIZE, w, &m) < 0) {
        fprintf(stderr, "fuzz: cannot create mailbox %u:%u\n", job, rank);
        exit(1);
    }
    w->m = m;
    return m;
}

size_t fuzz_put_frame(uint8_t *out, size_t cap, size_t at, const void *hdr, size_t hl, const void *body,
                      uint32_t len)
{
    if (at + hl + len > cap)
        return at;
    memcpy(out + at, hdr, hl);
    memcpy(out + at + hl, body, len);
    return at + hl + len;
}
