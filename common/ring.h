/*
 * ring.h -- the packet ring in shared memory (inbox and outbox of a mailbox).
 *
 * Owns: the layout of a ring and of the packets in it, reservation by many
 * producers, in-order consumption by one consumer, and the two doorbell
 * flags.  Used by the DiCOM library and by migrd; no system calls here (the
 * caller rings the eventfd when ring_commit() says so).
 *
 * A ring is a header page followed by `size` bytes of data (a power of two).
 * `tail` counts bytes ever reserved, `head` bytes ever consumed.  A record
 * starts at a 64-byte boundary with a struct dicom_pkt whose `commit` word
 * becomes (position + 1) when the record is complete; a record that would
 * cross the end of the data is preceded by a PAD record to the end.  A stale
 * record from an earlier lap has a different commit value, so the consumer
 * never needs to clear what it consumed.
 *
 * Two consumers: the DiCOM library reads its own inbox with ring_peek() /
 * ring_consume(); migrd, which must trust no byte a process can write,
 * reads every ring with ring_take() / ring_release(): its position is
 * private (ctl->head is only written back for the producers), each record
 * header is fetched once into the caller's memory and checked there, and a
 * record that breaks the rules is reported, never followed.
 */
#ifndef MIGR_RING_H
#define MIGR_RING_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RING_MAGIC      0x4d49475252494e47ull /* "MIGRRING" */
#define RING_HDR_BYTES  4096u
#define RING_ALIGN      64u
#define RING_MIN_SIZE   (64u * 1024u)
#define RING_MAX_SIZE   (256u * 1024u * 1024u)

enum pkt_kind {
    PKT_DATA = 1,   /* a user packet                                       */
    PKT_PAD = 2,    /* filler to the end of the data area                   */
    PKT_NOP = 3,    /* a cancelled reservation: consumes a sequence number  */
};

/* Record header; the payload follows at +sizeof (8-byte aligned). */
struct dicom_pkt {
    _Atomic uint64_t commit; /* position + 1 once complete                */
    uint32_t slot;           /* bytes this record occupies (incl. header) */
    uint32_t len;            /* payload bytes                             */
    uint32_t src_job, src_rank;
    uint32_t dst_job, dst_rank;
    uint64_t seq;            /* per (src, dst) sequence number, from 1    */
    uint16_t tag;
    uint16_t kind;           /* enum pkt_kind                             */
    uint32_t flags;
};
_Static_assert(sizeof(struct dicom_pkt) == 48, "packet header layout");

static inline void *pkt_payload(struct dicom_pkt *p) { return p + 1; }

/* Fill a record's header (all but commit and slot, which the ring owns). */
static inline void pkt_fill(struct dicom_pkt *k, uint32_t src_job, uint32_t src_rank, uint32_t dst_job,
                            uint32_t dst_rank, uint64_t seq, uint16_t tag, uint16_t kind, uint32_t len)
{
    k->src_job = src_job;
    k->src_rank = src_rank;
    k->dst_job = dst_job;
    k->dst_rank = dst_rank;
    k->seq = seq;
    k->tag = tag;
    k->kind = kind;
    k->len = len;
    k->flags = 0;
}

/* The header page of a ring, in shared memory. */
struct ring_ctl {
    uint64_t magic;
    uint64_t size;                       /* data bytes, power of two   */
    _Alignas(64) _Atomic uint64_t tail;  /* producers                  */
    _Alignas(64) _Atomic uint64_t head;  /* consumer                   */
    _Alignas(64) _Atomic uint32_t consumer_waiting; /* armed doorbell */
    _Atomic uint32_t producer_waiting;   /* a producer sleeps for room */
    _Atomic uint64_t full_count;         /* reservations refused       */
};

/* A process-local view of a mapped ring. */
struct ring {
    struct ring_ctl *ctl;
    uint8_t *data;
    uint64_t size, mask;
    /* Producers' last look at ctl->head (it only grows, so a stale value
     * only underestimates the room): saves reading the consumer's cache
     * line on every reservation. */
    _Atomic uint64_t head_cache;
    /* ring_take(): the consumer's own position (never read from ctl). */
    uint64_t take_pos;
    /* ring_peek(): the library consumer's position.  ctl->head trails it
     * by what was consumed with ring_consume_defer() and not yet handed
     * back with ring_publish(); an idle ring_peek() reads only the record
     * at this position.  Process memory that moves with the process: the
     * records of a moved ring keep their positions (from ctl->head on). */
    uint64_t cons_pos;
};

/* A reservation: where the record goes, and the PAD before it, if any. */
struct ring_resv {
    struct dicom_pkt *pkt;
    uint64_t pos;      /* position of pkt                 */
    uint64_t pad_pos;  /* position of the PAD, or ~0      */
};

/* Total ring bytes a record with `payload` bytes occupies. */
static inline uint32_t ring_slot_bytes(size_t payload)
{
    return (uint32_t)((sizeof(struct dicom_pkt) + payload + RING_ALIGN - 1) & ~(size_t)(RING_ALIGN - 1));
}

/* Largest payload that may be reserved in a ring of `size` bytes. */
static inline size_t ring_max_payload(uint64_t size)
{
    return size / 4 - sizeof(struct dicom_pkt);
}

/* Bytes to map for a ring of `size` data bytes. */
static inline size_t ring_map_bytes(uint64_t size) { return RING_HDR_BYTES + size; }

bool ring_size_valid(uint64_t size);

/* Initialise a ring in zeroed memory of ring_map_bytes(size) bytes. */
void ring_format(void *base, uint64_t size);

/* Attach to a mapped ring; -EPROTO if the header is not a valid ring of
 * at most `map_len` bytes. */
int ring_attach(struct ring *r, void *base, size_t map_len);

/* Producer: reserve a record for up to `payload` bytes; -EAGAIN if no room
 * (or if the tail kept changing under a bounded number of tries),
 * -EMSGSIZE if it can never fit, -EPROTO if the ring's tail is not a record
 * boundary (someone who maps the ring broke it). */
int ring_reserve(struct ring *r, size_t payload, struct ring_resv *rv);

/* Producer: publish the record (the caller has filled every field but
 * commit/slot).  Returns true when the consumer is asleep and the caller
 * must ring the consumer's doorbell. */
bool ring_commit(struct ring *r, struct ring_resv *rv);

/* Consumer: the next complete DATA/NOP record, or NULL (PADs are skipped). */
struct dicom_pkt *ring_peek(struct ring *r);

/* Consumer: release the record returned by ring_peek().  Returns true when
 * a producer sleeps for room and the caller must ring its doorbell. */
bool ring_consume(struct ring *r, struct dicom_pkt *p);

/* Consumer: release the record returned by ring_peek() without handing its
 * room back to the producers yet (no locked instruction); ring_publish()
 * hands back everything released so.  A reader that stops reading must
 * publish first: producers only see the room published. */
void ring_consume_defer(struct ring *r, struct dicom_pkt *p);

/* Consumer: publish the position of ring_consume_defer()s (and PADs
 * skipped) to the producers.  Returns true as ring_consume() does. */
bool ring_publish(struct ring *r);

/* Consumer doorbell: arm (returns false if records are already there, in
 * which case the consumer must not sleep) and disarm. */
bool ring_arm_consumer(struct ring *r);
void ring_disarm_consumer(struct ring *r);

/* Producer doorbell: announce that a producer waits for room (returns false
 * if there is room for `payload` already). */
bool ring_arm_producer(struct ring *r, size_t payload);

/* ---- The guarded consumer (migrd): the producers are hostile. ---- */

enum ring_take_rc {
    RING_TAKEN = 0, /* *hdr holds a checked DATA or NOP record           */
    RING_EMPTY = 1, /* no complete record at the consumer's position     */
    RING_BAD = -1,  /* a complete record breaks the rules: why says how  */
};

/* Consume from position pos on (0 after ring_format; a position read once
 * from a ring whose consumer was someone else); -EPROTO if pos is not a
 * record boundary. */
int ring_take_seek(struct ring *r, uint64_t pos);

/* The next record: its header copied once into *hdr and checked (slot a
 * multiple of RING_ALIGN within the data area, len within the slot, kind
 * DATA or NOP; a PAD must reach exactly to the end of the data and is
 * skipped), its payload at *payload (hdr->len bytes in shared memory: the
 * bytes may still change, the length may not).  The record stays at the
 * head until ring_release(). */
int ring_take(struct ring *r, struct dicom_pkt *hdr, const void **payload, char *why, size_t wl);

/* Release the record ring_take() returned (hdr: that private copy).
 * Returns true when a producer sleeps for room (ring its doorbell). */
bool ring_release(struct ring *r, const struct dicom_pkt *hdr);

/* Is a complete record waiting at the consumer's position? */
bool ring_take_pending(const struct ring *r);

/* Arm the consumer doorbell (false if a record is already there, in
 * which case the consumer must not sleep); ring_disarm_consumer() undoes. */
bool ring_take_arm(struct ring *r);

/* Bytes reserved and not yet consumed. */
uint64_t ring_used(const struct ring *r);

#endif
