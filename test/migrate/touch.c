/*
 * touch -- a migration bench/test program with a given amount of touched memory.
 *   touch MIB SECONDS   allocate MIB MiB, write every page (distinct contents
 *                       per page), print "ready", then keep running; every
 *                       second print "alive S"; after SECONDS check every page
 *                       and exit 0 if the memory is intact ("intact"), else 1.
 *   touch MIB SECONDS churn
 *                       the same, but the memory keeps changing: round after
 *                       round every page is checked to hold the previous
 *                       round's value and given this round's, so a write lost
 *                       or a stale page after a move is caught at once
 *                       (exit 1, "CORRUPT ... round R").
 * SIGTERM ends it early after the same check.  Output is unbuffered.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static uint64_t pattern(size_t page, size_t word) { return (page * 0x9e3779b97f4a7c15ull) ^ (word * 0x100000001b3ull); }

/* one churn round: every page must hold round r - 1 in its last word
 * (0 before the first round); it gets r.  0, or 1 after printing CORRUPT */
static int churn_round(uint64_t *m, size_t npages, size_t pg, uint64_t r)
{
    for (size_t p = 0; p < npages; p++) {
        uint64_t *last = m + p * (pg / 8) + pg / 8 - 1;
        uint64_t want = r > 1 ? pattern(p, r - 1) : 0;
        if (*last != want) {
            printf("CORRUPT page %zu round %llu\n", p, (unsigned long long)r);
            return 1;
        }
        *last = pattern(p, r);
    }
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    int churn = argc == 4 && !strcmp(argv[3], "churn");
    uint64_t round = 0;
    if (argc != 3 && !churn) {
        fprintf(stderr, "usage: touch MIB SECONDS [churn]\n");
        return 2;
    }
    size_t mib = strtoul(argv[1], NULL, 10), secs = strtoul(argv[2], NULL, 10);
    size_t len = mib << 20, pg = (size_t)sysconf(_SC_PAGESIZE), npages = len / pg;
    uint64_t *m = mmap(NULL, len ? len : pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    /* every page gets a few distinct words; the rest stays as written (zero
     * after the first words, but the page is present and private) */
    for (size_t p = 0; p < npages; p++) {
        uint64_t *w = m + p * (pg / 8);
        for (size_t i = 0; i < pg / 8; i += 64)
            w[i] = pattern(p, i);
    }
    signal(SIGTERM, on_term);
    printf("ready %zu MiB\n", mib);
    for (size_t s = 0; s < secs && !stop; s++) {
        struct timespec ts = {1, 0};
        if (churn) {
            /* five rounds a second */
            for (int k = 0; k < 5 && !stop; k++) {
                struct timespec fifth = {0, 200000000};
                if (churn_round(m, npages, pg, ++round))
                    return 1;
                while (nanosleep(&fifth, &fifth) != 0 && !stop)
                    ;
            }
        } else {
            while (nanosleep(&ts, &ts) != 0 && !stop)
                ;
        }
        if (!stop)
            printf("alive %zu\n", s + 1);
    }
    if (churn && churn_round(m, npages, pg, ++round))
        return 1;
    for (size_t p = 0; p < npages; p++) {
        uint64_t *w = m + p * (pg / 8);
        for (size_t i = 0; i < pg / 8; i += 64)
            if (w[i] != pattern(p, i)) {
                printf("CORRUPT page %zu word %zu\n", p, i);
                return 1;
            }
    }
    printf("intact\n");
    return 0;
}
