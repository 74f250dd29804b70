/*
 * dir.c -- see dir.h.
 */
#include "dir.h"

#include <stdlib.h>
#include <string.h>

#include "pager.h"

static bool bit(const uint64_t *b, uint64_t i) { return b[i / 64] >> (i % 64) & 1; }
static void set(uint64_t *b, uint64_t i) { b[i / 64] |= 1ull << (i % 64); }
static void unset(uint64_t *b, uint64_t i) { b[i / 64] &= ~(1ull << (i % 64)); }

int dir_add(struct pager_dir *d, uint64_t dst, uint64_t src, uint64_t npages)
{
    if (!npages)
        return 0;
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 16;
        struct dir_ext *x = realloc(d->x, cap * sizeof *x);
        if (!x)
            return -1;
        d->x = x;
        d->cap = cap;
    }
    size_t words = (npages + 63) / 64;
    struct dir_ext *e = &d->x[d->n];
    e->away = calloc(words, sizeof(uint64_t));
    e->asked = calloc(words, sizeof(uint64_t));
    if (!e->away || !e->asked) {
        free(e->away);
        free(e->asked);
        return -1;
    }
    for (uint64_t i = 0; i < npages; i++)
        set(e->away, i);
    e->dst = dst;
    e->src = src;
    e->npages = npages;
    d->away += npages;
    d->n++;
    return 0;
}

void dir_free(struct pager_dir *d)
{
    for (uint32_t i = 0; i < d->n; i++) {
        free(d->x[i].away);
        free(d->x[i].asked);
    }
    free(d->x);
    memset(d, 0, sizeof *d);
}

int dir_copy(struct pager_dir *to, const struct pager_dir *from)
{
    memset(to, 0, sizeof *to);
    for (uint32_t i = 0; i < from->n; i++) {
        const struct dir_ext *e = &from->x[i];
        if (dir_add(to, e->dst, e->src, e->npages) < 0) {
            dir_free(to);
            return -1;
        }
        struct dir_ext *c = &to->x[to->n - 1];
        memcpy(c->away, e->away, (e->npages + 63) / 64 * sizeof(uint64_t));
        to->away -= e->npages;
        for (uint64_t k = 0; k < e->npages; k++)
            to->away += bit(e->away, k);
    }
    return 0;
}

/* the extent holding page addr away, with its index; NULL when none does
 * (extents may overlap after a mremap: only one has a page's bit set) */
static struct dir_ext *find(const struct pager_dir *d, uint64_t addr, uint64_t *idx)
{
    for (uint32_t i = 0; i < d->n; i++) {
        struct dir_ext *e = &d->x[i];
        if (addr >= e->dst && addr < e->dst + e->npages * PAGER_PAGE) {
            uint64_t k = (addr - e->dst) / PAGER_PAGE;
            if (bit(e->away, k)) {
                *idx = k;
                return e;
            }
        }
    }
    return NULL;
}

bool dir_is_away(const struct pager_dir *d, uint64_t addr, uint64_t *src, bool *asked)
{
    uint64_t k;
    struct dir_ext *e = find(d, addr & ~(uint64_t)(PAGER_PAGE - 1), &k);
    if (!e)
        return false;
    *src = e->src + k * PAGER_PAGE;
    *asked = bit(e->asked, k);
    return true;
}

void dir_set_asked(struct pager_dir *d, uint64_t addr, uint64_t npages)
{
    for (uint64_t p = 0; p < npages; p++) {
        uint64_t k;
        struct dir_ext *e = find(d, addr + p * PAGER_PAGE, &k);
        if (e)
            set(e->asked, k);
    }
}

void dir_clear(struct pager_dir *d, uint64_t start, uint64_t end)
{
    for (uint32_t i = 0; i < d->n; i++) {
        struct dir_ext *e = &d->x[i];
        uint64_t a = start > e->dst ? start : e->dst;
        uint64_t eend = e->dst + e->npages * PAGER_PAGE, b = end < eend ? end : eend;
        for (uint64_t p = a; p < b; p += PAGER_PAGE) {
            uint64_t k = (p - e->dst) / PAGER_PAGE;
            if (bit(e->away, k)) {
                unset(e->away, k);
                d->away--;
            }
            unset(e->asked, k);
        }
    }
}

int dir_remap(struct pager_dir *d, uint64_t from, uint64_t to, uint64_t len)
{
    uint32_t n = d->n;
    dir_clear(d, to, to + len); /* what was mapped there is gone */
    for (uint32_t i = 0; i < n; i++) {
        struct dir_ext *e = &d->x[i];
        uint64_t eend = e->dst + e->npages * PAGER_PAGE;
        uint64_t a = from > e->dst ? from : e->dst, b = from + len < eend ? from + len : eend;
        if (a >= b)
            continue;
        uint64_t k0 = (a - e->dst) / PAGER_PAGE, np = (b - a) / PAGER_PAGE, src = e->src + k0 * PAGER_PAGE;
        if (dir_add(d, to + (a - from), src, np) < 0)
            return -1;
        e = &d->x[i]; /* d->x may have moved */
        struct dir_ext *c = &d->x[d->n - 1];
        /* dir_add counted np pages away: each was either away here (it
         * moves: unset here) or not (unset in the copy) */
        for (uint64_t k = 0; k < np; k++) {
            if (bit(e->away, k0 + k))
                unset(e->away, k0 + k);
            else
                unset(c->away, k);
            unset(e->asked, k0 + k);
            d->away--;
        }
    }
    return 0;
}

int dir_next_unasked(const struct pager_dir *d, uint64_t *dst, uint64_t *src, uint64_t *npages, uint64_t max)
{
    for (uint32_t i = 0; i < d->n; i++) {
        const struct dir_ext *e = &d->x[i];
        for (uint64_t w = 0; w < (e->npages + 63) / 64; w++) {
            uint64_t want = e->away[w] & ~e->asked[w];
            if (!want)
                continue;
            uint64_t k = w * 64 + (uint64_t)__builtin_ctzll(want), m = 1;
            while (k + m < e->npages && m < max && bit(e->away, k + m) && !bit(e->asked, k + m))
                m++;
            *dst = e->dst + k * PAGER_PAGE;
            *src = e->src + k * PAGER_PAGE;
            *npages = m;
            return 1;
        }
    }
    return 0;
}
