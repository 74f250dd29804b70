/*
 * dicom_recv.c -- the receiving half of DiCOM: per-sender sequencing
 * (duplicates dropped, early packets held until the gap is filled),
 * zero-copy peek/release, filtered copying receive, and the doorbell.
 *
 * Accepted packets come out in this order: first the `ready` queue (packets
 * copied into our memory: released from the held lists, or set aside by a
 * filtered receive), then the inbox ring.  A packet is "accepted" when its
 * sequence number is the one expected from its sender; that is when the
 * expected number advances, so a packet is never accepted twice.
 */
#include "dicom_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct rx_peer *rx_peer_get(dicom_mbox_t *mb, uint32_t job, uint32_t rank)
{
    uint64_t key = addrmap_key(job, rank);
    struct rx_peer *p = addrmap_get(&mb->rx, key);
    if (p)
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->addr = (dicom_addr_t){job, rank};
    p->expected = 1;
    if (addrmap_put(&mb->rx, key, p) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

static struct kept_pkt *keep_copy(const struct dicom_pkt *k)
{
    struct kept_pkt *c = malloc(sizeof *c + k->len);
    if (!c)
        return NULL;
    c->next = NULL;
    c->src = (dicom_addr_t){k->src_job, k->src_rank};
    c->seq = k->seq;
    c->tag = k->tag;
    c->kind = k->kind;
    c->len = k->len;
    memcpy(c + 1, pkt_payload((struct dicom_pkt *)k), k->len);
    return c;
}

static void ready_push(dicom_mbox_t *mb, struct kept_pkt *c)
{
    c->next = NULL;
    *mb->ready_tail = c;
    mb->ready_tail = &c->next;
}

/* After p->expected advanced: move held packets that are now in order. */
static void release_held(dicom_mbox_t *mb, struct rx_peer *p)
{
    while (p->held && p->held->seq <= p->expected) {
        struct kept_pkt *c = p->held;
        p->held = c->next;
        if (c->seq < p->expected) { /* held twice: a duplicate */
            mb->st.duplicates++;
            free(c);
            continue;
        }
        p->expected++;
        if (c->kind == PKT_NOP)
            free(c);
        else
            ready_push(mb, c);
    }
}

static int hold(dicom_mbox_t *mb, struct rx_peer *p, const struct dicom_pkt *k)
{
    struct kept_pkt **pp = &p->held;
    while (*pp && (*pp)->seq < k->seq)
        pp = &(*pp)->next;
    if (*pp && (*pp)->seq == k->seq) {
        mb->st.duplicates++;
        return 0;
    }
    struct kept_pkt *c = keep_copy(k);
    if (!c) {
        dicom_set_error("out of memory holding an early packet from %u:%u", k->src_job, k->src_rank);
        return -ENOMEM;
    }
    c->next = *pp;
    *pp = c;
    mb->st.held++;
    return 0;
}

enum verdict { V_DELIVER, V_SKIP, V_ERROR };

/* Decide what to do with ring record k; advances expected when accepted.
 * The caller places k, then calls release_held(*pp): packets that were
 * waiting for k come after it. */
static enum verdict accept(dicom_mbox_t *mb, const struct dicom_pkt *k, struct rx_peer **pp)
{
    struct rx_peer *p = *pp = rx_peer_get(mb, k->src_job, k->src_rank);
    if (!p) {
        dicom_set_error("out of memory for sender %u:%u", k->src_job, k->src_rank);
        return V_ERROR;
    }
    if (k->seq < p->expected) {
        mb->st.duplicates++;
        return V_SKIP;
    }
    if (k->seq > p->expected)
        return hold(mb, p, k) < 0 ? V_ERROR : V_SKIP;
    p->expected++;
    return k->kind == PKT_NOP ? V_SKIP : V_DELIVER;
}

static void consume(dicom_mbox_t *mb, struct dicom_pkt *k)
{
    if (ring_consume(&mb->inbox, k))
        dicom_ring_bell(mb->daemon_bell);
}

/* The next accepted ring record, or NULL.  While the ready queue is not
 * empty an accepted record joins it (copied) instead, so that it cannot
 * overtake packets released there before it. */
static struct dicom_pkt *next_ring_packet(dicom_mbox_t *mb, int *err)
{
    struct dicom_pkt *k;
    *err = 0;
    while ((k = ring_peek(&mb->inbox)) != NULL) {
        struct rx_peer *p;
        enum verdict v = accept(mb, k, &p);
        if (v == V_DELIVER && !mb->ready) {
            if (p->held)
                release_held(mb, p); /* they follow k */
            return k;
        }
        if (v == V_ERROR) {
            *err = -ENOMEM;
            return NULL;
        }
        if (v == V_DELIVER) {
            struct kept_pkt *c = keep_copy(k);
            if (!c) {
                /* accept() advanced `expected`: put it back, retry later */
                rx_peer_get(mb, k->src_job, k->src_rank)->expected--;
                dicom_set_error("out of memory queueing a packet");
                *err = -ENOMEM;
                return NULL;
            }
            ready_push(mb, c);
        }
        if (p && p->held)
            release_held(mb, p);
        consume(mb, k);
    }
    return NULL;
}

static void fill_msg(dicom_msg_t *m, dicom_addr_t src, uint16_t tag, size_t len, void *data)
{
    m->src = src;
    m->tag = tag;
    m->len = len;
    m->data = data;
}

int dicom_peek(dicom_mbox_t *mb, dicom_msg_t *msg)
{
    if (!mb->ready) {
        int err;
        struct dicom_pkt *k = next_ring_packet(mb, &err);
        if (k) {
            fill_msg(msg, (dicom_addr_t){k->src_job, k->src_rank}, k->tag, k->len, pkt_payload(k));
            msg->priv[0] = NULL;
            msg->priv[1] = k;
            mb->st.received++;
            return 1;
        }
        if (err)
            return err;
    }
    if (mb->ready) {
        struct kept_pkt *c = mb->ready;
        mb->ready = c->next;
        if (!mb->ready)
            mb->ready_tail = &mb->ready;
        fill_msg(msg, c->src, c->tag, c->len, c + 1);
        msg->priv[0] = c;
        msg->priv[1] = NULL;
        mb->st.received++;
        return 1;
    }
    return 0;
}

static void release(dicom_mbox_t *mb, dicom_msg_t *msg, bool defer)
{
    if (msg->priv[1]) {
        if (defer)
            ring_consume_defer(&mb->inbox, msg->priv[1]);
        else
            consume(mb, msg->priv[1]);
    }
    free(msg->priv[0]);
    msg->priv[0] = msg->priv[1] = NULL;
}

void dicom_release(dicom_mbox_t *mb, dicom_msg_t *msg) { release(mb, msg, false); }

void dicom_release_defer(dicom_mbox_t *mb, dicom_msg_t *msg) { release(mb, msg, true); }

void dicom_release_flush(dicom_mbox_t *mb)
{
    if (ring_publish(&mb->inbox))
        dicom_ring_bell(mb->daemon_bell);
}

static long copy_out(const dicom_msg_t *m, void *buf, size_t cap, dicom_msg_t *info)
{
    memcpy(buf, m->data, m->len < cap ? m->len : cap);
    if (info) {
        *info = *m;
        info->data = buf;
        info->priv[0] = info->priv[1] = NULL;
    }
    return (long)m->len;
}

/* Look for a packet from `from` in the ready queue; unlink it if found. */
static struct kept_pkt *ready_take_from(dicom_mbox_t *mb, dicom_addr_t from)
{
    for (struct kept_pkt **pp = &mb->ready; *pp; pp = &(*pp)->next) {
        if (!dicom_addr_eq((*pp)->src, from))
            continue;
        struct kept_pkt *c = *pp;
        *pp = c->next;
        if (mb->ready_tail == &c->next)
            mb->ready_tail = pp;
        return c;
    }
    return NULL;
}

static long take_kept(dicom_mbox_t *mb, struct kept_pkt *c, void *buf, size_t cap, dicom_msg_t *info)
{
    dicom_msg_t m;
    fill_msg(&m, c->src, c->tag, c->len, c + 1);
    long n = copy_out(&m, buf, cap, info);
    free(c);
    mb->st.received++;
    return n;
}

/* One non-blocking attempt of a filtered receive. */
static long recv_from(dicom_mbox_t *mb, dicom_addr_t from, void *buf, size_t cap, dicom_msg_t *info)
{
    for (;;) {
        struct kept_pkt *c = ready_take_from(mb, from);
        if (c)
            return take_kept(mb, c, buf, cap, info);
        int err;
        struct dicom_pkt *k = next_ring_packet(mb, &err);
        if (!k) {
            /* Draining the ring may have queued packets from `from`. */
            c = ready_take_from(mb, from);
            if (c)
                return take_kept(mb, c, buf, cap, info);
            return err ? err : -EAGAIN;
        }
        if (k->src_job == from.job && k->src_rank == from.rank) {
            dicom_msg_t m;
            fill_msg(&m, from, k->tag, k->len, pkt_payload(k));
            long n = copy_out(&m, buf, cap, info);
            consume(mb, k);
            mb->st.received++;
            return n;
        }
        /* Someone else's: it was accepted, keep it in order for later. */
        c = keep_copy(k);
        if (!c) {
            rx_peer_get(mb, k->src_job, k->src_rank)->expected--;
            dicom_set_error("out of memory setting a packet aside");
            return -ENOMEM;
        }
        ready_push(mb, c);
        consume(mb, k);
    }
}

static long recv_once(dicom_mbox_t *mb, const dicom_addr_t *from, void *buf, size_t cap, dicom_msg_t *info)
{
    if (from)
        return recv_from(mb, *from, buf, cap, info);
    dicom_msg_t m;
    int rc = dicom_peek(mb, &m);
    if (rc <= 0)
        return rc ? rc : -EAGAIN;
    long n = copy_out(&m, buf, cap, info);
    dicom_release(mb, &m);
    return n;
}

long dicom_recv(dicom_mbox_t *mb, const dicom_addr_t *from, void *buf, size_t cap,
                dicom_msg_t *info, int flags)
{
    for (;;) {
        long n = recv_once(mb, from, buf, cap, info);
        if (n != -EAGAIN || (flags & DICOM_NONBLOCK))
            return n;
        if (mb->daemon_lost)
            return -ENOTCONN;
        if (dicom_arm(mb) == 0) {
            /* Wake up now and then to notice a lost daemon. */
            struct pollfd p[2] = {{.fd = mb->my_bell, .events = POLLIN},
                                  {.fd = mb->ctl_fd, .events = POLLIN}};
            if (poll(p, 2, 1000) < 0 && errno != EINTR) {
                int e = errno;
                dicom_set_error("poll on doorbell fd %d: %s", mb->my_bell, strerror(e));
                dicom_disarm(mb);
                return -e;
            }
            if (p[1].revents)
                dicom_ctl_pump(mb); /* notices a lost daemon; keeps events */
        }
        dicom_disarm(mb);
    }
}

int dicom_arm(dicom_mbox_t *mb)
{
    dicom_release_flush(mb); /* a sleeping reader holds no room back */
    if (mb->ready)
        return 1;
    return ring_arm_consumer(&mb->inbox) ? 0 : 1;
}

void dicom_disarm(dicom_mbox_t *mb)
{
    uint64_t v;
    ring_disarm_consumer(&mb->inbox);
    while (read(mb->my_bell, &v, sizeof v) < 0 && errno == EINTR)
        ;
}

static int free_rx(uint64_t key, void *val, void *arg)
{
    struct rx_peer *p = val;
    (void)key;
    (void)arg;
    while (p->held) {
        struct kept_pkt *c = p->held;
        p->held = c->next;
        free(c);
    }
    free(p);
    return 0;
}

void dicom_rx_release_all(dicom_mbox_t *mb)
{
    if (atomic_load(&mb->rx.t))
        addrmap_foreach(&mb->rx, free_rx, NULL);
    while (mb->ready) {
        struct kept_pkt *c = mb->ready;
        mb->ready = c->next;
        free(c);
    }
}
