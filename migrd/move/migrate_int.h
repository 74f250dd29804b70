/*
 * migrate_int.h -- what migrate.c (the port, the destination) and
 * migrate_out.c (the source) share.
 */
#ifndef MIGRD_MIGRATE_INT_H
#define MIGRD_MIGRATE_INT_H

#include <stdint.h>

#include "migrate.h"

#define OFFER_TIMEOUT_MS   10000
#define OFFER_MS_PER_MIB   4     /* the destination faults its buffer in first */
#define STREAM_TIMEOUT_MS  30000

/* res->message = the formatted reason; returns -1 */
int mig_failf(struct migrate_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Timeouts and options of a move's connection (both sides): a failure only
 * makes a dead link slower to notice (logged). */
void mig_stream_timeouts(int fd);

#endif
