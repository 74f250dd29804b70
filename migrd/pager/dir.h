/*
 * dir.h -- the away directory of one address space (a lazily moved process
 * or a fork's child): which pages are still at the source, where they were
 * there (a mremap moves them), which are asked for.  Not thread-safe: the
 * fault thread owns it.
 */
#ifndef MIGRD_PAGER_DIR_H
#define MIGRD_PAGER_DIR_H

#include <stdbool.h>
#include <stdint.h>

struct dir_ext {
    uint64_t dst, src, npages;   /* pages [dst, dst + npages*4096) were at src */
    uint64_t *away, *asked;      /* bitmaps, one bit a page */
};

struct pager_dir {
    struct dir_ext *x;
    uint32_t n, cap;
    uint64_t away;               /* pages away in all extents */
};

/* 0 or -1 (out of memory) */
int  dir_add(struct pager_dir *d, uint64_t dst, uint64_t src, uint64_t npages);
void dir_free(struct pager_dir *d);
int  dir_copy(struct pager_dir *to, const struct pager_dir *from);
/* Page addr: away (its source address in *src), and asked for already. */
bool dir_is_away(const struct pager_dir *d, uint64_t addr, uint64_t *src, bool *asked);
void dir_set_asked(struct pager_dir *d, uint64_t addr, uint64_t npages);
/* Page addr arrived, or was freed: no longer away. */
void dir_clear(struct pager_dir *d, uint64_t start, uint64_t end);
/* mremap(from, len) -> to: the pages away there move along (not asked). */
int  dir_remap(struct pager_dir *d, uint64_t from, uint64_t to, uint64_t len);
/* The first run of pages away and not asked for (at most max pages, same
 * extent): 1 with it, 0 when none. */
int  dir_next_unasked(const struct pager_dir *d, uint64_t *dst, uint64_t *src, uint64_t *npages,
                      uint64_t max);

#endif
