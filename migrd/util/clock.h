/*
 * clock.h -- the daemon's monotonic clock.
 *
 * Owns: the one time base of migrd (CLOCK_MONOTONIC), for timeouts,
 * back-off and the figures of `migrctl status`.  Everything in migrd may
 * call it; it calls nothing else in migrd.
 */
#ifndef MIGRD_CLOCK_H
#define MIGRD_CLOCK_H

#include <stdint.h>

uint64_t migrd_now_us(void);
uint64_t migrd_now_ms(void);

#endif
