/*
 * bench/kernels.c -- four small MPI kernels in the shape of the NAS Parallel
 * Benchmarks, for measuring what moving ranks costs a running job
 * (bench/mosix_bench.sh: the MOSIX paper's Tables 1 and 2) and dicom
 * against tcp.  They are not NPB: no NPB code or data is used; each kernel
 * only has the communication pattern and the memory footprint of its
 * namesake.
 *
 *   cg  conjugate gradient on a sparse symmetric matrix: a random banded
 *       matrix in CSR, rows in blocks; each iteration an MPI_Allgather of
 *       the search direction, a sparse mat-vec, two MPI_Allreduce dots.
 *   mg  Jacobi sweeps of a 7-point stencil on a 3-D grid cut in z-slabs:
 *       halo planes exchanged with both neighbours (MPI_Sendrecv) every
 *       sweep, an MPI_Allreduce of the residual every 4th.
 *   ft  a 2-D complex FFT of an N x N array cut in row blocks: 1-D FFTs of
 *       the local rows, an MPI_Alltoall transpose, FFTs again, per step.
 *   ep  embarrassingly parallel: Gaussian pairs from a per-rank stream,
 *       counted in annuli, one MPI_Allreduce at the end.
 *
 * usage: kernels KERNEL [--mib M] [--iters N] [--ready FILE]
 *   --mib M     memory per rank in MiB (about; ep uses little whatever M)
 *   --iters N   iterations (default per kernel: about 10 s for np 4 on two
 *               busy cores)
 *   --ready F   rank 0 creates F once every rank has set up (touched) its
 *               data, just before the first iteration
 *
 * Prints one line from rank 0:
 *   kernels: cg np 4 mib 100 iters 60 time 5.123 s checksum 0123456789abcdef
 * The checksum depends only on the kernel, np, M and N -- never on where
 * the ranks ran -- so a run with moves must print the same one as a run
 * without.  Exit status 0, or 1 with a one-line reason.
 */
#include <complex.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rank, np;
static const char *ready_path;

static void die(const char *why)
{
    fprintf(stderr, "kernels: rank %d: %s\n", rank, why);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

static void *xalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p)
        die("out of memory");
    return p;
}

/* Every rank has its data: tell whoever waits for --ready. */
static void set_up(void)
{
    MPI_Barrier(MPI_COMM_WORLD);
    if (ready_path && rank == 0) {
        int fd = open(ready_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || close(fd))
            die("cannot create the --ready file");
    }
}

/* splitmix64: a seeded stream per (rank, purpose) */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s) { return (double)(mix(s) >> 11) * 0x1.0p-53; }

/* The checksum: the bits of a few doubles every rank agrees on. */
static uint64_t fold(const double *v, int n)
{
    uint64_t h = 1469598103934665603ull, b;
    for (int i = 0; i < n; i++) {
        memcpy(&b, &v[i], sizeof b);
        h = (h ^ b) * 1099511628211ull;
    }
    return h;
}

/* ---- cg ---------------------------------------------------------------- */
#define CG_BAND 12 /* nonzeros per row off the diagonal */

static uint64_t kernel_cg(size_t mib, int iters)
{
    /* per row: CG_BAND+1 (double + int) of the matrix, 5 doubles of vectors,
     * and its share of the gathered vector (np doubles per global row / np) */
    size_t per_row = (CG_BAND + 1) * (sizeof(double) + sizeof(int)) + 6 * sizeof(double);
    long nloc = (long)(mib << 20) / (long)per_row, n = nloc * np, lo = nloc * rank;
    double *val = xalloc((size_t)nloc * (CG_BAND + 1) * sizeof *val);
    int *col = xalloc((size_t)nloc * (CG_BAND + 1) * sizeof *col);
    double *x = xalloc((size_t)nloc * sizeof *x), *r = xalloc((size_t)nloc * sizeof *r);
    double *p = xalloc((size_t)nloc * sizeof *p), *q = xalloc((size_t)nloc * sizeof *q);
    double *pg = xalloc((size_t)n * sizeof *pg);

    /* A = D + S, S symmetric with entries at +-offsets: entry (i, i+-k) is a
     * function of min(i,j) and k only, so both halves agree without talking;
     * D makes A diagonally dominant (so CG converges and nothing overflows) */
    for (long i = 0; i < nloc; i++) {
        long g = lo + i;
        double *v = &val[i * (CG_BAND + 1)];
        int *c = &col[i * (CG_BAND + 1)];
        double diag = 0;
        for (int k = 0; k < CG_BAND; k++) {
            long off = 1 + (long)k * k * 37 % (n > 64 ? n / 4 : 1 + n / 2);
            long j = (k & 1) ? g + off : g - off;
            j = ((j % n) + n) % n;
            uint64_t s = (uint64_t)(g < j ? g : j) * 131 + (uint64_t)off;
            double a = -unif(&s);
            v[k + 1] = a, c[k + 1] = (int)j, diag -= a;
        }
        v[0] = diag + 1.0, c[0] = (int)g;
        r[i] = p[i] = 1.0; /* b = 1, x0 = 0 */
    }
    set_up();
    double rho = nloc, rho_all, pq, pq_all, norm = 0;
    MPI_Allreduce(&rho, &rho_all, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int it = 0; it < iters; it++) {
        MPI_Allgather(p, (int)nloc, MPI_DOUBLE, pg, (int)nloc, MPI_DOUBLE, MPI_COMM_WORLD);
        pq = 0;
        for (long i = 0; i < nloc; i++) {
            double s = 0;
            for (int k = 0; k <= CG_BAND; k++)
                s += val[i * (CG_BAND + 1) + k] * pg[col[i * (CG_BAND + 1) + k]];
            q[i] = s, pq += p[i] * s;
        }
        MPI_Allreduce(&pq, &pq_all, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        double alpha = rho_all / pq_all, rr = 0;
        for (long i = 0; i < nloc; i++) {
            x[i] += alpha * p[i];
            r[i] -= alpha * q[i];
            rr += r[i] * r[i];
        }
        MPI_Allreduce(&rr, &norm, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        double beta = norm / rho_all;
        rho_all = norm;
        if (norm == 0)
            break;
        for (long i = 0; i < nloc; i++)
            p[i] = r[i] + beta * p[i];
    }
    double xs = 0, out[2];
    for (long i = 0; i < nloc; i++)
        xs += x[i];
    MPI_Allreduce(&xs, &out[0], 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    out[1] = norm;
    free(val), free(col), free(x), free(r), free(p), free(q), free(pg);
    return fold(out, 2);
}

/* ---- mg ---------------------------------------------------------------- */
static uint64_t kernel_mg(size_t mib, int iters)
{
    /* two grids of (nz+2) planes of N x N doubles */
    long nn = 64;
    while ((nn + 16) * (nn + 16) * (nn + 16) / np * 2 * sizeof(double) <= (mib << 20))
        nn += 16;
    long nz = nn / np, plane = nn * nn, cells = (nz + 2) * plane;
    double *u = xalloc((size_t)cells * sizeof *u), *w = xalloc((size_t)cells * sizeof *w);
    int up = (rank + 1) % np, down = (rank + np - 1) % np;
    for (long z = 1; z <= nz; z++)
        for (long i = 0; i < plane; i++) {
            uint64_t s = (uint64_t)(rank * nz + z - 1) * (uint64_t)plane + (uint64_t)i;
            u[z * plane + i] = unif(&s);
        }
    set_up();
    double res = 0, res_all = 0;
    for (int it = 0; it < iters; it++) {
        MPI_Sendrecv(&u[nz * plane], (int)plane, MPI_DOUBLE, up, 1, &u[0], (int)plane, MPI_DOUBLE, down, 1,
                     MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        MPI_Sendrecv(&u[1 * plane], (int)plane, MPI_DOUBLE, down, 2, &u[(nz + 1) * plane], (int)plane,
                     MPI_DOUBLE, up, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        res = 0;
        for (long z = 1; z <= nz; z++)
            for (long y = 0; y < nn; y++)
                for (long x = 0; x < nn; x++) {
                    long c = z * plane + y * nn + x;
                    long xm = x ? c - 1 : c + nn - 1, xp = x + 1 < nn ? c + 1 : c - nn + 1;
                    long ym = y ? c - nn : c + plane - nn, yp = y + 1 < nn ? c + nn : c - plane + nn;
                    double v = (u[xm] + u[xp] + u[ym] + u[yp] + u[c - plane] + u[c + plane]) / 6.0;
                    res += (v - u[c]) * (v - u[c]);
                    w[c] = v;
                }
        double *t = u;
        u = w, w = t;
        if (it % 4 == 3 || it == iters - 1)
            MPI_Allreduce(&res, &res_all, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    }
    double s = 0, out[2];
    for (long i = plane; i < (nz + 1) * plane; i++)
        s += u[i];
    MPI_Allreduce(&s, &out[0], 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    out[1] = res_all;
    free(u), free(w);
    return fold(out, 2);
}

/* ---- ft ---------------------------------------------------------------- */
static void fft(double complex *a, long n, int sign)
{
    for (long i = 1, j = 0; i < n; i++) {
        long bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j ^= bit;
        if (i < j) {
            double complex t = a[i];
            a[i] = a[j], a[j] = t;
        }
    }
    for (long len = 2; len <= n; len <<= 1) {
        double complex wl = cexp(sign * 2.0 * M_PI * I / (double)len);
        for (long i = 0; i < n; i += len) {
            double complex w = 1;
            for (long k = 0; k < len / 2; k++, w *= wl) {
                double complex u = a[i + k], v = a[i + k + len / 2] * w;
                a[i + k] = u + v, a[i + k + len / 2] = u - v;
            }
        }
    }
}

/* rows x n local block -> its transpose through MPI_Alltoall */
static void transpose(double complex *a, double complex *tmp, long n, long rows)
{
    long blk = rows * rows; /* a rows x rows tile per peer */
    for (int p = 0; p < np; p++)
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < rows; c++)
                tmp[p * blk + c * rows + r] = a[r * n + p * rows + c];
    MPI_Alltoall(tmp, (int)(2 * blk), MPI_DOUBLE, a, (int)(2 * blk), MPI_DOUBLE, MPI_COMM_WORLD);
    for (int p = 0; p < np; p++)
        for (long c = 0; c < rows; c++)
            memcpy(&tmp[c * n + p * rows], &a[p * blk + c * rows], (size_t)rows * sizeof *a);
    memcpy(a, tmp, (size_t)(rows * n) * sizeof *a);
}

static uint64_t kernel_ft(size_t mib, int iters)
{
    long n = 256;
    while ((2 * n) * (2 * n) / np * 2 * sizeof(double complex) <= (mib << 20))
        n *= 2;
    if (n % np)
        die("ft needs a power-of-two number of ranks");
    long rows = n / np;
    double complex *a = xalloc((size_t)(rows * n) * sizeof *a), *tmp = xalloc((size_t)(rows * n) * sizeof *a);
    for (long r = 0; r < rows; r++)
        for (long c = 0; c < n; c++) {
            uint64_t s = (uint64_t)((rank * rows + r) * n + c);
            a[r * n + c] = unif(&s) + I * unif(&s);
        }
    set_up();
    for (int it = 0; it < iters; it++) {
        int sign = (it & 1) ? 1 : -1; /* forward, then back: values stay bounded */
        for (long r = 0; r < rows; r++)
            fft(&a[r * n], n, sign);
        transpose(a, tmp, n, rows);
        for (long r = 0; r < rows; r++)
            fft(&a[r * n], n, sign);
        transpose(a, tmp, n, rows);
        if (sign > 0)
            for (long i = 0; i < rows * n; i++)
                a[i] /= (double)n * (double)n;
    }
    double s[2] = {0, 0}, out[2];
    for (long i = 0; i < rows * n; i++)
        s[0] += creal(a[i]), s[1] += cimag(a[i]);
    MPI_Allreduce(s, out, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    free(a), free(tmp);
    return fold(out, 2);
}

/* ---- ep ---------------------------------------------------------------- */
static uint64_t kernel_ep(size_t mib, int iters)
{
    (void)mib;
    double q[12] = {0}, all[12];
    uint64_t s = 0x5eed0000ull + (uint64_t)rank;
    set_up();
    for (long i = 0; i < (long)iters * 1000000L; i++) {
        double x = 2 * unif(&s) - 1, y = 2 * unif(&s) - 1, t = x * x + y * y;
        if (t > 1 || t == 0)
            continue;
        double f = sqrt(-2 * log(t) / t), gx = fabs(x * f), gy = fabs(y * f);
        int l = (int)(gx > gy ? gx : gy);
        if (l < 10)
            q[l] += 1;
        q[10] += x * f, q[11] += y * f;
    }
    MPI_Allreduce(q, all, 12, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return fold(all, 12);
}

static const struct {
    const char *name;
    uint64_t (*run)(size_t mib, int iters);
    int iters;
} kernels[] = {
    {"cg", kernel_cg, 150}, {"mg", kernel_mg, 240}, {"ft", kernel_ft, 60}, {"ep", kernel_ep, 250},
};

static long number(const char *opt, const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s ? s : "", &end, 10);
    if (!s || errno || *end || v < 1 || v > max) {
        if (rank == 0)
            fprintf(stderr, "kernels: %s needs a whole number from 1 to %ld, not '%s'\n", opt, max, s ? s : "");
        MPI_Finalize();
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &np);
    int k = -1, iters = 0;
    size_t mib = 100;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--mib"))
            mib = (size_t)number("--mib", argv[++i < argc ? i : argc - 1], 1 << 16);
        else if (!strcmp(argv[i], "--iters"))
            iters = (int)number("--iters", argv[++i < argc ? i : argc - 1], 1 << 20);
        else if (!strcmp(argv[i], "--ready") && i + 1 < argc)
            ready_path = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0)
                printf("usage: kernels cg|mg|ft|ep [--mib M] [--iters N] [--ready FILE]\n");
            MPI_Finalize();
            return 0;
        } else
            for (size_t j = 0; j < sizeof kernels / sizeof kernels[0]; j++)
                if (!strcmp(argv[i], kernels[j].name))
                    k = (int)j;
    }
    if (k < 0) {
        if (rank == 0)
            fprintf(stderr, "kernels: name a kernel: cg, mg, ft or ep (see --help)\n");
        MPI_Finalize();
        return 2;
    }
    if (!iters)
        iters = kernels[k].iters;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    uint64_t sum = kernels[k].run(mib, iters);
    double t = MPI_Wtime() - t0;
    if (rank == 0)
        printf("kernels: %s np %d mib %zu iters %d time %.3f s checksum %016llx\n", kernels[k].name, np, mib, iters,
               t, (unsigned long long)sum);
    MPI_Finalize();
    return 0;
}
