/*
 * location.c -- see location.h.
 */
#include "location.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/addrmap.h"
#include "common/wire.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "exile.h"
#include "link.h"
#include "mbox.h"
#include "office.h"
#include "postal.h"

/* How long packets for an address nobody claims are kept, and how often
 * the other nodes are asked again. */
#define LOCATE_TIMEOUT_MS 30000
#define LOCATE_RETRY_MS   500

struct held {
    struct held *next;
    struct dicom_pkt *copy;
};

struct loc_entry {
    uint32_t job, rank;
    enum loc_kind kind;
    int node;
    struct held *held, **held_tail;
    uint64_t first_held_ms, asked_ms;
};

struct location {
    struct addrmap map;
    struct event *timer;
    unsigned nholding;     /* entries with held packets */
};

static struct loc_entry *entry(struct postal *d, uint32_t job, uint32_t rank, int create)
{
    uint64_t key = addrmap_key(job, rank);
    struct loc_entry *e = addrmap_get(&d->loc->map, key);
    if (e || !create)
        return e;
    e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->job = job;
    e->rank = rank;
    e->held_tail = &e->held;
    if (addrmap_put(&d->loc->map, key, e) < 0) {
        free(e);
        return NULL;
    }
    return e;
}

enum loc_kind location_lookup(struct postal *d, uint32_t job, uint32_t rank, int *node)
{
    struct loc_entry *e = entry(d, job, rank, 0);
    if (!e)
        return LOC_UNKNOWN;
    if (e->kind == LOC_NODE && e->held == NULL) {
        *node = e->node;
        return LOC_NODE;
    }
    /* While packets are held, newer ones queue behind them. */
    return e->held ? LOC_UNKNOWN : e->kind;
}

static void ask_everyone(struct postal *d, struct loc_entry *e)
{
    struct link_addr a = {e->job, e->rank};
    link_broadcast(d, LINK_LOCATE, &a, sizeof a);
    e->asked_ms = migrd_now_ms();
}

int location_hold(struct postal *d, const struct dicom_pkt *k, const void *payload, uid_t uid)
{
    struct loc_entry *e = entry(d, k->dst_job, k->dst_rank, 1);
    struct held *h = malloc(sizeof *h);
    struct dicom_pkt *c = postal_copy(k, payload, uid);
    if (!e || !h || !c) {
        free(h);
        free(c);
        return -1;
    }
    h->next = NULL;
    h->copy = c;
    if (!e->held) {
        e->first_held_ms = migrd_now_ms();
        d->loc->nholding++;
        log_debug("holding packets for %u:%u until it is located", e->job, e->rank);
        ask_everyone(d, e);
    }
    *e->held_tail = h;
    e->held_tail = &h->next;
    return 0;
}

/* Send e's held packets on (postal routes them again, in order). */
static void release(struct postal *d, struct loc_entry *e, const char *refuse)
{
    struct held *h = e->held;
    if (!h)
        return;
    e->held = NULL;
    e->held_tail = &e->held;
    d->loc->nholding--;
    while (h) {
        struct held *next = h->next;
        if (refuse) {
            postal_unreachable(d, h->copy, refuse);
            free(h->copy);
        } else {
            postal_send_copy(d, h->copy);
        }
        free(h);
        h = next;
    }
}

void location_learn(struct postal *d, uint32_t job, uint32_t rank, int node)
{
    struct loc_entry *e = entry(d, job, rank, 1);
    if (!e)
        return;
    e->kind = LOC_NODE;
    e->node = node;
    release(d, e, NULL);
}

void location_gone(struct postal *d, uint32_t job, uint32_t rank, int node)
{
    struct loc_entry *e = entry(d, job, rank, 0);
    if (e && e->kind == LOC_NODE && e->node == node) {
        e->kind = LOC_GONE;
        exile_gone(d, job, rank);
    }
}

void location_local_added(struct postal *d, uint32_t job, uint32_t rank, uid_t uid)
{
    struct link_addr a = {job, rank, (uint32_t)uid, 0};
    struct loc_entry *e = entry(d, job, rank, 0);
    if (e) {
        e->kind = LOC_UNKNOWN;
        release(d, e, NULL); /* postal now finds the local mailbox */
    }
    link_broadcast(d, LINK_ANNOUNCE, &a, sizeof a);
}

void location_local_removed(struct postal *d, uint32_t job, uint32_t rank)
{
    struct link_addr a = {job, rank};
    struct loc_entry *e = entry(d, job, rank, 1);
    if (e)
        e->kind = LOC_GONE;
    link_broadcast(d, LINK_GONE, &a, sizeof a);
}

struct link_up_ctx {
    struct postal *d;
    int node;
};

static int announce_one(struct mbox *m, void *arg)
{
    struct link_up_ctx *c = arg;
    struct link_addr a = {m->job, m->rank, (uint32_t)m->uid, 0};
    if (!m->closing && !m->exiled)
        link_send_ctl(c->d, c->node, LINK_ANNOUNCE, &a, sizeof a);
    return 0;
}

static int ask_one(uint64_t key, void *val, void *arg)
{
    struct link_up_ctx *c = arg;
    struct loc_entry *e = val;
    (void)key;
    if (e->held) {
        struct link_addr a = {e->job, e->rank};
        link_send_ctl(c->d, c->node, LINK_LOCATE, &a, sizeof a);
    }
    return 0;
}

void location_link_up(struct postal *d, int node)
{
    struct link_up_ctx c = {d, node};
    mbox_foreach(d, announce_one, &c);
    addrmap_foreach(&d->loc->map, ask_one, &c);
}

static int tick_one(uint64_t key, void *val, void *arg)
{
    struct postal *d = arg;
    struct loc_entry *e = val;
    uint64_t now = migrd_now_ms();
    (void)key;
    if (!e->held)
        return 0;
    if (now - e->first_held_ms > LOCATE_TIMEOUT_MS)
        release(d, e, "no node has this address (located for 30 s)");
    else if (now - e->asked_ms > LOCATE_RETRY_MS)
        ask_everyone(d, e);
    return 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct postal *d = arg;
    (void)fd;
    (void)what;
    if (d->loc->nholding)
        addrmap_foreach(&d->loc->map, tick_one, d);
}

int location_init(struct postal *d)
{
    d->loc = calloc(1, sizeof *d->loc);
    if (!d->loc || addrmap_init(&d->loc->map) < 0)
        return -1;
    struct timeval tv = {0, LOCATE_RETRY_MS * 1000};
    d->loc->timer = event_new(d->base, -1, EV_PERSIST, on_tick, d);
    if (!d->loc->timer || event_add(d->loc->timer, &tv) < 0)
        return -1;
    return 0;
}

static int free_entry(uint64_t key, void *val, void *arg)
{
    struct loc_entry *e = val;
    (void)key;
    (void)arg;
    while (e->held) {
        struct held *h = e->held;
        e->held = h->next;
        free(h->copy);
        free(h);
    }
    free(e);
    return 0;
}

void location_fini(struct postal *d)
{
    if (!d->loc)
        return;
    if (d->loc->timer)
        event_free(d->loc->timer);
    addrmap_foreach(&d->loc->map, free_entry, NULL);
    addrmap_destroy(&d->loc->map);
    free(d->loc);
    d->loc = NULL;
}
