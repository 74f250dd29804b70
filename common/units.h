/*
 * units.h -- the one syntax of sizes and durations on every command line.
 *
 * Owns: reading "64M", "0x10000", "500ms", "3s".  Every option of migrd,
 * migrctl and migr-ckpt that takes a size or a duration goes through here,
 * so that they all accept the same forms:
 *
 *   SIZE      N[K|M|G]   N decimal (or 0x hexadecimal); K, M, G (either case)
 *                        multiply by 2^10, 2^20, 2^30.  "64M" = 67108864.
 *   DURATION  N[us|ms|s|min]
 *                        N decimal; a bare number is in the option's own unit
 *                        (--poll-us: microseconds, --wait-pid: milliseconds),
 *                        so every value accepted before still means the same.
 *
 * No sign, no spaces, no fraction; overflow and values above the caller's
 * maximum are errors.
 */
#ifndef MIGR_UNITS_H
#define MIGR_UNITS_H

#include <stdint.h>

#define UNITS_US  1ull
#define UNITS_MS  1000ull
#define UNITS_SEC 1000000ull

/* SIZE into *bytes.  0, -EINVAL (not a size) or -ERANGE (above max). */
int parse_size(const char *s, uint64_t max, uint64_t *bytes);

/* DURATION into *us; a bare number counts in bare_unit (UNITS_US,
 * UNITS_MS or UNITS_SEC).  0, -EINVAL or -ERANGE (above max_us). */
int parse_duration(const char *s, uint64_t bare_unit, uint64_t max_us, uint64_t *us);

#endif
