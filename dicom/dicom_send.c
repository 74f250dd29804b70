/*
 * dicom_send.c -- the sending half of DiCOM: routes, sequence numbers,
 * reservations in the destination's inbox (same node) or in our outbox
 * (migrd relays it), and the safe-point word around every ring write.
 */
#include "dicom_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../common/ctlmsg.h"

/* A REMOTE route is checked again after this long: the peer may have
 * registered on this node since (or, later, moved here). */
#define REMOTE_RECHECK_NS 1000000000ull

/* The per-peer lock orders sequence numbers with ring positions between
 * sending threads; a single_thread mailbox has one sender at a time. */
static inline void peer_lock(const dicom_mbox_t *mb, struct tx_peer *p)
{
    if (mb->single_thread)
        return;
    while (atomic_flag_test_and_set_explicit(&p->lock, memory_order_acquire))
        sched_yield();
}

static inline void peer_unlock(const dicom_mbox_t *mb, struct tx_peer *p)
{
    if (!mb->single_thread)
        atomic_flag_clear_explicit(&p->lock, memory_order_release);
}

/* The safe point: mbox_shared.critical is non-zero while a thread writes
 * into a ring.  migrd reads it only once the process is frozen, and a
 * frozen thread's stores are all visible, in program order: with a single
 * sending thread plain stores do, kept in program order around the ring
 * writes by compiler barriers (a signal handler's view of the thread is
 * migrd's).  Several senders need the locked read-modify-write. */
static inline void critical_enter(dicom_mbox_t *mb)
{
    if (mb->single_thread) {
        uint32_t c = atomic_load_explicit(&mb->sh->critical, memory_order_relaxed);
        atomic_store_explicit(&mb->sh->critical, c + 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        atomic_fetch_add_explicit(&mb->sh->critical, 1, memory_order_acq_rel);
    }
}

static inline void critical_leave(dicom_mbox_t *mb)
{
    if (mb->single_thread) {
        atomic_signal_fence(memory_order_seq_cst);
        uint32_t c = atomic_load_explicit(&mb->sh->critical, memory_order_relaxed);
        atomic_store_explicit(&mb->sh->critical, c - 1, memory_order_relaxed);
    } else {
        atomic_fetch_sub_explicit(&mb->sh->critical, 1, memory_order_acq_rel);
    }
}

static void route_drop(dicom_mbox_t *mb, struct tx_peer *p)
{
    if (p->map || p->bell_fd >= 0) {
        struct retired_route *r = malloc(sizeof *r);
        if (!r)
            abort(); /* cannot keep it, cannot free it safely */
        *r = (struct retired_route){.map = p->map, .map_len = p->map_len, .bell_fd = p->bell_fd};
        pthread_mutex_lock(&mb->tx_insert_lock);
        r->next = mb->retired;
        mb->retired = r;
        pthread_mutex_unlock(&mb->tx_insert_lock);
    }
    p->map = NULL;
    p->peer_sh = NULL;
    p->bell_fd = -1;
    p->route = ROUTE_UNKNOWN;
}

/* Ask migrd where p->addr is; p is locked. */
static int route_lookup(dicom_mbox_t *mb, struct tx_peer *p)
{
    struct ctl_lookup req = {p->addr.job, p->addr.rank};
    struct ctl_lookup_reply rep;
    int fds[CTL_MAX_FDS], nfds = 0;
    int rc = dicom_ctl_request(mb, CTL_LOOKUP, &req, sizeof req, CTL_LOOKUP_REPLY, &rep, sizeof rep,
                               fds, &nfds);
    if (rc < 0)
        return rc;
    route_drop(mb, p);
    p->checked_ns = dicom_now_ns();
    if (rep.where != LOOKUP_LOCAL || nfds != 2) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        p->route = ROUTE_REMOTE;
        if (!atomic_flag_test_and_set(&mb->outbox_populated))
            dicom_populate(mb, mb->outbox.ctl, ring_map_bytes(mb->outbox.size));
        return 0;
    }
    size_t len = rep.inbox_off + ring_map_bytes(rep.inbox_size);
    void *m = rep.inbox_off >= MBOX_PAGE && len <= rep.map_size
                  ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0)
                  : MAP_FAILED;
    int e = errno;
    close(fds[0]);
    if (m == MAP_FAILED || ring_attach(&p->ring, (char *)m + rep.inbox_off, ring_map_bytes(rep.inbox_size))) {
        if (m != MAP_FAILED)
            munmap(m, len);
        close(fds[1]);
        /* The daemon can still relay: fall back to the outbox. */
        dicom_set_error("mapping the inbox of %u:%u: %s", p->addr.job, p->addr.rank,
                        m == MAP_FAILED ? strerror(e) : "malformed ring");
        p->route = ROUTE_REMOTE;
        return 0;
    }
    dicom_populate(mb, (char *)m + rep.inbox_off, ring_map_bytes(rep.inbox_size));
    p->map = m;
    p->map_len = len;
    p->peer_sh = m;
    p->bell_fd = fds[1];
    p->route = ROUTE_LOCAL;
    return 0;
}

static struct tx_peer *tx_peer_get(dicom_mbox_t *mb, dicom_addr_t dst)
{
    uint64_t key = addrmap_key(dst.job, dst.rank);
    struct tx_peer *p = addrmap_get(&mb->tx, key);
    if (p)
        return p;
    pthread_mutex_lock(&mb->tx_insert_lock);
    p = addrmap_get(&mb->tx, key);
    if (!p) {
        p = calloc(1, sizeof *p);
        if (p) {
            p->addr = dst;
            p->next_seq = 1;
            p->bell_fd = -1;
            atomic_flag_clear(&p->lock);
            if (addrmap_put(&mb->tx, key, p) < 0) {
                free(p);
                p = NULL;
            }
        }
    }
    pthread_mutex_unlock(&mb->tx_insert_lock);
    if (!p)
        dicom_set_error("out of memory for peer %u:%u", dst.job, dst.rank);
    return p;
}

/* Make sure p has a usable route; p is locked. */
static int route_ensure(dicom_mbox_t *mb, struct tx_peer *p)
{
    switch (p->route) {
    case ROUTE_LOCAL:
        if (atomic_load_explicit(&p->peer_sh->state, memory_order_relaxed) == MBOX_OPEN)
            return 0;
        return route_lookup(mb, p);
    case ROUTE_REMOTE:
        if (dicom_now_ns() - p->checked_ns < REMOTE_RECHECK_NS)
            return 0;
        return route_lookup(mb, p);
    default:
        return route_lookup(mb, p);
    }
}

/* What a dicom_txn_t carries privately. */
struct txn_priv {
    struct ring *ring;
    struct ring_resv resv;
    intptr_t bell;
};
_Static_assert(sizeof(struct txn_priv) <= sizeof(((dicom_txn_t *)0)->priv), "txn private area");
#define TXN(t) ((struct txn_priv *)(void *)(t)->priv)

int dicom_send_reserve(dicom_mbox_t *mb, dicom_addr_t dst, uint16_t tag, size_t maxlen,
                       dicom_txn_t *txn)
{
    if (maxlen > mb->max_payload) {
        dicom_set_error("packet of %zu bytes exceeds the maximum of %zu", maxlen, mb->max_payload);
        return -EMSGSIZE;
    }
    struct tx_peer *p = tx_peer_get(mb, dst);
    if (!p)
        return -ENOMEM;
    critical_enter(mb);
    peer_lock(mb, p);
    int rc = route_ensure(mb, p);
    if (rc < 0)
        goto fail;
    struct ring *r = p->route == ROUTE_LOCAL ? &p->ring : &mb->outbox;
    struct ring_resv *rv = &TXN(txn)->resv;
    rc = ring_reserve(r, maxlen, rv);
    if (rc < 0) {
        if (rc == -EAGAIN)
            STAT_INC(mb->st.send_full);
        goto fail;
    }
    struct dicom_pkt *k = rv->pkt;
    pkt_fill(k, mb->self.job, mb->self.rank, dst.job, dst.rank, p->next_seq++, tag, PKT_DATA, (uint32_t)maxlen);
    peer_unlock(mb, p);
    txn->data = pkt_payload(k);
    txn->maxlen = maxlen;
    TXN(txn)->ring = r;
    TXN(txn)->bell = p->route == ROUTE_LOCAL ? p->bell_fd : mb->daemon_bell;
    if (p->route == ROUTE_LOCAL)
        STAT_INC(mb->st.sent_local);
    else
        STAT_INC(mb->st.sent_remote);
    return 0;
fail:
    peer_unlock(mb, p);
    critical_leave(mb);
    return rc;
}

static void finish(dicom_mbox_t *mb, dicom_txn_t *txn)
{
    bool ring = ring_commit(TXN(txn)->ring, &TXN(txn)->resv);
    critical_leave(mb);
    if (ring)
        dicom_ring_bell((int)TXN(txn)->bell);
}

void dicom_send_commit(dicom_mbox_t *mb, dicom_txn_t *txn, size_t len)
{
    TXN(txn)->resv.pkt->len = (uint32_t)(len < txn->maxlen ? len : txn->maxlen);
    finish(mb, txn);
}

void dicom_send_cancel(dicom_mbox_t *mb, dicom_txn_t *txn)
{
    TXN(txn)->resv.pkt->kind = PKT_NOP;
    TXN(txn)->resv.pkt->len = 0;
    finish(mb, txn);
}

static size_t iov_total(const struct iovec *iov, int n)
{
    size_t t = 0;
    for (int i = 0; i < n; i++)
        t += iov[i].iov_len;
    return t;
}

int dicom_sendv(dicom_mbox_t *mb, dicom_addr_t dst, uint16_t tag, const struct iovec *iov,
                int iovcnt, int flags)
{
    size_t len = iov_total(iov, iovcnt);
    dicom_txn_t txn;
    unsigned spins = 0;
    int rc;
    while ((rc = dicom_send_reserve(mb, dst, tag, len, &txn)) == -EAGAIN) {
        if (flags & DICOM_NONBLOCK) {
            dicom_set_error("no room for %zu bytes to %u:%u now", len, dst.job, dst.rank);
            return rc;
        }
        /* The receiver (or migrd) drains the ring: back off gently. */
        if (++spins < 64) {
            sched_yield();
        } else {
            struct timespec ts = {0, spins < 1024 ? 20000 : 1000000};
            nanosleep(&ts, NULL);
        }
        if (mb->daemon_lost)
            return -ENOTCONN;
    }
    if (rc < 0)
        return rc;
    char *d = txn.data;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(d, iov[i].iov_base, iov[i].iov_len);
        d += iov[i].iov_len;
    }
    dicom_send_commit(mb, &txn, len);
    return 0;
}

int dicom_send(dicom_mbox_t *mb, dicom_addr_t dst, uint16_t tag, const void *buf, size_t len, int flags)
{
    struct iovec iov = {(void *)buf, len};
    return dicom_sendv(mb, dst, tag, &iov, 1, flags);
}

static void unmap_route(void *map, size_t len, int fd)
{
    if (map)
        munmap(map, len);
    if (fd >= 0)
        close(fd);
}

static int free_tx(uint64_t key, void *val, void *arg)
{
    struct tx_peer *p = val;
    (void)key;
    (void)arg;
    unmap_route(p->map, p->map_len, p->bell_fd);
    free(p);
    return 0;
}

void dicom_tx_release_all(dicom_mbox_t *mb)
{
    if (atomic_load(&mb->tx.t))
        addrmap_foreach(&mb->tx, free_tx, NULL);
    while (mb->retired) {
        struct retired_route *r = mb->retired;
        mb->retired = r->next;
        unmap_route(r->map, r->map_len, r->bell_fd);
        free(r);
    }
}
