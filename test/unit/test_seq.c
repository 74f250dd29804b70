/*
 * test_seq.c -- sequencing at the receiver: duplicates dropped, early
 * packets held until the gap is filled, NOPs consume a number, filtered
 * receives keep the others in order.  Drives the real receive code on a
 * mailbox built in memory (no migrd).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dicom/dicom_internal.h"
#include "unit.h"

static dicom_mbox_t *mb;
static void *mem;

static void setup(void)
{
    if (mb) {
        dicom_rx_release_all(mb);
        addrmap_destroy(&mb->rx);
        free(mb);
        free(mem);
    }
    mb = calloc(1, sizeof *mb);
    mem = aligned_alloc(4096, ring_map_bytes(RING_MIN_SIZE));
    memset(mem, 0, ring_map_bytes(RING_MIN_SIZE));
    ring_format(mem, RING_MIN_SIZE);
    ring_attach(&mb->inbox, mem, ring_map_bytes(RING_MIN_SIZE));
    addrmap_init(&mb->rx);
    mb->ready_tail = &mb->ready;
    mb->daemon_bell = -1;
    mb->my_bell = -1;
    mb->self = (dicom_addr_t){1, 0};
}

/* Put a packet from (1, src) with sequence `seq` into the inbox; the
 * payload is the 4-byte value `val`. */
static void put(uint32_t src, uint64_t seq, uint32_t val, int nop)
{
    struct ring_resv rv;
    if (ring_reserve(&mb->inbox, sizeof val, &rv) != 0)
        abort();
    struct dicom_pkt *k = rv.pkt;
    pkt_fill(k, 1, src, 1, 0, seq, (uint16_t)val, nop ? PKT_NOP : PKT_DATA, nop ? 0 : sizeof val);
    memcpy(pkt_payload(k), &val, sizeof val);
    ring_commit(&mb->inbox, &rv);
}

/* Read everything available; returns count, values in out[]. */
static int drain(uint32_t *out, uint32_t *from, int max)
{
    int n = 0;
    dicom_msg_t m;
    while (n < max && dicom_peek(mb, &m) == 1) {
        memcpy(&out[n], m.data, sizeof out[n]);
        if (from)
            from[n] = m.src.rank;
        n++;
        dicom_release(mb, &m);
    }
    return n;
}

static void in_order(void)
{
    setup();
    for (uint32_t i = 1; i <= 10; i++)
        put(5, i, i * 100, 0);
    uint32_t v[16];
    CHECK(drain(v, NULL, 16) == 10);
    for (int i = 0; i < 10; i++)
        CHECK(v[i] == (uint32_t)(i + 1) * 100);
}

static void duplicates_dropped(void)
{
    setup();
    put(5, 1, 1, 0);
    put(5, 1, 1, 0);
    put(5, 2, 2, 0);
    put(5, 1, 1, 0);
    put(5, 2, 2, 0);
    put(5, 3, 3, 0);
    uint32_t v[16];
    CHECK(drain(v, NULL, 16) == 3);
    CHECK(v[0] == 1 && v[1] == 2 && v[2] == 3);
    CHECK(mb->st.duplicates == 3);
}

static void early_held_then_released(void)
{
    setup();
    put(5, 3, 3, 0);
    put(5, 5, 5, 0);
    put(5, 4, 4, 0);
    uint32_t v[16];
    CHECK(drain(v, NULL, 16) == 0);   /* 1 and 2 still missing */
    put(5, 2, 2, 0);
    put(5, 4, 4, 0);                 /* duplicate of a held packet */
    CHECK(drain(v, NULL, 16) == 0);
    put(5, 1, 1, 0);
    int n = drain(v, NULL, 16);
    CHECK(n == 5);
    for (int i = 0; i < n; i++)
        CHECK(v[i] == (uint32_t)i + 1);
    CHECK(mb->st.held == 4); /* 3, 5, 4 and 2 arrived early */
}

static void senders_independent(void)
{
    setup();
    put(6, 2, 62, 0);  /* early for sender 6 */
    put(5, 1, 51, 0);  /* in order for sender 5: not blocked by 6 */
    uint32_t v[16], f[16];
    CHECK(drain(v, f, 16) == 1);
    CHECK(v[0] == 51 && f[0] == 5);
    put(6, 1, 61, 0);
    CHECK(drain(v, f, 16) == 2);
    CHECK(v[0] == 61 && v[1] == 62);
}

static void nop_consumes_sequence(void)
{
    setup();
    put(5, 1, 1, 0);
    put(5, 3, 3, 0);
    put(5, 2, 0, 1);   /* a cancelled reservation */
    uint32_t v[16];
    CHECK(drain(v, NULL, 16) == 2);
    CHECK(v[0] == 1 && v[1] == 3);
}

static void no_overtaking_after_release(void)
{
    /* 3 is held; the NOP for 2 releases it into the ready queue; 4 arrives
     * in the same drain and must not overtake 3. */
    setup();
    put(5, 1, 1, 0);
    put(5, 3, 3, 0);
    put(5, 2, 0, 1);
    put(5, 4, 4, 0);
    uint32_t v[16];
    CHECK(drain(v, NULL, 16) == 3);
    CHECK(v[0] == 1 && v[1] == 3 && v[2] == 4);
}

static void filtered_receive(void)
{
    setup();
    put(5, 1, 51, 0);
    put(6, 1, 61, 0);
    put(5, 2, 52, 0);
    put(6, 2, 62, 0);
    dicom_addr_t six = {1, 6};
    uint32_t val = 0;
    dicom_msg_t info;
    CHECK(dicom_recv(mb, &six, &val, sizeof val, &info, DICOM_NONBLOCK) == sizeof val);
    CHECK(val == 61 && info.src.rank == 6);
    CHECK(dicom_recv(mb, &six, &val, sizeof val, &info, DICOM_NONBLOCK) == sizeof val);
    CHECK(val == 62);
    CHECK(dicom_recv(mb, &six, &val, sizeof val, &info, DICOM_NONBLOCK) == -EAGAIN);
    uint32_t v[16], f[16];
    CHECK(drain(v, f, 16) == 2);       /* sender 5's, in order */
    CHECK(v[0] == 51 && v[1] == 52 && f[0] == 5);
}

int main(void)
{
    unit_run("seq: in-order delivery", in_order);
    unit_run("seq: duplicates dropped", duplicates_dropped);
    unit_run("seq: early packets held until the gap is filled", early_held_then_released);
    unit_run("seq: one sender's gap does not block another", senders_independent);
    unit_run("seq: a cancelled reservation (NOP) consumes its number", nop_consumes_sequence);
    unit_run("seq: a packet never overtakes one released before it", no_overtaking_after_release);
    unit_run("seq: filtered receive keeps other senders in order", filtered_receive);
    return unit_total_failed ? 1 : 0;
}
