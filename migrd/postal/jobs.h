/*
 * jobs.h -- who owns each job on this node (DESIGN.md §10, "Trust").
 *
 * Owns: the table job -> (uid, references).  A job belongs to the uid that
 * first registered something of it here: the deputy of one of its ranks
 * (`migrctl run --job J --rank R`, migrate_ctl.c) or a mailbox (mbox.c,
 * also one that moved here).  Nobody else may open a mailbox in it, and a
 * packet goes into it only when it is vouched for by that uid or root
 * (postal.c for packets of this node, link.c for packets of other nodes,
 * which carry their sender's uid).  A job ends when its last reference
 * ends: mailboxes (exiled ones included) and deputy registrations.  Root
 * may claim a reference in any job; the owner stays who it was.
 */
#ifndef MIGRD_JOBS_H
#define MIGRD_JOBS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct postal;

int jobs_init(struct postal *d);   /* 0 or -ENOMEM */
void jobs_fini(struct postal *d);

/* Take a reference of job for uid: 0; -EPERM (the job is another uid's,
 * *owner says whose), -ENOMEM.  An unknown job becomes uid's. */
int jobs_claim(struct postal *d, uint32_t job, uid_t uid, uid_t *owner);
void jobs_release(struct postal *d, uint32_t job);

/* The owner of job if it is known here. */
bool jobs_owner(struct postal *d, uint32_t job, uid_t *owner);

/* May a packet vouched for by uid go into job?  (Root's may, and any into a
 * job unknown here: the node where it is known checks.) */
bool jobs_may_send(struct postal *d, uid_t uid, uint32_t job);

#endif
