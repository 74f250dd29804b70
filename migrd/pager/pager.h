/*
 * pager.h -- lazy moves (issue 11): the pages of a moved process that stay
 * at its source after the move, and their way to it (doc/ARCHITECTURE.md,
 * "A lazy move").
 *
 * Source: once the destination has acknowledged, the frozen source copy is
 * the page store (store.c): kept frozen and bound to migrd's life
 * (engine_frozen_hold), it answers page requests on the move's connection
 * and is killed when the destination says no page is away any more.
 * Destination: the restored process's userfaultfd (engine.h: userfault)
 * has every private region with pages away registered; a thread
 * (fault.c) serves its faults from the away directory (dir.c): pages away
 * are asked for, others are zero pages; pages freed or unmapped are never
 * asked for; a fork's child gets its own copy of the directory.
 *
 * Called by move/ only; the pager uses the move's framing through
 * struct pager_io (calls go one way between folders).
 */
#ifndef MIGRD_PAGER_H
#define MIGRD_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct engine_frozen;
struct engine_image;
struct engine_pages;

/* The move port's frames, as move/ gives them. */
struct pager_io {
    int (*send)(int fd, uint16_t type, uint32_t chan, const void *body, uint32_t len);
    /* one frame: 0 and its type, chan and length, or -1 with errno */
    int (*recv)(int fd, uint16_t *type, uint32_t *chan, void *body, uint32_t cap, uint32_t *len);
    void (*close)(int fd);
    uint16_t t_req, t_pages, t_done;   /* the frame types of the pager */
};

/* The frames' bodies (little-endian, as the rest of the port). */
struct pager_req {
    uint64_t src, dst;      /* where the pages were at the source, are now */
    uint32_t npages, pad;
};
struct pager_pages {
    uint64_t src, dst;
    uint32_t npages;
    int32_t error;          /* 0, or the errno of reading them (no bytes) */
    uint32_t pushed;        /* 1: not asked for (push), 0: the answer to
                               the oldest request in flight */
    uint32_t pad;
    /* then npages * 4096 bytes */
};
#define PAGER_PAGE        4096u
#define PAGER_MAX_PAGES   128u        /* per frame: 512 KiB */
#define PAGER_MIN_REGION  (1u << 20)  /* smaller regions move eagerly */
#define PAGER_FAULT_TIMEOUT_MS 10000  /* a request unanswered that long: the
                                         source is gone, the process ends */
#define PAGER_PUSH_QUEUE  (256u << 10) /* push only while less than this is
                                          unsent in the socket: an answer to a
                                          fault never waits behind more */

/* ---- source */
struct pager_store;
/* Serve the pages of frozen fz on fd (the acknowledged move's connection,
 * now the store's, as fz is); with push, also send every page of away
 * (n runs, the store's now, as the list sent with the image) that is not
 * asked for, between the answers.  ended(arg) runs on base's loop when the
 * destination no longer needs them (or is gone): the caller then kills fz
 * (pager_store_frozen) and frees the store.  NULL with why (away freed). */
struct pager_store *pager_store_start(struct event_base *base, struct engine_frozen *fz, int fd,
                                      const struct pager_io *io, const char *peer,
                                      struct engine_pages *away, uint32_t naway, bool push,
                                      void (*ended)(struct pager_store *s, void *arg), void *arg,
                                      char *why, size_t wl);
struct engine_frozen *pager_store_frozen(struct pager_store *s);
void pager_store_free(struct pager_store *s);   /* stops its thread first */

/* ---- destination */
struct pager_svc;
/* Before the restore: the pages away (the source's list, checked against
 * img's regions), and the regions to register; with prefetch, each remote
 * fault also asks for its AMPoM dependent zone (ampom.h).  NULL with why. */
struct pager_svc *pager_svc_new(const struct engine_image *img, const struct engine_pages *away,
                                uint32_t naway, const char *source, bool prefetch, char *why, size_t wl);
/* engine_restore_opts.userfault with arg = the service */
int pager_svc_userfault(void *arg, pid_t pid, int uffd);
/* After the acknowledgement: serve the faults, asking the source on fd
 * (the service's now); ended(arg) on base's loop once no page is away or
 * the process is gone.  0, or -1 with why (the process is then killed). */
int pager_svc_start(struct pager_svc *s, struct event_base *base, int fd, const struct pager_io *io,
                    void (*ended)(struct pager_svc *s, void *arg), void *arg, char *why, size_t wl);
void pager_svc_free(struct pager_svc *s);       /* stops its thread first */
/* Pages of pid still away (0: none, or no service). */
uint64_t pager_away(pid_t pid, char *node, size_t nl);
/* Fetch every page of pid still away, waiting up to timeout_ms (a worker's
 * call: it blocks).  0 (none away, or now all here), or -1 with why. */
int pager_drain(pid_t pid, int timeout_ms, char *why, size_t wl);
/* When migrd stops, no call is needed: its stores die with it
 * (engine_frozen_hold) and so do the processes it serves (their
 * parent-death signal, engine.h: userfault). */

#endif
