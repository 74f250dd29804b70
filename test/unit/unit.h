/*
 * unit.h -- the smallest unit-test harness: CHECK() records a failure with
 * its place, each case prints one suite line (PASS:/FAIL: name).
 */
#ifndef MIGR_UNIT_H
#define MIGR_UNIT_H

#include <stdio.h>

static int unit_failed_checks;
static const char *unit_first_failure;
static char unit_failure_buf[256];

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (!unit_failed_checks++) {                                                           \
                snprintf(unit_failure_buf, sizeof unit_failure_buf, "%s:%d: %s", __FILE__, __LINE__, \
                         #cond);                                                                   \
                unit_first_failure = unit_failure_buf;                                             \
            }                                                                                      \
        }                                                                                          \
    } while (0)

static int unit_total_failed;

static void unit_run(const char *name, void (*fn)(void))
{
    unit_failed_checks = 0;
    fn();
    if (unit_failed_checks) {
        printf("FAIL: %s: %s (%d failed checks)\n", name, unit_first_failure, unit_failed_checks);
        unit_total_failed++;
    } else {
        printf("PASS: %s\n", name);
    }
    fflush(stdout);
}

#endif
