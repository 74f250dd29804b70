/*
 * p2p_sizes — blocking point-to-point between every pair of ranks, message
 * sizes from 0 B to exactly 16 MiB (around the eager/rendezvous limits of
 * usual BTLs), with MPI_Send, MPI_Ssend and MPI_Sendrecv.
 *
 * Every payload is a pattern of (size, source, destination, iteration, mode)
 * and is verified in full; the status (source, tag, count) is checked and
 * guard bytes behind the receive buffer catch overruns.
 */
#include "mpitest.h"

#include <stdio.h>
#include <stdlib.h>

#define MIB (1024u * 1024u)
#define LARGE (1u * MIB)   /* sizes from here on run fewer iterations */
#define ITERS_SMALL 3
#define ITERS_LARGE 1

static const size_t sizes[] = {
    0, 1, 7, 8, 64, 1024, 4095, 4096, 4097, 65536,
    1 * MIB, 4 * MIB, 16 * MIB,
};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define MAX_SIZE (16 * MIB)

enum mode { MODE_SEND, MODE_SSEND, MODE_SENDRECV, MODE_COUNT };
static const char *mode_name[MODE_COUNT] = { "send", "ssend", "sendrecv" };

struct xfer {
    enum mode mode;
    size_t size;
    int size_idx;
    int iter;
};

static uint8_t *sendbuf;
static uint8_t *recvbuf; /* MAX_SIZE + MT_GUARD_LEN */

static int xfer_tag(const struct xfer *x)
{
    return (int)x->mode * 10000 + x->size_idx * 100 + x->iter;
}

static uint64_t xfer_key(const struct xfer *x, int src, int dst)
{
    return mt_key(x->size, (uint64_t)src, (uint64_t)dst,
                  (uint64_t)x->iter * MODE_COUNT + x->mode);
}

/* A receive posts room for a few guard bytes more than the message, so an
 * implementation that writes past the message hits the guard. */
static int recv_count(size_t size)
{
    return (int)(size + MT_GUARD_LEN / 2);
}

static void prepare_recv(size_t size)
{
    mt_guard_set(recvbuf + size);
}

static void check_recv(const struct xfer *x, int src, const MPI_Status *st)
{
    char what[128];

    snprintf(what, sizeof(what), "%s %zu B from %d iter %d",
             mode_name[x->mode], x->size, src, x->iter);
    if (!mt_check_status(st, src, xfer_tag(x), MPI_BYTE, (int)x->size, what))
        return;
    mt_tamper(recvbuf, x->size);
    mt_verify(recvbuf, x->size, xfer_key(x, src, mt_rank), what);
    mt_guard_ok(recvbuf + x->size, what);
}

static void send_to(const struct xfer *x, int peer)
{
    mt_fill(sendbuf, x->size, xfer_key(x, mt_rank, peer));
    if (x->mode == MODE_SSEND)
        MPI_Ssend(sendbuf, (int)x->size, MPI_BYTE, peer, xfer_tag(x),
                  MPI_COMM_WORLD);
    else
        MPI_Send(sendbuf, (int)x->size, MPI_BYTE, peer, xfer_tag(x),
                 MPI_COMM_WORLD);
}

static void recv_from(const struct xfer *x, int peer)
{
    MPI_Status st;

    prepare_recv(x->size);
    MPI_Recv(recvbuf, recv_count(x->size), MPI_BYTE, peer, xfer_tag(x),
             MPI_COMM_WORLD, &st);
    check_recv(x, peer, &st);
}

/* Blocking send/recv between partners: the lower rank sends first, so it
 * never deadlocks whatever the protocol (eager or rendezvous). */
static void pair_exchange(const struct xfer *x, int peer)
{
    if (mt_rank < peer) {
        send_to(x, peer);
        recv_from(x, peer);
    } else {
        recv_from(x, peer);
        send_to(x, peer);
    }
}

static void run_pairs(const struct xfer *x)
{
    for (int round = 0; round < mt_pair_rounds(); round++) {
        int peer = mt_pair_partner(round);

        if (peer >= 0)
            pair_exchange(x, peer);
    }
}

/* MPI_Sendrecv over every shift d: all ranks send to rank+d and receive
 * from rank-d at the same time. */
static void run_shifts(const struct xfer *x)
{
    for (int d = 1; d < mt_size; d++) {
        int dst = (mt_rank + d) % mt_size;
        int src = (mt_rank - d + mt_size) % mt_size;
        MPI_Status st;

        mt_fill(sendbuf, x->size, xfer_key(x, mt_rank, dst));
        prepare_recv(x->size);
        MPI_Sendrecv(sendbuf, (int)x->size, MPI_BYTE, dst, xfer_tag(x),
                     recvbuf, recv_count(x->size), MPI_BYTE, src,
                     xfer_tag(x), MPI_COMM_WORLD, &st);
        check_recv(x, src, &st);
    }
}

static void run_size(enum mode mode, int size_idx)
{
    struct xfer x = { mode, sizes[size_idx], size_idx, 0 };
    int iters = x.size >= LARGE ? ITERS_LARGE : ITERS_SMALL;

    for (x.iter = 0; x.iter < iters; x.iter++) {
        if (mode == MODE_SENDRECV)
            run_shifts(&x);
        else
            run_pairs(&x);
    }
}

int main(int argc, char **argv)
{
    mt_init(&argc, &argv, "p2p_sizes");
    mt_require_ranks(2);
    sendbuf = mt_alloc(MAX_SIZE);
    recvbuf = mt_alloc(MAX_SIZE + MT_GUARD_LEN);
    for (int loop = 0; loop < mt_loops(); loop++)
        for (int m = 0; m < MODE_COUNT; m++)
            for (int s = 0; s < (int)NSIZES; s++)
                run_size((enum mode)m, s);
    free(sendbuf);
    free(recvbuf);
    return mt_finish();
}
