/*
 * ampom.h -- AMPoM's adaptive prefetch (shared/seeds: Ho, Wang, Lau,
 * "Lightweight process migration and memory prefetching in openMosix",
 * IPDPS 2008), for one address space of the fault service.
 *
 * At each remote fault (a page away that the process touches) the page is
 * recorded in a look-back window of the last AMPOM_W faults, with its time
 * and the process's CPU share then.  From the window:
 *   - the spatial locality score S = sum over d = 1..AMPOM_DMAX of
 *     stride_d / (l * d), stride_d counting the references of the window
 *     that belong to a stride-d reference (r_p, ..., r_p+d with
 *     r_p+d = r_p + 1, no r_p + 1 in between);
 *   - the dependent zone size N = (c'/c) * S * r * (2 t0 + td + 1/r): r
 *     the paging rate over the window (l / (T_l - T_1)), c the mean CPU
 *     share in it, c' the latest, 2 t0 + td the measured time of a
 *     one-page request (round trip and transfer: the service measures it)
 *     plus AMPOM_WAKE_US, the part of a remote fault's latency that is not
 *     on the network here;
 *   - the prefetch pivots r_p+d + 1 of the outstanding streams
 *     (p + d > l - d), N/m pages after each of the m pivots (a page in two
 *     zones leaves its quota to the pages after it), or, with no
 *     outstanding stream, N pages after the last fault (read-ahead).
 * A userfaultfd sees only faults on missing pages: a sequential stream
 * whose next pages were prefetched faults next just after them.  So that
 * such a stream stays a stride-1 stream in the window (as openMosix saw
 * it, whose prefetched pages were mapped at the next fault), a fault at
 * the page right after a zone prefetched earlier records the zone's last
 * page first, and that reference counts for the zone's pages in the paging
 * rate r: r is the rate at which the process goes through pages (as the
 * faults of openMosix measured it), not the rate of the faults that are
 * left once prefetch works, which would shrink N as prefetch succeeds.
 */
#ifndef MIGRD_PAGER_AMPOM_H
#define MIGRD_PAGER_AMPOM_H

#include <stdbool.h>
#include <stdint.h>

#define AMPOM_W        20    /* the paper's look-back window length l */
#define AMPOM_DMAX     4     /* strides 1..4 (at most two-level indirection) */
#define AMPOM_ZONES    16    /* recent prefetched zones remembered */
#define AMPOM_MAX_N    4096  /* at most 16 MiB in one dependent zone */
#define AMPOM_RTT0_US  500.0 /* until a request was measured */
#define AMPOM_WAKE_US  120.0 /* what a remote fault costs besides its request:
                                the kernel's delivery of the fault to the
                                service thread and the wake-up of the faulting
                                thread after the copy (measured here: 170 us a
                                remote fault without prefetch, 40-50 us of which
                                the request and its answer) */

struct ampom_range { uint64_t page, npages; };   /* page numbers */

struct ampom {
    uint64_t r[AMPOM_W];        /* page numbers, oldest first */
    uint64_t t_us[AMPOM_W];
    double c[AMPOM_W];
    uint32_t w[AMPOM_W];        /* pages each reference stands for */
    uint32_t l;
    double rtt_us;              /* 2 t0 + td, EWMA; 0: not measured */
    struct ampom_range zone[AMPOM_ZONES]; /* ring of recent zones */
    uint32_t nzone;
    /* figures */
    double last_s, last_n;
};

/* A remote fault at page number pg (address / 4096), at now_us, with the
 * process's CPU share cpu (0..1 of one CPU; any scale, only ratios count).
 * Fills out[] (at most max ranges, page numbers, sorted by pivot) with the
 * dependent zone; its number of ranges. */
uint32_t ampom_fault(struct ampom *a, uint64_t pg, uint64_t now_us, double cpu, struct ampom_range *out,
                     uint32_t max);
/* A one-page request took us microseconds (answered). */
void ampom_rtt(struct ampom *a, double us);
/* The spatial locality score of the window (exposed for tests). */
double ampom_score(const struct ampom *a);

#endif
