/*
 * exile.c -- see exile.h.
 */
#include "exile.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>

#include "migrd/cluster/cluster.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "location.h"
#include "mbox.h"
#include "office.h"
#include "postal.h"

/* How long an ended exile is kept (a link may be writing a packet into
 * its inbox), and how long a retired one drains at least. */
#define EXILE_GRACE_MS 5000
#define EXILE_TICK_MS  200
/* Records forwarded per turn of the event loop. */
#define EXILE_BATCH    4096

struct exile_set {
    struct mbox *list;
    struct event *tick;
};

/* Forward what m's inbox holds to where its owner runs now. */
static void forward_inbox(struct mbox *m)
{
    struct postal *d = m->d;
    for (unsigned n = 0; n < EXILE_BATCH && !m->broken; n++) {
        struct dicom_pkt k;
        const void *payload;
        char why[160];
        int rc = ring_take(&m->inbox, &k, &payload, why, sizeof why);
        if (rc == RING_EMPTY) {
            if (ring_take_arm(&m->inbox))
                return; /* the next record rings the old doorbell */
            continue;
        }
        postal_busy(d);
        if (rc == RING_BAD) {
            ring_disarm_consumer(&m->inbox);
            mbox_broken(m, "inbox of the exile", why); /* no owner: logged now */
            m->exile_end_ms = migrd_now_ms();
            return;
        }
        struct dicom_pkt *c = postal_copy(&k, payload, m->uid); /* its job took it: this node vouches */
        if (!c) {
            log_error("exiled mailbox %u:%u: out of memory forwarding a packet: retried", m->job, m->rank);
            return; /* the tick tries again */
        }
        bool room = ring_release(&m->inbox, &k);
        postal_send_copy(d, c); /* to the node the owner runs on, or here again */
        if (room)
            mbox_room_made(m);
    }
}

static void on_old_bell(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    forward_inbox(arg);
}

static void end_one(struct mbox *m)
{
    if (!m->retired)
        mbox_unlist(m);
    log_info("exiled mailbox %u:%u ended (%lu packets forwarded from it)", m->job, m->rank,
             (unsigned long)m->delivered_in);
    mbox_discard(m);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct postal *d = arg;
    uint64_t now = migrd_now_ms();
    (void)fd;
    (void)what;
    for (struct mbox **pp = &d->exiles->list; *pp;) {
        struct mbox *m = *pp;
        forward_inbox(m); /* a record that came without a doorbell */
        if (m->exile_end_ms && now >= m->exile_end_ms && !m->inbox_waiters && !m->kept && !m->rx_links &&
            !m->tx_busy && /* a link may be writing a record of its outbox */
            (!m->retired || m->broken || !ring_take_pending(&m->inbox))) {
            *pp = m->exile_next;
            end_one(m);
            continue;
        }
        pp = &m->exile_next;
    }
}

int exile_init(struct postal *d)
{
    d->exiles = calloc(1, sizeof *d->exiles);
    if (!d->exiles)
        return -1;
    struct timeval tv = {0, EXILE_TICK_MS * 1000};
    d->exiles->tick = event_new(d->base, -1, EV_PERSIST, on_tick, d);
    if (!d->exiles->tick || event_add(d->exiles->tick, &tv) < 0)
        return -1;
    return 0;
}

void exile_fini(struct postal *d)
{
    if (!d->exiles)
        return;
    while (d->exiles->list) {
        struct mbox *m = d->exiles->list;
        d->exiles->list = m->exile_next;
        end_one(m);
    }
    if (d->exiles->tick)
        event_free(d->exiles->tick);
    free(d->exiles);
    d->exiles = NULL;
}

void exile_begin(struct mbox *m, int node)
{
    struct postal *d = m->d;
    if (m->owner)
        d->ops.release(m->owner); /* its control connection ends with the old copy */
    m->owner = NULL;
    m->exiled = true;
    m->away = node;
    postal_stop_outbox(m);
    /* Senders here that write into the inbox directly look again and are
     * told to go through migrd, which forwards. */
    atomic_store(&m->sh->state, MBOX_CLOSED);
    /* migrd consumes the inbox from now on, from where its owner left it
     * (read once: a position its owner wrote). */
    uint64_t head = atomic_load_explicit(&m->inbox.ctl->head, memory_order_acquire);
    if (ring_take_seek(&m->inbox, head) < 0) {
        char why[96];
        snprintf(why, sizeof why, "head %llu is not a record boundary", (unsigned long long)head);
        mbox_broken(m, "inbox of the exile", why);
    }
    location_learn(d, m->job, m->rank, node);
    m->exile_ev = event_new(d->base, m->proc_bell, EV_READ | EV_PERSIST | EV_ET, on_old_bell, m);
    if (!m->exile_ev || event_add(m->exile_ev, NULL) < 0)
        log_warn("exiled mailbox %u:%u: cannot watch its doorbell fd %d: forwarded every %d ms", m->job,
                 m->rank, m->proc_bell, EXILE_TICK_MS);
    m->exile_next = d->exiles->list;
    d->exiles->list = m;
    log_info("mailbox %u:%u exiled: its owner (pid %d) runs on %s now; %lu bytes of its inbox are "
             "forwarded", m->job, m->rank, m->pid, d->cl->map.nodes[node].name,
             (unsigned long)ring_used(&m->inbox));
    forward_inbox(m);
}

void exile_retire(struct mbox *m)
{
    mbox_unlist(m);
    m->retired = true;
    m->exile_end_ms = migrd_now_ms() + EXILE_GRACE_MS;
    /* Its successor is not in the table yet: forward from the next turn. */
    if (m->exile_ev)
        event_active(m->exile_ev, EV_READ, 0);
}

void exile_gone(struct postal *d, uint32_t job, uint32_t rank)
{
    for (struct mbox *m = d->exiles->list; m; m = m->exile_next)
        if (m->job == job && m->rank == rank && !m->exile_end_ms)
            m->exile_end_ms = migrd_now_ms() + EXILE_GRACE_MS;
}
