/*
 * ctlmsg.h -- sending and receiving control-socket messages (wire.h, part 1).
 *
 * Owns: framing of one control message per SOCK_SEQPACKET datagram, passing
 * descriptors with SCM_RIGHTS, and the validation every received message
 * gets before anyone looks at its body.
 */
#ifndef MIGR_CTLMSG_H
#define MIGR_CTLMSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "wire.h"

/* Connect to a control socket; returns the descriptor (close-on-exec) or
 * -errno (-ENAMETOOLONG if the path does not fit a socket address). */
int ctl_connect(const char *path);

/* Send one message with up to CTL_MAX_FDS descriptors.  0 or -errno. */
int ctl_send(int fd, uint16_t type, uint32_t reqid, const void *body, uint32_t len,
             const int *fds, int nfds);

/* Receive one message into buf (at least CTL_MAX_MSG bytes).  Returns the
 * body length (>= 0), 0 with *eof set at end of stream, or -errno:
 * -EPROTO for a malformed message (bad magic, version, type, length, or
 * truncated).  Received descriptors are stored in fds[] (count in *nfds,
 * marked close-on-exec); on error none are left open.  flags: MSG_DONTWAIT. */
ssize_t ctl_recv(int fd, void *buf, size_t cap, int *fds, int *nfds, int *eof, int flags);

/* A listing answered with several records per message (CTL_LOG_MOVE,
 * CTL_PS_PROC, CTL_STATUS_NODE and CTL_STATUS_PROC): a whole listing in a few datagrams, which the requester's
 * socket buffer holds -- one message per record can fill it, and a
 * non-blocking send then fails half-way.  Records are added with
 * ctl_batch_add; ctl_batch_end sends what is left, then CTL_END. */
struct ctl_batch {
    int fd;
    uint16_t type;
    uint32_t reqid;
    uint32_t rec;            /* bytes of one record             */
    uint32_t used;           /* bytes in buf                    */
    char buf[CTL_MAX_MSG - sizeof(struct ctl_hdr)];
};
void ctl_batch_init(struct ctl_batch *b, int fd, uint16_t type, uint32_t reqid, uint32_t rec);
/* 0, or -errno when sending failed (the requester has gone). */
int ctl_batch_add(struct ctl_batch *b, const void *rec);
/* Records of another message type and size from now on (status: the
 * nodes, then the mailboxes); those added so far are sent first. */
int ctl_batch_retype(struct ctl_batch *b, uint16_t type, uint32_t rec);
int ctl_batch_end(struct ctl_batch *b);

/* Check that a received body has exactly the size of its struct. */
static inline int ctl_body_is(uint32_t len, size_t want) { return len == want; }

/* Human name of a message type, for logs. */
const char *ctl_type_name(unsigned type);

#endif
