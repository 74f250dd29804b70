/*
 * forward.h -- home forwarding of descriptors that lead outside a process.
 *
 * Two halves:
 *  - the anchor (forward_home.c), at the process's home: holds the original
 *    open file descriptions (stdio pipes, pipes to processes at home, ...)
 *    taken from the process at its first move, and relays them to the one
 *    forwarding connection of the node where the process runs now;
 *  - the endpoint (forward_ep.c), where the process runs after a move: a pipe
 *    (or socketpair for read-write descriptors) per channel whose far end is
 *    installed in the process at the original fd number; migrd relays the
 *    near end over a TCP connection straight to the home (A->B->C forwards
 *    C<->A; B is never in the path).
 * Order across a move: the old location drains what the process wrote and
 * sends END; the home holds the new location's frames until the old
 * connection is closed; input that reached the old location too late comes
 * back (RETURN) and is sent first to the new one; unread input travels with
 * the image (MIG_INPUT).
 */
#ifndef MIGRD_FORWARD_H
#define MIGRD_FORWARD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "migrate_proto.h"

struct move;
struct mproc;
struct fconn;
struct fwd_anchor;
struct fwd_ep;
struct evbuffer;

/* ---- home: the anchor ---- */
struct fwd_anchor *fwd_anchor_new(struct move *d, struct mproc *p);
/* Take ownership of orig_fd as channel chan (dir: enum mig_dir bits). */
int fwd_anchor_add(struct fwd_anchor *a, uint32_t chan, int orig_fd, uint32_t dir);
/* Start reading the input originals (after the first move succeeded). */
int fwd_anchor_start(struct fwd_anchor *a);
void fwd_anchor_free(struct fwd_anchor *a);
uint32_t fwd_anchor_nchan(const struct fwd_anchor *a);
/* A forwarding connection said HELLO for this anchor's process. */
void fwd_anchor_attach(struct fwd_anchor *a, struct fconn *c, uint32_t gen);
/* Deliver a signal wherever the process runs: 0, or -1 if it cannot now. */
int fwd_anchor_signal(struct fwd_anchor *a, int sig);
/* Ask the node where the process runs to move it; the answer goes to the
 * control connection reply_fd (taken) with reqid; `by` asked (the home
 * checked that it may).  0 or -1 (not connected). */
int fwd_anchor_move(struct fwd_anchor *a, int reply_fd, uint32_t reqid, uint32_t inject, uint32_t mode,
                    const char *node, uid_t by);

/* ---- where the process runs: the endpoint ---- */
struct fwd_ep *fwd_ep_new(struct move *d, struct mproc *p);
/* Create channel chan; *proc_end gets the descriptor to install in the
 * process (the caller closes it after the restore). */
int fwd_ep_add(struct fwd_ep *ep, uint32_t chan, uint32_t dir, int *proc_end);
/* Input that the process had not read when it left the previous node. */
int fwd_ep_prefill(struct fwd_ep *ep, uint32_t chan, const void *data, uint32_t len);
int fwd_ep_prefill_eof(struct fwd_ep *ep, uint32_t chan);
/* Which channel leads to the pipe/socket with this inode; -1 if none. */
int fwd_ep_chan_of(const struct fwd_ep *ep, uint64_t ino, uint32_t *chan, uint32_t *dir);
/* Open the connection to the home and start relaying. */
int fwd_ep_start(struct fwd_ep *ep, uint32_t gen);
/* While the process is frozen: send its written output home now; put its
 * unread input (and whether the home sent EOF) into out, one MIG_INPUT
 * frame body per channel via the callback. */
int fwd_ep_drain_output(struct fwd_ep *ep);
int fwd_ep_unread_input(struct fwd_ep *ep, uint32_t chan, struct evbuffer *out, bool *eof);
/* The process left this node (moved): end the connection in order; the
 * endpoint frees itself once the home acknowledged. */
void fwd_ep_detach(struct fwd_ep *ep, uint64_t frozen_us);
/* The process ended here with wait status `status`. */
void fwd_ep_exited(struct fwd_ep *ep, int status);
void fwd_ep_free(struct fwd_ep *ep);
/* Its connection to the process's home (NULL if none); it outlives a detach
 * until the home has acknowledged the end. */
struct fconn *fwd_ep_home_conn(const struct fwd_ep *ep);
/* Channel table for the move stream. */
uint32_t fwd_ep_channels(const struct fwd_ep *ep, struct mig_chan *out, uint32_t cap);

#endif
