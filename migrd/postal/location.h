/*
 * location.h -- where the mailboxes of other nodes are.
 *
 * Owns: the cache (job, rank) -> node, learnt from ANNOUNCE and GONE frames;
 * packets for an address nobody has claimed yet (kept, LOCATE asked of every
 * node, sent on as soon as one answers, refused after a timeout); telling
 * the other nodes when a local mailbox opens or closes.
 */
#ifndef MIGRD_LOCATION_H
#define MIGRD_LOCATION_H

#include <stdint.h>
#include <sys/types.h>

#include "common/ring.h"

struct postal;

enum loc_kind { LOC_UNKNOWN = 0, LOC_NODE, LOC_GONE };

int location_init(struct postal *d);
void location_fini(struct postal *d);

/* LOC_NODE fills *node. */
enum loc_kind location_lookup(struct postal *d, uint32_t job, uint32_t rank, int *node);

/* Keep a copy of packet k (a private header copy; its payload follows at
 * `payload`), vouched for by uid (postal_copy), for an unknown address
 * until it is located. */
int location_hold(struct postal *d, const struct dicom_pkt *k, const void *payload, uid_t uid);

/* What other nodes say. */
void location_learn(struct postal *d, uint32_t job, uint32_t rank, int node);
void location_gone(struct postal *d, uint32_t job, uint32_t rank, int node);

/* Local mailboxes opening and closing. */
/* uid: the owner of the new mailbox (in its ANNOUNCE). */
void location_local_added(struct postal *d, uint32_t job, uint32_t rank, uid_t uid);
void location_local_removed(struct postal *d, uint32_t job, uint32_t rank);

/* A link came up: tell that node about every local mailbox, ask it about
 * every address still unknown. */
void location_link_up(struct postal *d, int node);

#endif
