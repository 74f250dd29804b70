/*
 * mbox.h -- layout of a mailbox in shared memory.
 *
 * Owns: the shape of the memfd that migrd creates for every registered
 * process.  Page 0 holds identity and the safe-point word; then come the
 * inbox ring and the outbox ring (each a header page plus its data).  A
 * local sender maps only the receiver's inbox (inbox_off .. +inbox map).
 */
#ifndef MIGR_MBOX_H
#define MIGR_MBOX_H

#include <stdatomic.h>
#include <stdint.h>

#include "ring.h"

#define MBOX_MAGIC   0x4d49475242584f4dull /* "MIGRBXOM" */
#define MBOX_VERSION 1u
#define MBOX_PAGE    4096u

enum mbox_state {
    MBOX_OPEN = 1,   /* the owner runs here                                */
    MBOX_CLOSED = 2, /* the owner is gone: senders must look it up again   */
};

struct mbox_shared {
    uint64_t magic;
    uint32_t version;
    uint32_t job, rank;
    int32_t pid;
    /* Safe point: non-zero while the owner writes into any ring. */
    _Alignas(64) _Atomic uint32_t critical;
    _Alignas(64) _Atomic uint32_t state;
    uint64_t inbox_off, inbox_size;
    uint64_t outbox_off, outbox_size;
    uint64_t map_size;
};

/* The node page: one per migrd, mapped read-only by every registered
 * process.  `relay_busy` is non-zero while migrd is relaying, or polling
 * for traffic after relaying (migrd/postal/relay.h): a process that busy-polls
 * with nothing to do then yields its CPU, so that the daemon -- which may
 * share the core -- gets it (see dicom_relay_pending). */
#define NODE_PAGE_MAGIC 0x4d4947524e4f4445ull /* "MIGRNODE" */
struct node_shared {
    uint64_t magic;
    uint32_t version;
    _Alignas(64) _Atomic uint32_t relay_busy;
};

static inline uint64_t mbox_map_size(uint64_t inbox, uint64_t outbox)
{
    return MBOX_PAGE + ring_map_bytes(inbox) + ring_map_bytes(outbox);
}

#endif
