/*
 * adopt.h -- a mailbox made from the snapshot of a process that moves here.
 *
 * Owns: the rings' side of the hand-over: on the source, which records of
 * a ring are complete (read as its consumer would, so that no record is
 * taken half-written by a sender that goes on writing); on the
 * destination, placing them at the same positions in the new mailbox's
 * rings and checking them (they come from memory its owner can write).
 */
#ifndef MIGRD_ADOPT_H
#define MIGRD_ADOPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mbox;
struct ring;

/* Source: the complete records of r from its head, read with the ring's
 * discipline (a record counts once its commit word says so): [head,
 * head + len).  Producers may go on: what they add is the exile's.  The
 * head is migrd's own position when migrd consumes r (the outbox), else
 * the process's. */
void mbox_ring_complete(const struct ring *r, bool migrd_consumes, uint64_t *head, uint64_t *len);
/* Bytes of r at ring positions [pos, pos + len), out and in. */
void mbox_ring_read(const struct ring *r, uint64_t pos, void *buf, size_t len);
void mbox_ring_write(struct ring *r, uint64_t pos, const void *buf, size_t len);
/* Destination: the ring holds [head, tail) (written with mbox_ring_write). */
void mbox_ring_place(struct ring *r, uint64_t head, uint64_t tail);

/* The records are in m's rings: check them.  0, or -1 with why (then
 * discard m). */
int mbox_adopt_check(struct mbox *m, char *why, size_t wl);

#endif
