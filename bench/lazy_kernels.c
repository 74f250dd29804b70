/*
 * bench/lazy_kernels.c -- four memory kernels with the access patterns of
 * HPCC's DGEMM (blocked), STREAM (sequential), RandomAccess (random) and
 * FFT (strided), for bench/lazy_bench.sh: each allocates and fills its
 * memory, says "ready", waits until the file GO exists (the bench moves it
 * meanwhile), runs, and prints its run time and a checksum (the same
 * wherever it ran).  Not HPCC code: only the access patterns.
 *
 * usage: lazy_kernels dgemm|stream|random|fft MIB GO
 *   dgemm   C += A * B over 64x64 tiles of three n x n matrices (MIB/3
 *           each), the first tile row of C: every tile of B, a row panel
 *           of A (the rest of A and C is never touched after the fill)
 *   stream  triad a = b + s * c over three arrays (MIB/3 each), twice
 *   random  HPCC's update t[x mod n] ^= x with its polynomial
 *           generator, 4 updates a word up to 2^22 updates
 *   fft     the first three radix-2 butterfly passes over MIB of complex
 *           doubles (distances n/2, n/4, n/8: two interleaved streams)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *mem(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    return p;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: lazy_kernels dgemm|stream|random|fft MIB GO\n");
        return 2;
    }
    const char *k = argv[1];
    size_t bytes = strtoul(argv[2], NULL, 10) << 20;
    double sum = 0, t0;
    if (!strcmp(k, "dgemm")) {
        size_t n = 64;
        while ((n + 64) * (n + 64) * 8 * 3 <= bytes)
            n += 64;
        double *a = mem(n * n * 8), *b = mem(n * n * 8), *c = mem(n * n * 8);
        for (size_t i = 0; i < n * n; i++) {
            a[i] = (double)(i % 7) * 0.5;
            b[i] = (double)(i % 5) * 0.25;
            c[i] = 0;
        }
        printf("ready\n");
        while (access(argv[3], F_OK))
            usleep(1000);
        t0 = now();
        const size_t T = 64, rows = T;
        for (size_t ib = 0; ib < rows; ib += T)
            for (size_t jb = 0; jb < n; jb += T)
                for (size_t kb = 0; kb < n; kb += T)
                    for (size_t i = ib; i < ib + T; i++)
                        for (size_t kk = kb; kk < kb + T; kk++) {
                            double aik = a[i * n + kk];
                            for (size_t j = jb; j < jb + T; j++)
                                c[i * n + j] += aik * b[kk * n + j];
                        }
        for (size_t i = 0; i < rows * n; i++)
            sum += c[i];
    } else if (!strcmp(k, "stream")) {
        size_t n = bytes / 3 / 8;
        double *a = mem(n * 8), *b = mem(n * 8), *c = mem(n * 8);
        for (size_t i = 0; i < n; i++) {
            a[i] = 0;
            b[i] = (double)(i % 11);
            c[i] = (double)(i % 13);
        }
        printf("ready\n");
        while (access(argv[3], F_OK))
            usleep(1000);
        t0 = now();
        for (int rep = 0; rep < 2; rep++)
            for (size_t i = 0; i < n; i++)
                a[i] = b[i] + 3.0 * c[i];
        for (size_t i = 0; i < n; i += 512)
            sum += a[i];
    } else if (!strcmp(k, "random")) {
        size_t n = bytes / 8;
        uint64_t *t = mem(bytes);
        for (size_t i = 0; i < n; i++)
            t[i] = i;
        printf("ready\n");
        while (access(argv[3], F_OK))
            usleep(1000);
        t0 = now();
        uint64_t x = 1, updates = 4 * (uint64_t)n < (1u << 22) ? 4 * (uint64_t)n : (1u << 22);
        for (uint64_t u = 0; u < updates; u++) {
            x = (x << 1) ^ ((int64_t)x < 0 ? 7 : 0); /* HPCC's polynomial */
            t[x & (n - 1)] ^= x;
        }
        for (size_t i = 0; i < n; i += 512)
            sum += (double)(t[i] & 0xffff);
    } else if (!strcmp(k, "fft")) {
        size_t n = bytes / 16; /* complex doubles */
        double *z = mem(n * 16);
        for (size_t i = 0; i < 2 * n; i++)
            z[i] = (double)(i % 17) * 0.125;
        printf("ready\n");
        while (access(argv[3], F_OK))
            usleep(1000);
        t0 = now();
        for (size_t half = n / 2; half >= n / 8; half /= 2)
            for (size_t base = 0; base < n; base += 2 * half)
                for (size_t i = base; i < base + half; i++) {
                    double ur = z[2 * i], ui = z[2 * i + 1], vr = z[2 * (i + half)], vi = z[2 * (i + half) + 1];
                    double wr = 0.7071067811865476, wi = -0.7071067811865476;
                    double tr = vr * wr - vi * wi, ti = vr * wi + vi * wr;
                    z[2 * i] = ur + tr;
                    z[2 * i + 1] = ui + ti;
                    z[2 * (i + half)] = ur - tr;
                    z[2 * (i + half) + 1] = ui - ti;
                }
        for (size_t i = 0; i < 2 * n; i += 1024)
            sum += z[i];
    } else {
        fprintf(stderr, "lazy_kernels: unknown kernel %s\n", k);
        return 2;
    }
    printf("lazy_kernels: %s time %.3f s checksum %.6e\n", k, now() - t0, sum);
    return 0;
}
