/*
 * dicom_ctl.c -- the library's side of the control socket: opening and
 * closing a mailbox, synchronous requests to migrd, daemon events, errors.
 */
#include "dicom_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/ctlmsg.h"

static __thread char last_error[256];

const char *dicom_last_error(void) { return last_error; }

void dicom_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

uint64_t dicom_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void dicom_ring_bell(int fd)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated: the reader wakes anyway. */
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

int dicom_ctl_connect(const char *path, int timeout_ms)
{
    int fd = ctl_connect(path);
    if (fd < 0) {
        dicom_set_error("no migrd at %s: connect: %s", path, strerror(-fd));
        return fd;
    }
    /* A daemon that stops reading must not block our requests forever. */
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
        int e = errno;
        dicom_set_error("setsockopt(SO_SNDTIMEO) on fd %d: %s", fd, strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

static void queue_event(dicom_mbox_t *mb, const dicom_event_t *ev)
{
    struct event_node *n = calloc(1, sizeof *n);
    if (!n)
        return; /* the daemon-lost state is also kept in mb->daemon_lost */
    n->ev = *ev;
    *mb->events_tail = n;
    mb->events_tail = &n->next;
}

static void daemon_gone(dicom_mbox_t *mb, const char *why)
{
    if (mb->daemon_lost)
        return;
    mb->daemon_lost = true;
    dicom_event_t ev = {.type = DICOM_EV_DAEMON_LOST};
    snprintf(ev.reason, sizeof ev.reason, "migrd on node %s is gone (%s)", mb->node, why);
    queue_event(mb, &ev);
}

/* Handle one unsolicited message; returns true if it was one. */
static bool take_unsolicited(dicom_mbox_t *mb, const struct ctl_hdr *h)
{
    if (h->type != CTL_EVENT)
        return false;
    if (h->len == sizeof(struct ctl_event)) {
        const struct ctl_event *ce = (const void *)(h + 1);
        dicom_event_t ev = {.type = DICOM_EV_UNREACHABLE, .addr = {ce->job, ce->rank}};
        memcpy(ev.reason, ce->reason, sizeof ev.reason);
        ev.reason[sizeof ev.reason - 1] = 0;
        queue_event(mb, &ev);
    }
    return true;
}

/* Read one message from the control socket; mb->ctl_lock held.
 * Returns body length, -EAGAIN (nothing, only with MSG_DONTWAIT) or <0. */
static ssize_t ctl_read(dicom_mbox_t *mb, char *buf, int *fds, int *nfds, int flags)
{
    int eof;
    ssize_t n = ctl_recv(mb->ctl_fd, buf, CTL_MAX_MSG, fds, nfds, &eof, flags);
    if (n == -EAGAIN || n == -EWOULDBLOCK)
        return -EAGAIN;
    if (eof) {
        daemon_gone(mb, "control connection closed");
        return -ENOTCONN;
    }
    if (n < 0) {
        char why[96];
        snprintf(why, sizeof why, "control connection: %s", strerror((int)-n));
        daemon_gone(mb, why);
        return -ENOTCONN;
    }
    return n;
}

int dicom_ctl_request(dicom_mbox_t *mb, uint16_t type, const void *body, uint32_t len,
                      uint16_t want, void *reply, uint32_t reply_len, int *fds, int *nfds)
{
    static _Thread_local char buf[CTL_MAX_MSG];
    int rc;
    pthread_mutex_lock(&mb->ctl_lock);
    if (mb->daemon_lost) {
        rc = -ENOTCONN;
        dicom_set_error("migrd on node %s is gone", mb->node);
        goto out;
    }
    uint32_t reqid = ++mb->next_reqid;
    rc = ctl_send(mb->ctl_fd, type, reqid, body, len, NULL, 0);
    if (rc < 0) {
        dicom_set_error("sending %s to migrd: %s", ctl_type_name(type), strerror(-rc));
        daemon_gone(mb, "send failed");
        goto out;
    }
    for (;;) {
        struct pollfd p = {.fd = mb->ctl_fd, .events = POLLIN};
        int pr = poll(&p, 1, 10000);
        if (pr == 0) {
            rc = -ETIMEDOUT;
            dicom_set_error("migrd did not answer %s within 10 s", ctl_type_name(type));
            goto out;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        ssize_t n = ctl_read(mb, buf, fds, nfds, 0);
        if (n < 0) {
            rc = (int)n;
            dicom_set_error("waiting for migrd's answer to %s: migrd is gone", ctl_type_name(type));
            goto out;
        }
        const struct ctl_hdr *h = (const void *)buf;
        if (take_unsolicited(mb, h) || h->reqid != reqid) {
            for (int i = 0; i < *nfds; i++)
                close(fds[i]);
            continue;
        }
        if (h->type == CTL_ERROR && h->len == sizeof(struct ctl_error)) {
            const struct ctl_error *e = (const void *)(h + 1);
            dicom_set_error("migrd refused %s: %.200s", ctl_type_name(type), e->message);
            rc = e->err > 0 ? -e->err : -EPROTO;
        } else if (h->type != want || h->len != reply_len) {
            dicom_set_error("migrd answered %s with %s (%u bytes)", ctl_type_name(type),
                            ctl_type_name(h->type), h->len);
            rc = -EPROTO;
        } else {
            memcpy(reply, h + 1, reply_len);
            rc = 0;
            goto out;
        }
        for (int i = 0; i < *nfds; i++)
            close(fds[i]);
        *nfds = 0;
        goto out;
    }
out:
    pthread_mutex_unlock(&mb->ctl_lock);
    return rc;
}

/* Read every pending control message into the event queue; ctl_lock held. */
static void pump_locked(dicom_mbox_t *mb)
{
    static _Thread_local char buf[CTL_MAX_MSG];
    while (!mb->daemon_lost) {
        int fds[CTL_MAX_FDS], nfds = 0;
        ssize_t n = ctl_read(mb, buf, fds, &nfds, MSG_DONTWAIT);
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (n < 0)
            break;
        take_unsolicited(mb, (const void *)buf);
    }
}

void dicom_ctl_pump(dicom_mbox_t *mb)
{
    if (pthread_mutex_trylock(&mb->ctl_lock) != 0)
        return; /* another thread is talking to migrd: it reads them */
    pump_locked(mb);
    pthread_mutex_unlock(&mb->ctl_lock);
}

int dicom_poll_event(dicom_mbox_t *mb, dicom_event_t *ev)
{
    int got = 0;
    if (pthread_mutex_trylock(&mb->ctl_lock) != 0)
        return 0;
    if (!mb->events)
        pump_locked(mb);
    if (mb->events) {
        struct event_node *n = mb->events;
        *ev = n->ev;
        mb->events = n->next;
        if (!mb->events)
            mb->events_tail = &mb->events;
        free(n);
        got = 1;
    }
    pthread_mutex_unlock(&mb->ctl_lock);
    return got;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

void dicom_populate(const dicom_mbox_t *mb, void *addr, size_t len)
{
    if (mb->lazy_rings || !len)
        return;
    /* Page-aligned: every ring's map starts on a page of a mapping. */
    uintptr_t a = (uintptr_t)addr & ~(uintptr_t)(MBOX_PAGE - 1);
    (void)madvise((void *)a, len + ((uintptr_t)addr - a), MADV_POPULATE_WRITE);
}

static int attach_rings(dicom_mbox_t *mb, const struct ctl_registered *r)
{
    if (r->map_size != mb->map_len || r->inbox_off + ring_map_bytes(r->inbox_size) > r->map_size ||
        r->outbox_off + ring_map_bytes(r->outbox_size) > r->map_size ||
        ring_attach(&mb->inbox, (char *)mb->map + r->inbox_off, ring_map_bytes(r->inbox_size)) ||
        ring_attach(&mb->outbox, (char *)mb->map + r->outbox_off, ring_map_bytes(r->outbox_size))) {
        dicom_set_error("migrd handed over a malformed mailbox");
        return -EPROTO;
    }
    mb->sh = mb->map;
    if (mb->sh->magic != MBOX_MAGIC || mb->sh->version != MBOX_VERSION) {
        dicom_set_error("mailbox version mismatch with migrd");
        return -EPROTO;
    }
    size_t a = ring_max_payload(mb->inbox.size), b = ring_max_payload(mb->outbox.size);
    mb->max_payload = a < b ? a : b;
    /* The inbox now; the outbox once a peer is remote (dicom_send.c). */
    dicom_populate(mb, (char *)mb->map + r->inbox_off, ring_map_bytes(r->inbox_size));
    return 0;
}

static int do_register(dicom_mbox_t *mb, const dicom_open_opts_t *o)
{
    struct ctl_register req = {
        .job = mb->self.job, .rank = mb->self.rank,
        .inbox_size = o && o->inbox_size ? o->inbox_size : 4u << 20,
        .outbox_size = o && o->outbox_size ? o->outbox_size : 4u << 20};
    struct ctl_registered rep;
    int fds[CTL_MAX_FDS], nfds = 0;
    int rc = dicom_ctl_request(mb, CTL_REGISTER, &req, sizeof req, CTL_REGISTERED, &rep, sizeof rep,
                               fds, &nfds);
    if (rc < 0)
        return rc;
    if (nfds != 4) {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        dicom_set_error("migrd sent %d descriptors with the mailbox, expected 4", nfds);
        return -EPROTO;
    }
    mb->my_bell = fds[1];
    mb->daemon_bell = fds[2];
    void *node = mmap(NULL, MBOX_PAGE, PROT_READ, MAP_SHARED, fds[3], 0);
    int ne = errno;
    close(fds[3]);
    if (node == MAP_FAILED || ((const struct node_shared *)node)->magic != NODE_PAGE_MAGIC) {
        if (node != MAP_FAILED)
            munmap(node, MBOX_PAGE);
        close(fds[0]);
        dicom_set_error("mapping migrd's node page: %s", node == MAP_FAILED ? strerror(ne) : "bad magic");
        return node == MAP_FAILED ? -ne : -EPROTO;
    }
    mb->node_page = node;
    mb->map_len = rep.map_size;
    mb->map = mmap(NULL, mb->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
    int e = errno;
    close(fds[0]);
    if (mb->map == MAP_FAILED) {
        mb->map = NULL;
        dicom_set_error("mmap of the mailbox (%zu bytes): %s", mb->map_len, strerror(e));
        return -e;
    }
    memcpy(mb->node, rep.node, sizeof mb->node);
    mb->node[sizeof mb->node - 1] = 0;
    int fl = fcntl(mb->my_bell, F_GETFL);
    if (fl < 0 || fcntl(mb->my_bell, F_SETFL, fl | O_NONBLOCK) < 0) {
        e = errno;
        dicom_set_error("fcntl(O_NONBLOCK) on doorbell fd %d: %s", mb->my_bell, strerror(e));
        return -e;
    }
    return attach_rings(mb, &rep);
}

int dicom_open(dicom_addr_t self, const dicom_open_opts_t *opts, dicom_mbox_t **out)
{
    const char *path = opts && opts->socket_path ? opts->socket_path : getenv("MIGR_SOCKET");
    if (!path || !*path)
        path = DICOM_DEFAULT_SOCKET;
    int timeout = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    *out = NULL;

    dicom_mbox_t *mb = calloc(1, sizeof *mb);
    if (!mb) {
        dicom_set_error("out of memory");
        return -ENOMEM;
    }
    mb->self = self;
    mb->lazy_rings = opts && opts->lazy_rings;
    mb->single_thread = opts && opts->single_thread;
    atomic_flag_clear(&mb->outbox_populated);
    mb->my_bell = mb->daemon_bell = -1;
    mb->events_tail = &mb->events;
    mb->ready_tail = &mb->ready;
    snprintf(mb->node, sizeof mb->node, "(local)");
    pthread_mutex_init(&mb->ctl_lock, NULL);
    pthread_mutex_init(&mb->tx_insert_lock, NULL);
    int rc = addrmap_init(&mb->tx);
    if (rc == 0)
        rc = addrmap_init(&mb->rx);
    if (rc < 0) {
        dicom_set_error("out of memory");
        free(mb);
        return rc;
    }
    mb->ctl_fd = dicom_ctl_connect(path, timeout);
    if (mb->ctl_fd < 0) {
        rc = mb->ctl_fd;
        mb->ctl_fd = -1;
        dicom_close(mb);
        return rc;
    }
    rc = do_register(mb, opts);
    if (rc < 0) {
        char keep[256];
        snprintf(keep, sizeof keep, "%s", last_error);
        dicom_close(mb);
        dicom_set_error("%s", keep);
        return rc;
    }
    *out = mb;
    return 0;
}

void dicom_close(dicom_mbox_t *mb)
{
    if (!mb)
        return;
    dicom_tx_release_all(mb);
    dicom_rx_release_all(mb);
    if (mb->map)
        munmap(mb->map, mb->map_len);
    if (mb->node_page)
        munmap((void *)mb->node_page, MBOX_PAGE);
    if (mb->ctl_fd >= 0)
        close(mb->ctl_fd); /* migrd unregisters us when the socket closes */
    if (mb->my_bell >= 0)
        close(mb->my_bell);
    if (mb->daemon_bell >= 0)
        close(mb->daemon_bell);
    while (mb->events) {
        struct event_node *n = mb->events;
        mb->events = n->next;
        free(n);
    }
    addrmap_destroy(&mb->tx);
    addrmap_destroy(&mb->rx);
    pthread_mutex_destroy(&mb->ctl_lock);
    pthread_mutex_destroy(&mb->tx_insert_lock);
    free(mb);
}

size_t dicom_max_payload(const dicom_mbox_t *mb) { return mb->max_payload; }

int dicom_relay_pending(dicom_mbox_t *mb)
{
    if (atomic_load_explicit(&mb->node_page->relay_busy, memory_order_relaxed))
        return 1;
    /* Only our sends fill the outbox: once it was seen empty it stays so
     * until the next remote send, and the outbox's lines (its head written
     * by migrd) need not be read by every idle poll.  The count is read
     * before the ring: a send that raced with the look counts after it. */
    uint64_t sent = atomic_load_explicit(&mb->st.sent_remote, memory_order_acquire);
    if (sent == atomic_load_explicit(&mb->outbox_seen_empty, memory_order_relaxed))
        return 0;
    if (ring_used(&mb->outbox) != 0)
        return 1;
    atomic_store_explicit(&mb->outbox_seen_empty, sent, memory_order_relaxed);
    return 0;
}
const char *dicom_node_name(const dicom_mbox_t *mb) { return mb->node; }
int dicom_fd(const dicom_mbox_t *mb) { return mb->my_bell; }

const volatile uint32_t *dicom_critical_word(const dicom_mbox_t *mb)
{
    return (const volatile uint32_t *)&mb->sh->critical;
}

void dicom_get_stats(const dicom_mbox_t *mb, dicom_stats_t *st)
{
    st->sent_local = atomic_load(&mb->st.sent_local);
    st->sent_remote = atomic_load(&mb->st.sent_remote);
    st->send_full = atomic_load(&mb->st.send_full);
    st->received = mb->st.received;
    st->duplicates = mb->st.duplicates;
    st->held = mb->st.held;
}
