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

int main(void)
{
    unit_run("ring: 4 concurrent producers, 800k packets, order and contents", concurrent_producers);
    unit_run("ring: full ring, size limit, producer doorbell", full_and_limits);
    unit_run("ring: consumer doorbell only when armed", consumer_doorbell);
    unit_run("ring: stale records of earlier laps ignored", stale_records_ignored);
    free(mem);
    return unit_total_failed ? 1 : 0;
}
