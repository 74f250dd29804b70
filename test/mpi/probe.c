/*
 * probe — receiving messages of unknown size: MPI_Probe, MPI_Iprobe,
 * MPI_Mprobe + MPI_Mrecv and MPI_Improbe + MPI_Imrecv with MPI_ANY_SOURCE /
 * MPI_ANY_TAG, then MPI_Get_count to size the buffer.
 *
 * Every rank sends a burst to every other rank; sizes and tags are derived
 * from (phase, source, destination, sequence) so the receiver can predict,
 * per sender, the next message (non-overtaking) and check the probed
 * envelope, MPI_Get_count in bytes and in MPI_INT (MPI_UNDEFINED when the
 * size is not a multiple), the contents, and that a second probe sees the
 * same message.  When a phase is over, an Iprobe must find nothing left.
 */
#include "mpitest.h"

#include <stdio.h>
#include <stdlib.h>

#define MSGS_PER_PEER 6
#define TAGS 7
#define ITERS 2

static const size_t probe_sizes[] = {
    0, 1, 5, 8, 1000, 4093, 4096, 65536, 65541, 200003, 600000,
};
#define NPROBE (sizeof(probe_sizes) / sizeof(probe_sizes[0]))

enum method { BY_PROBE, BY_IPROBE, BY_MPROBE, BY_IMPROBE, BY_COUNT };
static const char *method_name[BY_COUNT] = { "probe", "iprobe", "mprobe",
                                             "improbe" };

struct msg {
    size_t size;
    int tag;
    uint64_t key;
};

static struct msg probe_msg(int phase, int src, int dst, int seq)
{
    uint64_t h = mt_key((uint64_t)phase, (uint64_t)src, (uint64_t)dst,
                        (uint64_t)seq);
    struct msg m = { probe_sizes[h % NPROBE], (int)((h >> 16) % TAGS), h };

    return m;
}

/* ----------------------------------------------------------- sending */

struct burst {
    int n;
    uint8_t **bufs;
    MPI_Request *reqs;
};

static void send_burst(struct burst *b, int phase)
{
    int i = 0;

    b->n = (mt_size - 1) * MSGS_PER_PEER;
    b->bufs = mt_alloc(sizeof(*b->bufs) * (size_t)b->n);
    b->reqs = mt_alloc(sizeof(*b->reqs) * (size_t)b->n);
    for (int seq = 0; seq < MSGS_PER_PEER; seq++) {
        for (int d = 1; d < mt_size; d++, i++) {
            int dst = (mt_rank + d) % mt_size;
            struct msg m = probe_msg(phase, mt_rank, dst, seq);

            b->bufs[i] = mt_alloc(m.size);
            mt_fill(b->bufs[i], m.size, m.key);
            MPI_Isend(b->bufs[i], (int)m.size, MPI_BYTE, dst, m.tag,
                      MPI_COMM_WORLD, &b->reqs[i]);
        }
    }
}

static void finish_burst(struct burst *b)
{
    MPI_Waitall(b->n, b->reqs, MPI_STATUSES_IGNORE);
    for (int i = 0; i < b->n; i++)
        free(b->bufs[i]);
    free(b->bufs);
    free(b->reqs);
}

/* --------------------------------------------------------- receiving */

/* Probe (blocking or polling) and return the envelope; for the matched
 * probes also the message handle. */
static void probe_any(enum method how, MPI_Status *st, MPI_Message *msg)
{
    int flag = 0;

    switch (how) {
    case BY_PROBE:
        MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, st);
        break;
    case BY_IPROBE:
        while (!flag)
            MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, st);
        break;
    case BY_MPROBE:
        MPI_Mprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, msg, st);
        break;
    default:
        while (!flag)
            MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag,
                        msg, st);
        break;
    }
}

/* MPI_Get_count in MPI_INT: size/4, or MPI_UNDEFINED if not a multiple. */
static void check_int_count(const MPI_Status *st, size_t size, const char *what)
{
    int n = -2;
    int want = size % sizeof(int) ? MPI_UNDEFINED : (int)(size / sizeof(int));

    MPI_Get_count(st, MPI_INT, &n);
    MT_CHECK(n == want, "%s: MPI_Get_count(MPI_INT) = %d for %zu bytes, "
             "expected %d", what, n, size, want);
}

/* A second (non-matching) probe must see the same message again. */
static void reprobe(const MPI_Status *first, size_t size, const char *what)
{
    MPI_Status st;

    MPI_Probe(first->MPI_SOURCE, first->MPI_TAG, MPI_COMM_WORLD, &st);
    mt_check_status(&st, first->MPI_SOURCE, first->MPI_TAG, MPI_BYTE,
                    (int)size, what);
}

static void receive_probed(enum method how, const MPI_Status *pst,
                           MPI_Message *msg, uint8_t *buf, int count)
{
    MPI_Status st;
    MPI_Request req;

    switch (how) {
    case BY_PROBE:
    case BY_IPROBE:
        MPI_Recv(buf, count, MPI_BYTE, pst->MPI_SOURCE, pst->MPI_TAG,
                 MPI_COMM_WORLD, &st);
        break;
    case BY_MPROBE:
        MPI_Mrecv(buf, count, MPI_BYTE, msg, &st);
        break;
    default:
        MPI_Imrecv(buf, count, MPI_BYTE, msg, &req);
        MPI_Wait(&req, &st);
        break;
    }
    mt_check_status(&st, pst->MPI_SOURCE, pst->MPI_TAG, MPI_BYTE, count,
                    "receive after probe");
    if (how == BY_MPROBE || how == BY_IMPROBE)
        MT_CHECK(*msg == MPI_MESSAGE_NULL, "%s: message handle not "
                 "MPI_MESSAGE_NULL after receive", method_name[how]);
}

static void receive_one(int phase, enum method how, int *next_seq, int i)
{
    MPI_Status pst;
    MPI_Message msg = MPI_MESSAGE_NULL;
    struct msg want;
    uint8_t *buf;
    char what[96];
    int src, count = -1;

    probe_any(how, &pst, &msg);
    src = pst.MPI_SOURCE;
    if (!MT_CHECK(src >= 0 && src < mt_size && src != mt_rank &&
                  next_seq[src] < MSGS_PER_PEER,
                  "%s: unexpected message from %d", method_name[how], src))
        return;
    want = probe_msg(phase, src, mt_rank, next_seq[src]);
    snprintf(what, sizeof(what), "%s phase %d msg %d from %d",
             method_name[how], phase, next_seq[src], src);
    next_seq[src]++;
    if (!mt_check_status(&pst, src, want.tag, MPI_BYTE, (int)want.size, what))
        return;
    check_int_count(&pst, want.size, what);
    if (i % 3 == 0 && how != BY_MPROBE && how != BY_IMPROBE)
        reprobe(&pst, want.size, what);
    MPI_Get_count(&pst, MPI_BYTE, &count);
    buf = mt_alloc((size_t)count + MT_GUARD_LEN);
    mt_guard_set(buf + count);
    receive_probed(how, &pst, &msg, buf, count);
    mt_tamper(buf, want.size);
    mt_verify(buf, want.size, want.key, what);
    mt_guard_ok(buf + count, what);
    free(buf);
}

/* Everything of this phase has been received: nothing may be left. */
static void check_drained(enum method how)
{
    MPI_Status st;
    int flag = 0;

    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    MT_CHECK(!flag, "%s: extra message from %d tag %d after all were "
             "received", method_name[how], st.MPI_SOURCE, st.MPI_TAG);
}

static void run_phase(int phase, enum method how)
{
    int *next_seq = calloc((size_t)mt_size, sizeof(int));
    int total = (mt_size - 1) * MSGS_PER_PEER;
    struct burst b;

    if (next_seq == NULL)
        mt_die("out of memory");
    send_burst(&b, phase);
    for (int i = 0; i < total; i++)
        receive_one(phase, how, next_seq, i);
    finish_burst(&b);
    check_drained(how);
    MPI_Barrier(MPI_COMM_WORLD); /* next phase's wildcards see only its own */
    free(next_seq);
}

int main(int argc, char **argv)
{
    int phase = 0;

    mt_init(&argc, &argv, "probe");
    mt_require_ranks(2);
    for (int loop = 0; loop < mt_loops(); loop++)
        for (int it = 0; it < ITERS; it++)
            for (int how = 0; how < BY_COUNT; how++)
                run_phase(phase++, (enum method)how);
    return mt_finish();
}
