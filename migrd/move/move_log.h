/*
 * move_log.h -- the move log: the last MOVE_LOG_MAX moves out of this node.
 *
 * Owns: a bounded ring of finished moves (done or refused), each as the
 * record `migrctl log` shows (struct ctl_log_move, common/wire.h), and
 * sending them to a requester, filtered by owner as `ps` is: a user gets
 * the moves of their own processes, root gets all.  The oldest record is
 * overwritten once the ring is full; nothing is written to disk (migrd's
 * own log keeps a line per move).
 */
#ifndef MIGRD_MOVE_LOG_H
#define MIGRD_MOVE_LOG_H

#include <stdint.h>
#include <sys/types.h>

#include "common/wire.h"

#define MOVE_LOG_MAX 256

/* Keep a copy of r (its seq is assigned here). */
void move_log_add(const struct ctl_log_move *r);

/* Send the records uid may see, oldest first, then CTL_END, on fd.  0, or
 * -errno when sending failed (the requester has gone). */
int move_log_send(int fd, uint32_t reqid, uid_t uid);

/* Milliseconds since the epoch (CLOCK_REALTIME), for start_unix_ms. */
uint64_t move_log_now_unix_ms(void);

#endif
