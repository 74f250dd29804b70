/*
 * ring.c -- multi-producer / single-consumer packet ring (see ring.h).
 */
#include "ring.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NO_PAD (~(uint64_t)0)
/* ring_reserve(): compare-and-swap attempts before giving up (-EAGAIN); a
 * process that keeps rewriting the tail must not hold a reserver forever. */
#define RESERVE_TRIES 4096

bool ring_size_valid(uint64_t size)
{
    return size >= RING_MIN_SIZE && size <= RING_MAX_SIZE && (size & (size - 1)) == 0;
}

void ring_format(void *base, uint64_t size)
{
    struct ring_ctl *c = base;
    c->size = size;
    atomic_store_explicit(&c->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&c->head, 0, memory_order_relaxed);
    atomic_store_explicit(&c->consumer_waiting, 0, memory_order_relaxed);
    atomic_store_explicit(&c->producer_waiting, 0, memory_order_relaxed);
    atomic_store_explicit(&c->full_count, 0, memory_order_relaxed);
    __atomic_store_n(&c->magic, RING_MAGIC, __ATOMIC_RELEASE);
}

int ring_attach(struct ring *r, void *base, size_t map_len)
{
    struct ring_ctl *c = base;
    if (map_len < RING_HDR_BYTES || __atomic_load_n(&c->magic, __ATOMIC_ACQUIRE) != RING_MAGIC)
        return -EPROTO;
    uint64_t size = c->size;
    if (!ring_size_valid(size) || ring_map_bytes(size) > map_len)
        return -EPROTO;
    r->ctl = c;
    r->data = (uint8_t *)base + RING_HDR_BYTES;
    r->size = size;
    r->mask = size - 1;
    atomic_store_explicit(&r->head_cache, 0, memory_order_relaxed);
    r->take_pos = 0;
    r->cons_pos = atomic_load_explicit(&c->head, memory_order_acquire);
    return 0;
}

static inline struct dicom_pkt *pkt_at(struct ring *r, uint64_t pos)
{
    return (struct dicom_pkt *)(r->data + (pos & r->mask));
}

int ring_reserve(struct ring *r, size_t payload, struct ring_resv *rv)
{
    if (payload > ring_max_payload(r->size))
        return -EMSGSIZE;
    uint32_t slot = ring_slot_bytes(payload);
    uint64_t t = atomic_load_explicit(&r->ctl->tail, memory_order_relaxed);
    for (unsigned tries = 0;; tries++) {
        if (t % RING_ALIGN)
            return -EPROTO; /* a PAD header there could cross the end */
        if (tries == RESERVE_TRIES)
            return -EAGAIN;
        uint64_t off = t & r->mask, pad = 0;
        if (off + slot > r->size)
            pad = r->size - off;
        uint64_t h = atomic_load_explicit(&r->head_cache, memory_order_relaxed);
        if (t + pad + slot - h > r->size) {
            h = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
            atomic_store_explicit(&r->head_cache, h, memory_order_relaxed);
            if (t + pad + slot - h > r->size) {
                atomic_fetch_add_explicit(&r->ctl->full_count, 1, memory_order_relaxed);
                return -EAGAIN;
            }
        }
        if (atomic_compare_exchange_weak_explicit(&r->ctl->tail, &t, t + pad + slot,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
            rv->pad_pos = pad ? t : NO_PAD;
            rv->pos = t + pad;
            rv->pkt = pkt_at(r, rv->pos);
            rv->pkt->slot = slot;
            if (pad) {
                struct dicom_pkt *p = pkt_at(r, t);
                p->slot = (uint32_t)pad;
                p->len = 0;
                p->kind = PKT_PAD;
            }
            return 0;
        }
    }
}

bool ring_commit(struct ring *r, struct ring_resv *rv)
{
    if (rv->pad_pos != NO_PAD)
        atomic_store_explicit(&pkt_at(r, rv->pad_pos)->commit, rv->pad_pos + 1, memory_order_release);
    /* A full barrier (one xchg on x86), pairing with the fence in
     * ring_arm_consumer(): either the consumer sees our record, or we see
     * its flag. */
    atomic_exchange_explicit(&rv->pkt->commit, rv->pos + 1, memory_order_seq_cst);
    if (atomic_load_explicit(&r->ctl->consumer_waiting, memory_order_relaxed))
        return atomic_exchange_explicit(&r->ctl->consumer_waiting, 0, memory_order_acq_rel) != 0;
    return false;
}

struct dicom_pkt *ring_peek(struct ring *r)
{
    for (;;) {
        uint64_t h = r->cons_pos;
        struct dicom_pkt *p = pkt_at(r, h);
        if (atomic_load_explicit(&p->commit, memory_order_acquire) != h + 1)
            return NULL;
        if (p->kind != PKT_PAD)
            return p;
        /* A PAD never carries data: skip it at once (and hand its room,
         * with what was consumed before it, back at once: it is rare). */
        r->cons_pos = h + p->slot;
        atomic_store_explicit(&r->ctl->head, r->cons_pos, memory_order_release);
    }
}

void ring_consume_defer(struct ring *r, struct dicom_pkt *p)
{
    r->cons_pos += p->slot;
}

bool ring_publish(struct ring *r)
{
    if (atomic_load_explicit(&r->ctl->head, memory_order_relaxed) == r->cons_pos)
        return false;
    /* Full barrier, pairing with ring_arm_producer(). */
    atomic_exchange_explicit(&r->ctl->head, r->cons_pos, memory_order_seq_cst);
    if (atomic_load_explicit(&r->ctl->producer_waiting, memory_order_relaxed))
        return atomic_exchange_explicit(&r->ctl->producer_waiting, 0, memory_order_acq_rel) != 0;
    return false;
}

bool ring_consume(struct ring *r, struct dicom_pkt *p)
{
    ring_consume_defer(r, p);
    return ring_publish(r);
}

bool ring_arm_consumer(struct ring *r)
{
    atomic_store_explicit(&r->ctl->consumer_waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (ring_peek(r) != NULL) {
        atomic_store_explicit(&r->ctl->consumer_waiting, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

void ring_disarm_consumer(struct ring *r)
{
    atomic_store_explicit(&r->ctl->consumer_waiting, 0, memory_order_relaxed);
}

bool ring_arm_producer(struct ring *r, size_t payload)
{
    atomic_store_explicit(&r->ctl->producer_waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t t = atomic_load_explicit(&r->ctl->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->ctl->head, memory_order_relaxed);
    /* Room for the record and a worst-case PAD.  A head past the tail, or
     * more than a ring behind (written by someone who maps the ring), is
     * no room: else this said "room" where ring_reserve() said none, and
     * migrd rang itself awake forever (test/fuzz/fuzz_rings). */
    if (t - h <= r->size && t - h + 2ull * ring_slot_bytes(payload) <= r->size) {
        atomic_store_explicit(&r->ctl->producer_waiting, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

/* ---------------------------------------------- the guarded consumer --- */

int ring_take_seek(struct ring *r, uint64_t pos)
{
    if (pos % RING_ALIGN)
        return -EPROTO;
    r->take_pos = pos;
    return 0;
}

/* Copy the header at pos once: word by word, each word read exactly once
 * (the producer may rewrite it meanwhile; only the copy is looked at).
 * The commit word comes first, with acquire: the rest was written before
 * it.  Returns the commit word. */
static uint64_t header_fetch(const struct ring *r, uint64_t pos, struct dicom_pkt *hdr)
{
    const uint64_t *src = (const uint64_t *)(r->data + (pos & r->mask));
    uint64_t w[sizeof *hdr / sizeof(uint64_t)];
    w[0] = __atomic_load_n(&src[0], __ATOMIC_ACQUIRE);
    for (size_t i = 1; i < sizeof w / sizeof w[0]; i++)
        w[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    memcpy(hdr, w, sizeof *hdr);
    return w[0];
}

static inline uint64_t commit_at(const struct ring *r, uint64_t pos)
{
    return atomic_load_explicit(&pkt_at((struct ring *)r, pos)->commit, memory_order_acquire);
}

int ring_take(struct ring *r, struct dicom_pkt *hdr, const void **payload, char *why, size_t wl)
{
    for (;;) {
        /* take_pos is private and a multiple of RING_ALIGN, so the header
         * (48 of 64 bytes) lies inside the data area. */
        uint64_t pos = r->take_pos, off = pos & r->mask, room = r->size - off;
        if (header_fetch(r, pos, hdr) != pos + 1)
            return RING_EMPTY;
        uint32_t slot = hdr->slot;
        if (slot < RING_ALIGN || slot % RING_ALIGN || slot > room) {
            snprintf(why, wl, "record at %llu (kind %u) occupies %u bytes, %llu to the ring's end",
                     (unsigned long long)pos, hdr->kind, slot, (unsigned long long)room);
            return RING_BAD;
        }
        if (hdr->kind == PKT_PAD) {
            /* ring_reserve() pads only a record that would cross the end:
             * a PAD starts past offset 0 and reaches the end exactly. */
            if (off == 0 || slot != room) {
                snprintf(why, wl, "padding record at %llu of %u bytes (the ring's end is %llu bytes away)",
                         (unsigned long long)pos, slot, (unsigned long long)room);
                return RING_BAD;
            }
            r->take_pos = pos + slot;
            atomic_store_explicit(&r->ctl->head, r->take_pos, memory_order_release);
            continue;
        }
        if (hdr->kind != PKT_DATA && hdr->kind != PKT_NOP) {
            snprintf(why, wl, "record at %llu of unknown kind %u", (unsigned long long)pos, hdr->kind);
            return RING_BAD;
        }
        if (hdr->len > slot - sizeof *hdr) {
            snprintf(why, wl, "record at %llu claims %u payload bytes in a slot of %u",
                     (unsigned long long)pos, hdr->len, slot);
            return RING_BAD;
        }
        *payload = r->data + off + sizeof *hdr;
        return RING_TAKEN;
    }
}

bool ring_release(struct ring *r, const struct dicom_pkt *hdr)
{
    r->take_pos += hdr->slot;
    /* Full barrier, pairing with ring_arm_producer(). */
    atomic_exchange_explicit(&r->ctl->head, r->take_pos, memory_order_seq_cst);
    if (atomic_load_explicit(&r->ctl->producer_waiting, memory_order_relaxed))
        return atomic_exchange_explicit(&r->ctl->producer_waiting, 0, memory_order_acq_rel) != 0;
    return false;
}

bool ring_take_pending(const struct ring *r) { return commit_at(r, r->take_pos) == r->take_pos + 1; }

bool ring_take_arm(struct ring *r)
{
    atomic_store_explicit(&r->ctl->consumer_waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (ring_take_pending(r)) {
        atomic_store_explicit(&r->ctl->consumer_waiting, 0, memory_order_relaxed);
        return false;
    }
    return true;
}

uint64_t ring_used(const struct ring *r)
{
    return atomic_load_explicit(&r->ctl->tail, memory_order_relaxed) -
           atomic_load_explicit(&r->ctl->head, memory_order_relaxed);
}
