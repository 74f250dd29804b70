/*
 * ring_demo.c -- the demonstration job: a ring of ranks that computes and
 * communicates, and checks its own result.
 *
 * Every rank owns a block of a vector.  Each step it updates its block
 * (a little computation), passes a token with a running checksum around
 * the ring, exchanges halos with both neighbours and joins an allreduce.
 * At the end rank 0 compares the global checksum with the one computed
 * independently and prints one summary line per rank.
 *
 * Usage: ring_demo [STEPS [BLOCK_DOUBLES]]   (default 200 steps, 65536)
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static double update(double *v, int n, int step, int rank)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        v[i] = v[i] * 0.5 + (double)((rank + 1) * (step + 1) + i % 17);
        s += v[i];
    }
    return s;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    int n = argc > 2 ? atoi(argv[2]) : 65536;
    double *v = calloc((size_t)n + 2, sizeof *v);
    char host[64];
    gethostname(host, sizeof host);
    int left = (rank + size - 1) % size, right = (rank + 1) % size;
    double local = 0, t0 = MPI_Wtime();
    uint64_t token_sum = 0, bytes = 0;
    for (int step = 0; step < steps; step++) {
        local = update(v + 1, n, step, rank);
        /* halos */
        MPI_Sendrecv(&v[1], 1, MPI_DOUBLE, left, 1, &v[n + 1], 1, MPI_DOUBLE, right, 1, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        MPI_Sendrecv(&v[n], 1, MPI_DOUBLE, right, 2, &v[0], 1, MPI_DOUBLE, left, 2, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        /* token around the ring: each rank adds its rank and the step */
        uint64_t token = 0;
        if (rank == 0) {
            token = (uint64_t)step;
            MPI_Send(&token, 1, MPI_UINT64_T, right, 3, MPI_COMM_WORLD);
            MPI_Recv(&token, 1, MPI_UINT64_T, left, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            token_sum += token;
        } else {
            MPI_Recv(&token, 1, MPI_UINT64_T, left, 3, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            token += (uint64_t)rank;
            MPI_Send(&token, 1, MPI_UINT64_T, right, 3, MPI_COMM_WORLD);
        }
        /* a larger block now and then */
        if (step % 10 == 0)
            MPI_Sendrecv_replace(v + 1, n, MPI_DOUBLE, right, 4, left, 4, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                bytes += (uint64_t)n * sizeof(double);
        double global;
        MPI_Allreduce(&local, &global, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        bytes += 48;
    }
    double elapsed = MPI_Wtime() - t0;
    uint64_t expect = 0;
    for (int step = 0; step < steps; step++)
        expect += (uint64_t)step + (uint64_t)size * (uint64_t)(size - 1) / 2;
    int ok = rank != 0 || token_sum == expect;
    int all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    for (int r = 0; r < size; r++) {
        if (r == rank)
            printf("rank %d of %d on %s: %d steps in %.2f s, %.1f MiB exchanged\n", rank, size, host, steps,
                   elapsed, (double)bytes / (1 << 20));
        fflush(stdout);
        MPI_Barrier(MPI_COMM_WORLD);
    }
    if (rank == 0)
        printf("ring_demo: result %s (token checksum %llu, expected %llu)\n", all_ok ? "VERIFIED" : "WRONG",
               (unsigned long long)token_sum, (unsigned long long)expect);
    free(v);
    MPI_Finalize();
    return all_ok ? 0 : 1;
}
