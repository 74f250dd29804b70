/*
 * ampom.c -- see ampom.h.
 */
#include "ampom.h"

#include <string.h>

/* for each position p of the window, the stride d (1..DMAX) of the
 * reference starting there, or 0 */
static uint32_t stride_at(const struct ampom *a, uint32_t p)
{
    for (uint32_t d = 1; d <= AMPOM_DMAX && p + d < a->l; d++)
        if (a->r[p + d] == a->r[p] + 1)
            return d;
    return 0;
}

double ampom_score(const struct ampom *a)
{
    if (a->l < 2)
        return 0;
    bool in[AMPOM_DMAX + 1][AMPOM_W];
    memset(in, 0, sizeof in);
    for (uint32_t p = 0; p < a->l; p++) {
        uint32_t d = stride_at(a, p);
        if (d) {
            in[d][p] = true;
            in[d][p + d] = true;
        }
    }
    double s = 0;
    for (uint32_t d = 1; d <= AMPOM_DMAX; d++) {
        uint32_t n = 0;
        for (uint32_t p = 0; p < a->l; p++)
            n += in[d][p];
        s += (double)n / ((double)a->l * d);
    }
    return s > 1 ? 1 : s;
}

static void record(struct ampom *a, uint64_t pg, uint64_t now_us, double cpu, uint32_t weight)
{
    if (a->l && a->r[a->l - 1] == pg)
        return; /* a repeated reference is temporal locality: one reference */
    if (a->l == AMPOM_W) {
        memmove(a->r, a->r + 1, (AMPOM_W - 1) * sizeof a->r[0]);
        memmove(a->t_us, a->t_us + 1, (AMPOM_W - 1) * sizeof a->t_us[0]);
        memmove(a->c, a->c + 1, (AMPOM_W - 1) * sizeof a->c[0]);
        memmove(a->w, a->w + 1, (AMPOM_W - 1) * sizeof a->w[0]);
        a->l--;
    }
    a->r[a->l] = pg;
    a->t_us[a->l] = now_us;
    a->c[a->l] = cpu;
    a->w[a->l] = weight;
    a->l++;
}

/* N, equation 3 */
static double zone_size(const struct ampom *a, double s)
{
    if (a->l < 2 || a->t_us[a->l - 1] <= a->t_us[0])
        return 0;
    double pages = 0;
    for (uint32_t i = 0; i < a->l; i++)
        pages += a->w[i];
    double r = pages / ((double)(a->t_us[a->l - 1] - a->t_us[0]) / 1e6); /* pages per second */
    double c = 0;
    for (uint32_t i = 0; i < a->l; i++)
        c += a->c[i];
    c /= a->l;
    double ratio = c > 0 ? a->c[a->l - 1] / c : 1;
    double rtt = ((a->rtt_us > 0 ? a->rtt_us : AMPOM_RTT0_US) + AMPOM_WAKE_US) / 1e6;
    double n = ratio * s * (r * rtt + 1);
    return n > AMPOM_MAX_N ? AMPOM_MAX_N : n;
}

static bool chosen(const struct ampom_range *out, uint32_t n, uint64_t pg)
{
    for (uint32_t i = 0; i < n; i++)
        if (pg >= out[i].page && pg < out[i].page + out[i].npages)
            return true;
    return false;
}

/* quota pages from pivot on, none twice: the quota of a page chosen
 * already goes to the pages after it */
static uint32_t add_zone(struct ampom_range *out, uint32_t n, uint32_t max, uint64_t pivot, uint64_t quota)
{
    uint64_t pg = pivot;
    while (quota && n < max) {
        while (chosen(out, n, pg))
            pg++;
        uint64_t len = 0;
        while (len < quota && !chosen(out, n, pg + len))
            len++;
        out[n++] = (struct ampom_range){pg, len};
        quota -= len;
        pg += len;
    }
    return n;
}

uint32_t ampom_fault(struct ampom *a, uint64_t pg, uint64_t now_us, double cpu, struct ampom_range *out,
                     uint32_t max)
{
    /* the fault right after a zone prefetched: the stream went through it */
    for (uint32_t i = 0; i < a->nzone && i < AMPOM_ZONES; i++) {
        const struct ampom_range *z = &a->zone[i];
        if (z->npages && z->page + z->npages == pg) {
            record(a, pg - 1, now_us, cpu, (uint32_t)z->npages);
            break;
        }
    }
    record(a, pg, now_us, cpu, 1);
    double s = ampom_score(a), nz = zone_size(a, s);
    a->last_s = s;
    a->last_n = nz;
    uint64_t n = (uint64_t)(nz + 0.5);
    if (!n || !max)
        return 0;
    /* the pivots of the outstanding streams */
    uint64_t pivots[AMPOM_W];
    uint32_t m = 0;
    for (uint32_t p = 0; p < a->l; p++) {
        uint32_t d = stride_at(a, p);
        if (d && p + d > a->l - 1 - d) { /* 0-based: p + d > l - d with 1-based p */
            uint64_t pv = a->r[p + d] + 1;
            bool dup = false;
            for (uint32_t k = 0; k < m; k++)
                dup |= pivots[k] == pv;
            if (!dup)
                pivots[m++] = pv;
        }
    }
    uint32_t k = 0;
    if (!m) {
        k = add_zone(out, 0, max, pg + 1, n); /* read-ahead */
    } else {
        uint64_t each = n / m ? n / m : 1;
        for (uint32_t i = 0; i < m && k < max; i++)
            k = add_zone(out, k, max, pivots[i], each);
    }
    for (uint32_t i = 0; i < k; i++)
        a->zone[a->nzone++ % AMPOM_ZONES] = out[i];
    return k;
}

void ampom_rtt(struct ampom *a, double us)
{
    a->rtt_us = a->rtt_us > 0 ? 0.875 * a->rtt_us + 0.125 * us : us;
}
