/*
 * office.h -- a postal office of migrd inside a fuzzing harness: the real
 * mailboxes, routing, location and exile code (migrd/postal/), an event
 * base that is run by hand, no control socket.  The owners of mailboxes
 * are stand-ins that do what the core does when the postal office drops
 * one (migrd/ctl.c: the mailbox's owner is gone).
 */
#ifndef MIGR_FUZZ_OFFICE_H
#define MIGR_FUZZ_OFFICE_H

#include <stddef.h>
#include <stdint.h>

#include "migrd/cluster/cluster.h"
#include "migrd/postal/mbox.h"
#include "migrd/postal/office.h"

struct fuzz_owner {
    struct mbox *m;
    int dropped;
};

struct fuzz_office {
    struct event_base *base;
    struct cluster cl;
    struct postal p;
};

/* A cluster of nnodes nodes on 127.0.0.1 (ports port, port+2, ...), this
 * node being `self`; the mailbox table, node page, location and exiles;
 * migrd's log to /dev/null unless $FUZZ_LOG says where.  Exits on failure. */
void office_init(struct fuzz_office *o, int nnodes, int self, uint16_t port);
/* Every mailbox, exile and held packet of the last input freed. */
void office_reset(struct fuzz_office *o);
/* Run what the event loop has ready (deferred closes, timers due). */
void office_run(struct fuzz_office *o);
/* A registered mailbox for (job, rank) owned by w (64 KiB rings). */
struct mbox *office_mbox(struct fuzz_office *o, uint32_t job, uint32_t rank, struct fuzz_owner *w);

/* Append a frame (header hdr of hl bytes, then len bytes of body) to
 * out[at..cap): the new end, or at when it does not fit. */
size_t fuzz_put_frame(uint8_t *out, size_t cap, size_t at, const void *hdr, size_t hl, const void *body,
                      uint32_t len);

#endif
