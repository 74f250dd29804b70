/*
 * postal.h -- the postal office: routing and delivering packets.
 *
 * Owns: draining each local outbox in order, deciding for every packet
 * whether it goes into a local inbox, onto the link of another node, or
 * waits for its address to be located; and writing packets that arrive from
 * other nodes into local inboxes.  A packet is consumed from an outbox only
 * once it is in an inbox, written to a link, or copied into migrd's memory:
 * nothing is dropped except packets for a mailbox that has closed.
 */
#ifndef MIGRD_POSTAL_H
#define MIGRD_POSTAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/ring.h"

struct mbox;
struct postal;

/* Relay whatever m's outbox holds (called on its doorbell and on resume). */
void postal_drain(struct mbox *m);
/* m's outbox is relayed no more (its owner moved away, its records with
 * it): m stops waiting for room in another inbox.  A record a link is
 * writing still completes (m->tx_busy until then). */
void postal_stop_outbox(struct mbox *m);

/* A packet held in migrd's memory (kept copy) is to be sent to `node`, or
 * delivered locally if the address is here.  Takes ownership of `copy`
 * (a malloc'd struct dicom_pkt followed by its payload). */
void postal_send_copy(struct postal *d, struct dicom_pkt *copy);

/* Tell the sender of k (if it is local) that k cannot be delivered. */
void postal_unreachable(struct postal *d, const struct dicom_pkt *k, const char *why);

/* A malloc'd copy of a record: hdr (a private copy of its header, whose
 * len was checked) and hdr->len bytes of payload, vouched for by `uid`: the
 * user this node knows sent it (the owner of the outbox it left, or of the
 * job whose inbox took it).  A copy never reaches shared memory as it is
 * (mbox_deliver writes a new header), so its header's flags word carries
 * that uid: postal_copy_uid(). */
struct dicom_pkt *postal_copy(const struct dicom_pkt *hdr, const void *payload, uid_t uid);
static inline uid_t postal_copy_uid(const struct dicom_pkt *c) { return (uid_t)c->flags; }

/* A packet vouched for by uid, for job: may it go in (jobs.h)?  If not,
 * logs one line (the first refusal of each sender) and says no. */
bool postal_may_enter(struct postal *d, uid_t uid, const struct dicom_pkt *k, const char *via);

#endif
