/*
 * fault.c -- the destination's fault service of a lazily moved process
 * (pager.h): one thread per process serves every userfaultfd message of
 * it (all its threads fault at once: the kernel queues them) and of the
 * children it forks, asking the source for pages away, zero-filling the
 * others, and following the address space's changes so that pages freed
 * or unmapped are never asked for.
 *
 * The process can never run on wrong memory: a page away is only filled
 * with the source's bytes, and when the source is gone (its connection
 * ends, or a request is unanswered for PAGER_FAULT_TIMEOUT_MS) the
 * process and its children are killed, with the reason in the log, before
 * the userfaultfd is closed (closing it would let faults fill zeros).
 */
#include "pager.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "migrd/engine/engine.h"
#include "migrd/util/clock.h"
#include "migrd/util/log.h"
#include "ampom.h"
#include "dir.h"
#include "thread.h"

#define MAX_CLIENTS  16   /* the process and the children it forks */
#define MAX_OUT      1024 /* requests in flight */
#define PREFETCH_OUT 768  /* prefetch stops there: room for the faults */
#define MAX_DEFER    256  /* faults waiting for room */
#define CPU_SAMPLE_US 5000  /* the CPU share is read that often at most */
#define DRAIN_OUT    8    /* of them, while draining */
#define MAX_RETRY    256  /* zero fills to retry after an event */

struct client {
    int uffd;                    /* -1: gone */
    struct pager_dir dir;
    struct ampom amp;            /* its look-back window */
};

struct pager_svc {
    struct pager_svc *next;
    struct pager_thread thr;
    pid_t pid;
    int pidfd, drain_fd;
    char source[64];
    struct pager_dir dir0;       /* until the userfaultfd is ours */
    struct engine_pages *regions;
    uint32_t nregions;
    struct client cl[MAX_CLIENTS];
    uint32_t ncl;
    int fd;
    struct pager_io io;
    void (*ended)(struct pager_svc *s, void *arg);
    void *arg;
    bool main_gone, failed;
    bool prefetch;               /* AMPoM (ampom.h) */
    uint64_t out_t[MAX_OUT];     /* when each request in flight was sent (FIFO) */
    uint32_t out_n[MAX_OUT];     /* its pages */
    uint64_t cpu_t_us, cpu_ns;   /* the last CPU share sample */
    double cpu_share;
    uint32_t out_head, nout;
    uint64_t retry[MAX_RETRY];   /* client << 56 | page */
    uint32_t nretry;
    uint64_t defer[MAX_DEFER];   /* faults that found no room for their
                                    request: client << 56 | page */
    uint32_t ndefer;
    uint64_t faults, zero_fills, requests, pages_in, pushed_in, t_start;
    uint64_t remote_faults;      /* faults that had to ask for their page */
    uint64_t waits;              /* faults on a page asked for already (prefetch in flight) */
    uint64_t prefetched;         /* pages asked for by the prefetch */
    char why[200];
    /* shared with pager_drain/pager_away (lock) */
    uint64_t away;               /* pages away, all clients */
    bool draining, over;
    pthread_cond_t changed;
};

static pthread_mutex_t svcs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pager_svc *svcs;

static uint64_t total_away(const struct pager_svc *s)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < s->ncl; i++)
        if (s->cl[i].uffd >= 0)
            n += s->cl[i].dir.away;
    return n;
}

static void publish(struct pager_svc *s)
{
    pthread_mutex_lock(&svcs_lock);
    s->away = total_away(s);
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&svcs_lock);
}

/* ------------------------------------------------------------ before the restore */

struct pager_svc *pager_svc_new(const struct engine_image *img, const struct engine_pages *away,
                                uint32_t naway, const char *source, bool prefetch, char *why, size_t wl)
{
    struct pager_svc *s = calloc(1, sizeof *s);
    if (!s || !(s->regions = calloc(naway + 1, sizeof *s->regions))) {
        free(s);
        snprintf(why, wl, "out of memory");
        return NULL;
    }
    pthr_init(&s->thr);
    pthread_cond_init(&s->changed, NULL);
    s->pid = engine_image_pid(img);
    s->pidfd = s->drain_fd = s->fd = -1;
    s->prefetch = prefetch;
    snprintf(s->source, sizeof s->source, "%s", source);
    uint32_t nr = engine_image_nregions(img), r = 0;
    uint64_t prev_end = 0;
    for (uint32_t i = 0; i < naway; i++) {
        const struct engine_pages *a = &away[i];
        uint64_t end = a->addr + a->npages * PAGER_PAGE;
        struct engine_region reg;
        if (a->addr % PAGER_PAGE || !a->npages || end < a->addr || a->addr < prev_end) {
            snprintf(why, wl, "the list of pages away is not sorted page runs (run %u at %#llx)", i,
                     (unsigned long long)a->addr);
            goto bad;
        }
        prev_end = end;
        while (r < nr && engine_image_region(img, r, &reg) == 0 && reg.end <= a->addr)
            r++;
        if (r >= nr || engine_image_region(img, r, &reg) < 0 || a->addr < reg.start || end > reg.end ||
            reg.shared || reg.ino) {
            snprintf(why, wl, "pages away at %#llx (%llu) are not inside a private anonymous region",
                     (unsigned long long)a->addr, (unsigned long long)a->npages);
            goto bad;
        }
        if (!s->nregions || s->regions[s->nregions - 1].addr != reg.start)
            s->regions[s->nregions++] = (struct engine_pages){reg.start, (reg.end - reg.start) / PAGER_PAGE};
        if (dir_add(&s->dir0, a->addr, a->addr, a->npages) < 0) {
            snprintf(why, wl, "out of memory");
            goto bad;
        }
    }
    s->away = s->dir0.away;
    return s;
bad:
    pager_svc_free(s);
    return NULL;
}

int pager_svc_userfault(void *arg, pid_t pid, int uffd)
{
    struct pager_svc *s = arg;
    struct uffdio_api api = {.api = UFFD_API,
                             .features = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |
                                         UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP};
    if (ioctl(uffd, UFFDIO_API, &api) < 0) {
        engine_set_error("UFFDIO_API on the userfaultfd of pid %d: %s", pid, strerror(errno));
        close(uffd);
        return -1;
    }
    for (uint32_t i = 0; i < s->nregions; i++) {
        struct uffdio_register rg = {.range = {s->regions[i].addr, s->regions[i].npages * PAGER_PAGE},
                                     .mode = UFFDIO_REGISTER_MODE_MISSING};
        if (ioctl(uffd, UFFDIO_REGISTER, &rg) < 0) {
            engine_set_error("UFFDIO_REGISTER of %#llx-%#llx in pid %d: %s",
                             (unsigned long long)rg.range.start,
                             (unsigned long long)(rg.range.start + rg.range.len), pid, strerror(errno));
            close(uffd);
            return -1;
        }
    }
    s->cl[0].uffd = uffd;
    s->cl[0].dir = s->dir0;
    memset(&s->dir0, 0, sizeof s->dir0);
    s->ncl = 1;
    return 0;
}

/* ------------------------------------------------------------ the thread */

static int fail(struct pager_svc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct pager_svc *s, const char *fmt, ...)
{
    va_list ap;
    if (s->failed)
        return -1;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof s->why, fmt, ap);
    va_end(ap);
    s->failed = true;
    return -1;
}

/* SIGKILL to pid and, first, every process under it (children it forked
 * share its pages away; they must not run on without them). */
static void kill_tree(pid_t pid, int depth)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = depth < 8 ? opendir(path) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char cp[320], buf[4096];
        snprintf(cp, sizeof cp, "/proc/%d/task/%s/children", pid, e->d_name);
        FILE *f = fopen(cp, "re");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
            kill_tree((pid_t)atoi(tok), depth + 1);
    }
    if (d)
        closedir(d);
    if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
        log_error("pager: kill(%d, SIGKILL): %s", pid, strerror(errno));
}

static void wake(int uffd, uint64_t page);

/* Ask for npages at dst.  With no room (MAX_OUT in flight) a prefetch is
 * dropped (its pages are not marked asked), and a fault is deferred: its
 * thread is woken once an answer made room, faults again and asks then
 * (the kernel gives a fault once: a fault dropped would wait forever). */
static int send_req(struct pager_svc *s, uint32_t c, uint64_t dst, uint64_t src, uint64_t npages, bool fault)
{
    struct pager_req rq = {.src = src, .dst = dst, .npages = (uint32_t)npages};
    if (s->nout >= MAX_OUT) {
        if (fault && s->ndefer < MAX_DEFER)
            s->defer[s->ndefer++] = (uint64_t)c << 56 | dst;
        else if (fault)
            wake(s->cl[c].uffd, dst); /* it faults again at once */
        return 0;
    }
    if (s->io.send(s->fd, s->io.t_req, c, &rq, sizeof rq) < 0)
        return fail(s, "asking %s for pages: %s", s->source, strerror(errno));
    dir_set_asked(&s->cl[c].dir, dst, npages);
    s->out_n[(s->out_head + s->nout) % MAX_OUT] = (uint32_t)npages;
    s->out_t[(s->out_head + s->nout++) % MAX_OUT] = migrd_now_us();
    s->requests++;
    return 0;
}

static void wake(int uffd, uint64_t page)
{
    struct uffdio_range r = {page, PAGER_PAGE};
    if (ioctl(uffd, UFFDIO_WAKE, &r) < 0 && errno != ENOENT)
        log_warn("pager: UFFDIO_WAKE at %#llx: %s", (unsigned long long)page, strerror(errno));
}

/* a page that is not away: zeros (it was never touched at the source) */
static int zero_fill(struct pager_svc *s, uint32_t c, uint64_t page)
{
    struct uffdio_zeropage z = {.range = {page, PAGER_PAGE}};
    if (ioctl(s->cl[c].uffd, UFFDIO_ZEROPAGE, &z) == 0) {
        s->zero_fills++;
        return 0;
    }
    if (errno == EAGAIN) { /* an event is waiting to be read first */
        if (s->nretry < MAX_RETRY)
            s->retry[s->nretry++] = (uint64_t)c << 56 | page;
        else
            wake(s->cl[c].uffd, page); /* it faults again */
        return 0;
    }
    if (errno == EEXIST)
        wake(s->cl[c].uffd, page);
    else if (errno != ENOENT && errno != ESRCH) /* unmapped, or the client is exiting */
        return fail(s, "UFFDIO_ZEROPAGE at %#llx: %s", (unsigned long long)page, strerror(errno));
    return 0;
}

static void client_gone(struct pager_svc *s, uint32_t c)
{
    if (s->cl[c].uffd < 0)
        return;
    if (c) /* the process's own stays open until the end: see the file's comment */
        close(s->cl[c].uffd);
    if (c)
        s->cl[c].uffd = -1;
    dir_free(&s->cl[c].dir);
}

/* the process's CPU share (of one CPU) lately, sampled every CPU_SAMPLE_US
 * (its CPU clock: nanoseconds, all threads) */
static double cpu_share(struct pager_svc *s)
{
    uint64_t now = migrd_now_us();
    if (s->cpu_t_us && now - s->cpu_t_us < CPU_SAMPLE_US)
        return s->cpu_share;
    clockid_t cid;
    struct timespec ts;
    if (clock_getcpuclockid(s->pid, &cid) != 0 || clock_gettime(cid, &ts) < 0)
        return s->cpu_share ? s->cpu_share : 1;
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    if (s->cpu_t_us && now > s->cpu_t_us) {
        s->cpu_share = (double)(ns - s->cpu_ns) / 1000.0 / (double)(now - s->cpu_t_us);
        if (s->cpu_share < 0.01)
            s->cpu_share = 0.01;
    } else {
        s->cpu_share = 1;
    }
    s->cpu_t_us = now;
    s->cpu_ns = ns;
    return s->cpu_share;
}

/* the dependent zone of a remote fault at page: its pages away and not
 * asked for yet, asked for in runs */
static int prefetch(struct pager_svc *s, uint32_t c, uint64_t page)
{
    struct ampom_range z[2 * AMPOM_W];
    uint32_t k = ampom_fault(&s->cl[c].amp, page / PAGER_PAGE, migrd_now_us(), cpu_share(s), z, 2 * AMPOM_W);
    if (s->remote_faults % 1000 == 0)
        log_debug("pid %d: AMPoM S %.2f N %.1f 2t0+td %.0f us cpu %.2f, %u ranges", s->pid, s->cl[c].amp.last_s,
                  s->cl[c].amp.last_n, s->cl[c].amp.rtt_us, s->cpu_share, k);
    for (uint32_t i = 0; i < k; i++) {
        uint64_t a = z[i].page * PAGER_PAGE, end = a + z[i].npages * PAGER_PAGE;
        while (a < end) {
            uint64_t src, src0, n = 0;
            bool asked;
            while (a < end && (!dir_is_away(&s->cl[c].dir, a, &src, &asked) || asked))
                a += PAGER_PAGE;
            if (a >= end)
                break;
            src0 = src;
            while (a + n * PAGER_PAGE < end && n < PAGER_MAX_PAGES &&
                   dir_is_away(&s->cl[c].dir, a + n * PAGER_PAGE, &src, &asked) && !asked &&
                   src == src0 + n * PAGER_PAGE)
                n++;
            if (s->nout >= PREFETCH_OUT)
                return 0;
            if (send_req(s, c, a, src0, n, false) < 0)
                return -1;
            s->prefetched += n;
            a += n * PAGER_PAGE;
        }
    }
    return 0;
}

static int on_msg(struct pager_svc *s, uint32_t c, const struct uffd_msg *m)
{
    struct pager_dir *d = &s->cl[c].dir;
    switch (m->event) {
    case UFFD_EVENT_PAGEFAULT: {
        uint64_t page = m->arg.pagefault.address & ~(uint64_t)(PAGER_PAGE - 1), src;
        bool asked;
        s->faults++;
        if (!dir_is_away(d, page, &src, &asked))
            return zero_fill(s, c, page);
        if (asked)
            s->waits++;
        else
            s->remote_faults++;
        if (!asked && send_req(s, c, page, src, 1, true) < 0)
            return -1;
        return s->prefetch ? prefetch(s, c, page) : 0;
    }
    case UFFD_EVENT_FORK: {
        int ufd = (int)m->arg.fork.ufd;
        if (s->ncl >= MAX_CLIENTS) {
            /* its faults could only be zero fills: it must not run */
            close(ufd);
            return fail(s, "pid %d forked more than %d processes with pages away", s->pid, MAX_CLIENTS - 1);
        }
        fcntl(ufd, F_SETFD, FD_CLOEXEC);
        struct client *n = &s->cl[s->ncl];
        if (dir_copy(&n->dir, d) < 0) {
            close(ufd);
            return fail(s, "out of memory (the away directory of a child of pid %d)", s->pid);
        }
        n->uffd = ufd;
        memset(&n->amp, 0, sizeof n->amp);
        s->ncl++;
        return 0;
    }
    case UFFD_EVENT_REMAP:
        if (dir_remap(d, m->arg.remap.from, m->arg.remap.to, m->arg.remap.len) < 0)
            return fail(s, "out of memory (following a mremap of pid %d)", s->pid);
        return 0;
    case UFFD_EVENT_REMOVE:
    case UFFD_EVENT_UNMAP:
        dir_clear(d, m->arg.remove.start, m->arg.remove.end);
        return 0;
    default:
        return fail(s, "unknown userfaultfd event %u", m->event);
    }
}

static int read_msgs(struct pager_svc *s, uint32_t c)
{
    struct uffd_msg m[32];
    for (;;) {
        ssize_t n = read(s->cl[c].uffd, m, sizeof m);
        if (n < 0) {
            if (errno == EAGAIN)
                return 0;
            if (errno == EINTR)
                continue;
            return fail(s, "reading the userfaultfd of pid %d: %s", s->pid, strerror(errno));
        }
        for (ssize_t i = 0; i < n / (ssize_t)sizeof m[0]; i++)
            if (on_msg(s, c, &m[i]) < 0)
                return -1;
        if (n < (ssize_t)sizeof m)
            return 0;
    }
}

static void retry_zero_fills(struct pager_svc *s)
{
    uint32_t n = s->nretry;
    uint64_t r[MAX_RETRY];
    memcpy(r, s->retry, n * sizeof r[0]);
    s->nretry = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = (uint32_t)(r[i] >> 56);
        if (s->cl[c].uffd >= 0)
            zero_fill(s, c, r[i] & ((1ull << 56) - 1));
    }
}

/* copy npages of data to dst (all away there, from src): 0, or -1 */
static int install(struct pager_svc *s, uint32_t c, uint64_t dst, const uint8_t *data, uint64_t npages)
{
    uint64_t done = 0;
    while (done < npages) {
        struct uffdio_copy cp = {.dst = dst + done * PAGER_PAGE, .src = (uint64_t)(uintptr_t)(data + done * PAGER_PAGE),
                                 .len = (npages - done) * PAGER_PAGE};
        int rc = ioctl(s->cl[c].uffd, UFFDIO_COPY, &cp);
        uint64_t copied = cp.copy > 0 ? (uint64_t)cp.copy / PAGER_PAGE : 0;
        if (rc == 0) {
            dir_clear(&s->cl[c].dir, cp.dst, cp.dst + cp.len);
            return 0;
        }
        int e = errno;
        dir_clear(&s->cl[c].dir, cp.dst, cp.dst + copied * PAGER_PAGE);
        done += copied;
        if (e == EAGAIN) {
            /* the address space is changing: read its events, then see
             * again what is still away (the caller's loop) */
            if (read_msgs(s, c) < 0)
                return -1;
            return 1;
        }
        if (e == EEXIST || e == ENOENT) { /* there already, or unmapped: not away */
            dir_clear(&s->cl[c].dir, dst + done * PAGER_PAGE, dst + (done + 1) * PAGER_PAGE);
            wake(s->cl[c].uffd, dst + done * PAGER_PAGE);
            done++;
            continue;
        }
        if (e == ESRCH) {
            client_gone(s, c);
            return 0;
        }
        return fail(s, "UFFDIO_COPY of %llu pages at %#llx in pid %d: %s", (unsigned long long)(npages - done),
                    (unsigned long long)cp.dst, s->pid, strerror(e));
    }
    return 0;
}

static int on_pages(struct pager_svc *s, uint32_t c, const uint8_t *body, uint32_t len)
{
    const struct pager_pages *ph = (const void *)body;
    if (len < sizeof *ph || !ph->npages || ph->npages > PAGER_MAX_PAGES ||
        len != sizeof *ph + (ph->error ? 0 : ph->npages * PAGER_PAGE) || c >= s->ncl)
        return fail(s, "%s sent a bad page frame (%u bytes)", s->source, len);
    if (ph->error)
        return fail(s, "%s cannot read %u pages at %#llx: %s", s->source, ph->npages,
                    (unsigned long long)ph->src, strerror(ph->error));
    if (!ph->pushed && s->nout) {
        if (s->out_n[s->out_head] == 1 && c < s->ncl)
            ampom_rtt(&s->cl[c].amp, (double)(migrd_now_us() - s->out_t[s->out_head]));
        s->out_head = (s->out_head + 1) % MAX_OUT;
        s->nout--;
    }
    if (ph->pushed)
        s->pushed_in += ph->npages;
    else
        s->pages_in += ph->npages;
    const uint8_t *data = body + sizeof *ph;
    for (int pass = 0; pass < 8 && s->cl[c].uffd >= 0; pass++) {
        int again = 0;
        /* the runs of pages still away where they were asked for */
        for (uint32_t i = 0; i < ph->npages && s->cl[c].uffd >= 0;) {
            uint64_t src;
            bool asked;
            uint32_t j = i;
            while (j < ph->npages && dir_is_away(&s->cl[c].dir, ph->dst + j * PAGER_PAGE, &src, &asked) &&
                   src == ph->src + j * PAGER_PAGE)
                j++;
            if (j == i) { /* freed or moved since: whoever waits there faults again */
                wake(s->cl[c].uffd, ph->dst + i * PAGER_PAGE);
                i++;
                continue;
            }
            int rc = install(s, c, ph->dst + i * PAGER_PAGE, data + (size_t)i * PAGER_PAGE, j - i);
            if (rc < 0)
                return -1;
            if (rc > 0) {
                again = 1;
                break;
            }
            i = j;
        }
        if (!again)
            return 0;
    }
    return 0;
}

/* while draining (asked, or the process ended with children): keep a few
 * big requests in flight */
static int drain_some(struct pager_svc *s)
{
    for (uint32_t c = 0; c < s->ncl && s->nout < DRAIN_OUT; c++) {
        uint64_t dst, src, n;
        while (s->cl[c].uffd >= 0 && s->nout < DRAIN_OUT &&
               dir_next_unasked(&s->cl[c].dir, &dst, &src, &n, PAGER_MAX_PAGES))
            if (send_req(s, c, dst, src, n, false) < 0)
                return -1;
    }
    return 0;
}

static void svc_body(void *arg)
{
    struct pager_svc *s = arg;
    uint8_t *buf = malloc(sizeof(struct pager_pages) + PAGER_MAX_PAGES * PAGER_PAGE);
    if (!buf) {
        fail(s, "out of memory");
        return;
    }
    while (!s->failed) {
        if (!total_away(s)) {
            snprintf(s->why, sizeof s->why, "every page is here");
            break;
        }
        pthread_mutex_lock(&svcs_lock);
        bool drain = s->draining || s->main_gone;
        pthread_mutex_unlock(&svcs_lock);
        if (drain && drain_some(s) < 0)
            break;
        struct pollfd pf[4 + MAX_CLIENTS];
        nfds_t n = 0;
        pf[n++] = (struct pollfd){.fd = s->fd, .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = s->thr.stop[0], .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = s->drain_fd, .events = POLLIN};
        pf[n++] = (struct pollfd){.fd = s->main_gone ? -1 : s->pidfd, .events = POLLIN};
        for (uint32_t c = 0; c < s->ncl; c++)
            pf[n++] = (struct pollfd){.fd = s->cl[c].uffd, .events = POLLIN};
        if (poll(pf, n, 500) < 0 && errno != EINTR) {
            fail(s, "poll: %s", strerror(errno));
            break;
        }
        if (pf[1].revents) {
            fail(s, "migrd here stops");
            break;
        }
        if (pf[2].revents) {
            uint64_t v;
            if (read(s->drain_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                log_warn("pager: reading drain eventfd %d: %s", s->drain_fd, strerror(errno));
        }
        if (pf[3].revents) {
            s->main_gone = true;
            client_gone(s, 0);
        }
        for (uint32_t c = 0; c < s->ncl; c++)
            if (s->cl[c].uffd >= 0 && pf[4 + c].revents && read_msgs(s, c) < 0)
                break;
        if (s->nretry)
            retry_zero_fills(s);
        if (pf[0].revents && !s->failed) {
            uint16_t type;
            uint32_t chan, len;
            if (s->io.recv(s->fd, &type, &chan, buf, sizeof(struct pager_pages) + PAGER_MAX_PAGES * PAGER_PAGE,
                           &len) < 0) {
                fail(s, "the connection to %s ended: %s", s->source, errno ? strerror(errno) : "closed");
                break;
            }
            if (type != s->io.t_pages) {
                fail(s, "%s sent an unexpected frame (type %u)", s->source, (unsigned)type);
                break;
            }
            if (on_pages(s, chan, buf, len) < 0)
                break;
            /* room again: the deferred faults fault again and ask */
            for (uint32_t i = 0; i < s->ndefer && s->nout < MAX_OUT; i++) {
                uint32_t c = (uint32_t)(s->defer[i] >> 56);
                if (c < s->ncl && s->cl[c].uffd >= 0)
                    wake(s->cl[c].uffd, s->defer[i] & ((1ull << 56) - 1));
            }
            if (s->nout < MAX_OUT)
                s->ndefer = 0;
        }
        if (s->nout && migrd_now_us() - s->out_t[s->out_head] > PAGER_FAULT_TIMEOUT_MS * 1000ull) {
            fail(s, "%s did not send pages for %d s", s->source, PAGER_FAULT_TIMEOUT_MS / 1000);
            break;
        }
        publish(s);
    }
    free(buf);
    if (s->failed && !s->main_gone) {
        uint64_t lost = total_away(s);
        kill_tree(s->pid, 0);
        log_error("pid %d: killed: %llu pages of it are lost on %s (%s)", s->pid, (unsigned long long)lost,
                  s->source, s->why);
    } else if (!s->failed) {
        s->io.send(s->fd, s->io.t_done, 0, NULL, 0);
    }
    publish(s);
}

static void svc_ended(void *arg)
{
    struct pager_svc *s = arg;
    log_info("pid %d: fault service ended (%s): %llu faults (%llu remote, %llu on pages in flight, %llu zero "
             "fills), %llu requests, %llu pages prefetched, %llu pages asked and %llu pushed from %s in %.1f ms",
             s->pid, s->why, (unsigned long long)s->faults, (unsigned long long)s->remote_faults,
             (unsigned long long)s->waits, (unsigned long long)s->zero_fills, (unsigned long long)s->requests,
             (unsigned long long)s->prefetched, (unsigned long long)s->pages_in, (unsigned long long)s->pushed_in,
             s->source,
             (double)(migrd_now_us() - s->t_start) / 1000);
    pthread_mutex_lock(&svcs_lock);
    s->over = true;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&svcs_lock);
    s->ended(s, s->arg);
}

int pager_svc_start(struct pager_svc *s, struct event_base *base, int fd, const struct pager_io *io,
                    void (*ended)(struct pager_svc *s, void *arg), void *arg, char *why, size_t wl)
{
    s->fd = fd;
    s->io = *io;
    s->ended = ended;
    s->arg = arg;
    s->t_start = migrd_now_us();
    if ((s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0)) < 0 ||
        (s->drain_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(why, wl, "%s of pid %d: %s", s->pidfd < 0 ? "pidfd_open" : "eventfd", s->pid, strerror(errno));
        kill_tree(s->pid, 0);
        return -1;
    }
    if (pthr_start(&s->thr, base, svc_body, svc_ended, s, why, wl) < 0) {
        kill_tree(s->pid, 0);
        return -1;
    }
    pthread_mutex_lock(&svcs_lock);
    s->next = svcs;
    svcs = s;
    pthread_mutex_unlock(&svcs_lock);
    return 0;
}

void pager_svc_free(struct pager_svc *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&svcs_lock);
    for (struct pager_svc **pp = &svcs; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&svcs_lock);
    pthr_join(&s->thr);
    for (uint32_t c = 0; c < s->ncl; c++) {
        if (s->cl[c].uffd >= 0)
            close(s->cl[c].uffd);
        dir_free(&s->cl[c].dir);
    }
    dir_free(&s->dir0);
    if (s->fd >= 0)
        s->io.close(s->fd);
    if (s->pidfd >= 0)
        close(s->pidfd);
    if (s->drain_fd >= 0)
        close(s->drain_fd);
    pthread_cond_destroy(&s->changed);
    free(s->regions);
    free(s);
}

uint64_t pager_away(pid_t pid, char *node, size_t nl)
{
    uint64_t n = 0;
    pthread_mutex_lock(&svcs_lock);
    for (struct pager_svc *s = svcs; s; s = s->next)
        if (s->pid == pid && !s->over) {
            n = s->away;
            if (node)
                snprintf(node, nl, "%s", s->source);
        }
    pthread_mutex_unlock(&svcs_lock);
    return n;
}

int pager_drain(pid_t pid, int timeout_ms, char *why, size_t wl)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&svcs_lock);
    struct pager_svc *s = svcs;
    while (s && (s->pid != pid || s->over))
        s = s->next;
    if (!s || !s->away) {
        pthread_mutex_unlock(&svcs_lock);
        return 0;
    }
    uint64_t one = 1;
    s->draining = true;
    if (write(s->drain_fd, &one, sizeof one) < 0)
        log_warn("pager: waking the fault service of pid %d: %s", pid, strerror(errno));
    int rc = 0;
    char source[sizeof s->source];
    snprintf(source, sizeof source, "%s", s->source);
    while (s->away && !s->over && rc == 0) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > until.tv_sec || (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec)) {
            rc = -1;
            break;
        }
        /* the condition variable uses the real-time clock: wait in steps */
        struct timespec step;
        clock_gettime(CLOCK_REALTIME, &step);
        step.tv_nsec += 50000000L;
        if (step.tv_nsec >= 1000000000L) {
            step.tv_sec++;
            step.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->changed, &svcs_lock, &step);
    }
    uint64_t left = s->away;
    bool over = s->over;
    pthread_mutex_unlock(&svcs_lock);
    if (rc < 0 || (left && over)) {
        snprintf(why, wl, "%llu pages of pid %d are still on %s after %d ms", (unsigned long long)left, pid,
                 source, timeout_ms);
        return -1;
    }
    return 0;
}
