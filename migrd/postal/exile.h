/*
 * exile.h -- the mailbox of a process that moved (DESIGN.md §4, "Exile").
 *
 * Owns: what becomes of a mailbox once its owner runs on another node.  On
 * the node it left, the mailbox stays: closed to direct writes (senders
 * here look their route up again and go through migrd), out of reach of
 * mbox_find(), its inbox still taking what links and late senders put in
 * it, and everything in that inbox -- what the process had not read yet
 * included -- is forwarded to where the process runs now, in ring order.
 * The receiver drops the duplicates (its copy of the inbox moved with it)
 * by sequence number.  An exiled mailbox ends when its address is reported
 * gone, or is retired when its owner comes back (or the address is used
 * again): it then drains into the new mailbox until it is empty.
 */
#ifndef MIGRD_EXILE_H
#define MIGRD_EXILE_H

#include <stdint.h>

struct mbox;
struct postal;

int exile_init(struct postal *d);
void exile_fini(struct postal *d);

/* m's owner now runs on node `node` (the destination acknowledged). */
void exile_begin(struct mbox *m, int node);

/* Take exiled m out of the table (mbox_register puts its successor there);
 * it keeps draining until it is empty and then ends. */
void exile_retire(struct mbox *m);

/* (job, rank) ended on `node`: its exiles here end too. */
void exile_gone(struct postal *d, uint32_t job, uint32_t rank);

#endif
