/*
 * mbox.h -- the mailboxes of the processes registered on this node.
 *
 * Owns: creating a mailbox (sealed memfd with the two rings, two eventfds),
 * the table (job, rank) -> mailbox, watching each mailbox's daemon doorbell,
 * checking every record migrd reads from a ring that a process can write,
 * and closing a mailbox once its owner is gone and its outbox is empty.
 */
#ifndef MIGRD_MBOX_H
#define MIGRD_MBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/mbox.h"
#include "common/ring.h"

struct postal;
struct event;

/* Something that waits for room in a mailbox's inbox. */
struct waiter {
    struct waiter *next;
    void (*resume)(struct waiter *w);
};

/* A packet copied into migrd's memory (payload follows the header). */
struct kept {
    struct kept *next;
    struct dicom_pkt pkt;
};

struct mbox {
    struct postal *d;
    uint32_t job, rank;
    pid_t pid;
    uid_t uid;
    bool job_held;                 /* holds a reference of its job (jobs.h) */
    int memfd, proc_bell, daemon_bell;
    void *map;
    size_t map_len;
    struct mbox_shared *sh;
    struct ring inbox, outbox;
    struct event *bell_ev;
    void *owner;                   /* postal_ops' owner; NULL once gone */
    bool closing;                  /* owner gone: drain outbox, then free */
    /* A ring broke the rules (mbox_broken): nothing more is read from or
     * written to it; the owner is dropped from the event loop. */
    bool broken;
    char broken_why[192];
    /* link.c: connections reading a DATA frame into the inbox right now;
     * the mailbox is not freed before they are done with it. */
    unsigned rx_links;
    /* postal.c state */
    bool tx_busy;                  /* an outbox record is being relayed */
    bool draining, drain_again;    /* postal_drain() is on the stack    */
    struct waiter tx_wait;         /* how postal resumes this outbox    */
    struct mbox *tx_on;            /* whose inbox tx_wait waits on      */
    struct waiter *inbox_waiters;  /* waiting for room in our inbox     */
    struct kept *kept, **kept_tail;/* copies waiting for room, in order */
    struct waiter kept_wait;
    uint64_t relayed_out, delivered_in;
    bool refused;                  /* sent into another user's job (logged once) */
    /* exile.c state: the owner moved to node `away`; the inbox is drained
     * and forwarded (exile.h) */
    bool exiled;                   /* out of reach of mbox_find()       */
    bool retired;                  /* no longer in the table            */
    int away;
    struct event *exile_ev;        /* the old doorbell of the owner     */
    uint64_t exile_end_ms;         /* freed then (0: when told)         */
    struct mbox *exile_next;
};

struct mbox_table *mbox_table_new(struct postal *d);

/* Create and register a mailbox; -EADDRINUSE, -EINVAL (sizes), -EPERM (the
 * job is another user's, jobs.h), -errno. */
int mbox_create(struct postal *d, uint32_t job, uint32_t rank, pid_t pid, uid_t uid,
                uint32_t inbox, uint32_t outbox, void *owner, struct mbox **out);

/* The mailbox of (job, rank) whose owner runs here, or NULL. */
struct mbox *mbox_find(struct postal *d, uint32_t job, uint32_t rank);
/* The same, also an exiled one (its inbox still takes packets). */
struct mbox *mbox_find_any(struct postal *d, uint32_t job, uint32_t rank);

/* Creating a mailbox in two steps (the hand-over fills it in between):
 * make it, unregistered (-EINVAL: sizes, -errno); register it for its owner
 * (retires an exiled mailbox of the same address; -EADDRINUSE when a live
 * one has it; -EPERM when its job is another uid's); or discard it, unseen
 * by anyone. */
int mbox_new(struct postal *d, uint32_t job, uint32_t rank, pid_t pid, uid_t uid, uint32_t inbox,
             uint32_t outbox, struct mbox **out);
int mbox_register(struct mbox *m, void *owner);
void mbox_discard(struct mbox *m);
/* Take m out of the table (if it is there). */
void mbox_unlist(struct mbox *m);

/* Room was made in m's inbox: resume what waited for it. */
void mbox_room_made(struct mbox *m);

/* The owner's control connection closed. */
void mbox_owner_gone(struct mbox *m);

/* Free the mailbox if it is closing and nothing is left to relay. */
void mbox_maybe_free(struct mbox *m);

int mbox_foreach(struct postal *d, int (*fn)(struct mbox *m, void *arg), void *arg);
unsigned mbox_count(struct postal *d);

/* Where the rings are in the mapping (migrd's own numbers, never read
 * back from the first page, which the owner can write). */
static inline uint64_t mbox_inbox_off(const struct mbox *m)
{
    (void)m;
    return MBOX_PAGE;
}
static inline uint64_t mbox_outbox_off(const struct mbox *m)
{
    return MBOX_PAGE + ring_map_bytes(m->inbox.size);
}

/* A ring of m broke the rules (a record, length or position a process
 * wrote): from now on m's rings are left alone, and the owner's
 * registration ends from the event loop with one line naming the mailbox,
 * the pid and `why`.  Only the first call counts. */
void mbox_broken(struct mbox *m, const char *ring, const char *why);

/* Reserve a record of len bytes in m's inbox: 0, -EAGAIN (no room),
 * -EMSGSIZE (never fits), -EPROTO (the inbox is broken: see mbox_broken). */
int mbox_reserve(struct mbox *m, uint32_t len, struct ring_resv *rv);

/* Wait for room in m's inbox: w->resume is called when the owner consumed. */
void mbox_wait_inbox(struct mbox *m, struct waiter *w, size_t payload);

/* Stop waiting (w must be on m's list or already resumed). */
void mbox_unwait(struct mbox *m, struct waiter *w);

/* Write a packet (hdr: a private copy) into m's inbox if there is room
 * (0), or as mbox_reserve() says. */
int mbox_deliver(struct mbox *m, const struct dicom_pkt *hdr, const void *payload);

/* Shutdown: free every mailbox and the table. */
void mbox_close_all(struct postal *d);

/* Deliver a kept copy (ownership passes): now, or in order once the owner
 * has made room. */
void mbox_deliver_copy(struct mbox *m, struct dicom_pkt *copy);

/* Ring the owner's doorbell. */
void mbox_ring_owner(struct mbox *m);

#endif
