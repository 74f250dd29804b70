/*
 * test_ring.c -- the shared-memory ring under concurrent producers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ring.h"
#include "unit.h"

#define PRODUCERS 4
#define PER_PRODUCER 200000

static struct ring r;
static void *mem;

static void setup(uint64_t size)
{
    free(mem);
    mem = aligned_alloc(4096, ring_map_bytes(size));
    memset(mem, 0, ring_map_bytes(size));
    ring_format(mem, size);
    ring_attach(&r, mem, ring_map_bytes(size));
}

static void *producer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        size_t len = (i * 37u + id) % 700;   /* varied sizes force wrap-around */
        struct ring_resv rv;
        while (ring_reserve(&r, len, &rv) == -EAGAIN)
            ;
        rv.pkt->src_rank = id;
        rv.pkt->seq = i;
        rv.pkt->len = (uint32_t)len;
        rv.pkt->kind = PKT_DATA;
        memset(pkt_payload(rv.pkt), (int)(id * 16 + i % 16), len);
        ring_commit(&r, &rv);
    }
    return NULL;
}

static void concurrent_producers(void)
{
    setup(RING_MIN_SIZE);
    pthread_t t[PRODUCERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        pthread_create(&t[i], NULL, producer, (void *)i);
    uint32_t next[PRODUCERS] = {0};
    uint64_t got = 0, bad = 0;
    while (got < (uint64_t)PRODUCERS * PER_PRODUCER) {
        struct dicom_pkt *k = ring_peek(&r);
        if (!k)
            continue;
        uint32_t id = k->src_rank;
        if (id >= PRODUCERS || k->seq != next[id] || k->len != (k->seq * 37u + id) % 700) {
            bad++;
        } else {
            const unsigned char *p = pkt_payload(k);
            for (uint32_t j = 0; j < k->len; j++)
                if (p[j] != (unsigned char)(id * 16 + k->seq % 16)) {
                    bad++;
                    break;
                }
            next[id]++;
        }
        ring_consume(&r, k);
        got++;
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    CHECK(bad == 0);
    for (int i = 0; i < PRODUCERS; i++)
        CHECK(next[i] == PER_PRODUCER);
    CHECK(ring_peek(&r) == NULL);
    CHECK(ring_used(&r) == 0);
}

static void full_and_limits(void)
{
    setup(RING_MIN_SIZE);
    struct ring_resv rv;
    CHECK(ring_reserve(&r, ring_max_payload(r.size) + 1, &rv) == -EMSGSIZE);
    int n = 0;
    while (ring_reserve(&r, 1000, &rv) == 0) {
        rv.pkt->kind = PKT_DATA;
        rv.pkt->len = 1000;
        ring_commit(&r, &rv);
        n++;
    }
    CHECK(n == (int)(RING_MIN_SIZE / ring_slot_bytes(1000)));
    CHECK(ring_reserve(&r, 0, &rv) == -EAGAIN || ring_used(&r) + ring_slot_bytes(0) <= r.size);
    /* The producer doorbell: armed while full, fired by a consume. */
    CHECK(ring_arm_producer(&r, 1000) == true);
    struct dicom_pkt *k = ring_peek(&r);
    CHECK(k != NULL);
    CHECK(ring_consume(&r, k) == true);
    CHECK(ring_consume(&r, ring_peek(&r)) == false); /* fired once */
}

static void consumer_doorbell(void)
{
    setup(RING_MIN_SIZE);
    CHECK(ring_arm_consumer(&r) == true);     /* empty: may sleep */
    struct ring_resv rv;
    CHECK(ring_reserve(&r, 8, &rv) == 0);
    rv.pkt->kind = PKT_DATA;
    CHECK(ring_commit(&r, &rv) == true);     /* consumer asleep: ring */
    CHECK(ring_arm_consumer(&r) == false);    /* data there: don't sleep */
    CHECK(ring_reserve(&r, 8, &rv) == 0);
    rv.pkt->kind = PKT_DATA;
    CHECK(ring_commit(&r, &rv) == false);    /* not armed: no system call */
}

static void stale_records_ignored(void)
{
    /* After a full lap, old commit words must not look complete. */
    setup(RING_MIN_SIZE);
    struct ring_resv rv;
    for (int lap = 0; lap < 3; lap++) {
        for (int i = 0; i < 100; i++) {
            CHECK(ring_reserve(&r, 600, &rv) == 0);
            rv.pkt->kind = PKT_DATA;
            ring_commit(&r, &rv);
            struct dicom_pkt *k = ring_peek(&r);
            CHECK(k == rv.pkt);
            ring_consume(&r, k);
            CHECK(ring_peek(&r) == NULL);
        }
    }
    /* A reservation not yet committed blocks the consumer. */
    CHECK(ring_reserve(&r, 10, &rv) == 0);
    CHECK(ring_peek(&r) == NULL);
    ring_commit(&r, &rv);
    CHECK(ring_peek(&r) != NULL);
}

/* --- the guarded consumer (migrd's): every record a producer wrote is hostile --- */

/* Write a complete record at position pos by hand, as a hostile producer would. */
static struct dicom_pkt *forge(uint64_t pos, uint32_t slot, uint32_t len, uint16_t kind)
{
    struct dicom_pkt *k = (struct dicom_pkt *)(r.data + (pos & r.mask));
    k->slot = slot;
    k->len = len;
    k->kind = kind;
    atomic_store(&k->commit, pos + 1);
    atomic_store(&r.ctl->tail, pos + slot);
    return k;
}

static int take(struct dicom_pkt *h, const void **p)
{
    char why[160];
    return ring_take(&r, h, p, why, sizeof why);
}

static void take_honest_laps(void)
{
    /* What ring_reserve writes, ring_take reads back, PADs skipped, over laps. */
    setup(RING_MIN_SIZE);
    struct ring_resv rv;
    struct dicom_pkt h;
    const void *p;
    for (uint32_t i = 0; i < 3000; i++) {
        size_t len = (i * 131u) % 5000;
        CHECK(ring_reserve(&r, len, &rv) == 0);
        pkt_fill(rv.pkt, 1, 2, 3, 4, i, 7, PKT_DATA, (uint32_t)len);
        memset(pkt_payload(rv.pkt), (int)(i & 0xff), len);
        ring_commit(&r, &rv);
        CHECK(take(&h, &p) == RING_TAKEN);
        CHECK(h.seq == i && h.len == len && p == pkt_payload(rv.pkt));
        CHECK(len == 0 || ((const uint8_t *)p)[len - 1] == (i & 0xff));
        ring_release(&r, &h);
        CHECK(take(&h, &p) == RING_EMPTY);
        CHECK(atomic_load(&r.ctl->head) == atomic_load(&r.ctl->tail));
    }
}

static void take_refuses_hostile_records(void)
{
    struct dicom_pkt h;
    const void *p;
    char why[160] = "";
    setup(RING_MIN_SIZE);
    forge(0, 0, 0, PKT_PAD); /* the padding record of slot 0 that hung migrd */
    CHECK(ring_take(&r, &h, &p, why, sizeof why) == RING_BAD);
    CHECK(strstr(why, "occupies 0 bytes") != NULL);
    setup(RING_MIN_SIZE);
    forge(0, 128, 0, PKT_PAD); /* a PAD that does not reach the end */
    CHECK(take(&h, &p) == RING_BAD);
    setup(RING_MIN_SIZE);
    forge(0, RING_MIN_SIZE, 0, PKT_PAD); /* a PAD of a whole lap */
    CHECK(take(&h, &p) == RING_BAD);
    setup(RING_MIN_SIZE);
    forge(0, 100, 0, PKT_DATA); /* slot not a multiple of 64 */
    CHECK(take(&h, &p) == RING_BAD);
    setup(RING_MIN_SIZE);
    forge(0, 2 * RING_MIN_SIZE, 0, PKT_DATA); /* slot past the end */
    CHECK(take(&h, &p) == RING_BAD);
    setup(RING_MIN_SIZE);
    forge(0, 64, 17, PKT_DATA); /* payload longer than the slot */
    CHECK(take(&h, &p) == RING_BAD);
    setup(RING_MIN_SIZE);
    forge(0, 8u << 20, 8u << 20, PKT_DATA); /* the 8 MiB length of the audit */
    CHECK(take(&h, &p) == RING_BAD);
    setup(RING_MIN_SIZE);
    forge(0, 64, 0, 9); /* unknown kind */
    CHECK(take(&h, &p) == RING_BAD);
    /* A record that is fine: taken; the header is a copy, changed later in vain. */
    setup(RING_MIN_SIZE);
    struct dicom_pkt *k = forge(0, 128, 80, PKT_DATA);
    CHECK(take(&h, &p) == RING_TAKEN && h.len == 80);
    k->len = 8u << 20;
    k->slot = 0;
    CHECK(h.len == 80 && h.slot == 128);
    ring_release(&r, &h);
    CHECK(atomic_load(&r.ctl->head) == 128);
    /* A legitimate PAD at the end is skipped once; a second one is refused. */
    setup(RING_MIN_SIZE);
    CHECK(ring_take_seek(&r, RING_MIN_SIZE - 128) == 0);
    forge(RING_MIN_SIZE - 128, 128, 0, PKT_PAD);
    forge(RING_MIN_SIZE, 64, 4, PKT_DATA);
    CHECK(take(&h, &p) == RING_TAKEN && h.len == 4);
    ring_release(&r, &h);
    forge(RING_MIN_SIZE + 64, RING_MIN_SIZE - 64, 0, PKT_PAD);
    CHECK(take(&h, &p) == RING_EMPTY); /* a PAD to the end is legal: skipped */
    CHECK(atomic_load(&r.ctl->head) == 2 * RING_MIN_SIZE);
}

static void take_ignores_hostile_head(void)
{
    /* The owner writes head near the end: the old consumer read a header
     * there, 40 bytes past the ring.  ring_take never reads ctl->head. */
    setup(RING_MIN_SIZE);
    atomic_store(&r.ctl->head, RING_MIN_SIZE - 8);
    struct dicom_pkt h;
    const void *p;
    CHECK(take(&h, &p) == RING_EMPTY);
    CHECK(ring_take_seek(&r, RING_MIN_SIZE - 8) == -EPROTO);
    CHECK(ring_take_pending(&r) == false);
    CHECK(ring_take_arm(&r) == true);
    /* An unaligned tail: a PAD header written there could cross the end. */
    setup(RING_MIN_SIZE);
    atomic_store(&r.ctl->tail, RING_MIN_SIZE - 8);
    atomic_store(&r.ctl->head, RING_MIN_SIZE - 8);
    struct ring_resv rv;
    CHECK(ring_reserve(&r, 100, &rv) == -EPROTO);
}

static void deferred_consume(void)
{
    /* Released records are read past at once, but their room goes back to
     * the producers (and a sleeping producer is rung) only when published. */
    setup(RING_MIN_SIZE);
    struct ring_resv rv;
    int n = 0;
    while (ring_reserve(&r, 1000, &rv) == 0) {
        rv.pkt->kind = PKT_DATA;
        rv.pkt->seq = (uint64_t)n++;
        ring_commit(&r, &rv);
    }
    CHECK(ring_arm_producer(&r, 1000) == true);
    for (int i = 0; i < 3; i++) {
        struct dicom_pkt *k = ring_peek(&r);
        CHECK(k != NULL && k->seq == (uint64_t)i);
        ring_consume_defer(&r, k);
    }
    CHECK(atomic_load(&r.ctl->head) == 0);              /* nothing handed back yet */
    CHECK(ring_reserve(&r, 1000, &rv) == -EAGAIN);
    CHECK(ring_publish(&r) == true);                    /* the producer sleeps: ring */
    CHECK(atomic_load(&r.ctl->head) == 3ull * ring_slot_bytes(1000));
    CHECK(ring_publish(&r) == false);                   /* nothing new */
    CHECK(ring_reserve(&r, 1000, &rv) == 0);
    /* A consumer that attaches again starts where the room was handed back. */
    struct ring again;
    CHECK(ring_attach(&again, mem, ring_map_bytes(RING_MIN_SIZE)) == 0);
    CHECK(again.cons_pos == r.cons_pos);
}

int main(void)
{
    unit_run("ring: 4 concurrent producers, 800k packets, order and contents", concurrent_producers);
    unit_run("ring: full ring, size limit, producer doorbell", full_and_limits);
    unit_run("ring: consumer doorbell only when armed", consumer_doorbell);
    unit_run("ring: stale records of earlier laps ignored", stale_records_ignored);
    unit_run("ring: deferred releases read on, hand room back when published", deferred_consume);
    unit_run("ring_take: honest records over laps, PADs skipped", take_honest_laps);
    unit_run("ring_take: hostile slots, lengths, kinds and PADs refused, header fetched once",
             take_refuses_hostile_records);
    unit_run("ring_take: a head or tail written by the owner is not followed", take_ignores_hostile_head);
    free(mem);
    return unit_total_failed ? 1 : 0;
}
