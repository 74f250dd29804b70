/*
 * adopt.h -- a mailbox made from the snapshot of a process that moves here.
 *
 * Owns: making the new mailbox of a moving process in the shape its
 * snapshot says (the destination's side of the hand-over), and checking
 * and repairing the snapshot once it is copied in: the snapshot is the
 * process's own memory, so everything in it is checked; records that were
 * not complete when it was taken (a sender or a link half-way) are cut off
 * (the node the process left forwards them when they are complete), and the
 * daemon's own wake-up flags are reset.
 */
#ifndef MIGRD_ADOPT_H
#define MIGRD_ADOPT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct mbox;
struct mbox_shared;
struct postal;

/* snap: page 0 of the process's mailbox mapping of map_len bytes. */
int mbox_adopt_new(struct postal *d, const struct mbox_shared *snap, uint64_t map_len, pid_t pid,
                   uid_t uid, struct mbox **out, char *why, size_t wl);

/* The snapshot is in m->map: 0, or -1 with why (then discard m). */
int mbox_adopt_check(struct mbox *m, char *why, size_t wl);

#endif
