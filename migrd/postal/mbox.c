/*
 * mbox.c -- see mbox.h.
 */
#include "mbox.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/addrmap.h"
#include "migrd/util/log.h"
#include "exile.h"
#include "jobs.h"
#include "location.h"
#include "office.h"
#include "postal.h"

static void kept_flush(struct waiter *w);
static void mbox_destroy(struct mbox *m);

struct mbox_table {
    struct addrmap map;
    unsigned count;
};

struct mbox_table *mbox_table_new(struct postal *d)
{
    (void)d;
    struct mbox_table *t = calloc(1, sizeof *t);
    if (t && addrmap_init(&t->map) < 0) {
        free(t);
        t = NULL;
    }
    return t;
}

/* Shutdown: every mailbox goes, whatever its outbox still holds (the
 * table itself is destroyed right after). */
static int free_one(struct mbox *m, void *arg)
{
    (void)arg;
    mbox_destroy(m);
    return 0;
}

struct mbox *mbox_find(struct postal *d, uint32_t job, uint32_t rank)
{
    struct mbox *m = addrmap_get(&d->mboxes->map, addrmap_key(job, rank));
    return m && !m->exiled ? m : NULL;
}

struct foreach_ctx {
    int (*fn)(struct mbox *, void *);
    void *arg;
};

static int foreach_tramp(uint64_t key, void *val, void *arg)
{
    struct foreach_ctx *c = arg;
    (void)key;
    return c->fn(val, c->arg);
}

int mbox_foreach(struct postal *d, int (*fn)(struct mbox *m, void *arg), void *arg)
{
    struct foreach_ctx c = {fn, arg};
    return addrmap_foreach(&d->mboxes->map, foreach_tramp, &c);
}

unsigned mbox_count(struct postal *d) { return d->mboxes->count; }

void mbox_room_made(struct mbox *m)
{
    /* One waiter may be m's own outbox (a packet it sent to itself): the
     * drain that resumes must not free m under our caller, who goes on
     * using m (postal_drain sees `draining` and leaves the rest to the
     * caller's postal_drain).  Found by test/fuzz/fuzz_rings. */
    bool held = m->draining;
    m->draining = true;
    struct waiter *w = m->inbox_waiters;
    m->inbox_waiters = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->next = NULL;
        w->resume(w);
        w = next;
    }
    m->draining = held;
}

/* The doorbell is watched edge-triggered: every write by the owner is a
 * new event, so the counter need not be read (one system call less per
 * wake-up; it cannot overflow in practice, 2^64 rings). */
static void on_bell(evutil_socket_t fd, short what, void *arg)
{
    struct mbox *m = arg;
    (void)fd;
    (void)what;
    if (m->broken) {
        if (m->owner) /* frees m, once nothing is left to relay */
            m->d->ops.drop_owner(m->owner, m->broken_why);
        return;
    }
    postal_busy(m->d);
    mbox_room_made(m); /* room in the inbox */
    postal_drain(m);
}

static int make_memfd(uint32_t job, uint32_t rank, size_t len)
{
    char name[64];
    snprintf(name, sizeof name, "migr-mbox-%u-%u", job, rank);
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    /* Sealed size: a process cannot shrink it under migrd's mapping. */
    if (ftruncate(fd, (off_t)len) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

static void layout(struct mbox *m, uint32_t inbox, uint32_t outbox)
{
    struct mbox_shared *sh = m->sh;
    sh->magic = MBOX_MAGIC;
    sh->version = MBOX_VERSION;
    sh->job = m->job;
    sh->rank = m->rank;
    sh->pid = m->pid;
    sh->inbox_off = MBOX_PAGE;
    sh->inbox_size = inbox;
    sh->outbox_off = MBOX_PAGE + ring_map_bytes(inbox);
    sh->outbox_size = outbox;
    sh->map_size = m->map_len;
    atomic_store(&sh->state, MBOX_OPEN);
    ring_format((char *)m->map + sh->inbox_off, inbox);
    ring_format((char *)m->map + sh->outbox_off, outbox);
    ring_attach(&m->inbox, (char *)m->map + sh->inbox_off, ring_map_bytes(inbox));
    ring_attach(&m->outbox, (char *)m->map + sh->outbox_off, ring_map_bytes(outbox));
}

static void mbox_destroy(struct mbox *m)
{
    while (m->kept) {
        struct kept *k = m->kept;
        m->kept = k->next;
        free(k);
    }
    if (m->bell_ev)
        event_free(m->bell_ev);
    if (m->exile_ev)
        event_free(m->exile_ev);
    if (m->map)
        munmap(m->map, m->map_len);
    if (m->memfd >= 0)
        close(m->memfd);
    if (m->proc_bell >= 0)
        close(m->proc_bell);
    if (m->daemon_bell >= 0)
        close(m->daemon_bell);
    if (m->job_held)
        jobs_release(m->d, m->job);
    free(m);
}

struct mbox *mbox_find_any(struct postal *d, uint32_t job, uint32_t rank)
{
    return addrmap_get(&d->mboxes->map, addrmap_key(job, rank));
}

int mbox_new(struct postal *d, uint32_t job, uint32_t rank, pid_t pid, uid_t uid, uint32_t inbox,
             uint32_t outbox, struct mbox **out)
{
    if (!ring_size_valid(inbox) || !ring_size_valid(outbox) || inbox > d->max_ring || outbox > d->max_ring)
        return -EINVAL;
    struct mbox *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    *m = (struct mbox){.d = d, .job = job, .rank = rank, .pid = pid, .uid = uid,
                       .memfd = -1, .proc_bell = -1, .daemon_bell = -1};
    m->kept_tail = &m->kept;
    m->map_len = mbox_map_size(inbox, outbox);
    int rc = make_memfd(job, rank, m->map_len);
    if (rc < 0) {
        log_error("memfd for mailbox %u:%u (pid %d, %zu bytes): %s", job, rank, pid, m->map_len,
                  strerror(-rc));
        goto fail;
    }
    m->memfd = rc;
    m->map = mmap(NULL, m->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
    if (m->map == MAP_FAILED) {
        rc = -errno;
        m->map = NULL;
        log_error("mmap of mailbox %u:%u (fd %d): %s", job, rank, m->memfd, strerror(-rc));
        goto fail;
    }
    m->sh = m->map;
    m->proc_bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    m->daemon_bell = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (m->proc_bell < 0 || m->daemon_bell < 0) {
        rc = -errno;
        log_error("eventfd for mailbox %u:%u: %s", job, rank, strerror(-rc));
        goto fail;
    }
    layout(m, inbox, outbox);
    *out = m;
    return 0;
fail:
    mbox_destroy(m);
    return rc;
}

void mbox_discard(struct mbox *m) { mbox_destroy(m); }

void mbox_unlist(struct mbox *m)
{
    struct postal *d = m->d;
    if (addrmap_get(&d->mboxes->map, addrmap_key(m->job, m->rank)) != m)
        return;
    addrmap_put(&d->mboxes->map, addrmap_key(m->job, m->rank), NULL);
    d->mboxes->count--;
}

int mbox_register(struct mbox *m, void *owner)
{
    struct postal *d = m->d;
    struct mbox *old = mbox_find_any(d, m->job, m->rank);
    if (old && !old->exiled)
        return -EADDRINUSE;
    uid_t owner_uid;
    if (!m->job_held) {
        int rc = jobs_claim(d, m->job, m->uid, &owner_uid);
        if (rc < 0)
            return rc;
        m->job_held = true;
    }
    m->bell_ev = event_new(d->base, m->daemon_bell, EV_READ | EV_PERSIST | EV_ET, on_bell, m);
    if (!m->bell_ev || event_add(m->bell_ev, NULL) < 0) {
        log_error("cannot watch doorbell fd %d of mailbox %u:%u", m->daemon_bell, m->job, m->rank);
        return -ENOMEM;
    }
    if (old)
        exile_retire(old); /* its owner is back (or its address reused): it drains into m */
    int rc = addrmap_put(&d->mboxes->map, addrmap_key(m->job, m->rank), m);
    if (rc < 0)
        return rc;
    m->owner = owner;
    d->mboxes->count++;
    location_local_added(d, m->job, m->rank, m->uid);
    /* Relay what the outbox holds (a moved process's), then sleep until
     * the owner rings; wake the owner if its inbox holds packets. */
    postal_drain(m);
    if (ring_used(&m->inbox))
        mbox_ring_owner(m);
    return 0;
}

int mbox_create(struct postal *d, uint32_t job, uint32_t rank, pid_t pid, uid_t uid,
                uint32_t inbox, uint32_t outbox, void *owner, struct mbox **out)
{
    struct mbox *m, *old = mbox_find_any(d, job, rank);
    if (!jobs_may_send(d, uid, job))
        return -EPERM; /* before EADDRINUSE: another user learns nothing of the job */
    if (old && !old->exiled)
        return -EADDRINUSE;
    int rc = mbox_new(d, job, rank, pid, uid, inbox, outbox, &m);
    if (rc < 0)
        return rc;
    rc = mbox_register(m, owner);
    if (rc < 0) {
        mbox_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}

void mbox_owner_gone(struct mbox *m)
{
    m->owner = NULL;
    m->closing = true;
    atomic_store(&m->sh->state, MBOX_CLOSED);
    mbox_room_made(m); /* nobody reads this inbox any more: waiters give up */
    postal_drain(m); /* frees m once its outbox is empty */
}

void mbox_maybe_free(struct mbox *m)
{
    if (!m->closing || m->tx_busy || m->rx_links || (!m->broken && ring_take_pending(&m->outbox)))
        return;
    struct postal *d = m->d;
    log_info("mailbox %u:%u (pid %d) closed: %lu packets relayed out, %lu delivered in", m->job,
             m->rank, m->pid, (unsigned long)m->relayed_out, (unsigned long)m->delivered_in);
    addrmap_put(&d->mboxes->map, addrmap_key(m->job, m->rank), NULL);
    d->mboxes->count--;
    location_local_removed(d, m->job, m->rank);
    mbox_destroy(m);
}

void mbox_broken(struct mbox *m, const char *ring, const char *why)
{
    if (m->broken)
        return;
    m->broken = true;
    snprintf(m->broken_why, sizeof m->broken_why, "mailbox %u:%u (uid %u): %s: %s: mailbox closed", m->job,
             m->rank, (unsigned)m->uid, ring, why);
    if (!m->owner || !m->bell_ev) {
        log_error("pid %d: %s", m->pid, m->broken_why);
        return;
    }
    /* Not from here: the caller may be deep in a relay that uses m. */
    event_active(m->bell_ev, EV_READ, 0);
}

int mbox_reserve(struct mbox *m, uint32_t len, struct ring_resv *rv)
{
    if (m->broken)
        return -EPROTO;
    int rc = ring_reserve(&m->inbox, len, rv);
    if (rc == -EPROTO) {
        char why[96];
        snprintf(why, sizeof why, "tail %llu is not a record boundary",
                 (unsigned long long)atomic_load_explicit(&m->inbox.ctl->tail, memory_order_relaxed));
        mbox_broken(m, "inbox", why);
    }
    return rc;
}

void mbox_wait_inbox(struct mbox *m, struct waiter *w, size_t payload)
{
    w->next = m->inbox_waiters;
    m->inbox_waiters = w;
    if (!ring_arm_producer(&m->inbox, payload)) {
        /* Room appeared meanwhile: have the bell handler run soon. */
        uint64_t one = 1;
        if (write(m->daemon_bell, &one, sizeof one) < 0)
            log_warn("doorbell fd %d of %u:%u: %s", m->daemon_bell, m->job, m->rank, strerror(errno));
    }
}

void mbox_unwait(struct mbox *m, struct waiter *w)
{
    for (struct waiter **pp = &m->inbox_waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            w->next = NULL;
            return;
        }
}

void mbox_ring_owner(struct mbox *m)
{
    uint64_t one = 1;
    if (write(m->proc_bell, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("doorbell fd %d of %u:%u (pid %d): %s", m->proc_bell, m->job, m->rank, m->pid,
                 strerror(errno));
}

int mbox_deliver(struct mbox *m, const struct dicom_pkt *hdr, const void *payload)
{
    struct ring_resv rv;
    int rc = mbox_reserve(m, hdr->len, &rv);
    if (rc < 0)
        return rc;
    struct dicom_pkt *k = rv.pkt;
    pkt_fill(k, hdr->src_job, hdr->src_rank, hdr->dst_job, hdr->dst_rank, hdr->seq, hdr->tag, hdr->kind,
             hdr->len);
    memcpy(pkt_payload(k), payload, hdr->len);
    if (ring_commit(&m->inbox, &rv))
        mbox_ring_owner(m);
    m->delivered_in++;
    return 0;
}

/* Used by main.c at shutdown. */
void mbox_close_all(struct postal *d)
{
    if (!d->mboxes)
        return;
    mbox_foreach(d, free_one, NULL);
    addrmap_destroy(&d->mboxes->map);
    free(d->mboxes);
    d->mboxes = NULL;
}

static void kept_flush(struct waiter *w)
{
    struct mbox *m = (struct mbox *)((char *)w - offsetof(struct mbox, kept_wait));
    while (m->kept) {
        struct kept *k = m->kept;
        if (!m->closing && !m->broken && mbox_deliver(m, &k->pkt, pkt_payload(&k->pkt)) == -EAGAIN) {
            mbox_wait_inbox(m, &m->kept_wait, k->pkt.len);
            return;
        }
        m->kept = k->next;
        if (!m->kept)
            m->kept_tail = &m->kept;
        free(k);
    }
}

void mbox_deliver_copy(struct mbox *m, struct dicom_pkt *copy)
{
    bool idle = m->kept == NULL;
    if (idle && (m->closing || m->broken || mbox_deliver(m, copy, pkt_payload(copy)) != -EAGAIN)) {
        free(copy); /* delivered, or never will be (-EMSGSIZE, -EPROTO) */
        return;
    }
    /* The copy was malloc'd as a struct dicom_pkt + payload: rewrap it. */
    struct kept *k = malloc(sizeof *k + copy->len);
    if (!k) {
        log_error("out of memory keeping a packet for %u:%u: dropped", m->job, m->rank);
        free(copy);
        return;
    }
    memcpy(&k->pkt, copy, sizeof *copy + copy->len);
    free(copy);
    k->next = NULL;
    *m->kept_tail = k;
    m->kept_tail = &k->next;
    if (idle) {
        m->kept_wait.resume = kept_flush;
        mbox_wait_inbox(m, &m->kept_wait, k->pkt.len);
    }
}
