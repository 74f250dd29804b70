/*
 * thread_multiple — MPI_THREAD_MULTIPLE (the program fails at once with a
 * clear line if the library does not provide it).
 *
 *  fan-in:  on every rank two threads send interleaved tagged messages of
 *           mixed sizes to all other ranks (MPI_Send, MPI_Isend+MPI_Wait,
 *           MPI_Ssend in turn) while the main thread receives with
 *           MPI_ANY_SOURCE / MPI_ANY_TAG.  The tag says which thread sent;
 *           messages of one sending thread must arrive in order, so the
 *           receiver predicts each and checks status, size and contents,
 *           and in the end that every (source, thread) stream is complete
 *           and nothing extra is left.
 *  rings:   two threads per rank each run MPI_Sendrecv around the ring at
 *           the same time, on different tags.
 */
#include "mpitest.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define NTHREADS 2
#define MSGS 30          /* per (sending thread, peer) */
#define RING_ITERS 20
#define TAG_SHIFT 8      /* tag = thread << TAG_SHIFT | seq % 256 */
#define RING_TAG 5000

static const size_t sizes[] = {
    0, 1, 8, 100, 4096, 5000, 65536, 100000, 262144,
};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define MAX_SIZE 262144

struct msg {
    size_t size;
    int tag;
    uint64_t key;
};

static struct msg stream_msg(int src, int thread, int dst, int seq)
{
    uint64_t h = mt_key((uint64_t)src, (uint64_t)thread, (uint64_t)dst,
                        (uint64_t)seq);
    struct msg m = { sizes[h % NSIZES], thread << TAG_SHIFT | (seq % 256), h };

    return m;
}

static void start_threads(pthread_t *th, void *(*fn)(void *), long *ids)
{
    for (long t = 0; t < NTHREADS; t++) {
        ids[t] = t;
        if (pthread_create(&th[t], NULL, fn, &ids[t]) != 0)
            mt_die("pthread_create failed");
    }
}

static void join_threads(pthread_t *th)
{
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
}

/* ------------------------------------------------------------ fan-in */

static void send_one(int thread, int peer, int seq, uint8_t *buf)
{
    struct msg m = stream_msg(mt_rank, thread, peer, seq);
    MPI_Request req;

    mt_fill(buf, m.size, m.key);
    switch ((seq + thread) % 3) {
    case 0:
        MPI_Send(buf, (int)m.size, MPI_BYTE, peer, m.tag, MPI_COMM_WORLD);
        break;
    case 1:
        MPI_Isend(buf, (int)m.size, MPI_BYTE, peer, m.tag, MPI_COMM_WORLD,
                  &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        break;
    default:
        MPI_Ssend(buf, (int)m.size, MPI_BYTE, peer, m.tag, MPI_COMM_WORLD);
        break;
    }
}

static void *sender_main(void *arg)
{
    int thread = (int)*(long *)arg;
    uint8_t *buf = mt_alloc(MAX_SIZE);

    for (int seq = 0; seq < MSGS; seq++)
        for (int d = 1; d < mt_size; d++)
            send_one(thread, (mt_rank + d) % mt_size, seq, buf);
    free(buf);
    return NULL;
}

/* next[src * NTHREADS + thread]: next expected seq of that stream */
static void receive_one(uint8_t *buf, int *next)
{
    MPI_Status st;
    struct msg want;
    char what[96];
    int src, thread;

    mt_guard_fill(buf, MAX_SIZE + MT_GUARD_LEN);
    MPI_Recv(buf, MAX_SIZE, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG,
             MPI_COMM_WORLD, &st);
    src = st.MPI_SOURCE;
    thread = st.MPI_TAG >> TAG_SHIFT;
    if (!MT_CHECK(src >= 0 && src < mt_size && src != mt_rank &&
                  thread >= 0 && thread < NTHREADS, "message with impossible "
                  "source %d / tag %d", src, st.MPI_TAG))
        return;
    if (!MT_CHECK(next[src * NTHREADS + thread] < MSGS, "extra message from "
                  "rank %d thread %d", src, thread))
        return;
    want = stream_msg(src, thread, mt_rank, next[src * NTHREADS + thread]++);
    snprintf(what, sizeof(what), "message %d of rank %d thread %d",
             next[src * NTHREADS + thread] - 1, src, thread);
    if (!mt_check_status(&st, src, want.tag, MPI_BYTE, (int)want.size, what))
        return;
    mt_tamper(buf, want.size);
    mt_verify(buf, want.size, want.key, what);
    mt_guard_ok(buf + want.size, what);
}

static void check_streams_complete(const int *next)
{
    MPI_Status st;
    int flag = 0;

    for (int src = 0; src < mt_size; src++)
        for (int t = 0; t < NTHREADS && src != mt_rank; t++)
            MT_CHECK(next[src * NTHREADS + t] == MSGS, "rank %d thread %d: "
                     "%d of %d messages received", src, t,
                     next[src * NTHREADS + t], MSGS);
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    MT_CHECK(!flag, "extra message from %d tag %d after all streams were "
             "complete", st.MPI_SOURCE, st.MPI_TAG);
}

static void run_fanin(void)
{
    int total = (mt_size - 1) * NTHREADS * MSGS;
    int *next = calloc((size_t)mt_size * NTHREADS, sizeof(int));
    uint8_t *buf = mt_alloc(MAX_SIZE + MT_GUARD_LEN);
    pthread_t th[NTHREADS];
    long ids[NTHREADS];

    if (next == NULL)
        mt_die("out of memory");
    start_threads(th, sender_main, ids);
    for (int i = 0; i < total; i++)
        receive_one(buf, next);
    join_threads(th);
    check_streams_complete(next);
    MPI_Barrier(MPI_COMM_WORLD);
    free(next);
    free(buf);
}

/* ------------------------------------------------------------- rings */

static void *ring_main(void *arg)
{
    int thread = (int)*(long *)arg;
    int right = (mt_rank + 1) % mt_size,
        left = (mt_rank + mt_size - 1) % mt_size;
    uint8_t *sbuf = mt_alloc(MAX_SIZE), *rbuf = mt_alloc(MAX_SIZE);
    char what[96];

    for (int it = 0; it < RING_ITERS; it++) {
        struct msg out = stream_msg(mt_rank, thread, right, 1000 + it);
        struct msg in = stream_msg(left, thread, mt_rank, 1000 + it);
        MPI_Status st;

        mt_fill(sbuf, out.size, out.key);
        MPI_Sendrecv(sbuf, (int)out.size, MPI_BYTE, right, RING_TAG + thread,
                     rbuf, MAX_SIZE, MPI_BYTE, left, RING_TAG + thread,
                     MPI_COMM_WORLD, &st);
        snprintf(what, sizeof(what), "ring thread %d iteration %d from %d",
                 thread, it, left);
        if (mt_check_status(&st, left, RING_TAG + thread, MPI_BYTE,
                            (int)in.size, what)) {
            mt_tamper(rbuf, in.size);
            mt_verify(rbuf, in.size, in.key, what);
        }
    }
    free(sbuf);
    free(rbuf);
    return NULL;
}

static void run_rings(void)
{
    pthread_t th[NTHREADS];
    long ids[NTHREADS];

    start_threads(th, ring_main, ids);
    join_threads(th);
    MPI_Barrier(MPI_COMM_WORLD);
}

int main(int argc, char **argv)
{
    mt_init_thread(&argc, &argv, "thread_multiple", MPI_THREAD_MULTIPLE);
    mt_require_ranks(2);
    for (int loop = 0; loop < mt_loops(); loop++) {
        run_fanin();
        run_rings();
    }
    return mt_finish();
}
