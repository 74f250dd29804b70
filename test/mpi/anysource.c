/*
 * anysource — wildcard receives and MPI's non-overtaking rule.
 *
 *  fan-in:    every rank in turn is the root; all others send it a burst of
 *             messages of mixed sizes and tags; the root receives them with
 *             MPI_ANY_SOURCE + MPI_ANY_TAG.  Since every message matches such
 *             a receive, messages of one sender must arrive in send order:
 *             the root predicts (tag, size, payload) of the next message of
 *             each sender and checks status and contents against it.
 *  same tag:  between partners, a burst of small (eager) and large
 *             (rendezvous) messages with ONE tag, all in flight at once;
 *             received in order with a specific source, or MPI_ANY_SOURCE.
 *  selection: a receive for one tag must skip earlier messages with other
 *             tags, which stay queued in their own order.
 */
#include "mpitest.h"

#include <stdio.h>
#include <stdlib.h>

#define FANIN_MSGS 20
#define FANIN_TAGS 5
#define SAME_TAG 77
#define ITERS 2

static const size_t fanin_sizes[] = { 0, 3, 64, 4095, 4097, 70000, 262144 };
#define NFANIN (sizeof(fanin_sizes) / sizeof(fanin_sizes[0]))
#define FANIN_MAX 262144

/* eager and rendezvous sizes alternate */
static const size_t sametag_sizes[] = { 8, 200000, 0, 65537, 1, 1048576, 16 };
#define NSAMETAG (sizeof(sametag_sizes) / sizeof(sametag_sizes[0]))

#define MAX_MSG                                                                \
    (1048576 + MT_GUARD_LEN) /* receive count; buffer has a guard more */

static uint8_t *rbuf; /* MAX_MSG + guard */

struct msg {
    size_t size;
    int tag;
    uint64_t key;
};

/* ------------------------------------------------------------ common */

static void isend_msgs(const struct msg *m, int n, int dst, uint8_t **bufs,
                       MPI_Request *reqs)
{
    for (int i = 0; i < n; i++) {
        bufs[i] = mt_alloc(m[i].size);
        mt_fill(bufs[i], m[i].size, m[i].key);
        MPI_Isend(bufs[i], (int)m[i].size, MPI_BYTE, dst, m[i].tag,
                  MPI_COMM_WORLD, &reqs[i]);
    }
}

static void wait_free(int n, uint8_t **bufs, MPI_Request *reqs)
{
    MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
}

/* Receive one message with (src, tag), possibly wildcards, and check it is
 * exactly `want` from `want_src`. */
static void recv_expect(int src, int tag, int want_src, const struct msg *want,
                        const char *what)
{
    MPI_Status st;

    mt_guard_set(rbuf + want->size);
    MPI_Recv(rbuf, (int)MAX_MSG, MPI_BYTE, src, tag, MPI_COMM_WORLD, &st);
    if (!mt_check_status(&st, want_src, want->tag, MPI_BYTE, (int)want->size,
                         what))
        return;
    mt_tamper(rbuf, want->size);
    mt_verify(rbuf, want->size, want->key, what);
    mt_guard_ok(rbuf + want->size, what);
}

/* ------------------------------------------------------------ fan-in */

static struct msg fanin_msg(int it, int root, int src, int seq)
{
    uint64_t h = mt_key((uint64_t)it, (uint64_t)root, (uint64_t)src,
                        (uint64_t)seq);
    struct msg m = { fanin_sizes[h % NFANIN], (int)((h >> 8) % FANIN_TAGS),
                     h };

    return m;
}

static void fanin_send(int it, int root)
{
    struct msg m[FANIN_MSGS];
    uint8_t *bufs[FANIN_MSGS];
    MPI_Request reqs[FANIN_MSGS];

    for (int s = 0; s < FANIN_MSGS; s++)
        m[s] = fanin_msg(it, root, mt_rank, s);
    isend_msgs(m, FANIN_MSGS, root, bufs, reqs);
    wait_free(FANIN_MSGS, bufs, reqs);
}

static void fanin_check_one(int it, const MPI_Status *st, int *next_seq)
{
    int src = st->MPI_SOURCE;
    struct msg want;
    char what[96];

    if (!MT_CHECK(src >= 0 && src < mt_size && src != mt_rank,
                  "fan-in: status source %d impossible", src))
        return;
    if (!MT_CHECK(next_seq[src] < FANIN_MSGS, "fan-in: extra message from %d",
                  src))
        return;
    want = fanin_msg(it, mt_rank, src, next_seq[src]);
    snprintf(what, sizeof(what), "fan-in iter %d msg %d from %d", it,
             next_seq[src], src);
    next_seq[src]++;
    if (!mt_check_status(st, src, want.tag, MPI_BYTE, (int)want.size, what))
        return; /* out of order or lost: reported as wrong tag or count */
    mt_tamper(rbuf, want.size);
    mt_verify(rbuf, want.size, want.key, what);
    mt_guard_ok(rbuf + want.size, what);
}

static void fanin_recv(int it)
{
    int *next_seq = calloc((size_t)mt_size, sizeof(int));
    int total = (mt_size - 1) * FANIN_MSGS;

    if (next_seq == NULL)
        mt_die("out of memory");
    for (int i = 0; i < total; i++) {
        MPI_Status st;

        /* size unknown until received: guard the whole buffer */
        mt_guard_fill(rbuf, FANIN_MAX + MT_GUARD_LEN);
        MPI_Recv(rbuf, (int)MAX_MSG, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG,
                 MPI_COMM_WORLD, &st);
        fanin_check_one(it, &st, next_seq);
    }
    free(next_seq);
}

static void run_fanin(int it)
{
    for (int root = 0; root < mt_size; root++) {
        if (root == mt_rank)
            fanin_recv(it);
        else
            fanin_send(it, root);
    }
    MPI_Barrier(MPI_COMM_WORLD); /* keep later traffic away from wildcards */
}

/* ---------------------------------------------------------- same tag */

static struct msg sametag_msg(int it, int src, int dst, int seq)
{
    struct msg m = { sametag_sizes[seq], SAME_TAG,
                     mt_key(0x5a3e, (uint64_t)(it * 100 + src),
                            (uint64_t)dst, (uint64_t)seq) };

    return m;
}

static void sametag_with(int it, int peer, int wildcard)
{
    struct msg m[NSAMETAG];
    uint8_t *bufs[NSAMETAG];
    MPI_Request reqs[NSAMETAG];
    char what[96];

    for (int s = 0; s < (int)NSAMETAG; s++)
        m[s] = sametag_msg(it, mt_rank, peer, s);
    isend_msgs(m, (int)NSAMETAG, peer, bufs, reqs);
    for (int s = 0; s < (int)NSAMETAG; s++) {
        struct msg want = sametag_msg(it, peer, mt_rank, s);

        snprintf(what, sizeof(what), "same-tag iter %d msg %d from %d%s", it,
                 s, peer, wildcard ? " (any source)" : "");
        recv_expect(wildcard ? MPI_ANY_SOURCE : peer, SAME_TAG, peer, &want,
                    what);
    }
    wait_free((int)NSAMETAG, bufs, reqs);
}

/* --------------------------------------------------------- selection */

/* The sender sends tags A B A B (seq 0..3); the receiver asks for B, ANY,
 * ANY from the peer, B: it must get seq 1, 0, 2, 3. */
static struct msg select_msg(int it, int src, int dst, int seq)
{
    struct msg m = { (size_t)(seq * 5000), seq % 2 ? 12 : 11,
                     mt_key(0x5e1, (uint64_t)(it * 100 + src), (uint64_t)dst,
                            (uint64_t)seq) };

    return m;
}

static void select_with(int it, int peer)
{
    static const int order[4] = { 1, 0, 2, 3 };
    const int src_arg[4] = { MPI_ANY_SOURCE, MPI_ANY_SOURCE, peer,
                             MPI_ANY_SOURCE };
    const int tag_arg[4] = { 12, MPI_ANY_TAG, MPI_ANY_TAG, 12 };
    struct msg m[4];
    uint8_t *bufs[4];
    MPI_Request reqs[4];
    char what[96];

    for (int s = 0; s < 4; s++)
        m[s] = select_msg(it, mt_rank, peer, s);
    isend_msgs(m, 4, peer, bufs, reqs);
    for (int i = 0; i < 4; i++) {
        struct msg want = select_msg(it, peer, mt_rank, order[i]);

        snprintf(what, sizeof(what), "selection iter %d receive %d from %d",
                 it, i, peer);
        recv_expect(src_arg[i], tag_arg[i], peer, &want, what);
    }
    wait_free(4, bufs, reqs);
}

/* Partners exchange in rounds; a barrier ends each round so that wildcard
 * receives only ever see the current partner. */
static void run_pairs(int it)
{
    for (int round = 0; round < mt_pair_rounds(); round++) {
        int peer = mt_pair_partner(round);

        if (peer >= 0) {
            sametag_with(it * 2, peer, 0);
            sametag_with(it * 2 + 1, peer, 1);
            select_with(it, peer);
        }
        MPI_Barrier(MPI_COMM_WORLD);
    }
}

int main(int argc, char **argv)
{
    mt_init(&argc, &argv, "anysource");
    mt_require_ranks(2);
    rbuf = mt_alloc(MAX_MSG + MT_GUARD_LEN);
    for (int loop = 0; loop < mt_loops(); loop++) {
        for (int it = 0; it < ITERS; it++) {
            run_fanin(loop * ITERS + it);
            run_pairs(loop * ITERS + it);
        }
    }
    free(rbuf);
    return mt_finish();
}
