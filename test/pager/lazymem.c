/*
 * lazymem -- test program of lazy moves (test/suites/pager.sh).
 *   lazymem MIB WAIT MODE
 * maps MIB MiB of private anonymous memory (one mapping), writes a pattern
 * into every byte, prints "ready", sleeps WAIT seconds (it is moved
 * meanwhile), then, by MODE:
 *   check    checks every byte of it;
 *   threads  8 threads check it at once, each the pages i with i % 8 == t
 *            and all of them the first 64 pages (the same pages faulting in
 *            several threads at once), then every byte is checked;
 *   free     madvise(DONTNEED) on the first quarter (it must read as zeros),
 *            munmap of the second quarter, mremap of the third quarter to a
 *            new place (its bytes must follow), the last quarter checked;
 *   fork     forks: the child checks every byte and exits 0, the parent
 *            checks every byte and waits for the child;
 *   spin     touches nothing for WAIT more seconds (a move's source may be
 *            killed meanwhile), then checks every byte.
 * Exits 0 with "intact", or 1 naming the first wrong byte.  Unbuffered.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096ul

static uint8_t *mem;
static size_t len;

static uint8_t pat(size_t i) { return (uint8_t)((i * 2654435761u) >> 13 ^ i >> 12); }

static int reported; /* one CORRUPT line is enough */

/* 0, or 1 after naming the first wrong byte of [a, b) */
static int check(const uint8_t *base, size_t off0, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++)
        if (base[i - off0] != pat(i)) {
            if (!__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED))
                printf("CORRUPT at byte %zu (page %zu): %#x, not %#x\n", i, i / PG, base[i - off0], pat(i));
            return 1;
        }
    return 0;
}

struct th { int t, rc; };
static void *th_main(void *arg)
{
    struct th *t = arg;
    for (size_t p = 0; p < 64 && p < len / PG && !t->rc; p++)
        t->rc |= check(mem, 0, p * PG, (p + 1) * PG);
    for (size_t p = (size_t)t->t; p < len / PG && !t->rc; p += 8)
        t->rc |= check(mem, 0, p * PG, (p + 1) * PG);
    return NULL;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc != 4) {
        fprintf(stderr, "usage: lazymem MIB WAIT check|threads|free|fork|spin\n");
        return 2;
    }
    len = strtoul(argv[1], NULL, 10) << 20;
    unsigned wait = (unsigned)strtoul(argv[2], NULL, 10);
    const char *mode = argv[3];
    mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    for (size_t i = 0; i < len; i++)
        mem[i] = pat(i);
    printf("ready\n");
    sleep(wait);
    int rc = 0;
    if (!strcmp(mode, "check")) {
        rc = check(mem, 0, 0, len);
    } else if (!strcmp(mode, "spin")) {
        sleep(wait);
        rc = check(mem, 0, 0, len);
    } else if (!strcmp(mode, "threads")) {
        pthread_t th[8];
        struct th t[8];
        for (int i = 0; i < 8; i++) {
            t[i] = (struct th){i, 0};
            if (pthread_create(&th[i], NULL, th_main, &t[i])) {
                printf("pthread_create failed\n");
                return 2;
            }
        }
        for (int i = 0; i < 8; i++) {
            pthread_join(th[i], NULL);
            rc |= t[i].rc;
        }
        rc |= check(mem, 0, 0, len);
    } else if (!strcmp(mode, "free")) {
        size_t q = len / 4;
        if (madvise(mem, q, MADV_DONTNEED) < 0 || munmap(mem + q, q) < 0) {
            perror("madvise/munmap");
            return 2;
        }
        for (size_t i = 0; i < q && !rc; i++)
            if (mem[i]) {
                printf("CORRUPT: byte %zu is %#x after MADV_DONTNEED, not 0\n", i, mem[i]);
                rc = 1;
            }
        uint8_t *to = mmap(NULL, q, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        uint8_t *moved = to == MAP_FAILED ? MAP_FAILED : mremap(mem + 2 * q, q, q, MREMAP_MAYMOVE | MREMAP_FIXED, to);
        if (moved == MAP_FAILED) {
            perror("mremap");
            return 2;
        }
        rc |= check(moved, 2 * q, 2 * q, 3 * q);
        rc |= check(mem, 0, 3 * q, len);
    } else if (!strcmp(mode, "fork")) {
        pid_t c = fork();
        if (c < 0) {
            perror("fork");
            return 2;
        }
        if (c == 0)
            _exit(check(mem, 0, 0, len));
        rc = check(mem, 0, 0, len);
        int st;
        if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st)) {
            printf("the child failed (status %#x)\n", st);
            rc = 1;
        }
    } else {
        fprintf(stderr, "lazymem: unknown mode %s\n", mode);
        return 2;
    }
    printf(rc ? "BROKEN\n" : "intact\n");
    return rc;
}
