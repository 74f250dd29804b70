/*
 * adopt.c -- see adopt.h.
 */
#include "adopt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mbox.h"
#include "office.h"

int mbox_adopt_new(struct postal *d, const struct mbox_shared *snap, uint64_t map_len, pid_t pid,
                   uid_t uid, struct mbox **out, char *why, size_t wl)
{
    struct mbox_shared s;
    memcpy(&s, snap, sizeof s); /* read once */
    if (s.magic != MBOX_MAGIC || s.version != MBOX_VERSION || s.pid != pid) {
        snprintf(why, wl, "the mailbox of pid %d is not one (magic %#llx, version %u, pid %d)", pid,
                 (unsigned long long)s.magic, s.version, s.pid);
        return -1;
    }
    if (!ring_size_valid(s.inbox_size) || !ring_size_valid(s.outbox_size) || s.inbox_size > d->max_ring ||
        s.outbox_size > d->max_ring || map_len != mbox_map_size(s.inbox_size, s.outbox_size) ||
        s.map_size != map_len || s.inbox_off != MBOX_PAGE ||
        s.outbox_off != MBOX_PAGE + ring_map_bytes(s.inbox_size)) {
        snprintf(why, wl, "the mailbox %u:%u of pid %d has a shape this node does not make (rings "
                 "%llu/%llu bytes, mapping %llu)", s.job, s.rank, pid, (unsigned long long)s.inbox_size,
                 (unsigned long long)s.outbox_size, (unsigned long long)map_len);
        return -1;
    }
    int rc = mbox_new(d, s.job, s.rank, pid, uid, (uint32_t)s.inbox_size, (uint32_t)s.outbox_size, out);
    if (rc < 0) {
        snprintf(why, wl, "cannot make the mailbox %u:%u of pid %d: %s", s.job, s.rank, pid, strerror(-rc));
        return -1;
    }
    return 0;
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
    struct mbox_shared *sh = m->sh;
    /* Identity as this node made it, whatever the snapshot said. */
    sh->magic = MBOX_MAGIC;
    sh->version = MBOX_VERSION;
    sh->job = m->job;
    sh->rank = m->rank;
    sh->pid = m->pid;
    sh->inbox_off = MBOX_PAGE;
    sh->inbox_size = m->inbox.size;
    sh->outbox_off = MBOX_PAGE + ring_map_bytes(m->inbox.size);
    sh->outbox_size = m->outbox.size;
    sh->map_size = m->map_len;
    atomic_store(&sh->critical, 0);
    atomic_store(&sh->state, MBOX_OPEN);
    if (check_ring(&m->inbox, "inbox", m->inbox.size, why, wl) < 0 ||
        check_ring(&m->outbox, "outbox", m->outbox.size, why, wl) < 0)
        return -1;
    /* The waiters of the old node are not here. */
    atomic_store(&m->inbox.ctl->producer_waiting, 0);
    atomic_store(&m->outbox.ctl->consumer_waiting, 0);
    atomic_store(&m->inbox.head_cache, atomic_load(&m->inbox.ctl->head));
    atomic_store(&m->outbox.head_cache, atomic_load(&m->outbox.ctl->head));
    return 0;
}
