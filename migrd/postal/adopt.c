/*
 * adopt.c -- see adopt.h.
 */
#include "adopt.h"

#include <stdio.h>
#include <string.h>

#include "mbox.h"
#include "office.h"

/* The record at position pos (a record boundary) of r, if it is complete
 * and its slot fits: its slot, or 0.  Each word is read once. */
static uint32_t complete_at(const struct ring *r, uint64_t pos, uint64_t tail)
{
    const struct dicom_pkt *k = (const void *)(r->data + (pos & r->mask));
    if (atomic_load_explicit(&((struct dicom_pkt *)k)->commit, memory_order_acquire) != pos + 1)
        return 0;
    uint32_t slot = __atomic_load_n(&k->slot, __ATOMIC_RELAXED);
    uint64_t room = r->size - (pos & r->mask);
    if (slot < RING_ALIGN || slot % RING_ALIGN || slot > room || slot > tail - pos)
        return 0;
    return slot;
}

void mbox_ring_complete(const struct ring *r, bool migrd_consumes, uint64_t *head, uint64_t *len)
{
    /* Whoever consumes the ring knows its head: migrd its own position, the
     * process its ctl->head (read once here, and cut to a record boundary
     * if the process broke it: then nothing is taken). */
    uint64_t h = migrd_consumes ? r->take_pos : atomic_load(&r->ctl->head);
    uint64_t t = atomic_load(&r->ctl->tail), pos = h;
    if (h % RING_ALIGN || t - h > r->size)
        t = h -= h % RING_ALIGN; /* nonsense: take nothing, the exile forwards what is there */
    uint32_t slot;
    while (pos != t && (slot = complete_at(r, pos, t)))
        pos += slot;
    *head = h;
    *len = pos - h;
}

void mbox_ring_read(const struct ring *r, uint64_t pos, void *buf, size_t len)
{
    char *b = buf;
    while (len) {
        uint64_t at = pos & r->mask, n = r->size - at;
        if (n > len)
            n = len;
        memcpy(b, r->data + at, n);
        b += n, pos += n, len -= n;
    }
}

void mbox_ring_write(struct ring *r, uint64_t pos, const void *buf, size_t len)
{
    const char *b = buf;
    while (len) {
        uint64_t at = pos & r->mask, n = r->size - at;
        if (n > len)
            n = len;
        memcpy(r->data + at, b, n);
        b += n, pos += n, len -= n;
    }
}

void mbox_ring_place(struct ring *r, uint64_t head, uint64_t tail)
{
    atomic_store(&r->ctl->head, head);
    atomic_store(&r->ctl->tail, tail);
    atomic_store(&r->head_cache, head);
    r->take_pos = head; /* head is a record boundary (mpostal_ring checked) */
}

/* Zero ring bytes [from, to) (positions; at most one lap). */
static void zero_span(struct ring *r, uint64_t from, uint64_t to)
{
    while (from < to) {
        uint64_t at = from & r->mask, n = r->size - at;
        if (n > to - from)
            n = to - from;
        memset(r->data + at, 0, n);
        from += n;
    }
}

/* Walk the records from head; cut the ring at the first one that is not
 * complete.  -1 if a complete record is malformed. */
static int check_ring(struct ring *r, const char *name, uint64_t size, char *why, size_t wl)
{
    struct ring_ctl *c = r->ctl;
    uint64_t head = atomic_load(&c->head), tail = atomic_load(&c->tail), pos = head;
    if (c->magic != RING_MAGIC || c->size != size || tail - head > size || (head % RING_ALIGN) ||
        (tail % RING_ALIGN)) {
        snprintf(why, wl, "%s ring: bad header (size %llu, head %llu, tail %llu)", name,
                 (unsigned long long)c->size, (unsigned long long)head, (unsigned long long)tail);
        return -1;
    }
    while (pos != tail) {
        struct dicom_pkt *k = (struct dicom_pkt *)(r->data + (pos & r->mask));
        struct dicom_pkt rec;
        memcpy(&rec, k, sizeof rec);
        uint64_t room = r->size - (pos & r->mask);
        if (atomic_load(&rec.commit) != pos + 1)
            break; /* not complete: cut here */
        if (rec.slot < RING_ALIGN || rec.slot % RING_ALIGN || rec.slot > room || rec.slot > tail - pos ||
            (rec.kind != PKT_PAD && (rec.len > rec.slot - sizeof rec ||
                                     (rec.kind != PKT_DATA && rec.kind != PKT_NOP)))) {
            snprintf(why, wl, "%s ring: malformed record at %llu (slot %u, len %u, kind %u)", name,
                     (unsigned long long)pos, rec.slot, rec.len, rec.kind);
            return -1;
        }
        pos += rec.slot;
    }
    if (pos != tail) {
        zero_span(r, pos, tail); /* no stale commit word may be taken for a new one */
        atomic_store(&c->tail, pos);
    }
    return 0;
}

int mbox_adopt_check(struct mbox *m, char *why, size_t wl)
{
    /* Its first page is as mbox_new() made it: the image's copy is not
     * used (the mapping is of this node's memfd). */
    return check_ring(&m->inbox, "inbox", m->inbox.size, why, wl) < 0 ||
                   check_ring(&m->outbox, "outbox", m->outbox.size, why, wl) < 0
               ? -1
               : 0;
}
