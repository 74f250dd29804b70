/*
 * osu_bench — point-to-point latency and bandwidth between ranks 0 and 1,
 * in the style of the OSU micro-benchmarks (written from scratch for migr).
 *
 *   latency    ping-pong; reported value = half the round-trip time in
 *              microseconds, averaged over many round trips after a warm-up.
 *   bandwidth  rank 0 posts a window of MPI_Isend (default 64) and waits for
 *              them, rank 1 posts as many MPI_Irecv and answers the window
 *              with a 1-byte ack; reported value = MB/s (10^6 bytes/s).
 *
 * Each size (powers of two from --min to --max) is measured --reps times;
 * the median is reported.  Ranks beyond 1 only take part in the barriers.
 * Run `osu_bench --help` for the options.
 */
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_DATA 1
#define TAG_ACK 2
#define SCALE_FROM 8192           /* sizes above get fewer iterations */
#define RECV_MEM_CAP (256u << 20) /* distinct receive buffers up to this */
#define BW_BYTES_PER_REP (64.0 * 1024 * 1024)

enum which { T_LATENCY = 1, T_BANDWIDTH = 2, T_BOTH = 3 };

struct opts {
    enum which test;
    size_t min, max;
    int iters;   /* latency round trips per rep at small sizes */
    int reps;
    int window;
    int csv;
    double max_time; /* seconds per repetition, 0: no limit */
};

struct bufs {
    char *send;
    char **recv; /* window receive buffers (some shared if over the cap) */
    int nrecv;
};

static int rank, nranks;

/* ------------------------------------------------------------ options */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: osu_bench [options]   (run under mpirun with np >= 2)\n"
            "Latency and bandwidth between ranks 0 and 1, OSU style.\n\n"
            "  --test latency|bandwidth|both   what to measure (default both)\n"
            "  --min SIZE      smallest message, bytes; K/M suffixes (default 1)\n"
            "  --max SIZE      largest message (default 4M); powers of two between\n"
            "  --iters N       latency round trips per repetition for sizes up to\n"
            "                  8 KiB, fewer above (default 10000); bandwidth\n"
            "                  windows per repetition: N/50, but at most 64 MiB\n"
            "                  and at least 2 windows\n"
            "  --reps N        repetitions per size; the median is reported\n"
            "                  (default 5)\n"
            "  --window N      messages in flight per bandwidth window (default 64)\n"
            "  --max-time S    cut the iterations so that one repetition takes\n"
            "                  about S seconds at most, judged from the warm-up\n"
            "                  (default 0.5; 0: no limit): keeps slow transports\n"
            "                  from taking hours\n"
            "  --csv           machine-readable output: test,size,value\n"
            "                  (latency in us, bandwidth in MB/s)\n"
            "  -h, --help      this text\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);

    if (end == s)
        return -1;
    if (*end == 'k' || *end == 'K')
        v <<= 10, end++;
    else if (*end == 'm' || *end == 'M')
        v <<= 20, end++;
    if (*end != '\0')
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_int(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (end == s || *end != '\0' || v <= 0 || v > 1000000000)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);

    if (end == s || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

static int parse_test(const char *s, enum which *out)
{
    if (strcmp(s, "latency") == 0)
        *out = T_LATENCY;
    else if (strcmp(s, "bandwidth") == 0)
        *out = T_BANDWIDTH;
    else if (strcmp(s, "both") == 0)
        *out = T_BOTH;
    else
        return -1;
    return 0;
}

/* Returns 0 to run, 1 to exit successfully (help), -1 on a bad option
 * (with the reason already printed by rank 0). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            if (rank == 0)
                usage(stdout);
            return 1;
        } else if (strcmp(a, "--csv") == 0) {
            o->csv = 1;
            continue;
        } else if (v == NULL) {
            bad = 1;
        } else if (strcmp(a, "--test") == 0) {
            bad = parse_test(v, &o->test);
        } else if (strcmp(a, "--min") == 0) {
            bad = parse_size(v, &o->min);
        } else if (strcmp(a, "--max") == 0) {
            bad = parse_size(v, &o->max);
        } else if (strcmp(a, "--iters") == 0) {
            bad = parse_int(v, &o->iters);
        } else if (strcmp(a, "--reps") == 0) {
            bad = parse_int(v, &o->reps);
        } else if (strcmp(a, "--window") == 0) {
            bad = parse_int(v, &o->window);
        } else if (strcmp(a, "--max-time") == 0) {
            bad = parse_seconds(v, &o->max_time);
        } else {
            if (rank == 0)
                fprintf(stderr, "osu_bench: unknown option '%s'\n", a);
            return -1;
        }
        if (bad) {
            if (rank == 0)
                fprintf(stderr, "osu_bench: option %s needs a valid value%s%s\n",
                        a, v ? ", not " : "", v ? v : "");
            return -1;
        }
        i++;
    }
    if (o->min < 1 || o->max < o->min) {
        if (rank == 0)
            fprintf(stderr, "osu_bench: need 1 <= --min <= --max\n");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ buffers */

static void bufs_init(struct bufs *b, size_t max, int window)
{
    size_t cap = RECV_MEM_CAP / (max ? max : 1);

    b->nrecv = cap < 1 ? 1 : (cap < (size_t)window ? (int)cap : window);
    b->send = malloc(max);
    b->recv = malloc(sizeof(char *) * (size_t)b->nrecv);
    if (b->send == NULL || b->recv == NULL)
        MPI_Abort(MPI_COMM_WORLD, 2);
    memset(b->send, 'a', max);
    for (int i = 0; i < b->nrecv; i++) {
        b->recv[i] = malloc(max);
        if (b->recv[i] == NULL)
            MPI_Abort(MPI_COMM_WORLD, 2);
        memset(b->recv[i], 'b', max); /* fault the pages in now */
    }
}

static void bufs_free(struct bufs *b)
{
    for (int i = 0; i < b->nrecv; i++)
        free(b->recv[i]);
    free(b->recv);
    free(b->send);
}

/* ------------------------------------------------------------ latency */

static void pingpong(char *sbuf, char *rbuf, size_t size, int n)
{
    for (int i = 0; i < n; i++) {
        if (rank == 0) {
            MPI_Send(sbuf, (int)size, MPI_CHAR, 1, TAG_DATA, MPI_COMM_WORLD);
            MPI_Recv(rbuf, (int)size, MPI_CHAR, 1, TAG_DATA, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(rbuf, (int)size, MPI_CHAR, 0, TAG_DATA, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
            MPI_Send(sbuf, (int)size, MPI_CHAR, 0, TAG_DATA, MPI_COMM_WORLD);
        }
    }
}

/* How many of n iterations fit in `budget` seconds, judged from a warm-up
 * of `warm` iterations that took t seconds; at least `floor`.  Every rank
 * calls it and they agree on the smallest answer. */
static int fit_budget(int n, int warm, double t, double budget, int floor)
{
    int v = n;

    if (budget > 0 && t > 0 && budget * warm / t < v)
        v = (int)(budget * warm / t);
    if (v < floor)
        v = floor;
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    return v;
}

static int clamp(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* microseconds per one-way trip */
static double latency_once(const struct bufs *b, size_t size, int iters,
                           double budget)
{
    int warm = clamp(iters / 10, 2, 100);
    double t;

    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    pingpong(b->send, b->recv[0], size, warm);
    iters = fit_budget(iters, warm, MPI_Wtime() - t, budget, 10);
    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    pingpong(b->send, b->recv[0], size, iters);
    t = MPI_Wtime() - t;
    return t * 1e6 / (2.0 * iters);
}

/* ---------------------------------------------------------- bandwidth */

static void window_once(const struct bufs *b, size_t size, int window,
                        MPI_Request *reqs)
{
    char ack = 0;

    if (rank == 0) {
        for (int i = 0; i < window; i++)
            MPI_Isend(b->send, (int)size, MPI_CHAR, 1, TAG_DATA,
                      MPI_COMM_WORLD, &reqs[i]);
        MPI_Waitall(window, reqs, MPI_STATUSES_IGNORE);
        MPI_Recv(&ack, 1, MPI_CHAR, 1, TAG_ACK, MPI_COMM_WORLD,
                 MPI_STATUS_IGNORE);
    } else if (rank == 1) {
        for (int i = 0; i < window; i++)
            MPI_Irecv(b->recv[i % b->nrecv], (int)size, MPI_CHAR, 0, TAG_DATA,
                      MPI_COMM_WORLD, &reqs[i]);
        MPI_Waitall(window, reqs, MPI_STATUSES_IGNORE);
        MPI_Send(&ack, 1, MPI_CHAR, 0, TAG_ACK, MPI_COMM_WORLD);
    }
}

/* MB/s (10^6 bytes per second) */
static double bandwidth_once(const struct bufs *b, size_t size, int windows,
                             int window, double budget)
{
    MPI_Request *reqs = malloc(sizeof(MPI_Request) * (size_t)window);
    int warm = clamp(windows / 4, 1, 10);
    double t;

    if (reqs == NULL)
        MPI_Abort(MPI_COMM_WORLD, 2);
    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    for (int i = 0; i < warm; i++)
        window_once(b, size, window, reqs);
    windows = fit_budget(windows, warm, MPI_Wtime() - t, budget, 2);
    MPI_Barrier(MPI_COMM_WORLD);
    t = MPI_Wtime();
    for (int i = 0; i < windows; i++)
        window_once(b, size, window, reqs);
    t = MPI_Wtime() - t;
    free(reqs);
    return (double)size * window * windows / t / 1e6;
}

/* ------------------------------------------------------------- driver */

/* Fewer iterations for large sizes: each step above SCALE_FROM halves. */
static int scaled(int n, size_t size, int floor)
{
    double f = size > SCALE_FROM ? (double)SCALE_FROM / (double)size : 1.0;
    int v = (int)(n * f);

    return v < floor ? floor : v;
}

/* Bandwidth windows per repetition: iters/50, at most BW_BYTES_PER_REP. */
static int bw_windows(const struct opts *o, size_t size)
{
    double budget = BW_BYTES_PER_REP / ((double)size * o->window);
    int n = o->iters / 50;

    if (n > budget)
        n = (int)budget;
    return n < 2 ? 2 : n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

static double measure(enum which t, const struct opts *o, const struct bufs *b,
                      size_t size)
{
    double *v = malloc(sizeof(double) * (size_t)o->reps), m;

    if (v == NULL)
        MPI_Abort(MPI_COMM_WORLD, 2);
    for (int r = 0; r < o->reps; r++) {
        if (t == T_LATENCY)
            v[r] = latency_once(b, size, scaled(o->iters, size, 10),
                                o->max_time);
        else
            v[r] = bandwidth_once(b, size, bw_windows(o, size), o->window,
                                  o->max_time);
    }
    m = median(v, o->reps);
    free(v);
    return m;
}

static void run_test(enum which t, const struct opts *o, const struct bufs *b)
{
    const char *name = t == T_LATENCY ? "latency" : "bandwidth";

    if (rank == 0 && !o->csv)
        printf("# %s (%s), median of %d repetitions\n# %-10s %12s\n", name,
               t == T_LATENCY ? "us, half round trip" : "MB/s", o->reps,
               "size", t == T_LATENCY ? "us" : "MB/s");
    for (size_t size = o->min; size <= o->max; size *= 2) {
        double v = measure(t, o, b, size);

        if (rank == 0 && o->csv)
            printf("%s,%zu,%.3f\n", name, size, v);
        else if (rank == 0)
            printf("%-12zu %12.2f\n", size, v);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    struct opts o = { T_BOTH, 1, 4u << 20, 10000, 5, 64, 0, 0.5 };
    struct bufs b;
    int rc;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    rc = parse_args(argc, argv, &o);
    if (rc == 0 && nranks < 2) {
        if (rank == 0)
            fprintf(stderr, "osu_bench: needs at least 2 ranks (mpirun -np 2)\n");
        rc = -1;
    }
    if (rc != 0) {
        MPI_Finalize();
        return rc < 0 ? 2 : 0;
    }
    bufs_init(&b, o.max, o.window);
    if (rank == 0 && o.csv)
        printf("test,size,value\n");
    if (o.test & T_LATENCY)
        run_test(T_LATENCY, &o, &b);
    if (o.test & T_BANDWIDTH)
        run_test(T_BANDWIDTH, &o, &b);
    bufs_free(&b);
    MPI_Finalize();
    return 0;
}
