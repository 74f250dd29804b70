/*
 * mpi_ring — the Open MPI proof of the engine (issue 3): two or more ranks
 * compute and exchange data in a ring for a fixed number of steps while
 * one rank is reincarnated again and again; the result is checked against
 * the value computed independently, and rank 0 prints a fixed set of lines
 * so that a lost or duplicated line shows.
 *   mpi_ring [STEPS] [USLEEP]
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 8192

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	return x;
}

int main(int argc, char **argv)
{
	int rank, size, steps = argc > 1 ? atoi(argv[1]) : 3000;
	int nap = argc > 2 ? atoi(argv[2]) : 2000;
	static uint64_t mine[N], theirs[N];
	uint64_t acc = 0, expect = 0, total = 0, want_total = 0;
	pid_t pid0 = getpid();

	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	for (int s = 0; s < steps; s++) {
		int right = (rank + 1) % size, left = (rank + size - 1) % size;
		for (int i = 0; i < N; i++)
			mine[i] = mix((uint64_t)s * 1000003u + (uint64_t)rank * 7919u + (uint64_t)i);
		MPI_Sendrecv(mine, N, MPI_UINT64_T, right, s, theirs, N, MPI_UINT64_T, left, s,
		             MPI_COMM_WORLD, MPI_STATUS_IGNORE);
		for (int i = 0; i < N; i++) {
			uint64_t w = mix((uint64_t)s * 1000003u + (uint64_t)left * 7919u + (uint64_t)i);
			if (theirs[i] != w) {
				fprintf(stderr, "rank %d step %d: wrong data from rank %d at %d\n", rank, s,
				        left, i);
				MPI_Abort(MPI_COMM_WORLD, 3);
			}
			acc += theirs[i] >> 20;
		}
		if (s % 100 == 99) {
			MPI_Allreduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
			if (rank == 0) {
				printf("step %d total %llu\n", s + 1, (unsigned long long)total);
				fflush(stdout);
			}
		}
		if (getpid() != pid0) {
			fprintf(stderr, "rank %d: pid changed\n", rank);
			MPI_Abort(MPI_COMM_WORLD, 4);
		}
		if (nap)
			usleep((useconds_t)nap);
	}
	/* the same sums, computed without any communication */
	for (int r = 0; r < size; r++) {
		int left = (r + size - 1) % size;
		for (int s = 0; s < steps; s++)
			for (int i = 0; i < N; i++) {
				uint64_t w = mix((uint64_t)s * 1000003u + (uint64_t)left * 7919u + (uint64_t)i) >> 20;
				want_total += w;
				if (r == rank)
					expect += w;
			}
	}
	MPI_Allreduce(&acc, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
	if (acc != expect || total != want_total) {
		fprintf(stderr, "rank %d: result %llu, expected %llu (total %llu/%llu)\n", rank,
		        (unsigned long long)acc, (unsigned long long)expect,
		        (unsigned long long)total, (unsigned long long)want_total);
		MPI_Abort(MPI_COMM_WORLD, 5);
	}
	if (rank == 0)
		printf("RESULT ok steps %d ranks %d total %llu\n", steps, size,
		       (unsigned long long)total);
	MPI_Finalize();
	return 0;
}
