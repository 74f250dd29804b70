/*
 * nonblocking — windows of many outstanding MPI_Isend/MPI_Irecv of mixed
 * sizes to and from every other rank, completed with MPI_Waitall,
 * MPI_Waitany or MPI_Testsome, with the receives posted before the sends
 * arrive (expected) or after (unexpected).
 *
 * Several messages of a pair share a tag, so correct matching relies on
 * MPI's non-overtaking order.  Every received payload, status and guard is
 * checked; send buffers must be unchanged after completion; every request
 * must complete exactly once.
 */
#include "mpitest.h"

#include <stdio.h>
#include <stdlib.h>

#define MSGS_PER_PEER 8
#define TAGS 3          /* messages k and k+TAGS of a pair share a tag */
#define ITERS 2

static const size_t mixed_sizes[] = {
    0, 1, 100, 4096, 4097, 65537, 300000, 1024 * 1024 + 5,
};
#define NMIXED (sizeof(mixed_sizes) / sizeof(mixed_sizes[0]))

enum completion { BY_WAITALL, BY_WAITANY, BY_TESTSOME, BY_COUNT };
static const char *completion_name[BY_COUNT] = { "waitall", "waitany",
                                                 "testsome" };

struct slot {
    int is_recv;
    int peer;
    int k;       /* message index within the pair */
    size_t size;
    uint8_t *buf;
    uint64_t key;
};

struct window {
    int n;               /* number of requests */
    int phase;           /* distinguishes payloads of phases */
    enum completion how;
    struct slot *slots;
    MPI_Request *reqs;
    int done;            /* completions seen */
};

static size_t msg_size(int k, int src, int dst)
{
    return mixed_sizes[(size_t)(k + src + dst) % NMIXED];
}

static int msg_tag(int k)
{
    return k % TAGS;
}

static void slot_init(struct window *w, struct slot *s, int is_recv,
                      int peer, int k)
{
    int src = is_recv ? peer : mt_rank;
    int dst = is_recv ? mt_rank : peer;

    s->is_recv = is_recv;
    s->peer = peer;
    s->k = k;
    s->size = msg_size(k, src, dst);
    s->key = mt_key(s->size, (uint64_t)src, (uint64_t)dst,
                    (uint64_t)w->phase * 1000 + (uint64_t)k);
    s->buf = mt_alloc(s->size + MT_GUARD_LEN);
    if (is_recv)
        mt_guard_set(s->buf + s->size);
    else
        mt_fill(s->buf, s->size, s->key);
}

/* Slots [0, n/2) are receives, [n/2, n) sends; peer-major, k-minor order,
 * so receives of a pair are posted in message order. */
static void window_init(struct window *w, int phase, enum completion how)
{
    int per_dir = (mt_size - 1) * MSGS_PER_PEER;
    int i = 0;

    w->n = 2 * per_dir;
    w->phase = phase;
    w->how = how;
    w->done = 0;
    w->slots = mt_alloc(sizeof(*w->slots) * (size_t)w->n);
    w->reqs = mt_alloc(sizeof(*w->reqs) * (size_t)w->n);
    for (int dir = 1; dir >= 0; dir--)
        for (int d = 1; d < mt_size; d++)
            for (int k = 0; k < MSGS_PER_PEER; k++, i++)
                slot_init(w, &w->slots[i], dir,
                          (mt_rank + (dir ? -d : d) + mt_size) % mt_size, k);
}

static void window_free(struct window *w)
{
    for (int i = 0; i < w->n; i++)
        free(w->slots[i].buf);
    free(w->slots);
    free(w->reqs);
}

static void post_recvs(struct window *w)
{
    for (int i = 0; i < w->n / 2; i++) {
        struct slot *s = &w->slots[i];

        /* room for a little more than expected: a mismatch shows as a
         * wrong count, not as a truncation abort */
        MPI_Irecv(s->buf, (int)s->size + MT_GUARD_LEN / 2, MPI_BYTE, s->peer,
                  msg_tag(s->k), MPI_COMM_WORLD, &w->reqs[i]);
    }
}

static void post_sends(struct window *w)
{
    for (int i = w->n / 2; i < w->n; i++) {
        struct slot *s = &w->slots[i];

        MPI_Isend(s->buf, (int)s->size, MPI_BYTE, s->peer, msg_tag(s->k),
                  MPI_COMM_WORLD, &w->reqs[i]);
    }
}

static void complete_slot(struct window *w, int idx, const MPI_Status *st)
{
    struct slot *s;
    char what[128];

    if (!MT_CHECK(idx >= 0 && idx < w->n, "%s: completion index %d out of "
                  "range", completion_name[w->how], idx))
        return;
    s = &w->slots[idx];
    w->done++;
    snprintf(what, sizeof(what), "%s %s msg %d (%zu B) %s %d",
             completion_name[w->how], s->is_recv ? "recv" : "send", s->k,
             s->size, s->is_recv ? "from" : "to", s->peer);
    if (!s->is_recv) {
        mt_verify(s->buf, s->size, s->key, what); /* send buffer untouched */
        return;
    }
    if (!mt_check_status(st, s->peer, msg_tag(s->k), MPI_BYTE, (int)s->size,
                         what))
        return;
    mt_tamper(s->buf, s->size);
    mt_verify(s->buf, s->size, s->key, what);
    mt_guard_ok(s->buf + s->size, what);
}

static void complete_waitall(struct window *w)
{
    MPI_Status *st = mt_alloc(sizeof(*st) * (size_t)w->n);

    MPI_Waitall(w->n, w->reqs, st);
    for (int i = 0; i < w->n; i++)
        complete_slot(w, i, &st[i]);
    free(st);
}

static void complete_waitany(struct window *w)
{
    for (int left = w->n; left > 0; left--) {
        MPI_Status st;
        int idx;

        MPI_Waitany(w->n, w->reqs, &idx, &st);
        if (!MT_CHECK(idx != MPI_UNDEFINED, "waitany: MPI_UNDEFINED with %d "
                      "requests still active", left))
            return;
        complete_slot(w, idx, &st);
    }
}

static void complete_testsome(struct window *w)
{
    int *idx = mt_alloc(sizeof(*idx) * (size_t)w->n);
    MPI_Status *st = mt_alloc(sizeof(*st) * (size_t)w->n);

    while (w->done < w->n) {
        int outcount;

        MPI_Testsome(w->n, w->reqs, &outcount, idx, st);
        if (!MT_CHECK(outcount != MPI_UNDEFINED, "testsome: MPI_UNDEFINED "
                      "with %d requests still active", w->n - w->done))
            break;
        for (int i = 0; i < outcount; i++)
            complete_slot(w, idx[i], &st[i]);
    }
    free(idx);
    free(st);
}

static void complete_window(struct window *w)
{
    switch (w->how) {
    case BY_WAITALL: complete_waitall(w); break;
    case BY_WAITANY: complete_waitany(w); break;
    default: complete_testsome(w); break;
    }
    MT_CHECK(w->done == w->n, "%s: %d of %d requests completed",
             completion_name[w->how], w->done, w->n);
    for (int i = 0; i < w->n; i++)
        if (!MT_CHECK(w->reqs[i] == MPI_REQUEST_NULL, "%s: request %d not "
                      "freed after completion", completion_name[w->how], i))
            break;
}

/* recv_first: receives are posted before any send starts (expected
 * messages); otherwise sends go out first and arrive unexpected. */
static void run_phase(int phase, enum completion how, int recv_first)
{
    struct window w;

    window_init(&w, phase, how);
    if (recv_first) {
        post_recvs(&w);
        MPI_Barrier(MPI_COMM_WORLD);
        post_sends(&w);
    } else {
        post_sends(&w);
        MPI_Barrier(MPI_COMM_WORLD);
        post_recvs(&w);
    }
    complete_window(&w);
    window_free(&w);
}

int main(int argc, char **argv)
{
    int phase = 0;

    mt_init(&argc, &argv, "nonblocking");
    mt_require_ranks(2);
    for (int loop = 0; loop < mt_loops(); loop++)
        for (int it = 0; it < ITERS; it++)
            for (int how = 0; how < BY_COUNT; how++)
                for (int recv_first = 1; recv_first >= 0; recv_first--)
                    run_phase(phase++, (enum completion)how, recv_first);
    return mt_finish();
}
