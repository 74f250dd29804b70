/*
 * dicom_internal.h -- state of a DiCOM mailbox inside the client library.
 *
 * Owns: struct dicom_mbox and the per-peer state:
 *   - tx peers (one per destination): the sequence number of the next packet
 *     and the route to it (the peer's inbox mapped here, or our outbox);
 *   - rx peers (one per sender): the next sequence number expected and the
 *     packets that arrived early.
 * Both live in this process's memory, so they move with it.
 */
#ifndef DICOM_INTERNAL_H
#define DICOM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <migr/dicom.h>
#include "../common/addrmap.h"
#include "../common/mbox.h"
#include "../common/ring.h"
#include "../common/wire.h"

enum route { ROUTE_UNKNOWN = 0, ROUTE_LOCAL, ROUTE_REMOTE };

struct tx_peer {
    dicom_addr_t addr;
    atomic_flag lock;          /* seq assignment + ring reservation       */
    uint64_t next_seq;
    enum route route;
    struct ring ring;          /* LOCAL: the peer's inbox                 */
    struct mbox_shared *peer_sh;
    void *map;
    size_t map_len;
    int bell_fd;               /* LOCAL: the peer's doorbell              */
    uint64_t checked_ns;       /* REMOTE: when we last asked migrd        */
};

/* A packet kept in our memory: arrived early, or set aside by a filtered
 * receive.  The payload follows. */
struct kept_pkt {
    struct kept_pkt *next;
    dicom_addr_t src;
    uint64_t seq;
    uint16_t tag, kind;
    uint32_t len;
};

struct rx_peer {
    dicom_addr_t addr;
    uint64_t expected;         /* next sequence number to accept          */
    struct kept_pkt *held;     /* early packets, sorted by seq            */
};

/* A route given up while another thread may still write through it: the
 * mapping and doorbell stay valid until dicom_close(). */
struct retired_route {
    struct retired_route *next;
    void *map;
    size_t map_len;
    int bell_fd;
};

struct event_node {
    struct event_node *next;
    dicom_event_t ev;
};

struct dicom_mbox {
    dicom_addr_t self;
    char node[64];
    int ctl_fd;
    pthread_mutex_t ctl_lock;  /* the control connection                  */
    uint32_t next_reqid;
    struct event_node *events, **events_tail;
    bool daemon_lost;

    void *map;
    size_t map_len;
    struct mbox_shared *sh;
    const struct node_shared *node_page; /* read-only: migrd's relay state */
    struct ring inbox, outbox;
    int my_bell, daemon_bell;
    size_t max_payload;
    bool lazy_rings;                /* dicom_open_opts_t.lazy_rings    */
    bool single_thread;             /* dicom_open_opts_t.single_thread */
    atomic_flag outbox_populated;   /* set once the outbox was populated */
    _Atomic uint64_t outbox_seen_empty; /* st.sent_remote when the outbox
                                           was last seen empty (relay_pending) */

    pthread_mutex_t tx_insert_lock; /* also guards `retired`          */
    struct retired_route *retired;
    struct addrmap tx;         /* addr -> struct tx_peer                  */
    struct addrmap rx;         /* addr -> struct rx_peer (consumer only)  */

    /* Consumer side: accepted packets waiting to be read, in order. */
    struct kept_pkt *ready, **ready_tail;
    struct dicom_pkt *peeked;  /* ring record handed out by dicom_peek    */

    /* Statistics: bumped without locked instructions (STAT_INC), so a
     * count may miss an increment when threads race; fine for figures. */
    struct {
        _Atomic uint64_t sent_local, sent_remote, send_full;
        uint64_t received, duplicates, held;
    } st;
};

#define STAT_INC(x) \
    atomic_store_explicit(&(x), atomic_load_explicit(&(x), memory_order_relaxed) + 1, memory_order_relaxed)

/* dicom_ctl.c */
/* Fault [addr, addr+len) of a shared mapping in now, writable, unless the
 * mailbox was opened with lazy_rings: advisory, a kernel without
 * MADV_POPULATE_WRITE (< 5.14) or a failure leaves the pages to be faulted
 * in on first use, as without it. */
void dicom_populate(const dicom_mbox_t *mb, void *addr, size_t len);
void dicom_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int dicom_ctl_request(dicom_mbox_t *mb, uint16_t type, const void *body, uint32_t len,
                      uint16_t want, void *reply, uint32_t reply_len, int *fds, int *nfds);
int dicom_ctl_connect(const char *path, int timeout_ms);
void dicom_ring_bell(int fd);
void dicom_ctl_pump(dicom_mbox_t *mb);
uint64_t dicom_now_ns(void);

/* dicom_send.c */
void dicom_tx_release_all(dicom_mbox_t *mb);

/* dicom_recv.c */
void dicom_rx_release_all(dicom_mbox_t *mb);

#endif
