/*
 * storm — a random message storm.
 *
 *   storm [SEED [MAX_MSGS]]     (SEED default: time; printed by rank 0)
 *
 * Every rank sends a random number (0..MAX_MSGS, default 1000) of messages
 * to random peers (itself included), with random sizes from 0 to 256 KiB
 * (log-uniform: mostly small), random tags, by MPI_Send (small ones only,
 * so no send can wait on a receive that is never posted) or MPI_Isend from
 * a window of buffers.  Receivers take whatever comes with MPI_ANY_SOURCE /
 * MPI_ANY_TAG, switching at random between a posted MPI_Irecv, MPI_Iprobe +
 * MPI_Recv and MPI_Improbe + MPI_Mrecv.
 *
 * Size and tag of the n-th message from s to d are a hash of (seed, s, d,
 * n), and since every receive matches every message, messages of a pair
 * arrive in send order: the receiver knows what the next message of each
 * sender must be.  Payloads carry a header (source, destination, sequence,
 * size, body checksum) when they are big enough, and a pattern.  After its
 * last message a rank sends an END marker with its count to everyone; when
 * all markers are in, an MPI_Alltoall of per-pair (count, bytes, checksum
 * sum) reconciles what was sent with what was received.
 */
#include "mpitest.h"

#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SIZE (256 * 1024)
#define BLOCKING_MAX 1024   /* MPI_Send only up to here (always eager) */
#define WINDOW 16           /* outstanding MPI_Isend */
#define TAG_RANGE 32000
#define END_TAG 32001
#define HDR_MAGIC 0x53544f52u /* "STOR" */

struct hdr {
    uint32_t src, dst;
    uint64_t seq;
    uint64_t size;
    uint32_t body_sum;
    uint32_t magic;
};

struct stats { /* per pair, as uint64 for the Alltoall */
    uint64_t count, bytes, sum;
};

struct msg {
    size_t size;
    int tag;
    uint64_t key;
};

struct sender {
    int total;          /* messages this rank will send */
    int posted;
    int ends_posted;
    mt_rng_t rng;
    uint64_t *seq;      /* next seq per destination */
    struct stats *out;  /* per destination */
    uint8_t *bufs[WINDOW];
    MPI_Request reqs[WINDOW];
    uint64_t *end_msgs; /* END payloads, one per destination */
    MPI_Request *end_reqs;
};

enum rmode { R_IRECV, R_IPROBE, R_IMPROBE, R_MODES };

struct receiver {
    mt_rng_t rng;
    enum rmode mode;
    MPI_Request req;    /* posted MPI_Irecv in R_IRECV mode */
    uint8_t *buf;       /* MAX_SIZE + guard */
    uint64_t *seq;      /* next expected seq per source */
    int *ended;         /* END seen per source */
    int ends;
    struct stats *in;   /* per source */
};

static uint64_t seed;

/* ------------------------------------------------------ message shape */

static struct msg storm_msg(int src, int dst, uint64_t seq)
{
    uint64_t h = mt_key(seed, (uint64_t)src, (uint64_t)dst, seq);
    unsigned bits = (unsigned)(h % 19); /* log-uniform: mostly small */
    struct msg m;

    m.size = (size_t)((h >> 8) % ((1u << bits) + 1)); /* 0 .. 2^18 */
    m.tag = (int)((h >> 32) % TAG_RANGE);
    m.key = h;
    return m;
}

/* The pattern covers the body after the header, or everything when the
 * payload is too small for a header. */
static void build_payload(uint8_t *buf, const struct msg *m, int src, int dst,
                          uint64_t seq)
{
    struct hdr h;

    if (m->size < sizeof(h)) {
        mt_fill(buf, m->size, m->key);
        return;
    }
    mt_fill(buf + sizeof(h), m->size - sizeof(h), m->key);
    h.src = (uint32_t)src;
    h.dst = (uint32_t)dst;
    h.seq = seq;
    h.size = m->size;
    h.body_sum = mt_checksum(buf + sizeof(h), m->size - sizeof(h));
    h.magic = HDR_MAGIC;
    memcpy(buf, &h, sizeof(h));
}

static void check_payload(const uint8_t *buf, const struct msg *m, int src,
                          uint64_t seq, const char *what)
{
    struct hdr h;

    if (m->size < sizeof(h)) {
        mt_verify(buf, m->size, m->key, what);
        return;
    }
    memcpy(&h, buf, sizeof(h));
    if (!MT_CHECK(h.magic == HDR_MAGIC && h.src == (uint32_t)src &&
                  h.dst == (uint32_t)mt_rank && h.seq == seq &&
                  h.size == m->size, "%s: header says src %u dst %u seq %"
                  PRIu64 " size %" PRIu64, what, h.src, h.dst, h.seq, h.size))
        return;
    if (!MT_CHECK(h.body_sum == mt_checksum(buf + sizeof(h),
                                            m->size - sizeof(h)),
                  "%s: body checksum mismatch", what))
        return;
    mt_verify(buf + sizeof(h), m->size - sizeof(h), m->key, what);
}

static void stats_add(struct stats *s, const uint8_t *buf, size_t size)
{
    s->count++;
    s->bytes += size;
    s->sum += mt_checksum(buf, size);
}

/* ---------------------------------------------------------- receiving */

static void receiver_init(struct receiver *r)
{
    mt_rng_seed(&r->rng, mt_key(seed, (uint64_t)mt_rank, 0x7265, 0));
    r->mode = R_IPROBE;
    r->req = MPI_REQUEST_NULL;
    r->buf = mt_alloc(MAX_SIZE + MT_GUARD_LEN);
    r->seq = calloc((size_t)mt_size, sizeof(uint64_t));
    r->ended = calloc((size_t)mt_size, sizeof(int));
    r->in = calloc((size_t)mt_size, sizeof(struct stats));
    r->ends = 0;
    if (r->seq == NULL || r->ended == NULL || r->in == NULL)
        mt_die("out of memory");
}

static void receiver_free(struct receiver *r)
{
    free(r->buf);
    free(r->seq);
    free(r->ended);
    free(r->in);
}

static void handle_end(struct receiver *r, int src, const uint8_t *buf,
                       int count)
{
    uint64_t announced = 0;

    if (!MT_CHECK(!r->ended[src] && count == (int)sizeof(announced),
                  "seed %" PRIu64 ": bad or second END from %d", seed, src))
        return;
    memcpy(&announced, buf, sizeof(announced));
    r->ended[src] = 1;
    r->ends++;
    MT_CHECK(announced == r->seq[src], "seed %" PRIu64 ": END from %d "
             "announces %" PRIu64 " messages, %" PRIu64 " arrived before it",
             seed, src, announced, r->seq[src]);
}

/* One message has been received into buf with status st. */
static void handle_message(struct receiver *r, uint8_t *buf,
                           const MPI_Status *st)
{
    int src = st->MPI_SOURCE, count = -1;
    struct msg want;
    char what[128];

    MPI_Get_count(st, MPI_BYTE, &count);
    if (!MT_CHECK(src >= 0 && src < mt_size, "message from rank %d", src))
        return;
    if (st->MPI_TAG == END_TAG) {
        handle_end(r, src, buf, count);
        return;
    }
    snprintf(what, sizeof(what), "seed %" PRIu64 ": message %" PRIu64
             " from %d", seed, r->seq[src], src);
    if (!MT_CHECK(!r->ended[src], "%s: arrived after its END", what))
        return;
    want = storm_msg(src, mt_rank, r->seq[src]);
    if (!mt_check_status(st, src, want.tag, MPI_BYTE, (int)want.size, what))
        return; /* lost, duplicated or reordered messages end up here */
    mt_tamper(buf, want.size);
    check_payload(buf, &want, src, r->seq[src], what);
    stats_add(&r->in[src], buf, want.size);
    r->seq[src]++;
}

static void pick_mode(struct receiver *r)
{
    r->mode = (enum rmode)mt_rng_below(&r->rng, R_MODES);
    if (r->mode == R_IRECV) {
        mt_guard_fill(r->buf, MAX_SIZE + MT_GUARD_LEN);
        MPI_Irecv(r->buf, MAX_SIZE, MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG,
                  MPI_COMM_WORLD, &r->req);
    }
}

/* Receive a probed message of known size into an exact buffer. */
static void recv_probed(struct receiver *r, MPI_Status *pst, MPI_Message *m)
{
    int count = 0;
    uint8_t *buf;
    MPI_Status st;

    MPI_Get_count(pst, MPI_BYTE, &count);
    buf = mt_alloc((size_t)count + MT_GUARD_LEN);
    mt_guard_set(buf + count);
    if (m != NULL)
        MPI_Mrecv(buf, count, MPI_BYTE, m, &st);
    else
        MPI_Recv(buf, count, MPI_BYTE, pst->MPI_SOURCE, pst->MPI_TAG,
                 MPI_COMM_WORLD, &st);
    handle_message(r, buf, &st);
    mt_guard_ok(buf + count, "probed message");
    free(buf);
}

/* Try to receive one message; returns 1 if one was received. */
static int receiver_poll(struct receiver *r)
{
    MPI_Status st;
    MPI_Message m;
    int flag = 0, count = 0;

    if (r->mode == R_IRECV) {
        MPI_Test(&r->req, &flag, &st);
        if (flag) {
            handle_message(r, r->buf, &st);
            MPI_Get_count(&st, MPI_BYTE, &count);
            mt_guard_ok(r->buf + (count > 0 ? count : 0), "irecv");
        }
    } else if (r->mode == R_IPROBE) {
        MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (flag)
            recv_probed(r, &st, NULL);
    } else {
        MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &m,
                    &st);
        if (flag)
            recv_probed(r, &st, &m);
    }
    if (flag)
        pick_mode(r);
    return flag;
}

/* A receive still posted at the end must be cancellable: if it matched,
 * some message came that nobody sent. */
static void receiver_finish(struct receiver *r)
{
    MPI_Status st;
    int cancelled = 0;

    if (r->mode != R_IRECV)
        return;
    MPI_Cancel(&r->req);
    MPI_Wait(&r->req, &st);
    MPI_Test_cancelled(&st, &cancelled);
    MT_CHECK(cancelled, "seed %" PRIu64 ": extra message from %d tag %d "
             "after all END markers", seed, st.MPI_SOURCE, st.MPI_TAG);
}

/* ------------------------------------------------------------ sending */

static void sender_init(struct sender *s, int max_msgs)
{
    mt_rng_seed(&s->rng, mt_key(seed, (uint64_t)mt_rank, 0x7365, 0));
    s->total = (int)mt_rng_below(&s->rng, (uint64_t)max_msgs + 1);
    s->posted = 0;
    s->ends_posted = 0;
    s->seq = calloc((size_t)mt_size, sizeof(uint64_t));
    s->out = calloc((size_t)mt_size, sizeof(struct stats));
    s->end_msgs = calloc((size_t)mt_size, sizeof(uint64_t));
    s->end_reqs = mt_alloc(sizeof(MPI_Request) * (size_t)mt_size);
    if (s->seq == NULL || s->out == NULL || s->end_msgs == NULL)
        mt_die("out of memory");
    for (int i = 0; i < WINDOW; i++) {
        s->bufs[i] = mt_alloc(MAX_SIZE);
        s->reqs[i] = MPI_REQUEST_NULL;
    }
}

static void sender_free(struct sender *s)
{
    for (int i = 0; i < WINDOW; i++)
        free(s->bufs[i]);
    free(s->seq);
    free(s->out);
    free(s->end_msgs);
    free(s->end_reqs);
}

static int free_slot(const struct sender *s)
{
    for (int i = 0; i < WINDOW; i++)
        if (s->reqs[i] == MPI_REQUEST_NULL)
            return i;
    return -1;
}

/* Post the next message if there is room; returns 1 if one was sent. */
static int send_next(struct sender *s)
{
    int slot = free_slot(s), dst, blocking;
    uint64_t seq;
    struct msg m;

    if (slot < 0)
        return 0;
    dst = (int)mt_rng_below(&s->rng, (uint64_t)mt_size);
    blocking = mt_rng_below(&s->rng, 2) == 0;
    seq = s->seq[dst];
    m = storm_msg(mt_rank, dst, seq);
    build_payload(s->bufs[slot], &m, mt_rank, dst, seq);
    stats_add(&s->out[dst], s->bufs[slot], m.size);
    s->seq[dst]++;
    s->posted++;
    if (blocking && m.size <= BLOCKING_MAX && dst != mt_rank)
        MPI_Send(s->bufs[slot], (int)m.size, MPI_BYTE, dst, m.tag,
                 MPI_COMM_WORLD);
    else
        MPI_Isend(s->bufs[slot], (int)m.size, MPI_BYTE, dst, m.tag,
                  MPI_COMM_WORLD, &s->reqs[slot]);
    return 1;
}

static void send_ends(struct sender *s)
{
    for (int d = 0; d < mt_size; d++) {
        s->end_msgs[d] = s->seq[d];
        MPI_Isend(&s->end_msgs[d], (int)sizeof(uint64_t), MPI_BYTE, d,
                  END_TAG, MPI_COMM_WORLD, &s->end_reqs[d]);
    }
    s->ends_posted = 1;
}

static int sends_complete(struct sender *s)
{
    int flag = 0, ends = 0;

    MPI_Testall(WINDOW, s->reqs, &flag, MPI_STATUSES_IGNORE);
    if (flag && s->ends_posted)
        MPI_Testall(mt_size, s->end_reqs, &ends, MPI_STATUSES_IGNORE);
    return flag && ends;
}

/* Free finished window slots; returns 1 if any finished. */
static int sender_poll(struct sender *s)
{
    int idx[WINDOW], n = 0;

    MPI_Testsome(WINDOW, s->reqs, &n, idx, MPI_STATUSES_IGNORE);
    return n != MPI_UNDEFINED && n > 0;
}

/* ------------------------------------------------------------ the run */

static void storm(struct sender *s, struct receiver *r)
{
    int done = 0;

    pick_mode(r);
    while (!done) {
        int busy = 0;

        if (s->posted < s->total)
            busy |= send_next(s);
        else if (!s->ends_posted)
            send_ends(s);
        busy |= receiver_poll(r);
        busy |= sender_poll(s);
        done = s->ends_posted && r->ends == mt_size && sends_complete(s);
        if (!busy)
            sched_yield(); /* let oversubscribed peers run */
    }
    receiver_finish(r);
}

static void reconcile(const struct sender *s, const struct receiver *r)
{
    struct stats *expect = mt_alloc(sizeof(struct stats) * (size_t)mt_size);

    MPI_Alltoall(s->out, 3, MPI_UINT64_T, expect, 3, MPI_UINT64_T,
                 MPI_COMM_WORLD);
    for (int src = 0; src < mt_size; src++) {
        const struct stats *e = &expect[src], *g = &r->in[src];

        MT_CHECK(e->count == g->count && e->bytes == g->bytes &&
                 e->sum == g->sum, "seed %" PRIu64 ": from rank %d sent %"
                 PRIu64 " msgs / %" PRIu64 " B, received %" PRIu64 " / %"
                 PRIu64 " B%s", seed, src, e->count, e->bytes, g->count,
                 g->bytes, e->sum != g->sum ? " (checksums differ)" : "");
    }
    free(expect);
}

static void report(const struct sender *s)
{
    long long mine[2] = { s->total, 0 }, all[2];

    for (int d = 0; d < mt_size; d++)
        mine[1] += (long long)s->out[d].bytes;
    MPI_Reduce(mine, all, 2, MPI_LONG_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    if (mt_rank == 0)
        printf("storm: seed %" PRIu64 ": %lld messages, %lld bytes\n", seed,
               all[0], all[1]);
}

static void parse_args(int argc, char **argv, int *max_msgs)
{
    uint64_t s = (uint64_t)time(NULL);

    if (argc > 1)
        s = strtoull(argv[1], NULL, 0);
    if (argc > 2)
        *max_msgs = atoi(argv[2]);
    if (*max_msgs < 0)
        mt_die("MAX_MSGS must be >= 0");
    /* rank 0 decides: ranks may start in different seconds */
    MPI_Bcast(&s, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    seed = s;
    if (mt_rank == 0) {
        printf("storm: seed %" PRIu64 " (rerun: storm %" PRIu64 " %d)\n",
               seed, seed, *max_msgs);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    int max_msgs = 1000;
    uint64_t base;

    mt_init(&argc, &argv, "storm");
    parse_args(argc, argv, &max_msgs);
    base = seed;
    for (int loop = 0; loop < mt_loops(); loop++) {
        struct sender s;
        struct receiver r;

        seed = base + (uint64_t)loop;
        sender_init(&s, max_msgs);
        receiver_init(&r);
        storm(&s, &r);
        reconcile(&s, &r);
        report(&s);
        sender_free(&s);
        receiver_free(&r);
    }
    return mt_finish();
}
