/*
 * test_pager.c -- the pager's pure parts: the away directory (dir.c:
 * clear, remap, copy, next run not asked for) and AMPoM (ampom.c: the
 * paper's examples of the spatial locality score and of the prefetch
 * pivots, a sequential stream's growing zone, random faults).
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "migrd/pager/ampom.h"
#include "migrd/pager/dir.h"
#include "migrd/pager/pager.h"
#include "unit.h"

#define P PAGER_PAGE

static void dir_basics(void)
{
    struct pager_dir d = {0};
    uint64_t src, dst, n;
    bool asked;
    CHECK(dir_add(&d, 100 * P, 100 * P, 10) == 0);
    CHECK(d.away == 10);
    CHECK(dir_is_away(&d, 105 * P + 17, &src, &asked) && src == 105 * P && !asked);
    CHECK(!dir_is_away(&d, 110 * P, &src, &asked));
    dir_set_asked(&d, 100 * P, 2);
    CHECK(dir_is_away(&d, 101 * P, &src, &asked) && asked);
    CHECK(dir_next_unasked(&d, &dst, &src, &n, 128) == 1 && dst == 102 * P && n == 8);
    CHECK(dir_next_unasked(&d, &dst, &src, &n, 3) == 1 && n == 3);
    dir_clear(&d, 104 * P, 106 * P); /* madvise(DONTNEED) of two pages */
    CHECK(d.away == 8);
    CHECK(!dir_is_away(&d, 104 * P, &src, &asked) && !dir_is_away(&d, 105 * P, &src, &asked));
    CHECK(dir_next_unasked(&d, &dst, &src, &n, 128) == 1 && dst == 102 * P && n == 2);
    dir_clear(&d, 0, 1000 * P);
    CHECK(d.away == 0 && dir_next_unasked(&d, &dst, &src, &n, 128) == 0);
    dir_free(&d);
}

static void dir_remap_copy(void)
{
    struct pager_dir d = {0}, c;
    uint64_t src;
    bool asked;
    CHECK(dir_add(&d, 100 * P, 100 * P, 10) == 0);
    dir_clear(&d, 103 * P, 104 * P);
    dir_set_asked(&d, 102 * P, 1);
    /* mremap 4 pages at 101 to 500: 101, 102 and 104 were away there */
    CHECK(dir_remap(&d, 101 * P, 500 * P, 4 * P) == 0);
    CHECK(d.away == 9 - 0);
    CHECK(!dir_is_away(&d, 101 * P, &src, &asked));
    CHECK(dir_is_away(&d, 500 * P, &src, &asked) && src == 101 * P && !asked);
    CHECK(dir_is_away(&d, 501 * P, &src, &asked) && src == 102 * P && !asked); /* asked again there */
    CHECK(!dir_is_away(&d, 502 * P, &src, &asked));                              /* was not away */
    CHECK(dir_is_away(&d, 503 * P, &src, &asked) && src == 104 * P);
    CHECK(dir_is_away(&d, 105 * P, &src, &asked) && src == 105 * P);
    /* a mremap onto pages away: those are gone */
    CHECK(dir_remap(&d, 108 * P, 500 * P, 2 * P) == 0);
    CHECK(dir_is_away(&d, 500 * P, &src, &asked) && src == 108 * P);
    CHECK(dir_is_away(&d, 501 * P, &src, &asked) && src == 109 * P);
    CHECK(dir_is_away(&d, 503 * P, &src, &asked) && src == 104 * P);
    CHECK(d.away == 7);
    CHECK(dir_copy(&c, &d) == 0 && c.away == d.away);
    dir_clear(&d, 0, 1000 * P);
    CHECK(d.away == 0 && c.away == 7 && dir_is_away(&c, 503 * P, &src, &asked));
    dir_free(&c);
    dir_free(&d);
}

static void ampom_paper_examples(void)
{
    struct ampom a;
    struct ampom_range z[16];
    memset(&a, 0, sizeof a);
    const uint64_t s1[] = {10, 99, 11, 34, 12, 85}; /* 3.2: S = 0.25 */
    for (int i = 0; i < 6; i++)
        ampom_fault(&a, s1[i], 1000u * (i + 1), 1, z, 16);
    CHECK(ampom_score(&a) > 0.249 && ampom_score(&a) < 0.251);
    /* 3.4: the pivots of {13,27,7,8,14,8,3,15,4,5} are 16, 5 and 6 */
    memset(&a, 0, sizeof a);
    const uint64_t s2[] = {13, 27, 7, 8, 14, 8, 3, 15, 4, 5};
    uint32_t k = 0;
    /* no zone before the last fault: a zone would add its references */
    for (int i = 0; i < 10; i++)
        k = ampom_fault(&a, s2[i], 100u * (i + 1), 1, z, i == 9 ? 16 : 0);
    bool p16 = false, p5 = false, p6 = false;
    for (uint32_t i = 0; i < k; i++) {
        p16 |= z[i].page == 16;
        p5 |= z[i].page == 5;
        p6 |= z[i].page == 6;
    }
    CHECK(k >= 3 && p16 && p5 && p6);
}

static void ampom_sequential_and_random(void)
{
    struct ampom a;
    struct ampom_range z[16];
    memset(&a, 0, sizeof a);
    uint64_t pg = 1000;
    uint32_t k = 0;
    /* a stream that goes through every page prefetched: the zone grows */
    for (int i = 0; i < 60; i++) {
        k = ampom_fault(&a, pg, 200u * (i + 1), 1, z, 16);
        uint64_t next = pg + 1;
        for (uint32_t j = 0; j < k; j++)
            if (z[j].page <= next && z[j].page + z[j].npages > next)
                next = z[j].page + z[j].npages;
        pg = next;
    }
    CHECK(a.last_s > 0.9 && k >= 1 && a.last_n > 16);
    /* random faults: little or nothing */
    memset(&a, 0, sizeof a);
    uint64_t x = 12345;
    for (int i = 0; i < 60; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        k = ampom_fault(&a, (x >> 20) % 1000000, 200u * (i + 1), 1, z, 16);
    }
    CHECK(a.last_s < 0.2 && a.last_n < 4);
}

int main(void)
{
    unit_run("pager-dir-clear-asked-next", dir_basics);
    unit_run("pager-dir-remap-copy", dir_remap_copy);
    unit_run("pager-ampom-paper-examples", ampom_paper_examples);
    unit_run("pager-ampom-sequential-random", ampom_sequential_and_random);
    return unit_total_failed ? 1 : 0;
}
