/*
 * <migr/dicom.h> -- the DiCOM client API (installed header; library
 * libmigr-dicom, pkg-config migr-dicom).
 *
 * DiCOM ("direct communication") is migr's postal protocol.  Every process
 * that opens a mailbox gets an address (job, rank) and an inbox.  Packets are
 * addressed to a (job, rank), never to a node: the node-local migrd (the
 * "postal office") knows where every mailbox is and relays packets between
 * nodes.  Packets from one sender to one receiver are delivered exactly once
 * and in the order they were sent, also when sender or receiver move between
 * nodes (the sequence numbers that guarantee this live in the processes'
 * own memory and move with them).
 *
 * Data path.  The mailbox is a set of rings in shared memory created by the
 * local migrd and handed to the process over the control socket:
 *   - inbox:  many producers (local senders and migrd), one consumer (us);
 *   - outbox: many producer threads (us), one consumer (migrd).
 * A send to a process on the same node is written straight into that
 * process's inbox: no system call, no daemon.  A send to another node goes
 * through the outbox and the daemons.  A sleeping reader is woken by a
 * doorbell (an eventfd) that senders ring only when the reader has armed it.
 *
 * Threads.  All calls may be made concurrently by several threads of the
 * process, except the receive calls (dicom_peek/dicom_release/dicom_recv/
 * dicom_arm), which are for one consumer thread at a time: serialise them.
 *
 * Errors.  Functions return 0 (or a positive count) on success and a
 * negative errno value on failure; dicom_last_error() gives a sentence that
 * says what failed.
 */
#ifndef MIGR_DICOM_H
#define MIGR_DICOM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DICOM_API_VERSION 1

/* Default control socket of the local migrd; $MIGR_SOCKET overrides it. */
#define DICOM_DEFAULT_SOCKET "/run/migr/migrd.sock"

/* `odls migr` sets this variable to 1 in the environment of every rank it
 * launches: the job asked for migr, and the dicom BTL takes it without
 * being named in the btl MCA parameter (see btl_dicom_select). */
#define DICOM_ODLS_ENV "MIGR_ODLS"

/* A mailbox address.  `job` is chosen by the launcher (Open MPI's jobid),
 * `rank` is the process's rank in that job. */
typedef struct dicom_addr {
    uint32_t job;
    uint32_t rank;
} dicom_addr_t;

static inline int dicom_addr_eq(dicom_addr_t a, dicom_addr_t b)
{
    return a.job == b.job && a.rank == b.rank;
}

typedef struct dicom_mbox dicom_mbox_t;

/* Options for dicom_open(); zero-initialise and set what you need. */
typedef struct dicom_open_opts {
    const char *socket_path; /* NULL: $MIGR_SOCKET, else DICOM_DEFAULT_SOCKET */
    uint32_t inbox_size;     /* bytes, power of two; 0: 4 MiB             */
    uint32_t outbox_size;    /* bytes, power of two; 0: 4 MiB             */
    int timeout_ms;          /* connect/register timeout; 0: 5000 ms      */
    int lazy_rings;          /* non-zero: fault ring pages in on first use;
                              * 0: populate them (the inbox at open, the
                              * outbox at the first remote peer, a local
                              * peer's inbox when its route is mapped), so
                              * that no send or receive pays a page fault */
    int single_thread;       /* non-zero: the caller sends from one thread
                              * at a time (e.g. MPI below THREAD_MULTIPLE);
                              * a send then takes no per-peer lock and marks
                              * the safe point with plain stores: 2 locked
                              * instructions per same-node send instead of
                              * 5.  Concurrent sends break the mailbox. */
} dicom_open_opts_t;

/* Register (self) with the local migrd and map the mailbox.
 * -ENOENT/-ECONNREFUSED: no migrd answers on the socket;
 * -EADDRINUSE: that (job, rank) already has a mailbox on this node. */
int dicom_open(dicom_addr_t self, const dicom_open_opts_t *opts, dicom_mbox_t **out);

/* Unregister and unmap.  Packets still in the inbox are discarded; packets in
 * the outbox are still delivered by migrd. */
void dicom_close(dicom_mbox_t *mb);

/* What went wrong last in this process (thread-local), or "" . */
const char *dicom_last_error(void);

/* Largest payload one packet may carry (a quarter of the smallest ring). */
size_t dicom_max_payload(const dicom_mbox_t *mb);

/* Name of the node whose migrd serves this mailbox. */
const char *dicom_node_name(const dicom_mbox_t *mb);

/* ---------------------------------------------------------------- send --- */

#define DICOM_NONBLOCK 0x1 /* return -EAGAIN instead of waiting for room   */

/* Send one packet (the concatenation of iov) with a 16-bit user tag.
 * Blocking by default: waits while the destination's inbox (or our outbox)
 * is full.  With DICOM_NONBLOCK returns -EAGAIN then, having sent nothing.
 * -EMSGSIZE: larger than dicom_max_payload(). */
int dicom_sendv(dicom_mbox_t *mb, dicom_addr_t dst, uint16_t tag,
                const struct iovec *iov, int iovcnt, int flags);
int dicom_send(dicom_mbox_t *mb, dicom_addr_t dst, uint16_t tag,
               const void *buf, size_t len, int flags);

/* Zero-copy send: reserve room for up to `maxlen` payload bytes, write the
 * payload at txn->data, then dicom_send_commit() with the final length
 * (<= maxlen).  Between the two calls the process is inside a mailbox
 * critical section (see dicom_critical_word): keep it short, never block.
 * Always non-blocking: -EAGAIN when there is no room now. */
typedef struct dicom_txn {
    void *data;         /* where to write the payload        */
    size_t maxlen;      /* as reserved                       */
    void *priv[6];      /* library-private                   */
} dicom_txn_t;
int dicom_send_reserve(dicom_mbox_t *mb, dicom_addr_t dst, uint16_t tag,
                       size_t maxlen, dicom_txn_t *txn);
void dicom_send_commit(dicom_mbox_t *mb, dicom_txn_t *txn, size_t len);
/* Give a reservation back.  The receiver never sees it (a sequence number
 * was taken, so the library sends a filler that the receiver skips). */
void dicom_send_cancel(dicom_mbox_t *mb, dicom_txn_t *txn);

/* ------------------------------------------------------------- receive --- */

/* A received packet.  For dicom_peek() `data` points into the inbox and
 * stays valid until dicom_release(). */
typedef struct dicom_msg {
    dicom_addr_t src;
    uint16_t tag;
    size_t len;
    void *data;
    void *priv[2];      /* library-private                   */
} dicom_msg_t;

/* Next packet in arrival order (per sender: send order), without copying.
 * Returns 1 and fills *msg, 0 if there is none, <0 on error.  At most one
 * packet may be peeked and not yet released at a time. */
int dicom_peek(dicom_mbox_t *mb, dicom_msg_t *msg);
void dicom_release(dicom_mbox_t *mb, dicom_msg_t *msg);

/* A batch of releases: dicom_release_defer() releases the packet but hands
 * its room in the inbox back to the senders only at dicom_release_flush()
 * (or a dicom_release, dicom_recv or dicom_arm), so that a reader that
 * drains a burst makes one locked instruction for all of it, not one per
 * packet.  Flush before you stop reading: senders see only the room handed
 * back.  Exactly-once holds across a move between the two (the packets
 * released and not yet handed back travel again and are dropped by their
 * sequence numbers). */
void dicom_release_defer(dicom_mbox_t *mb, dicom_msg_t *msg);
void dicom_release_flush(dicom_mbox_t *mb);

/* Copying receive.  from == NULL: the next packet from anyone; otherwise
 * the next packet from that sender (packets from others stay queued, in
 * order).  Blocking unless DICOM_NONBLOCK (-EAGAIN when nothing matches).
 * Copies min(len, cap) bytes into buf; returns the packet's full length
 * (so > cap means it was truncated).  `info` (may be NULL) gets src, tag, len;
 * its data pointer is set to buf. */
long dicom_recv(dicom_mbox_t *mb, const dicom_addr_t *from, void *buf, size_t cap,
                dicom_msg_t *info, int flags);

/* ------------------------------------------------------- notification --- */

/* A descriptor that becomes readable when a packet arrives after
 * dicom_arm() returned 0.  Usage: if (dicom_arm(mb) == 0) poll(fd);
 * then dicom_disarm(mb) (also drains the descriptor) and read packets. */
int dicom_fd(const dicom_mbox_t *mb);
int dicom_arm(dicom_mbox_t *mb);      /* 1: packets already waiting, 0: armed */
void dicom_disarm(dicom_mbox_t *mb);

/* ------------------------------------------------------ daemon events --- */

enum dicom_event_type {
    DICOM_EV_NONE = 0,
    DICOM_EV_DAEMON_LOST,      /* the local migrd went away: fatal         */
    DICOM_EV_UNREACHABLE,      /* packets to `addr` cannot be delivered    */
};

typedef struct dicom_event {
    enum dicom_event_type type;
    dicom_addr_t addr;
    char reason[160];
} dicom_event_t;

/* Non-blocking: fetch the next event from the local migrd.  Returns 1 and
 * fills *ev, 0 when there is none.  Cheap enough to call every few
 * milliseconds; it makes one system call. */
int dicom_poll_event(dicom_mbox_t *mb, dicom_event_t *ev);

/* Non-zero while the local migrd has work that a polling process should
 * not compete with: packets of ours still in the outbox, or the daemon
 * relaying right now (or polling for traffic, shortly after relaying).  A process that busy-polls and finds nothing should
 * then yield its CPU (sched_yield), so that the daemon -- which may share
 * the core -- gets it.  No system call; when nothing was sent to another
 * node since the outbox was last seen empty, it reads only the node page. */
int dicom_relay_pending(dicom_mbox_t *mb);

/* ---------------------------------------------------------- safe point --- */

/* Address of the word that is non-zero while this process is inside a
 * mailbox critical section (a ring write).  migrd reads the same word in
 * shared memory; exposed for diagnostics. */
const volatile uint32_t *dicom_critical_word(const dicom_mbox_t *mb);

/* ---------------------------------------------------------- statistics --- */

typedef struct dicom_stats {
    uint64_t sent_local, sent_remote;   /* packets                        */
    uint64_t received, duplicates, held; /* held: arrived early, reordered */
    uint64_t send_full;                 /* sends that found no room        */
} dicom_stats_t;
void dicom_get_stats(const dicom_mbox_t *mb, dicom_stats_t *st);

#ifdef __cplusplus
}
#endif
#endif /* MIGR_DICOM_H */
