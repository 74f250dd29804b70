/*
 * addrmap.h -- hash map from a mailbox address (job, rank) to a pointer.
 *
 * Owns: an open-addressing table that many threads may read without a lock
 * while one writer at a time (the caller serialises writers) inserts or
 * clears entries.  Keys are never removed (clearing stores NULL), and a
 * table replaced by growth is kept until addrmap_destroy(), so a reader
 * never touches freed memory.  Sized for the peers of one process or the
 * mailboxes of one node: thousands, not millions.
 */
#ifndef MIGR_ADDRMAP_H
#define MIGR_ADDRMAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct addrmap_slot {
    _Atomic uint64_t key1;   /* key + 1; 0 = empty */
    _Atomic(void *) val;
};

struct addrmap_table {
    size_t cap;                     /* power of two */
    size_t used;                    /* keys present */
    struct addrmap_table *retired;  /* older, smaller tables */
    struct addrmap_slot slots[];
};

struct addrmap {
    _Atomic(struct addrmap_table *) t;
};

static inline uint64_t addrmap_key(uint32_t job, uint32_t rank)
{
    return ((uint64_t)job << 32) | rank;
}

int addrmap_init(struct addrmap *m);
void addrmap_destroy(struct addrmap *m);
void *addrmap_get(const struct addrmap *m, uint64_t key);
/* Insert or replace; val NULL clears.  -ENOMEM on allocation failure;
 * -EINVAL for ADDRMAP_NO_KEY (job and rank ~0), which no table can hold
 * (a slot stores key + 1, 0 meaning empty). */
#define ADDRMAP_NO_KEY UINT64_MAX
int addrmap_put(struct addrmap *m, uint64_t key, void *val);
/* Call fn for every non-NULL value; stops when fn returns non-zero. */
int addrmap_foreach(const struct addrmap *m, int (*fn)(uint64_t key, void *val, void *arg), void *arg);

#endif
