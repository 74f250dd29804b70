/*
 * fuzz_rings.c -- libFuzzer harness: migrd's ring consumers against a
 * hostile process.  The input is a program of operations of a process on
 * its own mapped mailbox (any byte of the mapping, forged records, honest
 * ones, its head and tail), interleaved with what migrd does with it: drain
 * and route the outbox (postal.c: into a local inbox, towards a node whose
 * link is down, towards an address not located yet), deliver into a
 * process's inbox that its owner also writes, exile a mailbox and forward
 * its inbox (exile.c), read the complete records for a move and check an
 * adopted mailbox (adopt.c).  Any crash, over-read, leak or hang is a bug of
 * migrd's, never of the input.
 */
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "migrd/postal/adopt.h"
#include "migrd/postal/exile.h"
#include "migrd/postal/location.h"
#include "migrd/postal/postal.h"
#include "office.h"

static struct fuzz_office office;

struct in {
    const uint8_t *p;
    size_t n;
};

static uint64_t take(struct in *in, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++)
        v |= (uint64_t)(in->n ? (in->n--, *in->p++) : 0) << (8 * i);
    return v;
}

/* The addresses a record may be for. */
static void pick_dst(uint8_t sel, uint32_t *job, uint32_t *rank)
{
    static const uint32_t dst[][2] = {{1, 1}, {2, 0}, {3, 0}, {1, 0}, {1, 2}};
    *job = dst[sel % 5][0];
    *rank = dst[sel % 5][1];
}

static void bell(struct mbox *m)
{
    if (m)
        postal_drain(m);
    office_run(&office);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    office_init(&office, 2, 0, 17500);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in in = {data, size};
    struct fuzz_owner wa, wb;
    office_mbox(&office, 1, 0, &wa);
    office_mbox(&office, 1, 1, &wb);
    location_learn(&office.p, 2, 0, 1); /* on node 1, whose link is down */
    int exiled = 0;
    for (unsigned ops = 0; in.n && ops < 256; ops++) {
        struct mbox *a = wa.m, *b = wb.m;
        switch (take(&in, 1) % 12) {
        case 0: { /* the process writes 8 bytes anywhere in its mapping */
            struct mbox *m = take(&in, 1) & 1 ? b : a;
            uint64_t off = take(&in, 4), v = take(&in, 8);
            if (m)
                memcpy((char *)m->map + off % (m->map_len - 8), &v, 8);
            break;
        }
        case 1: { /* a forged record at the outbox's tail */
            uint32_t slot = (uint32_t)take(&in, 4), len = (uint32_t)take(&in, 4);
            uint16_t kind = (uint16_t)take(&in, 1);
            uint8_t sel = (uint8_t)take(&in, 1);
            if (!a)
                break;
            uint64_t t = atomic_load(&a->outbox.ctl->tail);
            uint64_t pos = (t & a->outbox.mask) & ~(uint64_t)7;
            if (pos + sizeof(struct dicom_pkt) > a->outbox.size)
                break;
            struct dicom_pkt *k = (struct dicom_pkt *)(a->outbox.data + pos);
            uint32_t job, rank;
            pick_dst(sel, &job, &rank);
            pkt_fill(k, 9, 9, job, rank, take(&in, 2), 0, kind % 4, len);
            k->slot = slot;
            atomic_store(&k->commit, t + 1);
            atomic_store(&a->outbox.ctl->tail, t + ((slot % 65536) & ~63u));
            break;
        }
        case 2: { /* an honest record, as the library writes it */
            size_t len = take(&in, 2) % 6000;
            uint32_t job, rank;
            pick_dst((uint8_t)take(&in, 1), &job, &rank);
            struct ring_resv rv;
            if (a && ring_reserve(&a->outbox, len, &rv) == 0) {
                pkt_fill(rv.pkt, 1, 0, job, rank, take(&in, 2), 0, PKT_DATA, (uint32_t)len);
                memset(pkt_payload(rv.pkt), 0x5a, len);
                ring_commit(&a->outbox, &rv);
            }
            break;
        }
        case 3: /* its doorbell: migrd drains the outbox */
            bell(a);
            break;
        case 4: { /* the receiver reads its inbox (honestly) */
            struct dicom_pkt h;
            const void *pl;
            char why[160];
            for (int i = take(&in, 1) % 8; b && i >= 0; i--) {
                if (ring_take(&b->inbox, &h, &pl, why, sizeof why) != RING_TAKEN)
                    break;
                ring_release(&b->inbox, &h);
            }
            if (b)
                mbox_room_made(b);
            office_run(&office);
            break;
        }
        case 5: { /* the ring header words, straight */
            struct mbox *m = take(&in, 1) & 1 ? b : a;
            uint8_t which = (uint8_t)take(&in, 1);
            uint64_t v = take(&in, 8);
            if (!m)
                break;
            struct ring *r = which & 1 ? &m->inbox : &m->outbox;
            atomic_store(which & 2 ? &r->ctl->head : &r->ctl->tail, v);
            break;
        }
        case 6: /* the receiver moves to node 1: its inbox is exiled */
            if (b && !exiled) {
                exiled = 1;
                exile_begin(b, 1);
            }
            office_run(&office);
            break;
        case 7: /* a late sender rings the exile's old doorbell */
            if (exiled) {
                struct mbox *x = mbox_find_any(&office.p, 1, 1);
                uint64_t one = 1;
                if (x && write(x->proc_bell, &one, sizeof one) < 0)
                    abort();
            }
            office_run(&office);
            break;
        case 8: { /* a move reads the complete records of both rings */
            uint64_t h, len;
            static uint8_t buf[RING_MIN_SIZE];
            struct mbox *m = take(&in, 1) & 1 ? b : a;
            if (!m)
                break;
            mbox_ring_complete(&m->outbox, true, &h, &len);
            if (len > m->outbox.size || h % RING_ALIGN)
                abort();
            mbox_ring_read(&m->outbox, h, buf, len);
            mbox_ring_complete(&m->inbox, false, &h, &len);
            if (len > m->inbox.size || h % RING_ALIGN)
                abort();
            mbox_ring_read(&m->inbox, h, buf, len);
            break;
        }
        case 9: /* the process's control connection closes */
            if (a)
                office.p.ops.drop_owner(&wa, "gone");
            office_run(&office);
            break;
        case 10: { /* a mailbox adopted with these ring bytes (a move in) */
            struct mbox *n;
            char why[256];
            uint64_t head = take(&in, 3) & ~(uint64_t)63, used = take(&in, 3) % (RING_MIN_SIZE + 1);
            if (!a || mbox_new(&office.p, 5, 0, 4243, 1000, RING_MIN_SIZE, RING_MIN_SIZE, &n) < 0)
                break;
            memcpy(n->outbox.data, a->outbox.data, RING_MIN_SIZE);
            mbox_ring_place(&n->outbox, head, head + used);
            mbox_ring_place(&n->inbox, head, head);
            mbox_adopt_check(n, why, sizeof why);
            mbox_discard(n);
            break;
        }
        case 11: /* time passes: exile ticks, retries */
            usleep(1000);
            office_run(&office);
            break;
        }
        if (wa.m && wa.m->outbox.take_pos % RING_ALIGN)
            abort(); /* migrd's own position off a record boundary */
    }
    bell(wa.m);
    if (wa.m)
        office.p.ops.drop_owner(&wa, "end");
    if (wb.m)
        office.p.ops.drop_owner(&wb, "end");
    office_run(&office);
    office_reset(&office);
    return 0;
}
