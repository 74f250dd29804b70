/*
 * collectives — every MPI collective and (where MPI-3 has one) its
 * non-blocking I-version, with small counts and counts of >= 1 MiB, on
 * MPI_COMM_WORLD, on a communicator with reversed rank order and on two
 * disjoint halves; results are checked against analytic values.
 *
 *   Barrier Bcast Reduce Allreduce (incl. MPI_IN_PLACE, double) Gather(v)
 *   Scatter(v) Allgather(v) Alltoall(v,w) Reduce_scatter(_block) Scan Exscan
 *   + several non-blocking collectives in flight at once.
 *
 * Data that moves is val(source, destination, index, salt); data that is
 * reduced is (rank + 1) * g(index), whose sums, prefix sums, maxima and
 * minima have closed forms.  The v-variants use uneven counts (some zero)
 * and gaps between blocks, which must stay untouched.
 */
#include "mpitest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL (-123456789)
#define LARGE_COUNT (256 * 1024 + 3) /* ints: just over 1 MiB */
#define GAP 2                        /* elements between v-blocks */

struct ctx {
    MPI_Comm comm;
    const char *comm_name;
    int rank, size;
    int nb;      /* use the non-blocking version */
    int count;
    int salt;    /* changes every test, so stale data never matches */
};

/* Call the blocking collective, or the non-blocking one + MPI_Wait. */
#define COLL(c, blocking, nonblocking, ...)                                 \
    do {                                                                    \
        if ((c)->nb) {                                                      \
            MPI_Request rq_;                                                \
            nonblocking(__VA_ARGS__, &rq_);                                 \
            MPI_Wait(&rq_, MPI_STATUS_IGNORE);                              \
        } else {                                                            \
            blocking(__VA_ARGS__);                                          \
        }                                                                   \
    } while (0)

/* ------------------------------------------------------------- values */

static int val(int src, int dst, size_t i, int salt)
{
    uint32_t v = (uint32_t)src * 1000003u + (uint32_t)dst * 7919u +
                 (uint32_t)i * 3u + (uint32_t)salt * 131u;

    return (int)(v & 0x3fffffff);
}

static int g(size_t i)
{
    return (int)(i % 1009) + 1;
}

static int contrib(int rank, size_t i)
{
    return (rank + 1) * g(i);
}

static int tri(int n) /* 1 + 2 + ... + n */
{
    return n * (n + 1) / 2;
}

/* per-rank counts of the v-variants: uneven, some zero */
static int vcount(const struct ctx *c, int r)
{
    return r % 3 == 1 ? 0 : c->count + r;
}

/* displacements with GAP elements between blocks; returns the total */
static int vdispls(const struct ctx *c, int *counts, int *displs)
{
    int at = 0;

    for (int r = 0; r < c->size; r++) {
        counts[r] = vcount(c, r);
        displs[r] = at;
        at += counts[r] + GAP;
    }
    return at;
}

/* ---------------------------------------------------------- buffers */

static int *ints(size_t n)
{
    int *p = mt_alloc(sizeof(int) * (n ? n : 1));

    for (size_t i = 0; i < n; i++)
        p[i] = SENTINEL;
    return p;
}

static int *int_array(int n)
{
    return mt_alloc(sizeof(int) * (size_t)n);
}

static void expect_ints(const struct ctx *c, const char *op, int *got,
                        const int *want, size_t n)
{
    mt_tamper(got, sizeof(int) * n);
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            mt_fail("%s%s on %s (np %d, count %d): element %zu is %d, "
                    "expected %d", c->nb ? "I" : "", op, c->comm_name,
                    c->size, c->count, i, got[i], want[i]);
            return;
        }
    }
}

static void free_all(int *a, int *b, int *w)
{
    free(a);
    free(b);
    free(w);
}

/* --------------------------------------------------------- one-to-all */

static void test_barrier(const struct ctx *c)
{
    COLL(c, MPI_Barrier, MPI_Ibarrier, c->comm);
}

static void test_bcast(const struct ctx *c)
{
    int root = c->salt % c->size;
    int *buf = ints((size_t)c->count), *want = ints((size_t)c->count);

    for (int i = 0; i < c->count; i++) {
        want[i] = val(root, 0, (size_t)i, c->salt);
        if (c->rank == root)
            buf[i] = want[i];
    }
    COLL(c, MPI_Bcast, MPI_Ibcast, buf, c->count, MPI_INT, root, c->comm);
    expect_ints(c, "Bcast", buf, want, (size_t)c->count);
    free_all(buf, want, NULL);
}

static void test_scatter(const struct ctx *c)
{
    int root = c->salt % c->size, n = c->count;
    int *send = ints((size_t)n * c->size), *recv = ints((size_t)n);
    int *want = ints((size_t)n);

    for (int r = 0; r < c->size && c->rank == root; r++)
        for (int i = 0; i < n; i++)
            send[r * n + i] = val(root, r, (size_t)i, c->salt);
    for (int i = 0; i < n; i++)
        want[i] = val(root, c->rank, (size_t)i, c->salt);
    COLL(c, MPI_Scatter, MPI_Iscatter, send, n, MPI_INT, recv, n, MPI_INT, root,
         c->comm);
    expect_ints(c, "Scatter", recv, want, (size_t)n);
    free_all(send, recv, want);
}

static void test_scatterv(const struct ctx *c)
{
    int root = c->salt % c->size, my = vcount(c, c->rank);
    int *counts = int_array(c->size), *displs = int_array(c->size);
    int total = vdispls(c, counts, displs);
    int *send = ints((size_t)total), *recv = ints((size_t)my + GAP);
    int *want = ints((size_t)my + GAP);

    for (int r = 0; r < c->size && c->rank == root; r++)
        for (int i = 0; i < counts[r]; i++)
            send[displs[r] + i] = val(root, r, (size_t)i, c->salt);
    for (int i = 0; i < my; i++)
        want[i] = val(root, c->rank, (size_t)i, c->salt);
    COLL(c, MPI_Scatterv, MPI_Iscatterv, send, counts, displs, MPI_INT, recv,
         my, MPI_INT, root, c->comm);
    expect_ints(c, "Scatterv", recv, want, (size_t)my + GAP);
    free_all(send, recv, want);
    free_all(counts, displs, NULL);
}

/* --------------------------------------------------------- all-to-one */

static void test_gather(const struct ctx *c)
{
    int root = c->salt % c->size, n = c->count;
    int *send = ints((size_t)n), *recv = ints((size_t)n * c->size);
    int *want = ints((size_t)n * c->size);

    for (int i = 0; i < n; i++)
        send[i] = val(c->rank, root, (size_t)i, c->salt);
    for (int r = 0; r < c->size && c->rank == root; r++)
        for (int i = 0; i < n; i++)
            want[r * n + i] = val(r, root, (size_t)i, c->salt);
    COLL(c, MPI_Gather, MPI_Igather, send, n, MPI_INT, recv, n, MPI_INT, root,
         c->comm);
    expect_ints(c, "Gather", recv, want, (size_t)n * c->size);
    free_all(send, recv, want);
}

static void test_gatherv(const struct ctx *c)
{
    int root = c->salt % c->size, my = vcount(c, c->rank);
    int *counts = int_array(c->size), *displs = int_array(c->size);
    int total = vdispls(c, counts, displs);
    int *send = ints((size_t)my), *recv = ints((size_t)total);
    int *want = ints((size_t)total);

    for (int i = 0; i < my; i++)
        send[i] = val(c->rank, root, (size_t)i, c->salt);
    for (int r = 0; r < c->size && c->rank == root; r++)
        for (int i = 0; i < counts[r]; i++)
            want[displs[r] + i] = val(r, root, (size_t)i, c->salt);
    COLL(c, MPI_Gatherv, MPI_Igatherv, send, my, MPI_INT, recv, counts, displs,
         MPI_INT, root, c->comm);
    expect_ints(c, "Gatherv", recv, want, (size_t)total);
    free_all(send, recv, want);
    free_all(counts, displs, NULL);
}

static void test_reduce(const struct ctx *c)
{
    int root = c->salt % c->size, n = c->count;
    int *send = ints((size_t)n), *recv = ints((size_t)n);
    int *want = ints((size_t)n);

    for (int i = 0; i < n; i++) {
        send[i] = contrib(c->rank, (size_t)i);
        if (c->rank == root)
            want[i] = g((size_t)i) * tri(c->size);
    }
    COLL(c, MPI_Reduce, MPI_Ireduce, send, recv, n, MPI_INT, MPI_SUM, root,
         c->comm);
    expect_ints(c, "Reduce(SUM)", recv, want, (size_t)n);
    free_all(send, recv, want);
}

/* ----------------------------------------------------------- all-to-all */

static void test_allgather(const struct ctx *c)
{
    int n = c->count;
    int *send = ints((size_t)n), *recv = ints((size_t)n * c->size);
    int *want = ints((size_t)n * c->size);

    for (int i = 0; i < n; i++)
        send[i] = val(c->rank, 0, (size_t)i, c->salt);
    for (int r = 0; r < c->size; r++)
        for (int i = 0; i < n; i++)
            want[r * n + i] = val(r, 0, (size_t)i, c->salt);
    COLL(c, MPI_Allgather, MPI_Iallgather, send, n, MPI_INT, recv, n, MPI_INT,
         c->comm);
    expect_ints(c, "Allgather", recv, want, (size_t)n * c->size);
    free_all(send, recv, want);
}

static void test_allgatherv(const struct ctx *c)
{
    int my = vcount(c, c->rank);
    int *counts = int_array(c->size), *displs = int_array(c->size);
    int total = vdispls(c, counts, displs);
    int *send = ints((size_t)my), *recv = ints((size_t)total);
    int *want = ints((size_t)total);

    for (int i = 0; i < my; i++)
        send[i] = val(c->rank, 0, (size_t)i, c->salt);
    for (int r = 0; r < c->size; r++)
        for (int i = 0; i < counts[r]; i++)
            want[displs[r] + i] = val(r, 0, (size_t)i, c->salt);
    COLL(c, MPI_Allgatherv, MPI_Iallgatherv, send, my, MPI_INT, recv, counts,
         displs, MPI_INT, c->comm);
    expect_ints(c, "Allgatherv", recv, want, (size_t)total);
    free_all(send, recv, want);
    free_all(counts, displs, NULL);
}

static void test_alltoall(const struct ctx *c)
{
    int n = c->count;
    size_t all = (size_t)n * c->size;
    int *send = ints(all), *recv = ints(all), *want = ints(all);

    for (int r = 0; r < c->size; r++) {
        for (int i = 0; i < n; i++) {
            send[r * n + i] = val(c->rank, r, (size_t)i, c->salt);
            want[r * n + i] = val(r, c->rank, (size_t)i, c->salt);
        }
    }
    COLL(c, MPI_Alltoall, MPI_Ialltoall, send, n, MPI_INT, recv, n, MPI_INT,
         c->comm);
    expect_ints(c, "Alltoall", recv, want, all);
    free_all(send, recv, want);
}

/* counts of the alltoallv/w exchange from s to d: uneven, some zero */
static int a2a_count(const struct ctx *c, int s, int d)
{
    return (s + 2 * d) % 3 == 0 ? 0 : c->count + s;
}

struct a2a_layout {
    int *scounts, *sdispls, *rcounts, *rdispls;
    int stotal, rtotal;
};

static void a2a_layout_init(const struct ctx *c, struct a2a_layout *l)
{
    l->scounts = int_array(c->size);
    l->sdispls = int_array(c->size);
    l->rcounts = int_array(c->size);
    l->rdispls = int_array(c->size);
    l->stotal = l->rtotal = 0;
    for (int r = 0; r < c->size; r++) {
        l->scounts[r] = a2a_count(c, c->rank, r);
        l->sdispls[r] = l->stotal;
        l->stotal += l->scounts[r] + GAP;
        l->rcounts[r] = a2a_count(c, r, c->rank);
        l->rdispls[r] = l->rtotal;
        l->rtotal += l->rcounts[r] + GAP;
    }
}

static void a2a_layout_free(struct a2a_layout *l)
{
    free_all(l->scounts, l->sdispls, NULL);
    free_all(l->rcounts, l->rdispls, NULL);
}

static void a2a_fill(const struct ctx *c, const struct a2a_layout *l,
                     int *send, int *want)
{
    for (int r = 0; r < c->size; r++) {
        for (int i = 0; i < l->scounts[r]; i++)
            send[l->sdispls[r] + i] = val(c->rank, r, (size_t)i, c->salt);
        for (int i = 0; i < l->rcounts[r]; i++)
            want[l->rdispls[r] + i] = val(r, c->rank, (size_t)i, c->salt);
    }
}

static void test_alltoallv(const struct ctx *c)
{
    struct a2a_layout l;
    int *send, *recv, *want;

    a2a_layout_init(c, &l);
    send = ints((size_t)l.stotal);
    recv = ints((size_t)l.rtotal);
    want = ints((size_t)l.rtotal);
    a2a_fill(c, &l, send, want);
    COLL(c, MPI_Alltoallv, MPI_Ialltoallv, send, l.scounts, l.sdispls, MPI_INT,
         recv, l.rcounts, l.rdispls, MPI_INT, c->comm);
    expect_ints(c, "Alltoallv", recv, want, (size_t)l.rtotal);
    free_all(send, recv, want);
    a2a_layout_free(&l);
}

/* Alltoallw: sent as MPI_INT, received as an "int pair" type for peers
 * whose count is even, as MPI_INT otherwise; displacements in bytes. */
static void test_alltoallw(const struct ctx *c)
{
    struct a2a_layout l;
    MPI_Datatype pair, *stypes, *rtypes;
    int *send, *recv, *want;

    MPI_Type_contiguous(2, MPI_INT, &pair);
    MPI_Type_commit(&pair);
    a2a_layout_init(c, &l);
    stypes = mt_alloc(sizeof(MPI_Datatype) * (size_t)c->size);
    rtypes = mt_alloc(sizeof(MPI_Datatype) * (size_t)c->size);
    send = ints((size_t)l.stotal);
    recv = ints((size_t)l.rtotal);
    want = ints((size_t)l.rtotal);
    a2a_fill(c, &l, send, want);
    for (int r = 0; r < c->size; r++) {
        stypes[r] = MPI_INT;
        rtypes[r] = l.rcounts[r] % 2 ? MPI_INT : pair;
        if (rtypes[r] == pair)
            l.rcounts[r] /= 2;
        l.sdispls[r] *= (int)sizeof(int);
        l.rdispls[r] *= (int)sizeof(int);
    }
    COLL(c, MPI_Alltoallw, MPI_Ialltoallw, send, l.scounts, l.sdispls, stypes,
         recv, l.rcounts, l.rdispls, rtypes, c->comm);
    expect_ints(c, "Alltoallw", recv, want, (size_t)l.rtotal);
    free_all(send, recv, want);
    free(stypes);
    free(rtypes);
    a2a_layout_free(&l);
    MPI_Type_free(&pair);
}

/* ------------------------------------------------------- reductions */

static const char *op_name(MPI_Op op)
{
    return op == MPI_SUM ? "SUM" : op == MPI_MAX ? "MAX" : "MIN";
}

static int reduced(MPI_Op op, int size, size_t i)
{
    if (op == MPI_SUM)
        return g(i) * tri(size);
    return op == MPI_MAX ? size * g(i) : g(i);
}

/* in_place: the result overwrites the contribution (MPI_IN_PLACE) */
static void test_allreduce_op(const struct ctx *c, MPI_Op op, int in_place)
{
    int n = c->count;
    int *send = ints((size_t)n), *recv = ints((size_t)n);
    int *want = ints((size_t)n);
    char name[48];

    for (int i = 0; i < n; i++) {
        send[i] = contrib(c->rank, (size_t)i);
        want[i] = reduced(op, c->size, (size_t)i);
    }
    if (in_place)
        COLL(c, MPI_Allreduce, MPI_Iallreduce, MPI_IN_PLACE, send, n, MPI_INT,
             op, c->comm);
    else
        COLL(c, MPI_Allreduce, MPI_Iallreduce, send, recv, n, MPI_INT, op,
             c->comm);
    snprintf(name, sizeof(name), "Allreduce(%s%s)", op_name(op),
             in_place ? ", in place" : "");
    expect_ints(c, name, in_place ? send : recv, want, (size_t)n);
    free_all(send, recv, want);
}

static void test_allreduce(const struct ctx *c)
{
    MPI_Op op = c->salt % 3 == 0 ? MPI_SUM : c->salt % 3 == 1 ? MPI_MAX
                                                              : MPI_MIN;

    test_allreduce_op(c, op, 0);
    test_allreduce_op(c, MPI_SUM, 1);
}

/* doubles: small integers, so sums are exact */
static void test_allreduce_double(const struct ctx *c)
{
    int n = c->count;
    double *send = mt_alloc(sizeof(double) * (size_t)n);
    double *recv = mt_alloc(sizeof(double) * (size_t)n);

    for (int i = 0; i < n; i++)
        send[i] = contrib(c->rank, (size_t)i) + 0.5;
    COLL(c, MPI_Allreduce, MPI_Iallreduce, send, recv, n, MPI_DOUBLE, MPI_SUM,
         c->comm);
    mt_tamper(recv, sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        double want = g((size_t)i) * tri(c->size) + 0.5 * c->size;

        if (!MT_CHECK(recv[i] == want, "%sAllreduce(double SUM) on %s count "
                      "%d: element %d is %g, expected %g", c->nb ? "I" : "",
                      c->comm_name, n, i, recv[i], want))
            break;
    }
    free(send);
    free(recv);
}

static int rs_count(const struct ctx *c, int r)
{
    return c->count + r % 2;
}

static void test_reduce_scatter(const struct ctx *c)
{
    int *counts = int_array(c->size), total = 0, start = 0;
    int *send, *recv, *want, my = rs_count(c, c->rank);

    for (int r = 0; r < c->size; r++) {
        counts[r] = rs_count(c, r);
        start += r < c->rank ? counts[r] : 0;
        total += counts[r];
    }
    send = ints((size_t)total);
    recv = ints((size_t)my);
    want = ints((size_t)my);
    for (int i = 0; i < total; i++)
        send[i] = contrib(c->rank, (size_t)i);
    for (int i = 0; i < my; i++)
        want[i] = g((size_t)(start + i)) * tri(c->size);
    COLL(c, MPI_Reduce_scatter, MPI_Ireduce_scatter, send, recv, counts,
         MPI_INT, MPI_SUM, c->comm);
    expect_ints(c, "Reduce_scatter", recv, want, (size_t)my);
    free_all(send, recv, want);
    free(counts);
}

static void test_reduce_scatter_block(const struct ctx *c)
{
    int n = c->count;
    int *send = ints((size_t)n * c->size), *recv = ints((size_t)n);
    int *want = ints((size_t)n);

    for (size_t i = 0; i < (size_t)n * c->size; i++)
        send[i] = contrib(c->rank, i);
    for (int i = 0; i < n; i++)
        want[i] = g((size_t)c->rank * n + i) * tri(c->size);
    COLL(c, MPI_Reduce_scatter_block, MPI_Ireduce_scatter_block, send, recv, n,
         MPI_INT, MPI_SUM, c->comm);
    expect_ints(c, "Reduce_scatter_block", recv, want, (size_t)n);
    free_all(send, recv, want);
}

static void test_scan(const struct ctx *c)
{
    int n = c->count;
    int *send = ints((size_t)n), *recv = ints((size_t)n);
    int *want = ints((size_t)n);

    for (int i = 0; i < n; i++) {
        send[i] = contrib(c->rank, (size_t)i);
        want[i] = g((size_t)i) * tri(c->rank + 1);
    }
    COLL(c, MPI_Scan, MPI_Iscan, send, recv, n, MPI_INT, MPI_SUM, c->comm);
    expect_ints(c, "Scan", recv, want, (size_t)n);
    free_all(send, recv, want);
}

static void test_exscan(const struct ctx *c)
{
    int n = c->count;
    int *send = ints((size_t)n), *recv = ints((size_t)n);
    int *want = ints((size_t)n);

    for (int i = 0; i < n; i++) {
        send[i] = contrib(c->rank, (size_t)i);
        want[i] = g((size_t)i) * tri(c->rank);
    }
    COLL(c, MPI_Exscan, MPI_Iexscan, send, recv, n, MPI_INT, MPI_SUM, c->comm);
    if (c->rank > 0) /* undefined on rank 0 */
        expect_ints(c, "Exscan", recv, want, (size_t)n);
    free_all(send, recv, want);
}

/* ------------------------------------------------ several in flight */

/* An Ibcast, an Iallreduce, an Ialltoall and an Ibarrier started together
 * and completed with one MPI_Waitall. */
static void test_overlap(const struct ctx *c)
{
    int n = c->count, root = c->salt % c->size;
    size_t all = (size_t)n * c->size;
    int *b = ints((size_t)n), *bw = ints((size_t)n);
    int *rs = ints((size_t)n), *rr = ints((size_t)n), *rw = ints((size_t)n);
    int *as = ints(all), *ar = ints(all), *aw = ints(all);
    MPI_Request req[4];

    for (int i = 0; i < n; i++) {
        bw[i] = val(root, 1, (size_t)i, c->salt);
        b[i] = c->rank == root ? bw[i] : SENTINEL;
        rs[i] = contrib(c->rank, (size_t)i);
        rw[i] = g((size_t)i) * tri(c->size);
    }
    for (int r = 0; r < c->size; r++) {
        for (int i = 0; i < n; i++) {
            as[r * n + i] = val(c->rank, r, (size_t)i, c->salt + 1);
            aw[r * n + i] = val(r, c->rank, (size_t)i, c->salt + 1);
        }
    }
    MPI_Ibcast(b, n, MPI_INT, root, c->comm, &req[0]);
    MPI_Iallreduce(rs, rr, n, MPI_INT, MPI_SUM, c->comm, &req[1]);
    MPI_Ialltoall(as, n, MPI_INT, ar, n, MPI_INT, c->comm, &req[2]);
    MPI_Ibarrier(c->comm, &req[3]);
    MPI_Waitall(4, req, MPI_STATUSES_IGNORE);
    expect_ints(c, "bcast (overlapped)", b, bw, (size_t)n);
    expect_ints(c, "allreduce (overlapped)", rr, rw, (size_t)n);
    expect_ints(c, "alltoall (overlapped)", ar, aw, all);
    free_all(b, bw, rs);
    free_all(rr, rw, as);
    free_all(ar, aw, NULL);
}

/* ------------------------------------------------------------ driver */

typedef void (*coll_test_fn)(const struct ctx *);

static const coll_test_fn tests[] = {
    test_barrier, test_bcast, test_reduce, test_allreduce,
    test_allreduce_double, test_gather, test_gatherv, test_scatter,
    test_scatterv, test_allgather, test_allgatherv, test_alltoall,
    test_alltoallv, test_alltoallw, test_reduce_scatter,
    test_reduce_scatter_block, test_scan, test_exscan,
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

static void run_on(MPI_Comm comm, const char *name, const int *counts,
                   int ncounts, int *salt)
{
    struct ctx c = { comm, name, 0, 0, 0, 0, 0 };

    MPI_Comm_rank(comm, &c.rank);
    MPI_Comm_size(comm, &c.size);
    for (int k = 0; k < ncounts; k++) {
        c.count = counts[k];
        for (c.nb = 0; c.nb <= 1; c.nb++) {
            for (size_t t = 0; t < NTESTS; t++) {
                c.salt = (*salt)++;
                tests[t](&c);
            }
        }
        c.salt = (*salt)++;
        test_overlap(&c);
    }
}

int main(int argc, char **argv)
{
    static const int all_counts[] = { 1, 7, LARGE_COUNT };
    MPI_Comm reversed, half;
    int salt = 0;

    mt_init(&argc, &argv, "collectives");
    mt_require_ranks(2);
    MPI_Comm_split(MPI_COMM_WORLD, 0, mt_size - 1 - mt_rank, &reversed);
    MPI_Comm_split(MPI_COMM_WORLD, mt_rank % 2, mt_rank, &half);
    for (int loop = 0; loop < mt_loops(); loop++) {
        run_on(MPI_COMM_WORLD, "world", all_counts, 3, &salt);
        run_on(reversed, "reversed world", all_counts, 2, &salt);
        run_on(half, "half of world", all_counts, 2, &salt);
    }
    MPI_Comm_free(&reversed);
    MPI_Comm_free(&half);
    return mt_finish();
}
