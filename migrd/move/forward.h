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
 *
 * Shared files (forward_file.c): a regular file whose open file description
 * the process shares with its home (a shell redirect it and its stub
 * inherited) is not relayed but keeps one offset.  At the first move the
 * home keeps the original; the offset travels in the image; where the
 * process runs, migrd keeps a copy of the description it was restored with
 * and hands its offset back (FILEPOS) when the process leaves or ends
 * there; coming home, the process is given the original again.
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

/* ---- shared files (forward_file.c) ---- */
struct fwd_files {
    uint32_t n;
    struct { uint32_t id; int fd; } f[MIG_MAX_FILES];
};
void fwd_files_init(struct fwd_files *fs);
/* Keep fd (taken, closed on failure) as file id: 0, or -1 (full, or id 0
 * or known: errno ENOSPC / EEXIST). */
int fwd_files_add(struct fwd_files *fs, uint32_t id, int fd);
/* Our descriptor of file id, or -1. */
int fwd_files_fd(const struct fwd_files *fs, uint32_t id);
/* The id of the file of fs that fd of pid is (the same open file
 * description), or 0. */
uint32_t fwd_files_id_of(const struct fwd_files *fs, pid_t pid, int fd);
/* Whether process `other` holds the open file description that is fd of
 * pid: 1, 0, or -1 (kcmp failed). */
int fwd_file_shared(pid_t pid, int fd, pid_t other);
/* A FILEPOS frame on c for each file, with our descriptor's offset. */
void fwd_files_send_pos(const struct fwd_files *fs, struct fconn *c, pid_t pid);
/* Set our descriptor's offset as a FILEPOS frame says. */
struct mig_filepos;
void fwd_files_set_pos(const struct fwd_files *fs, const struct mig_filepos *fp, pid_t pid);
void fwd_files_close(struct fwd_files *fs);

/* ---- home: the anchor ---- */
struct fwd_anchor *fwd_anchor_new(struct move *d, struct mproc *p);
/* Take ownership of orig_fd as channel chan (dir: enum mig_dir bits). */
int fwd_anchor_add(struct fwd_anchor *a, uint32_t chan, int orig_fd, uint32_t dir);
/* Take ownership of orig_fd, the original of shared file id. */
int fwd_anchor_add_file(struct fwd_anchor *a, uint32_t id, int orig_fd);
/* The original of shared file id, or -1. */
int fwd_anchor_file(const struct fwd_anchor *a, uint32_t id);
/* Across a restart of the home's migrd: hand every original to the stub
 * (CTL_PROC_HOLD parts, head says the process, where it runs and its
 * moves): 0 or -1; and, in the next migrd, take them back part by part
 * (fds taken; after the last part it starts relaying): 0 or -1.  An
 * anchor being taken back is not ready for its location's HELLO. */
struct ctl_proc_hold;
int fwd_anchor_hold(struct fwd_anchor *a, int stub_fd, const struct ctl_proc_hold *head);
int fwd_anchor_take_back(struct fwd_anchor *a, const struct ctl_proc_hold *h, int *fds);
bool fwd_anchor_ready(const struct fwd_anchor *a);
/* Whether the anchor has a location in service (so nothing it read at
 * home waits unsent): false between two locations of a move. */
bool fwd_anchor_in_service(const struct fwd_anchor *a);
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
/* Keep fd (taken), the description of shared file id the process has here. */
int fwd_ep_add_file(struct fwd_ep *ep, uint32_t id, int fd);
/* Which shared file fd of the (frozen) process is, 0 if none. */
uint32_t fwd_ep_file_of(const struct fwd_ep *ep, int fd);
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
/* The process left this node (moved): end the connection in order (input
 * that came after its unread input was taken goes back home first); the
 * endpoint frees itself once the home acknowledged. */
void fwd_ep_detach(struct fwd_ep *ep, uint64_t frozen_us);
/* The move failed after the unread input was taken: the process, thawed
 * here, reads it and what came meanwhile. */
void fwd_ep_move_failed(struct fwd_ep *ep);
/* The process ended here with wait status `status`. */
void fwd_ep_exited(struct fwd_ep *ep, int status);
void fwd_ep_free(struct fwd_ep *ep);
/* How many endpoints left by their processes still wait for the home to
 * take their last frames (END_ACK). */
unsigned fwd_ep_lingering(void);
/* Its connection to the process's home (NULL if none); it outlives a detach
 * until the home has acknowledged the end. */
struct fconn *fwd_ep_home_conn(const struct fwd_ep *ep);
/* Channel table for the move stream. */
uint32_t fwd_ep_channels(const struct fwd_ep *ep, struct mig_chan *out, uint32_t cap);

#endif
