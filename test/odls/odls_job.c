/*
 * odls_job.c -- the MPI program of the odls suite (test/suites/odls.sh).
 *
 *   odls_job MODE [RANK] [DIR] [GO]
 *
 * Every rank first writes DIR/started.RANK (when DIR is given and not "-"),
 * then checks an allreduce and an alltoall over MPI_COMM_WORLD and prints
 *   "rank R of N job J pid P sum S"
 * (J: the ORTE jobid from OMPI_MCA_ess_base_jobid, as migr registers it),
 * waits until the file GO exists when GO is given (up to 120 s; so that a
 * test moves ranks before what follows), then, by MODE:
 *   ok       finalize and exit 0 ("odls_job ok" from rank 0 when the sum is right)
 *   sleep    sleep RANK seconds (here: a duration), print "slept R", then as ok
 *   abort    rank RANK calls MPI_Abort(MPI_COMM_WORLD, 3); the others wait
 *   segv     rank RANK writes through a null pointer; the others wait
 *   hang     every rank sleeps forever (for SIGINT and --timeout)
 *   usr1     wait up to 30 s for SIGUSR1 (mpirun forwards it), 1 s more
 *            for a second copy, print "usr1 R count C"; then as ok
 */
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
    (void)sig;
    usr1++;
}

int main(int argc, char **argv)
{
    int rank, size, sum = 0, arg = argc > 2 ? atoi(argv[2]) : 0;
    const char *mode = argc > 1 ? argv[1] : "ok";
    signal(SIGUSR1, on_usr1);
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc > 3 && strcmp(argv[3], "-") != 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/started.%d", argv[3], rank);
        FILE *f = fopen(path, "w");
        if (f)
            fclose(f);
    }
    MPI_Allreduce(&rank, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    /* every pair talks once: tcp connects lazily, and a rank moved later
     * keeps the connections it has (forwarded by its home), not its address */
    int *out = calloc((size_t)size, sizeof *out), *in = calloc((size_t)size, sizeof *in);
    for (int i = 0; i < size; i++)
        out[i] = rank * size + i;
    MPI_Alltoall(out, 1, MPI_INT, in, 1, MPI_INT, MPI_COMM_WORLD);
    for (int i = 0; i < size; i++)
        if (in[i] != i * size + rank)
            sum = -1;
    free(out);
    free(in);
    const char *job = getenv("OMPI_MCA_ess_base_jobid");
    printf("rank %d of %d job %s pid %d sum %d\n", rank, size, job ? job : "?", (int)getpid(), sum);
    fflush(stdout);
    for (int i = 0; argc > 4 && i < 1200 && access(argv[4], F_OK) != 0; i++)
        usleep(100000);
    if (!strcmp(mode, "sleep")) {
        sleep((unsigned)arg);
        printf("slept %d\n", rank);
        fflush(stdout);
    } else if (!strcmp(mode, "abort") || !strcmp(mode, "segv")) {
        if (rank == arg && mode[0] == 'a')
            MPI_Abort(MPI_COMM_WORLD, 3);
        if (rank == arg)
            *(volatile int *)NULL = 1;
        sleep(60);
    } else if (!strcmp(mode, "hang")) {
        for (;;)
            pause();
    } else if (!strcmp(mode, "usr1")) {
        for (int i = 0; i < 300 && !usr1; i++)
            usleep(100000);
        sleep(1);
        printf("usr1 %d count %d\n", rank, (int)usr1);
        fflush(stdout);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0 && sum == size * (size - 1) / 2)
        printf("odls_job ok\n");
    MPI_Finalize();
    return 0;
}
