/*
 * addrmap.c -- see addrmap.h.
 */
#include "addrmap.h"

#include <errno.h>
#include <stdlib.h>

static struct addrmap_table *table_new(size_t cap)
{
    struct addrmap_table *t = calloc(1, sizeof(*t) + cap * sizeof(struct addrmap_slot));
    if (t)
        t->cap = cap;
    return t;
}

static inline size_t hash(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

int addrmap_init(struct addrmap *m)
{
    struct addrmap_table *t = table_new(64);
    if (!t)
        return -ENOMEM;
    atomic_store(&m->t, t);
    return 0;
}

void addrmap_destroy(struct addrmap *m)
{
    struct addrmap_table *t = atomic_load(&m->t);
    while (t) {
        struct addrmap_table *old = t->retired;
        free(t);
        t = old;
    }
    atomic_store(&m->t, NULL);
}

static struct addrmap_slot *find(struct addrmap_table *t, uint64_t key, int for_insert)
{
    size_t mask = t->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        uint64_t k1 = atomic_load_explicit(&t->slots[i].key1, memory_order_acquire);
        if (k1 == key + 1)
            return &t->slots[i];
        if (k1 == 0)
            return for_insert ? &t->slots[i] : NULL;
    }
}

void *addrmap_get(const struct addrmap *m, uint64_t key)
{
    struct addrmap_table *t = atomic_load_explicit(&m->t, memory_order_acquire);
    struct addrmap_slot *s = find(t, key, 0);
    return s ? atomic_load_explicit(&s->val, memory_order_acquire) : NULL;
}

static void insert(struct addrmap_table *t, uint64_t key, void *val)
{
    struct addrmap_slot *s = find(t, key, 1);
    if (atomic_load_explicit(&s->key1, memory_order_relaxed) == 0) {
        atomic_store_explicit(&s->val, val, memory_order_relaxed);
        atomic_store_explicit(&s->key1, key + 1, memory_order_release);
        t->used++;
    } else {
        atomic_store_explicit(&s->val, val, memory_order_release);
    }
}

static int grow(struct addrmap *m, struct addrmap_table *t)
{
    struct addrmap_table *n = table_new(t->cap * 2);
    if (!n)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        uint64_t k1 = atomic_load_explicit(&t->slots[i].key1, memory_order_relaxed);
        if (k1)
            insert(n, k1 - 1, atomic_load_explicit(&t->slots[i].val, memory_order_relaxed));
    }
    n->retired = t;
    atomic_store_explicit(&m->t, n, memory_order_release);
    return 0;
}

int addrmap_put(struct addrmap *m, uint64_t key, void *val)
{
    if (key == ADDRMAP_NO_KEY)
        return -EINVAL; /* found by test/fuzz/fuzz_link: it was stored unseen, and leaked */
    struct addrmap_table *t = atomic_load_explicit(&m->t, memory_order_relaxed);
    if ((t->used + 1) * 2 > t->cap) {
        int rc = grow(m, t);
        if (rc)
            return rc;
        t = atomic_load_explicit(&m->t, memory_order_relaxed);
    }
    insert(t, key, val);
    return 0;
}

int addrmap_foreach(const struct addrmap *m, int (*fn)(uint64_t key, void *val, void *arg), void *arg)
{
    struct addrmap_table *t = atomic_load_explicit(&m->t, memory_order_acquire);
    for (size_t i = 0; i < t->cap; i++) {
        uint64_t k1 = atomic_load_explicit(&t->slots[i].key1, memory_order_acquire);
        void *v = atomic_load_explicit(&t->slots[i].val, memory_order_acquire);
        if (k1 && v) {
            int rc = fn(k1 - 1, v, arg);
            if (rc)
                return rc;
        }
    }
    return 0;
}
