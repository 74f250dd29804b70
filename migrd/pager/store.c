/*
 * store.c -- the source's page store of a lazily moved process (pager.h).
 *
 * The store is the frozen source copy itself: its pages are read with
 * process_vm_readv when the destination asks for them.  No copy is made:
 * the frozen time stays that of the pages that travel at the freeze, no
 * memory is needed besides what the process already holds, and a page
 * the destination never asks for is never read.  The price is that the
 * source's pid stays taken until the store ends (a move back to this node
 * first drains the pages: pager_drain), and that the copy must never run
 * again: engine_frozen_hold binds it to migrd's life (EXITKILL), so a dead
 * migrd also means a dead store, which the destination notices (its
 * connection ends) and reports by killing the process.
 *
 * Push (migrctl migrate --lazy): between the answers, the store sends the
 * pages of the list it sent with the image that were not asked for yet, in
 * order, so that the destination stops depending on this node within
 * size/bandwidth.  Answers go first, and a push chunk is only written
 * while less than PAGER_PUSH_QUEUE bytes wait unsent in the socket: an
 * answer never queues behind more than that, so the process's faults are
 * not slowed by the push (TCP_NOTSENT_LOWAT: the socket is writable for
 * poll only below that).
 */
#include "pager.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migrd/engine/engine.h"
#include "migrd/util/log.h"
#include "thread.h"

struct pager_store {
    struct pager_store *next;
    struct pager_thread thr;
    struct engine_frozen *fz;
    pid_t pid;
    int fd;
    struct pager_io io;
    char peer[64];
    void (*ended)(struct pager_store *s, void *arg);
    void *arg;
    /* the runs left here (only their pages are served), one bit a page once
     * sent, the next page to push */
    struct engine_pages *away;
    uint32_t naway;
    uint64_t *sent, *first;        /* first[i]: index of run i's first page */
    bool push;
    uint32_t push_run;
    uint64_t push_page;
    /* the thread's */
    uint64_t requests, pages, pushed;
    char why[160];              /* why it ended */
};

static pthread_mutex_t stores_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pager_store *stores;

/* npages at src into buf: 0, or an errno */
static int read_pages(pid_t pid, uint64_t src, uint32_t npages, uint8_t *buf)
{
    size_t len = (size_t)npages * PAGER_PAGE;
    struct iovec l = {buf, len}, r = {(void *)(uintptr_t)src, len};
    ssize_t got = process_vm_readv(pid, &l, 1, &r, 1, 0);
    if (got == (ssize_t)len)
        return 0;
    /* what process_vm_readv cannot read (PROT_NONE pages) /proc/PID/mem can */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/mem", pid);
    int mfd = open(path, O_RDONLY | O_CLOEXEC);
    if (mfd < 0)
        return errno;
    got = pread(mfd, buf, len, (off_t)src);
    int e = got == (ssize_t)len ? 0 : got < 0 ? errno : EIO;
    close(mfd);
    return e;
}

/* the index of page src in the runs (sent bitmap), or UINT64_MAX */
static uint64_t page_index(const struct pager_store *s, uint64_t src)
{
    uint32_t lo = 0, hi = s->naway;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct engine_pages *r = &s->away[mid];
        if (src < r->addr)
            hi = mid;
        else if (src >= r->addr + r->npages * PAGER_PAGE)
            lo = mid + 1;
        else
            return s->first[mid] + (src - r->addr) / PAGER_PAGE;
    }
    return UINT64_MAX;
}

/* all npages at src are pages of the list (nothing else of the process
 * is served) */
static bool in_list(const struct pager_store *s, uint64_t src, uint32_t npages)
{
    for (uint32_t i = 0; i < npages; i++)
        if (page_index(s, src + (uint64_t)i * PAGER_PAGE) == UINT64_MAX)
            return false;
    return true;
}

static bool was_sent(const struct pager_store *s, uint64_t k) { return s->sent[k / 64] >> (k % 64) & 1; }

static void mark_sent(struct pager_store *s, uint64_t src, uint32_t npages)
{
    for (uint32_t i = 0; i < npages; i++) {
        uint64_t k = page_index(s, src + (uint64_t)i * PAGER_PAGE);
        if (k != UINT64_MAX)
            s->sent[k / 64] |= 1ull << (k % 64);
    }
}

/* the next run of pages to push (not sent yet, at most PAGER_MAX_PAGES,
 * in one run): its start and length, or 0 pages when all went */
static uint32_t next_push(struct pager_store *s, uint64_t *src)
{
    while (s->push_run < s->naway) {
        const struct engine_pages *r = &s->away[s->push_run];
        while (s->push_page < r->npages && was_sent(s, s->first[s->push_run] + s->push_page))
            s->push_page++;
        if (s->push_page >= r->npages) {
            s->push_run++;
            s->push_page = 0;
            continue;
        }
        uint32_t n = 0;
        while (n < PAGER_MAX_PAGES && s->push_page + n < r->npages &&
               !was_sent(s, s->first[s->push_run] + s->push_page + n))
            n++;
        *src = r->addr + s->push_page * PAGER_PAGE;
        return n;
    }
    return 0;
}

/* npages at src to the destination (dst: where it asked for them) */
static int send_pages(struct pager_store *s, uint8_t *buf, uint32_t chan, uint64_t src, uint64_t dst,
                      uint32_t npages, bool pushed)
{
    struct pager_pages *ph = (void *)buf;
    *ph = (struct pager_pages){.src = src, .dst = dst, .npages = npages, .pushed = pushed};
    ph->error = read_pages(s->pid, src, npages, buf + sizeof *ph);
    uint32_t out = (uint32_t)sizeof *ph + (ph->error ? 0 : npages * PAGER_PAGE);
    if (ph->error)
        log_error("pid %d: page store: reading %u pages at %#llx: %s", s->pid, npages, (unsigned long long)src,
                  strerror(ph->error));
    if (s->io.send(s->fd, s->io.t_pages, chan, buf, out) < 0) {
        snprintf(s->why, sizeof s->why, "sending pages to %s: %s", s->peer, strerror(errno));
        return -1;
    }
    if (!ph->error)
        mark_sent(s, src, npages);
    return 0;
}


static void store_body(void *arg)
{
    struct pager_store *s = arg;
    uint8_t *buf = malloc(sizeof(struct pager_pages) + PAGER_MAX_PAGES * PAGER_PAGE);
    uint8_t in[sizeof(struct pager_req)];
    if (!buf) {
        snprintf(s->why, sizeof s->why, "out of memory");
        return;
    }
    int lowat = PAGER_PUSH_QUEUE;
    if (s->push && setsockopt(s->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat) < 0)
        log_warn("pid %d: page store: TCP_NOTSENT_LOWAT on fd %d: %s (a fault's answer may wait behind "
                 "more pushed pages)", s->pid, s->fd, strerror(errno));
    for (;;) {
        uint64_t psrc = 0;
        uint32_t pn = s->push ? next_push(s, &psrc) : 0;
        struct pollfd pf[2] = {{.fd = s->fd, .events = POLLIN | (pn ? POLLOUT : 0)},
                               {.fd = s->thr.stop[0], .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            snprintf(s->why, sizeof s->why, "poll: %s", strerror(errno));
            break;
        }
        if (pf[1].revents) {
            snprintf(s->why, sizeof s->why, "stopped here");
            break;
        }
        if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR))) { /* room for a push chunk */
            if (send_pages(s, buf, 0, psrc, psrc, pn, true) < 0)
                break;
            s->pushed += pn;
            continue;
        }
        uint16_t type;
        uint32_t chan, len;
        if (s->io.recv(s->fd, &type, &chan, in, sizeof in, &len) < 0) {
            snprintf(s->why, sizeof s->why, "%s is gone: %s", s->peer,
                     errno ? strerror(errno) : "connection closed");
            break;
        }
        if (type == s->io.t_done) {
            snprintf(s->why, sizeof s->why, "no page away any more");
            break;
        }
        const struct pager_req *rq = (const void *)in;
        if (type != s->io.t_req || len != sizeof *rq || !rq->npages || rq->npages > PAGER_MAX_PAGES ||
            rq->src % PAGER_PAGE || !in_list(s, rq->src, rq->npages)) {
            snprintf(s->why, sizeof s->why, "%s sent a bad page request (type %u, %u bytes)", s->peer,
                     (unsigned)type, len);
            break;
        }
        if (send_pages(s, buf, chan, rq->src, rq->dst, rq->npages, false) < 0)
            break;
        s->requests++;
        s->pages += rq->npages;
    }
    free(buf);
}

static void store_ended(void *arg)
{
    struct pager_store *s = arg;
    log_info("pid %d: page store for %s ended (%s): %llu requests, %llu pages served, %llu pushed", s->pid,
             s->peer, s->why, (unsigned long long)s->requests, (unsigned long long)s->pages,
             (unsigned long long)s->pushed);
    s->ended(s, s->arg);
}

struct pager_store *pager_store_start(struct event_base *base, struct engine_frozen *fz, int fd,
                                      const struct pager_io *io, const char *peer,
                                      struct engine_pages *away, uint32_t naway, bool push,
                                      void (*ended)(struct pager_store *s, void *arg), void *arg,
                                      char *why, size_t wl)
{
    struct pager_store *s = calloc(1, sizeof *s);
    uint64_t total = 0;
    for (uint32_t i = 0; i < naway; i++)
        total += away[i].npages;
    if (s) {
        s->first = calloc(naway + 1, sizeof *s->first);
        s->sent = calloc(total / 64 + 1, sizeof *s->sent);
    }
    if (!s || !s->first || !s->sent) {
        snprintf(why, wl, "out of memory");
        if (s) {
            free(s->first);
            free(s->sent);
        }
        free(s);
        free(away);
        return NULL;
    }
    uint64_t k = 0;
    for (uint32_t i = 0; i < naway; k += away[i].npages, i++)
        s->first[i] = k;
    s->away = away;
    s->naway = naway;
    s->push = push;
    pthr_init(&s->thr);
    s->fz = fz;
    s->pid = engine_frozen_pid(fz);
    s->fd = fd;
    s->io = *io;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    s->ended = ended;
    s->arg = arg;
    int rc = engine_frozen_hold(fz);
    if (rc < 0)
        snprintf(why, wl, "%s", engine_strerror());
    else
        rc = pthr_start(&s->thr, base, store_body, store_ended, s, why, wl);
    if (rc < 0) {
        s->fd = -1; /* still the caller's */
        pager_store_free(s);
        return NULL;
    }
    pthread_mutex_lock(&stores_lock);
    s->next = stores;
    stores = s;
    pthread_mutex_unlock(&stores_lock);
    return s;
}

struct engine_frozen *pager_store_frozen(struct pager_store *s) { return s->fz; }

void pager_store_free(struct pager_store *s)
{
    pthread_mutex_lock(&stores_lock);
    for (struct pager_store **pp = &stores; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&stores_lock);
    pthr_join(&s->thr);
    if (s->fd >= 0)
        s->io.close(s->fd);
    free(s->away);
    free(s->first);
    free(s->sent);
    free(s);
}
