/*
 * wire.h -- the two protocols migr speaks, and their version.
 *
 * Owns: message layouts of
 *   (1) the control socket (Unix SOCK_SEQPACKET, one message per datagram,
 *       file descriptors passed with SCM_RIGHTS) between a local process
 *       (DiCOM library, migrctl) and migrd;
 *   (2) the inter-node link (TCP, one connection per pair of nodes), a stream
 *       of frames.
 * Both start every message with a header carrying a magic and a version;
 * a receiver refuses anything else (and, on the inter-node link, drops the
 * connection).  All integers are little-endian host order (x86_64 clusters);
 * the version is bumped whenever a layout changes.
 */
#ifndef MIGR_WIRE_H
#define MIGR_WIRE_H

#include <stdint.h>

#define MIGR_PROTO_VERSION 5

/* ------------------------------------------------------ control socket --- */

#define CTL_MAGIC   0x4c54434du /* "MCTL" */
#define CTL_MAX_MSG 65536u      /* largest control message, header included */
#define CTL_MAX_FDS 4

enum ctl_type {
    CTL_REGISTER = 1,     /* client -> migrd: open my mailbox           */
    CTL_REGISTERED,       /* reply + fds: memfd, my doorbell, migrd's
                             doorbell, the node page                    */
    CTL_LOOKUP,           /* where is (job, rank)?                      */
    CTL_LOOKUP_REPLY,     /* + fds memfd, doorbell when local           */
    CTL_STATUS,           /* migrctl: node and processes                */
    CTL_STATUS_NODE,      /* nodes known, this one first (several per
                             message: N struct ctl_status_node)         */
    CTL_STATUS_PROC,      /* registered processes, after the nodes
                             (N struct ctl_status_proc), then CTL_END   */
    CTL_END,              /* end of a multi-message reply               */
    CTL_EVENT,            /* migrd -> client, unsolicited               */
    CTL_ERROR,            /* reply: the request was refused             */
    CTL_PROC_REGISTER,    /* home stub: I am the deputy of this pid     */
    CTL_PROC_EVENT,       /* migrd -> home stub: moved, exited          */
    CTL_PROC_SIGNAL,      /* home stub: deliver a signal wherever it runs */
    CTL_PROC_DONE,        /* home stub: its process ended at home       */
    CTL_MIGRATE,          /* migrctl: move a process to a node          */
    CTL_MIGRATE_DONE,     /* reply: the move succeeded                  */
    CTL_PS,               /* migrctl: migratable processes known here   */
    CTL_PS_PROC,          /* processes (several per message: the body
                             is N struct ctl_ps_proc), then CTL_END     */
    CTL_OK,               /* reply: done, nothing to say                */
    CTL_PROC_HOLD,        /* migrd -> home stub at a stop: keep what the
                             home holds of a moved process (+ fds);
                             home stub -> the next migrd: take it back  */
    CTL_LOG,              /* migrctl: the moves out of this node        */
    CTL_LOG_MOVE,         /* moves, oldest first (several per message:
                             the body is N struct ctl_log_move), then
                             CTL_END                                    */
    CTL_TYPE_MAX
};

struct ctl_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t len;   /* bytes of body after this header */
    uint32_t reqid; /* echoed in replies; 0 for events  */
};

struct ctl_register {
    uint32_t job, rank;
    uint32_t inbox_size, outbox_size;
};

struct ctl_registered {
    uint64_t map_size;
    uint64_t inbox_off, inbox_size;
    uint64_t outbox_off, outbox_size;
    char node[64];
};

struct ctl_lookup {
    uint32_t job, rank;
};

enum lookup_where { LOOKUP_LOCAL = 1, LOOKUP_REMOTE = 2 };

struct ctl_lookup_reply {
    uint32_t where;          /* enum lookup_where                  */
    uint32_t pad;
    uint64_t map_size;       /* LOCAL: size of the peer's memfd    */
    uint64_t inbox_off, inbox_size;
};

struct ctl_status_node {
    char name[64];
    char addr[64];
    uint32_t port;
    uint32_t self;           /* 1 for this node                    */
    uint32_t connected;      /* link up                            */
    uint32_t nprocs;         /* processes registered (this node)   */
    uint64_t uptime_ms;      /* this node                          */
    uint64_t frames_out, frames_in, bytes_out, bytes_in;
};

struct ctl_status_proc {
    uint32_t job, rank;
    int32_t pid;
    uint32_t uid;
    uint64_t inbox_used, inbox_size, outbox_used, outbox_size;
    uint64_t relayed_out, delivered_in;  /* packets through migrd */
    uint32_t critical;
    uint32_t flags;          /* CTL_STATUS_HIDDEN: another user's mailbox;
                                only pid and uid are filled in     */
};

enum ctl_status_flags { CTL_STATUS_HIDDEN = 1 };

enum ctl_event_type { CTL_EV_UNREACHABLE = 2 };

struct ctl_event {
    uint32_t type;
    uint32_t job, rank;
    char reason[160];
};

struct ctl_error {
    int32_t err;             /* positive errno                     */
    char message[200];
};

/* Migratable processes (migrctl run / migrate / ps). */
/* CTL_PROC_RANK: job and rank are set (an MPI rank launched by odls migr;
 * job is the Open MPI jobid, family << 16 | local, as the dicom BTL uses). */
enum ctl_proc_flags { CTL_PROC_NO_MIGRATE = 1, CTL_PROC_RANK = 2 };

struct ctl_proc_register {
    int32_t pid;             /* the stub's child                   */
    uint32_t flags;          /* enum ctl_proc_flags                */
    uint32_t job, rank;      /* with CTL_PROC_RANK                 */
    char cmd[64];
};

enum ctl_proc_event_type { CTL_PEV_MOVED = 1, CTL_PEV_EXITED = 2 };

struct ctl_proc_event {
    uint32_t type;           /* enum ctl_proc_event_type           */
    int32_t status;          /* EXITED: wait status (W* macros)    */
    char node[64];           /* MOVED: where it runs now           */
};

/* What the home holds of a process that runs elsewhere, across a restart
 * of its migrd: the original of each forwarded descriptor (a channel) and
 * of each shared file, one descriptor per entry, in as many messages as
 * needed; `last` on the final one (the next migrd answers it). */
enum ctl_hold_kind { CTL_HOLD_CHAN = 1, CTL_HOLD_FILE = 2 };
struct ctl_proc_hold {
    struct ctl_proc_register reg;
    uint32_t at;             /* node index where it runs           */
    uint32_t gen;            /* its number of moves                */
    uint32_t part;           /* 0, 1, ... in order                 */
    uint32_t n;              /* entries (and fds) in this message  */
    uint32_t last;           /* 1 on the final part                */
    uint32_t pad;
    struct {
        uint32_t kind;       /* enum ctl_hold_kind                 */
        uint32_t id;         /* channel or file id                 */
        uint32_t dir;        /* a channel's direction bits         */
        uint32_t pad;
    } e[CTL_MAX_FDS];
};

struct ctl_proc_signal {
    int32_t pid;
    int32_t sig;
};

struct ctl_proc_done {
    int32_t pid;
    int32_t status;
};

enum ctl_migrate_inject { CTL_INJECT_NONE = 0, CTL_INJECT_CORRUPT = 1, CTL_INJECT_STALL = 2 };

/* By pid, or (pid == 0) by job and rank: the migrd asked resolves them to
 * the pid of a rank it is the home of. */
/* How the memory moves: eagerly (all before the process resumes) or
 * lazily (migrd/pager: it resumes with the pages it touches, the rest is
 * fetched on fault).  0: the daemon's default (eager). */
enum ctl_move_mode { CTL_MOVE_DEFAULT = 0, CTL_MOVE_EAGER = 1, CTL_MOVE_LAZY_NO_PUSH = 2, CTL_MOVE_LAZY = 3,
                     CTL_MOVE_MODE_MASK = 0xff,
                     CTL_MOVE_NO_PREFETCH = 0x100 /* lazy: one page a fault (benchmarks) */ };

struct ctl_migrate {
    int32_t pid;
    uint32_t inject;         /* enum ctl_migrate_inject (tests)    */
    uint32_t mode;           /* enum ctl_move_mode                 */
    uint32_t pad;
    uint32_t job, rank;      /* when pid == 0                      */
    char node[64];           /* destination                        */
};

struct ctl_migrate_done {
    uint64_t bytes;          /* image bytes streamed               */
    uint64_t frozen_us;
    uint64_t total_us;
    char node[64];
};

enum ctl_ps_state { CTL_PS_RUNNING = 1, CTL_PS_AWAY = 2, CTL_PS_MOVING = 3, CTL_PS_EXITED = 4 };

struct ctl_ps_proc {
    int32_t pid;
    uint32_t state;          /* enum ctl_ps_state                  */
    uint32_t moves;
    uint32_t flags;          /* enum ctl_proc_flags                */
    uint32_t job, rank;      /* with CTL_PROC_RANK in flags        */
    uint32_t uid;            /* its owner                          */
    uint32_t hidden;         /* another user's: job, rank, moves and
                                last_frozen_us are not shown       */
    uint64_t last_frozen_us; /* 0: never moved                     */
    char home[64];
    char node[64];           /* where it runs                      */
    char cmd[64];
    uint64_t pages_away;     /* after a lazy move, known where it
                                runs: pages still on node away_on  */
    char away_on[64];
};

/* One move out of the node that answers (migrctl log): done or refused.
 * The requester sees only the moves of its own processes (root: all). */
struct ctl_log_move {
    uint64_t seq;            /* 1 for the first move since migrd started */
    uint64_t start_unix_ms;  /* when it was asked (CLOCK_REALTIME)      */
    uint64_t frozen_us;      /* 0: never frozen                         */
    uint64_t total_us;
    uint64_t bytes;          /* image bytes streamed                    */
    int32_t pid;
    uint32_t uid;            /* the process's owner                     */
    uint32_t by_uid;         /* who asked                               */
    uint32_t flags;          /* enum ctl_proc_flags                     */
    uint32_t job, rank;      /* with CTL_PROC_RANK                      */
    uint32_t ok;             /* 1: it runs on `to` now                  */
    uint32_t pad;
    char from[64], to[64];
    char cmd[64];
    char reason[200];        /* why not, when !ok                       */
};

/* ---------------------------------------------------- inter-node link --- */

#define LINK_MAGIC     0x4b4e4c4du /* "MLNK" */
#define LINK_MAX_FRAME (64u * 1024u * 1024u)
#define LINK_DEFAULT_PORT 7040

enum link_type {
    LINK_HELLO = 1,   /* first frame each way: who I am                  */
    LINK_DATA,        /* a DiCOM packet                                   */
    LINK_ANNOUNCE,    /* (job, rank) is registered on the sending node    */
    LINK_GONE,        /* (job, rank) closed its mailbox                   */
    LINK_LOCATE,      /* who has (job, rank)?                             */
    LINK_NOT_HERE,    /* answer to LOCATE: not on the sending node        */
    LINK_PING,
    LINK_AUTH,        /* first frame each way of an authenticated cluster:
                         struct auth_hello (migrd/cluster/auth.h)       */
    LINK_PROOF,       /* then: struct auth_proof; every later frame is
                         followed by an AUTH_TAG-byte MAC               */
    LINK_TYPE_MAX
};

struct link_hdr {
    uint32_t magic;
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint32_t len;     /* bytes of body after this header */
    uint32_t pad;
};

struct link_hello {
    char node[64];
    char kernel[64];  /* uname -r: migration needs the same kernel */
    uint32_t node_index;
    uint32_t pad;
};

/* LINK_DATA body: this, then `len` payload bytes. */
struct link_data {
    uint32_t src_job, src_rank;
    uint32_t dst_job, dst_rank;
    uint64_t seq;
    uint32_t len;
    uint16_t tag;
    uint16_t kind;
    uint32_t src_uid; /* the sender's uid, as the sending node knows it: the
                         receiving node lets it into a job only if that is
                         the job's owner or root (migrd/postal/jobs.h)   */
    uint32_t pad;
};

struct link_addr {
    uint32_t job, rank;
    uint32_t uid;     /* ANNOUNCE: the mailbox's owner (a node that knows
                         the job as another uid's ignores it); else 0    */
    uint32_t pad;
};

#endif
