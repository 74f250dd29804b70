/*
 * link.h -- the connections between this node's migrd and the others.
 *
 * Owns: one TCP connection per pair of nodes (the node listed first in the
 * map connects, the other accepts; reconnecting with back-off), the HELLO
 * handshake, framing of everything sent (wire.h, part 2) and the checks on
 * everything received: a malformed or oversized frame closes that
 * connection, with an error in the log, and nothing else.  DATA frames are
 * written straight from the sender's outbox and read straight into the
 * receiver's inbox.
 */
#ifndef MIGRD_LINK_H
#define MIGRD_LINK_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ring.h"

struct postal;
struct mbox;
struct ctl_status_node;

int link_init(struct postal *d);   /* listen and start connecting; 0 or -errno */
void link_fini(struct postal *d);

bool link_is_up(struct postal *d, int node);

/* Relay outbox record k of m to `node` without copying its payload (k: the
 * private copy of its header from ring_take, payload: k->len bytes in the
 * outbox).  0: taken — the link releases it from the outbox when written,
 * then calls postal_drain(m); -ENOTCONN: the link is down (the caller
 * keeps a copy instead). */
int link_send_record(struct postal *d, int node, struct mbox *m, const struct dicom_pkt *k,
                     const void *payload);

/* Send a kept copy (ownership passes to the link).  While the link is down
 * it waits; when the node stays unreachable too long it is refused. */
void link_send_copy(struct postal *d, int node, struct dicom_pkt *copy);

/* Control frames (ANNOUNCE, GONE, LOCATE, ...). */
void link_send_ctl(struct postal *d, int node, uint8_t type, const void *body, uint32_t len);
void link_broadcast(struct postal *d, uint8_t type, const void *body, uint32_t len);

/* For `migrctl status`. */
void link_status(struct postal *d, int node, struct ctl_status_node *out);

#endif
