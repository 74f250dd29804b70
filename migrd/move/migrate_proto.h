/*
 * migrate_proto.h -- the migration port: one TCP connection per move, and one
 * per forwarding channel set (location -> home).
 *
 * Owns: the frame layout of that port and its checks.  The port is the
 * node's link port + 1 (separate from link.c's postal link).  Every frame is
 * a mig_hdr (magic, version, type, body length, channel) and a body of at
 * most MIG_MAX_BODY bytes; a receiver refuses anything else and drops the
 * connection.  The engine image itself travels raw after MIG_IMAGE: it is
 * self-delimiting and checked by engine_image_read().
 *
 * A move (source -> destination):
 *   OFFER -> ACCEPT | REFUSE(reason)
 *   CHANMAP, INPUT*, INPUT_EOF*, [FILEMAP], [POSTAL, POSTAL_RING+], [LAZY_DIR+], IMAGE +
 *   raw image
 *   -> RESTORED | FAILED(reason)
 *   a lazy move (offer mode lazy, LAZY_DIR: the page runs left at the
 *   source), after RESTORED: destination PAGE_REQ -> source PAGES, until
 *   the destination's PAGES_DONE (migrd/pager/pager.h has the bodies)
 * A forwarding connection (where the process runs -> its home):
 *   HELLO(pid, gen), then both ways DATA/EOF per channel; location -> home:
 *   FILEPOS (the offset of a shared file, before END and EXIT), EXIT, END (left
 *   this node), RETURN (input that came too late), MOVE_RESULT;
 *   home -> location: SIGNAL, MOVE, END_ACK.
 */
#ifndef MIGRD_MIGRATE_PROTO_H
#define MIGRD_MIGRATE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "migrd/cluster/cpu_features.h"
#include "creds_check.h"

#define MIG_MAGIC    0x47494d4du /* "MMIG" */
#define MIG_VERSION  7
#define MIG_MAX_BODY (1u << 20)
#define MIG_MAX_CHAN 16          /* forwarded descriptors per process */
#define MIG_MAX_FILES 16         /* files shared with the home per process */

enum mig_type {
    MIG_OFFER = 1, MIG_ACCEPT, MIG_REFUSE, MIG_CHANMAP, MIG_INPUT, MIG_INPUT_EOF, MIG_IMAGE,
    MIG_RESTORED, MIG_FAILED,
    FWD_HELLO, FWD_DATA, FWD_EOF, FWD_EXIT, FWD_SIGNAL, FWD_END, FWD_END_ACK, FWD_RETURN,
    FWD_MOVE, FWD_MOVE_RESULT,
    MIG_POSTAL, MIG_POSTAL_RING, MIG_FILEMAP, FWD_FILEPOS,
    MIG_LAZY_DIR, MIG_PAGE_REQ, MIG_PAGES, MIG_PAGES_DONE,
    FWD_WELCOME, /* the home took a location's HELLO (what it sends now is not lost) */
    MIG_TYPE_MAX
};

struct mig_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t len;    /* body bytes after the header   */
    uint32_t chan;   /* channel of DATA/EOF/INPUT      */
};

struct mig_offer {
    int32_t pid;
    uint32_t home;          /* node index in the cluster map   */
    uint32_t gen;           /* number of moves so far          */
    uint32_t flags;
    uint32_t job, rank;     /* with CTL_PROC_RANK in flags     */
    uint32_t uid;           /* its owner (real uid)            */
    uint32_t mode;          /* enum ctl_move_mode (not default) */
    uint64_t mem_bytes;     /* resident memory of the process  */
    char kernel[64];
    char cmd[64];
    char user[CREDS_USER_MAX]; /* uid's name at the source ("": none) */
    struct cpu_features cpu; /* of the source: the destination needs them all */
};

/* why a move failed: text, NUL-terminated, at most this long */
#define MIG_REASON_MAX 200

enum mig_dir { MIG_DIR_OUT = 1, MIG_DIR_IN = 2 }; /* seen from the process */

struct mig_chan {
    int32_t fd;             /* number of the first fd using it */
    uint32_t chan;
    uint32_t dir;           /* enum mig_dir bits               */
    uint32_t pad;
};

/* A regular file whose open file description the process shares with its
 * home (forward_file.c): fd is its number in the image (the first of its
 * dups), id names the description for the process's whole life.  FILEMAP
 * is an array of them; FILEPOS says where the description's offset is
 * where the process runs, so the home sets its original's. */
struct mig_file {
    int32_t fd;
    uint32_t id;
};
struct mig_filepos {
    uint32_t id;
    uint32_t pad;
    uint64_t pos;
};

/* The DiCOM mailbox of the process (migrate_postal.c): where its objects
 * are in the image, so that the destination gives it its own. */
#define MIG_MAX_PEERS 256
struct mig_postal {
    uint32_t job, rank;
    int32_t ctl_fd;         /* the control connection to migrd        */
    int32_t bell_fd;        /* its doorbell, migrd's doorbell (or -1)  */
    int32_t dbell_fd;
    uint32_t npeers;
    uint32_t inbox_size, outbox_size; /* its rings                    */
    uint64_t mbox_start, mbox_len; /* the mapping of the mailbox       */
    uint64_t node_start;    /* the node page's mapping, 0: none        */
    uint64_t peers[MIG_MAX_PEERS]; /* mappings of other inboxes of the
                               node it leaves: private memory there    */
};

/* The records of one ring of the mailbox, as the source's daemon read them
 * with the ring's own discipline (complete records only): a header and up
 * to MIG_RING_CHUNK bytes, from position head + off; every ring comes in
 * one or more frames (total 0: an empty ring at head). */
enum mig_ring_which { MIG_RING_INBOX = 0, MIG_RING_OUTBOX = 1 };
struct mig_ring {
    uint32_t which;
    uint32_t consumer_waiting; /* the consumer sleeps on its doorbell  */
    uint64_t head, off, total;
};
#define MIG_RING_CHUNK (MIG_MAX_BODY - (uint32_t)sizeof(struct mig_ring))

struct mig_hello {
    int32_t pid;
    uint32_t gen;
    uint32_t home;
    uint32_t node;          /* where the process runs          */
    uint32_t uid;           /* its real uid (the home's record must agree) */
};

struct mig_exit { int32_t status; };
struct mig_signal { int32_t sig; };
struct mig_end { uint64_t frozen_us; };
/* by_uid: who asked the home for the move (it checked), for the log. */
struct mig_move { uint32_t reqid; uint32_t inject; uint32_t by_uid; uint32_t mode; char node[64]; };
struct mig_move_result {
    uint32_t reqid;
    int32_t ok;
    uint64_t bytes, frozen_us, total_us;
    char message[MIG_REASON_MAX];
};

/* Check a received header; 0 or -1 (with why). */
int mig_hdr_check(const struct mig_hdr *h, const char **why);
const char *mig_type_name(unsigned type);

/* Blocking frame I/O on a socket with timeouts set: 0 or -1, errno set.
 * mig_recv checks the header and reads the body into buf (cap bytes).
 * On a socket with a session (mig_auth.h) every frame is followed by its
 * MAC: mig_send adds it, mig_recv fails with EBADMSG if it is wrong. */
int mig_send(int fd, uint16_t type, uint32_t chan, const void *body, uint32_t len);
int mig_recv(int fd, struct mig_hdr *h, void *buf, size_t cap);
int mig_write_all(int fd, const void *buf, size_t len);
/* The MAC of a frame sent with session s (also forward_conn.c). */
struct auth_session;
int mig_frame_tag(struct auth_session *s, const struct mig_hdr *h, const void *body, uint8_t tag[16]);
int mig_read_all(int fd, void *buf, size_t len);

/* Connect to port of node n (its map address, node_addr.h) within
 * timeout_ms; the socket is blocking with send and receive timeouts of
 * io_timeout_ms.  fd, or -errno (-EINVAL: the address does not resolve). */
struct cfg_node;
int mig_connect(const struct cfg_node *n, unsigned port, int timeout_ms, int io_timeout_ms);
int mig_set_timeouts(int fd, int io_timeout_ms);
/* Options of a move's connection: large socket buffers (best effort), and
 * a dead peer or link is noticed within MIG_DEAD_PEER_MS, whether data is
 * in flight (TCP_USER_TIMEOUT) or not (keepalive: the source waiting for
 * the restore, the destination for the image), not only at the I/O
 * timeouts.  0, or -1 with errno when that cannot be set. */
#define MIG_DEAD_PEER_MS 5000
int mig_stream_opts(int fd);

#endif
