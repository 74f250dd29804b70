/*
 * jobs.c -- see jobs.h.
 */
#include "jobs.h"

#include <errno.h>
#include <stdlib.h>

#include "common/addrmap.h"
#include "office.h"

struct job {
    uid_t uid;
    unsigned refs;
};

struct job_table {
    struct addrmap map;
};

int jobs_init(struct postal *d)
{
    struct job_table *t = calloc(1, sizeof *t);
    if (!t || addrmap_init(&t->map) < 0) {
        free(t);
        return -ENOMEM;
    }
    d->jobs = t;
    return 0;
}

static int free_job(uint64_t key, void *val, void *arg)
{
    (void)key;
    (void)arg;
    free(val);
    return 0;
}

void jobs_fini(struct postal *d)
{
    if (!d->jobs)
        return;
    addrmap_foreach(&d->jobs->map, free_job, NULL);
    addrmap_destroy(&d->jobs->map);
    free(d->jobs);
    d->jobs = NULL;
}

static struct job *job_get(struct postal *d, uint32_t job)
{
    return d->jobs ? addrmap_get(&d->jobs->map, addrmap_key(job, 0)) : NULL;
}

int jobs_claim(struct postal *d, uint32_t job, uid_t uid, uid_t *owner)
{
    struct job *j = job_get(d, job);
    if (j) {
        *owner = j->uid;
        if (uid != j->uid && uid != 0)
            return -EPERM;
        j->refs++;
        return 0;
    }
    if (!d->jobs || !(j = calloc(1, sizeof *j)))
        return -ENOMEM;
    *j = (struct job){.uid = uid, .refs = 1};
    if (addrmap_put(&d->jobs->map, addrmap_key(job, 0), j) < 0) {
        free(j);
        return -ENOMEM;
    }
    *owner = uid;
    return 0;
}

void jobs_release(struct postal *d, uint32_t job)
{
    struct job *j = job_get(d, job);
    if (!j || --j->refs)
        return;
    addrmap_put(&d->jobs->map, addrmap_key(job, 0), NULL);
    free(j);
}

bool jobs_owner(struct postal *d, uint32_t job, uid_t *owner)
{
    struct job *j = job_get(d, job);
    if (j)
        *owner = j->uid;
    return j != NULL;
}

bool jobs_may_send(struct postal *d, uid_t uid, uint32_t job)
{
    struct job *j = job_get(d, job);
    return uid == 0 || !j || j->uid == uid;
}
