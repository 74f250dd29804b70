/*
 * migrate_lazy.c -- see migrate_lazy.h.
 */
#include "migrate_lazy.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrd/engine/engine.h"
#include "migrd/pager/pager.h"
#include "migrd/util/log.h"
#include "mig_auth.h"
#include "migrate_proto.h"
#include "migrate_recv.h"
#include "move.h"

static int lazy_recv(int fd, uint16_t *type, uint32_t *chan, void *body, uint32_t cap, uint32_t *len)
{
    struct mig_hdr h;
    errno = 0;
    if (mig_recv(fd, &h, body, cap) < 0)
        return -1;
    *type = h.type;
    *chan = h.chan;
    *len = h.len;
    return 0;
}

static const struct pager_io io = {.send = mig_send, .recv = lazy_recv, .close = mig_close,
                                   .t_req = MIG_PAGE_REQ, .t_pages = MIG_PAGES, .t_done = MIG_PAGES_DONE};

int mlazy_send_dir(int fd, struct engine_image *img, struct mlazy_dir *dir, char *why, size_t wl)
{
    struct engine_pages *away;
    uint32_t n;
    dir->pages = 0;
    if (engine_image_lazy_split(img, PAGER_MIN_REGION, &away, &n) < 0) {
        snprintf(why, wl, "choosing the pages that stay: %s", engine_strerror());
        return -1;
    }
    const uint32_t per = MIG_MAX_BODY / (uint32_t)sizeof *away;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i += per) {
        uint32_t k = n - i < per ? n - i : per;
        rc = mig_send(fd, MIG_LAZY_DIR, 0, away + i, k * (uint32_t)sizeof *away);
    }
    for (uint32_t i = 0; i < n; i++)
        dir->pages += away[i].npages;
    dir->away = away;
    dir->n = n;
    if (rc < 0)
        snprintf(why, wl, "sending the list of pages away: %s", strerror(errno));
    return rc;
}

static void store_ended(struct pager_store *s, void *arg)
{
    (void)arg;
    if (engine_release(pager_store_frozen(s), ENGINE_KILL) < 0)
        log_warn("ending a page store's process: %s", engine_strerror());
    pager_store_free(s);
}

int mlazy_keep(struct move *d, struct engine_frozen *fz, int fd, const char *dest, struct mlazy_dir *dir,
               bool push, char *why, size_t wl)
{
    struct engine_pages *away = dir->away;
    dir->away = NULL;
    mig_set_timeouts(fd, 30000); /* per frame; the wait between requests is a poll */
    return pager_store_start(d->base, fz, fd, &io, dest, away, dir->n, push, store_ended, NULL, why, wl) ? 0
                                                                                                       : -1;
}

int mlazy_service(const struct engine_image *img, const struct mrecv_frame *frames, const char *source,
                  bool prefetch, struct pager_svc **svc, char *why, size_t wl)
{
    uint32_t n = 0, k = 0;
    *svc = NULL;
    for (const struct mrecv_frame *f = frames; f; f = f->next)
        if (f->h.type == MIG_LAZY_DIR) {
            if (f->h.len % sizeof(struct engine_pages)) {
                snprintf(why, wl, "a LAZY_DIR frame of %u bytes", f->h.len);
                return -1;
            }
            n += f->h.len / (uint32_t)sizeof(struct engine_pages);
        }
    if (!n)
        return 0;
    struct engine_pages *away = calloc(n, sizeof *away);
    if (!away) {
        snprintf(why, wl, "out of memory");
        return -1;
    }
    for (const struct mrecv_frame *f = frames; f; f = f->next)
        if (f->h.type == MIG_LAZY_DIR) {
            memcpy(away + k, f->body, f->h.len);
            k += f->h.len / (uint32_t)sizeof(struct engine_pages);
        }
    *svc = pager_svc_new(img, away, n, source, prefetch, why, wl);
    free(away);
    return *svc ? 0 : -1;
}

static void svc_ended(struct pager_svc *s, void *arg)
{
    (void)arg;
    pager_svc_free(s);
}

void mlazy_serve(struct move *d, struct pager_svc *svc, int fd, pid_t pid)
{
    char why[200];
    mig_set_timeouts(fd, 30000);
    if (pager_svc_start(svc, d->base, fd, &io, svc_ended, NULL, why, sizeof why) < 0) {
        log_error("pid %d: killed: its pages away cannot be fetched: %s", pid, why);
        pager_svc_free(svc);
    }
}
