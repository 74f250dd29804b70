/*
 * migrate_postal.h -- the DiCOM mailbox of a moving process (the hand-over).
 *
 * Owns: both sides of carrying a process's mailbox to its new node.
 * Source: find the process's mailbox, wait for its safe point (it is not
 * inside a DiCOM send: the library marks those in the mailbox's `critical`
 * word), find the mailbox's objects in the image (its control connection,
 * the two doorbells, the mapping of the mailbox, the node page, the
 * mappings of other inboxes of this node it writes into), describe them
 * to the destination (MIG_POSTAL), and once the destination has
 * acknowledged, exile the old mailbox (postal/exile.h).
 * Destination: make a new mailbox from the process's snapshot of its own
 * (same rings, same records: the library's pointers stay valid, since it
 * is mapped at the same address), give the restore its objects instead of
 * recreating or forwarding them, turn the other inboxes into private pages
 * that say "closed" (the library looks its routes up again), and open the
 * mailbox once the process runs.  doc/ARCHITECTURE.md explains the choice.
 */
#ifndef MIGRD_MIGRATE_POSTAL_H
#define MIGRD_MIGRATE_POSTAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "migrate_proto.h"

struct move;
struct mbox;
struct engine_frozen;
struct engine_image;

/* ---- source ---- */
/* The live mailbox of pid on this node, or NULL. */
struct mbox *mpostal_mailbox(struct move *d, pid_t pid);
/* *fz is frozen: refreeze until m's owner is outside a critical section.
 * 0, or -1 with why (*fz is then NULL: the process runs). */
int mpostal_safe_point(struct move *d, pid_t pid, struct engine_frozen **fz, char *why, size_t wl);
/* Refuse (-1, why) a process holding a control connection to migrd other
 * than its mailbox's pm (or any, without one): it is opening a mailbox, and
 * the reply's descriptors could not follow it through its home. */
int mpostal_check_connections(struct move *d, const struct mbox *pm, struct engine_image *img, char *why,
                              size_t wl);
/* Describe m's objects in img (captured lazily from frozen pid); the other
 * inboxes' mappings become private memory of one page.  0, or -1 with why. */
int mpostal_describe(struct move *d, struct mbox *m, struct engine_image *img, struct mig_postal *out,
                     char *why, size_t wl);
/* The records of m's rings, as POSTAL_RING frames (after POSTAL). */
int mpostal_send_rings(int fd, struct mbox *m);
/* Is fd (of the process) handed over rather than forwarded? */
bool mpostal_owns_fd(const struct mig_postal *mp, int fd);
/* The destination acknowledged: the old mailbox forwards from now on. */
void mpostal_exile(struct move *d, struct mbox *m, int dest);

/* ---- destination ---- */
struct mpostal_in {
    struct mbox *m;
    bool inbox_seen, outbox_seen;
    uint64_t ring_head[2], ring_off[2];
    int sv[2];                 /* the process's control connection   */
    int node_ro;               /* the node page, read-only           */
    uid_t uid;
};
void mpostal_in_init(struct mpostal_in *in);
/* POSTAL arrived (before the image): make the mailbox, unregistered. */
int mpostal_begin(struct move *d, const struct mig_postal *mp, pid_t pid, struct mpostal_in *in, char *why,
                  size_t wl);
/* A POSTAL_RING frame: records into the new mailbox's rings. */
int mpostal_ring(struct mpostal_in *in, const void *body, uint32_t len, char *why, size_t wl);
/* The image arrived: check the mailbox and give img its objects. */
int mpostal_prepare(struct move *d, const struct mig_postal *mp, struct engine_image *img,
                    struct mpostal_in *in, char *why, size_t wl);
/* The process runs: open its mailbox (0, or -1 logged). */
int mpostal_open(struct move *d, struct mpostal_in *in, pid_t pid);
/* Undo mpostal_prepare (also after mpostal_open: closes what is left). */
void mpostal_in_free(struct mpostal_in *in);
/* The most bytes a moving mailbox's rings may bring (both at this node's
 * largest ring size). */
uint64_t mpostal_max_rings_bytes(const struct move *d);

#endif
