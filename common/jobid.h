/*
 * jobid.h -- Open MPI job ids as users see them.
 *
 * Owns: reading and printing a 32-bit ORTE jobid the way Open MPI prints
 * it, "[family,local]" (family = jobid >> 16, local = jobid & 0xffff), or
 * as the plain number.  migrctl (ps, migrate, run --job) and migrd's log
 * use it; the dicom BTL addresses mailboxes by the same number.
 */
#ifndef MIGR_JOBID_H
#define MIGR_JOBID_H

#include <stddef.h>
#include <stdint.h>

/* "[20065,1]" or "1314979841" -> *job; 0, or -1 when malformed. */
int jobid_parse(const char *s, uint32_t *job);
/* "[family,local]" into buf (at least JOBID_STRLEN bytes). */
#define JOBID_STRLEN 16
const char *jobid_format(uint32_t job, char *buf, size_t len);

#endif
