/*
 * test_units.c -- the one syntax of sizes and durations (common/units.c):
 * every form the options accepted before still means the same, suffixes,
 * limits, overflow and garbage refused.
 */
#include <errno.h>
#include <stdint.h>

#include "common/units.h"
#include "unit.h"

static uint64_t size_of(const char *s, uint64_t max, int *rc)
{
    uint64_t v = 12345;
    *rc = parse_size(s, max, &v);
    return v;
}

static void sizes(void)
{
    int rc;
    CHECK(size_of("67108864", UINT64_MAX, &rc) == 67108864 && rc == 0); /* --max-ring in bytes */
    CHECK(size_of("0x4000000", UINT64_MAX, &rc) == 67108864 && rc == 0); /* and in hex */
    CHECK(size_of("64M", UINT64_MAX, &rc) == 64ull << 20 && rc == 0);
    CHECK(size_of("64m", UINT64_MAX, &rc) == 64ull << 20 && rc == 0);
    CHECK(size_of("64K", UINT64_MAX, &rc) == 64ull << 10 && rc == 0);
    CHECK(size_of("64k", UINT64_MAX, &rc) == 64ull << 10 && rc == 0);
    CHECK(size_of("2G", UINT64_MAX, &rc) == 2ull << 30 && rc == 0);
    CHECK(size_of("0", UINT64_MAX, &rc) == 0 && rc == 0);
    CHECK(size_of("18446744073709551615", UINT64_MAX, &rc) == UINT64_MAX && rc == 0);
    size_of("18446744073709551616", UINT64_MAX, &rc);
    CHECK(rc == -ERANGE);
    size_of("17179869184G", UINT64_MAX, &rc); /* 2^34 * 2^30 */
    CHECK(rc == -ERANGE);
    size_of("256M", 128u << 20, &rc);
    CHECK(rc == -ERANGE);
    CHECK(size_of("128M", 128u << 20, &rc) == 128u << 20 && rc == 0);
    static const char *bad[] = {"", "M", "-1", "+1", " 1", "1 ", "1MB", "1T", "1.5M", "0x", "12a", "1KM", "0xg"};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        CHECK(parse_size(bad[i], UINT64_MAX, &v) == -EINVAL && v == 7);
    }
}

static uint64_t dur(const char *s, uint64_t bare, uint64_t max, int *rc)
{
    uint64_t v = 12345;
    *rc = parse_duration(s, bare, max, &v);
    return v;
}

static void durations(void)
{
    int rc;
    /* a bare number keeps the option's own unit */
    CHECK(dur("2000", UNITS_US, UINT64_MAX, &rc) == 2000 && rc == 0);       /* --poll-us 2000 */
    CHECK(dur("5000", UNITS_MS, UINT64_MAX, &rc) == 5000000 && rc == 0);    /* --wait-pid 5000 */
    CHECK(dur("3", UNITS_SEC, UINT64_MAX, &rc) == 3000000 && rc == 0);
    CHECK(dur("500us", UNITS_MS, UINT64_MAX, &rc) == 500 && rc == 0);
    CHECK(dur("500ms", UNITS_US, UINT64_MAX, &rc) == 500000 && rc == 0);
    CHECK(dur("3s", UNITS_US, UINT64_MAX, &rc) == 3000000 && rc == 0);
    CHECK(dur("2min", UNITS_US, UINT64_MAX, &rc) == 120000000 && rc == 0);
    CHECK(dur("0", UNITS_US, 0, &rc) == 0 && rc == 0);
    CHECK(dur("0s", UNITS_MS, UINT64_MAX, &rc) == 0 && rc == 0);
    CHECK(dur("1s", UNITS_US, 1000000, &rc) == 1000000 && rc == 0);
    dur("1000001", UNITS_US, 1000000, &rc);
    CHECK(rc == -ERANGE);
    dur("2s", UNITS_US, 1000000, &rc);
    CHECK(rc == -ERANGE);
    dur("18446744073709551615s", UNITS_US, UINT64_MAX, &rc);
    CHECK(rc == -ERANGE);
    static const char *bad[] = {"", "s", "-1", "1 s", "1S", "1m", "1h", "1.5s", "0x10", "3sec", "ms", "1mss"};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 7;
        CHECK(parse_duration(bad[i], UNITS_US, UINT64_MAX, &v) == -EINVAL && v == 7);
    }
}

int main(void)
{
    unit_run("units: sizes (bytes, hex, K/M/G), limits, overflow, garbage refused", sizes);
    unit_run("units: durations (bare number in the option's unit, us/ms/s/min), limits, garbage", durations);
    return unit_total_failed ? 1 : 0;
}
