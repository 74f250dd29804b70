/*
 * clock.c -- see clock.h.
 */
#include "clock.h"

#include <time.h>

uint64_t migrd_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t migrd_now_ms(void) { return migrd_now_us() / 1000; }
