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
 */
#include "pager.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    /* the thread's */
    uint64_t requests, pages;
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

static void store_body(void *arg)
{
    struct pager_store *s = arg;
    uint8_t *buf = malloc(sizeof(struct pager_pages) + PAGER_MAX_PAGES * PAGER_PAGE);
    uint8_t in[sizeof(struct pager_req)];
    if (!buf) {
        snprintf(s->why, sizeof s->why, "out of memory");
        return;
    }
    for (;;) {
        struct pollfd pf[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = s->thr.stop[0], .events = POLLIN}};
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
            rq->src % PAGER_PAGE) {
            snprintf(s->why, sizeof s->why, "%s sent a bad page request (type %u, %u bytes)", s->peer,
                     (unsigned)type, len);
            break;
        }
        struct pager_pages *ph = (void *)buf;
        *ph = (struct pager_pages){.src = rq->src, .dst = rq->dst, .npages = rq->npages};
        ph->error = read_pages(s->pid, rq->src, rq->npages, buf + sizeof *ph);
        uint32_t out = (uint32_t)sizeof *ph + (ph->error ? 0 : rq->npages * PAGER_PAGE);
        if (ph->error)
            log_error("pid %d: page store: reading %u pages at %#llx: %s", s->pid, rq->npages,
                      (unsigned long long)rq->src, strerror(ph->error));
        if (s->io.send(s->fd, s->io.t_pages, chan, buf, out) < 0) {
            snprintf(s->why, sizeof s->why, "sending pages to %s: %s", s->peer, strerror(errno));
            break;
        }
        s->requests++;
        s->pages += ph->error ? 0 : rq->npages;
    }
    free(buf);
}

static void store_ended(void *arg)
{
    struct pager_store *s = arg;
    log_info("pid %d: page store for %s ended (%s): %llu requests, %llu pages served", s->pid, s->peer, s->why,
             (unsigned long long)s->requests, (unsigned long long)s->pages);
    s->ended(s, s->arg);
}

struct pager_store *pager_store_start(struct event_base *base, struct engine_frozen *fz, int fd,
                                      const struct pager_io *io, const char *peer,
                                      void (*ended)(struct pager_store *s, void *arg), void *arg,
                                      char *why, size_t wl)
{
    struct pager_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(why, wl, "out of memory");
        return NULL;
    }
    pthr_init(&s->thr);
    s->fz = fz;
    s->pid = engine_frozen_pid(fz);
    s->fd = fd;
    s->io = *io;
    snprintf(s->peer, sizeof s->peer, "%s", peer);
    s->ended = ended;
    s->arg = arg;
    if (engine_frozen_hold(fz) < 0) {
        snprintf(why, wl, "%s", engine_strerror());
        pthr_join(&s->thr);
        free(s);
        return NULL;
    }
    if (pthr_start(&s->thr, base, store_body, store_ended, s, why, wl) < 0) {
        pthr_join(&s->thr);
        free(s);
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
    free(s);
}

void pager_stores_stop(void)
{
    pthread_mutex_lock(&stores_lock);
    for (struct pager_store *s = stores; s; s = s->next)
        pthr_ask_stop(&s->thr);
    pthread_mutex_unlock(&stores_lock);
}
