/*
 * postal.c -- see postal.h.
 */
#include "postal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrd/cluster/cluster.h"
#include "migrd/util/log.h"
#include "jobs.h"
#include "link.h"
#include "location.h"
#include "mbox.h"
#include "office.h"

struct dicom_pkt *postal_copy(const struct dicom_pkt *hdr, const void *payload, uid_t uid)
{
    struct dicom_pkt *c = malloc(sizeof *c + hdr->len);
    if (!c)
        return NULL;
    memcpy(c, hdr, sizeof *c);
    atomic_store_explicit(&c->commit, 0, memory_order_relaxed);
    c->flags = (uint32_t)uid;
    memcpy(pkt_payload(c), payload, hdr->len);
    return c;
}

void postal_unreachable(struct postal *d, const struct dicom_pkt *k, const char *why)
{
    log_warn("packet %u:%u -> %u:%u (seq %lu, %u bytes) cannot be delivered: %s", k->src_job,
             k->src_rank, k->dst_job, k->dst_rank, (unsigned long)k->seq, k->len, why);
    struct mbox *src = mbox_find(d, k->src_job, k->src_rank);
    if (src && src->owner)
        d->ops.unreachable(src->owner, k->dst_job, k->dst_rank, why);
}

bool postal_may_enter(struct postal *d, uid_t uid, const struct dicom_pkt *k, const char *via)
{
    if (jobs_may_send(d, uid, k->dst_job))
        return true;
    uid_t owner = 0;
    jobs_owner(d, k->dst_job, &owner);
    log_warn("refused a packet of uid %u (%u:%u, %s) into job %u of uid %u (%u:%u): dropped", (unsigned)uid,
             k->src_job, k->src_rank, via, k->dst_job, (unsigned)owner, k->dst_job, k->dst_rank);
    return false;
}

static void tx_resume(struct waiter *w)
{
    struct mbox *m = (struct mbox *)((char *)w - offsetof(struct mbox, tx_wait));
    m->tx_busy = false;
    m->tx_on = NULL;
    postal_drain(m);
}

void postal_stop_outbox(struct mbox *m)
{
    if (m->tx_on) {
        mbox_unwait(m->tx_on, &m->tx_wait);
        m->tx_on = NULL;
        m->tx_busy = false;
    }
}

static void consume_outbox(struct mbox *m, const struct dicom_pkt *k)
{
    ring_release(&m->outbox, k);
    m->relayed_out++;
}

/* Route record k of m (k: the private copy of its header; payload: in
 * m's outbox).  Returns true when it was dealt with (consume it), false
 * when m must wait (m->tx_busy is then set). */
static bool route(struct mbox *m, const struct dicom_pkt *k, const void *payload)
{
    struct postal *d = m->d;
    if (!jobs_may_send(d, m->uid, k->dst_job)) {
        if (!m->refused) { /* one line per sender; its later ones go quietly */
            m->refused = true;
            postal_may_enter(d, m->uid, k, "this node");
            if (m->owner)
                d->ops.unreachable(m->owner, k->dst_job, k->dst_rank, "the job belongs to another user");
        }
        return true; /* dropped */
    }
    struct mbox *dst = mbox_find(d, k->dst_job, k->dst_rank);
    if (dst) {
        if (dst->closing || dst->broken) {
            log_debug("dropping packet for closed mailbox %u:%u", k->dst_job, k->dst_rank);
            return true;
        }
        int rc = mbox_deliver(dst, k, payload);
        if (rc == 0 || rc == -EPROTO) /* -EPROTO: dst is being closed */
            return true;
        if (rc == -EMSGSIZE) {
            postal_unreachable(d, k, "larger than the receiver's inbox");
            return true;
        }
        m->tx_busy = true;
        m->tx_wait.resume = tx_resume;
        m->tx_on = dst;
        mbox_wait_inbox(dst, &m->tx_wait, k->len);
        return false;
    }
    int node;
    switch (location_lookup(d, k->dst_job, k->dst_rank, &node)) {
    case LOC_NODE:
        if (link_send_record(d, node, m, k, payload) == 0)
            return false; /* the link consumes it when written */
        struct dicom_pkt *c = postal_copy(k, payload, m->uid);
        if (!c) {
            m->tx_busy = false;
            log_error("out of memory keeping a packet for node %s", d->cl->map.nodes[node].name);
            return false; /* stays in the outbox; retried on the next bell */
        }
        link_send_copy(d, node, c);
        return true;
    case LOC_GONE:
        log_debug("dropping packet for %u:%u, which has ended", k->dst_job, k->dst_rank);
        return true;
    default:
        if (location_hold(d, k, payload, m->uid) < 0) {
            log_error("out of memory holding a packet for %u:%u", k->dst_job, k->dst_rank);
            return false;
        }
        return true;
    }
}

/* Relay records until the outbox is empty or m must wait.  A link write
 * that completes at once calls postal_drain(m) again from below us (see
 * postal_drain), which only asks us to go on. */
static void drain(struct mbox *m)
{
    /* A record that looks complete to the doorbell's check and not to
     * ring_take (its owner rewrites its commit word): give up after a few
     * turns; an honest owner never does that. */
    unsigned spins = 0;
    /* An exile's outbox is not relayed here: what it held travelled with
     * its owner (from migrd's take position) and is relayed from there. */
    while (!m->tx_busy && !m->broken && !m->exiled) {
        struct dicom_pkt k;
        const void *payload;
        char why[160];
        int rc = ring_take(&m->outbox, &k, &payload, why, sizeof why);
        if (rc == RING_EMPTY) {
            if (m->closing || m->d->polling)
                return; /* freed by postal_drain / relay.c looks again soon */
            if (ring_take_arm(&m->outbox) || ++spins == 64)
                return; /* asleep until the owner rings */
            continue;
        }
        m->d->relay_work++;
        if (rc == RING_BAD) {
            mbox_broken(m, "outbox", why); /* never read again */
            return;
        }
        /* The sender is who owns the outbox, whatever the record says. */
        k.src_job = m->job;
        k.src_rank = m->rank;
        if (route(m, &k, payload))
            consume_outbox(m, &k);
        else
            return; /* m waits, or the link took k (drain_again says if it is written) */
    }
}

void postal_drain(struct mbox *m)
{
    if (m->draining) {
        /* Re-entered from below (the link wrote the record we handed it and
         * consumed it): the call up the stack goes on.  Only the outermost
         * call may free m. */
        m->drain_again = true;
        return;
    }
    m->draining = true;
    do {
        m->drain_again = false;
        drain(m);
    } while (m->drain_again && !m->tx_busy);
    m->draining = false;
    if (m->closing)
        mbox_maybe_free(m); /* once nothing is left to relay */
}

void postal_send_copy(struct postal *d, struct dicom_pkt *c)
{
    if (!jobs_may_send(d, postal_copy_uid(c), c->dst_job)) {
        postal_may_enter(d, postal_copy_uid(c), c, "a kept copy");
        free(c);
        return;
    }
    struct mbox *dst = mbox_find(d, c->dst_job, c->dst_rank);
    int node;
    if (dst) {
        mbox_deliver_copy(dst, c);
        return;
    }
    switch (location_lookup(d, c->dst_job, c->dst_rank, &node)) {
    case LOC_NODE:
        link_send_copy(d, node, c);
        return;
    case LOC_GONE:
        free(c);
        return;
    default:
        if (location_hold(d, c, pkt_payload(c), postal_copy_uid(c)) < 0)
            postal_unreachable(d, c, "out of memory");
        free(c);
    }
}
