/*
 * pingpong_trace — 8-byte ping-pong between ranks 0 and 1 for a while,
 * every round trip timed: what a latency-bound job sees while something
 * else happens on its nodes (bench/move_impact.sh: a big move).
 *
 *   pingpong_trace SECONDS [SIZE]
 *
 * Rank 0 prints one line per round trip that took longer than 1 ms, and
 * at the end, for each phase marked by the files named in
 * $TRACE_MARK_BEGIN and $TRACE_MARK_END (the moment each appeared; absent:
 * the whole run is one phase):
 *   phase NAME: N round trips, median M us, p99 P us, max X us (half round trips)
 * Phases: before (until BEGIN appears), during (until END appears), after.
 */
#include <mpi.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 24)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, double *v, size_t n)
{
    if (!n) {
        printf("phase %s: no round trips\n", name);
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    printf("phase %s: %zu round trips, median %.2f us, p99 %.2f us, max %.2f us (half round trips)\n", name, n,
           v[n / 2] * 1e6 / 2, v[(size_t)((double)n * 0.99)] * 1e6 / 2, v[n - 1] * 1e6 / 2);
}

int main(int argc, char **argv)
{
    int rank, size_ranks;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size_ranks);
    if (argc < 2 || size_ranks < 2) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np 2 pingpong_trace SECONDS [SIZE]\n");
        MPI_Finalize();
        return 2;
    }
    double secs = atof(argv[1]);
    int len = argc > 2 ? atoi(argv[2]) : 8;
    char *buf = calloc(1, len > 0 ? (size_t)len : 1);
    double *rtt = rank == 0 ? malloc(MAX_SAMPLES * sizeof *rtt) : NULL;
    unsigned char *phase = rank == 0 ? malloc(MAX_SAMPLES) : NULL;
    const char *mb = getenv("TRACE_MARK_BEGIN"), *me = getenv("TRACE_MARK_END");
    if (!buf || (rank == 0 && (!rtt || !phase)))
        MPI_Abort(MPI_COMM_WORLD, 1);
    for (int i = 0; i < 1000; i++) { /* warm-up */
        if (rank == 0) {
            MPI_Send(buf, len, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
            MPI_Recv(buf, len, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, len, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, len, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
        }
    }
    double t_end = MPI_Wtime() + secs, next_check = 0;
    size_t n = 0;
    int stop = 0, cur = 0;
    while (!stop) {
        if (rank == 0) {
            double t0 = MPI_Wtime();
            MPI_Send(buf, len, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
            MPI_Recv(buf, len, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            double t1 = MPI_Wtime(), d = t1 - t0;
            if (t1 >= next_check) { /* the phase marks, 100 times a second */
                next_check = t1 + 0.01;
                if (cur == 0 && mb && access(mb, F_OK) == 0)
                    cur = 1;
                if (cur == 1 && me && access(me, F_OK) == 0)
                    cur = 2;
            }
            if (d > 1e-3)
                printf("slow round trip: %.3f ms at %.3f s (phase %d)\n", d * 1e3, t1 - (t_end - secs), cur);
            if (n < MAX_SAMPLES) {
                rtt[n] = d;
                phase[n++] = (unsigned char)cur;
            }
            stop = t1 >= t_end;
            buf[0] = (char)stop;
        } else if (rank == 1) {
            MPI_Recv(buf, len, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            stop = buf[0];
            MPI_Send(buf, len, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
        } else {
            stop = 1;
        }
    }
    if (rank == 0) {
        static const char *names[3] = {"before", "during", "after"};
        double *v = malloc((n ? n : 1) * sizeof *v);
        if (!v)
            MPI_Abort(MPI_COMM_WORLD, 1);
        for (int p = 0; p < 3; p++) {
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                if (phase[i] == p)
                    v[k++] = rtt[i];
            if (p == 0 || mb)
                report(mb ? names[p] : "whole", v, k);
        }
        free(v);
        fflush(stdout);
    }
    MPI_Finalize();
    return 0;
}
